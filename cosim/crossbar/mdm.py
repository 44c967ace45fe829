"""Manhattan-distance mapping (MDM) of rows and column pairs.

Reference: Farias, Martins and Kung (2025), arXiv:2511.04798 (Manhattan-distance mapping of
crossbar rows and columns); conventions in docs/crossbar.md.

A cell (i, j) lies at wire distance d_ij = (j + 1) + (M − i) from its row driver (column 0
side) and its sense corner (row M − 1 side). With the expected cell current
Ī_ij = G_ij·E[V_i], the cost Σ_ij Ī_ij d_ij splits into Σ_i (M − i)·R_i + Σ_j (j + 1)·C_j
with row loads R_i = Σ_j Ī_ij and column loads C_j = Σ_i Ī_ij. Row loads do not depend on
the column order and vice versa, so by the rearrangement inequality the cost is minimised
exactly by placing rows in ascending load (heaviest next to the sense end, i = M − 1) and
columns — or differential column pairs, kept together as (G⁺, G⁻) — in descending load
(heaviest next to the drivers, j = 0).

The mapping is undone digitally: inputs are permuted into physical row order before the
array and column outputs are put back into logical order after it, so callers see results
in the original order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from cosim.crossbar.cells import LinearCells
from cosim.crossbar.spec import Crossbar
from cosim.errors import CosimError

if TYPE_CHECKING:
    from cosim.crossbar.metrics import NFReport


@dataclass(frozen=True)
class Remap:
    """Physical position a holds logical row ``row_order[a]``; column b holds ``col_order[b]``."""

    row_order: np.ndarray
    col_order: np.ndarray

    def apply(self, crossbar: Crossbar) -> Crossbar:
        """The physically remapped crossbar."""
        return crossbar.permuted(self.row_order, self.col_order)

    def inputs_to_physical(self, inputs: np.ndarray) -> np.ndarray:
        """Reorder input vectors (K, M) [V] to the physical rows."""
        return np.atleast_2d(inputs)[:, self.row_order]

    def outputs_to_logical(self, currents: np.ndarray) -> np.ndarray:
        """Put physical column outputs (K, N) back into logical column order."""
        physical = np.atleast_2d(currents)
        logical = np.empty_like(physical)
        logical[:, self.col_order] = physical
        return logical

    def as_dict(self) -> dict[str, list[int]]:
        return {"row_order": self.row_order.tolist(), "col_order": self.col_order.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Remap":
        """The mapping recorded by :meth:`as_dict` (or in a report of :func:`analog_tiles`)."""
        return cls(np.asarray(data["row_order"]), np.asarray(data["col_order"]))


def expected_cell_currents(crossbar: Crossbar, input_mean: np.ndarray | None = None) -> np.ndarray:
    """Ī_ij = G_ij·E[|V_i|] [A]; ``input_mean`` (M,) [V] defaults to the crossbar's inputs."""
    mean = crossbar.input_vector() if input_mean is None else np.asarray(input_mean, dtype=float)
    if mean.shape != (crossbar.rows,):
        raise CosimError(f"input_mean: expected shape ({crossbar.rows},), got {mean.shape}")
    return crossbar.conductances() * np.abs(mean)[:, None]


def manhattan_cost(currents: np.ndarray) -> float:
    """Σ_ij Ī_ij·d_ij with d_ij = (j + 1) + (M − i) for expected cell currents (M, N) [A]."""
    m, n = currents.shape
    distance = (np.arange(n)[None, :] + 1) + (m - np.arange(m)[:, None])
    return float(np.sum(currents * distance))


def mdm_remap(crossbar: Crossbar, input_mean: np.ndarray | None = None) -> Remap:
    """Row and column(-pair) order minimising the Manhattan cost of ``crossbar``.

    Ties keep their original order (stable sort), so a uniform array maps to itself.
    """
    load = expected_cell_currents(crossbar, input_mean)
    row_order = np.argsort(load.sum(axis=1), kind="stable")
    column_load = load.sum(axis=0)
    if crossbar.differential:
        pair_order = np.argsort(-(column_load[0::2] + column_load[1::2]), kind="stable")
        col_order = np.column_stack((2 * pair_order, 2 * pair_order + 1)).ravel()
    else:
        col_order = np.argsort(-column_load, kind="stable")
    return Remap(row_order=row_order, col_order=col_order)


def sliced_remap(load: np.ndarray, differential: bool, columns: str = "flip") -> Remap:
    """MDM of a bit-sliced tile as Farias, Martins and Kung describe it.

    ``load`` (M, N) [A] is the expected current of each cell. Rows are ordered by the
    Manhattan distance of their cells' current: the row-dependent part of
    Σ_ij Ī_ij·d_ij is Σ_i (M − i)·R_i, so rows go in ascending load R_i (the heaviest row next
    to the sense end) — exactly minimal for any fixed column order. ``columns``:

    * ``"flip"`` (the paper): activations are fed from the low-order side — the column order
      is reversed, so the least-significant (densest) slices sit next to the row drivers and
      every weight's slices stay adjacent;
    * ``"sorted"`` (the analog variant): columns (pairs) by descending load, the exact
      minimiser of the Manhattan cost; slices of one weight may be spread over the tile;
    * ``"keep"``: rows only.

    Differential pairs stay (G⁺, G⁻).
    """
    m, n = load.shape
    row_order = np.argsort(load.sum(axis=1), kind="stable")
    if differential and n % 2:
        raise CosimError("a differential tile needs an even number of columns")
    units = n // 2 if differential else n
    if columns == "keep":
        unit_order = np.arange(units)
    elif columns == "flip":
        unit_order = np.arange(units)[::-1]
    elif columns == "sorted":
        unit_load = load.sum(axis=0)
        unit_load = unit_load[0::2] + unit_load[1::2] if differential else unit_load
        unit_order = np.argsort(-unit_load, kind="stable")
    else:
        raise CosimError(f"MDM columns must be flip, sorted or keep, got {columns!r}")
    col_order = np.column_stack((2 * unit_order, 2 * unit_order + 1)).ravel() if differential else unit_order.copy()
    return Remap(row_order=row_order, col_order=col_order)


def identity_remap(crossbar: Crossbar) -> Remap:
    """The mapping that changes nothing."""
    return Remap(np.arange(crossbar.rows), np.arange(crossbar.cols))


@dataclass(frozen=True)
class MDMStudy:
    """NF of one weight matrix read without and with MDM (same inputs, same wires)."""

    before: "NFReport"
    after: "NFReport"
    remap: Remap
    cost_before: float
    cost_after: float
    ideal_unchanged: bool
    """Whether the wire-free output of the remapped array, put back in logical order,
    equals the original's exactly."""

    def as_dict(self) -> dict[str, object]:
        return {
            "nf_before": self.before.tile_nf,
            "nf_after": self.after.tile_nf,
            "nf_reduction": 1.0 - self.after.tile_nf / self.before.tile_nf,
            "output_error_before": self.before.output_error,
            "output_error_after": self.after.output_error,
            "manhattan_cost_before": self.cost_before,
            "manhattan_cost_after": self.cost_after,
            "ideal_unchanged": self.ideal_unchanged,
        }


def random_inputs(rows: int, count: int, v_read: float, seed: int) -> np.ndarray:
    """``count`` input vectors (count, rows), uniform in [0, v_read] [V], from ``seed``."""
    return np.random.default_rng(seed).uniform(0.0, v_read, size=(count, rows))


def study(crossbar: Crossbar, inputs: np.ndarray, **solver_options: object) -> MDMStudy:
    """Solve ``crossbar`` for ``inputs`` (K, M) [V] as mapped and after MDM; compare NF.

    MDM loads use E[V_i] = mean of the inputs over K. Results of the remapped array are
    returned to logical order before NF is taken against the logical ideal currents.
    """
    from cosim.crossbar.metrics import evaluate, ideal_currents
    from cosim.crossbar.solver import NodalSolver

    batch = np.atleast_2d(np.asarray(inputs, dtype=float))
    remap = mdm_remap(crossbar, np.mean(np.abs(batch), axis=0))
    mapped = remap.apply(crossbar)
    real_before = NodalSolver(crossbar, **solver_options).solve_many(batch)  # type: ignore[arg-type]
    physical = NodalSolver(mapped, **solver_options).solve_many(remap.inputs_to_physical(batch))  # type: ignore[arg-type]
    real_after = remap.outputs_to_logical(physical)
    ideal = ideal_currents(crossbar, batch)
    ideal_mapped = remap.outputs_to_logical(ideal_currents(mapped, remap.inputs_to_physical(batch)))
    load = expected_cell_currents(crossbar, np.mean(np.abs(batch), axis=0))
    return MDMStudy(
        before=evaluate(crossbar, batch, real_before),
        after=evaluate(crossbar, batch, real_after),
        remap=remap,
        cost_before=manhattan_cost(load),
        cost_after=manhattan_cost(load[np.ix_(remap.row_order, remap.col_order)]),
        ideal_unchanged=bool(np.array_equal(ideal, ideal_mapped)),
    )


def random_weights(rows: int, cols: int, block: int, seed: int) -> np.ndarray:
    """Standard-normal test weights (rows, cols), drawn from ``seed``.

    With ``block`` > 0 only ``block``×``block`` blocks on the diagonal are non-zero (the
    sparse, block-structured case MDM is expected to help most).
    """
    if rows < 1 or cols < 1:
        raise CosimError(f"rows and cols must be positive, got {rows}×{cols}")
    rng = np.random.default_rng(seed)
    if block <= 0:
        return rng.standard_normal((rows, cols))
    weights = np.zeros((rows, cols))
    for start in range(0, min(rows, cols), block):
        stop_r, stop_c = min(start + block, rows), min(start + block, cols)
        weights[start:stop_r, start:stop_c] = rng.standard_normal((stop_r - start, stop_c - start))
    return weights


def analog_tiles(
    weights: np.ndarray,
    inputs: np.ndarray,
    tile: int = 0,
    g_min: float = 1 / 75e3,
    g_max: float = 1 / 4.5e3,
    r_wire: float = 1.0,
    v_read: float = 0.2,
) -> dict[str, object]:
    """MDM study of analog differential weights (inputs × outputs) for input voltages
    (K, inputs) [V], on one crossbar (``tile`` = 0) or on tiles of ``tile`` rows × ``tile``
    physical columns (``tile``/2 outputs). All tiles share one conductance scale (max|W| →
    ``g_max`` [S]). Returns the means over tiles (``nf_before``, ``nf_after``, output errors),
    the NF reduction of the means, and a ``tiles`` list; a single crossbar also reports its
    Manhattan costs and permutation."""
    w = np.asarray(weights, dtype=float)
    batch = np.atleast_2d(np.asarray(inputs, dtype=float))
    if tile < 0 or tile == 1:
        raise CosimError(f"tile must be 0 (one crossbar) or at least 2, got {tile}")
    if batch.shape[1] != w.shape[0]:
        raise CosimError(f"inputs: {batch.shape[1]} values per vector, the weights have {w.shape[0]} rows")
    full = Crossbar.from_weights(w, g_min=g_min, g_max=g_max, differential=True)
    g = full.conductances()
    tile_rows = tile or w.shape[0]
    tile_pairs = tile // 2 if tile else w.shape[1]
    tiles, studies = [], []
    for r0 in range(0, w.shape[0], tile_rows):
        for c0 in range(0, w.shape[1], tile_pairs):
            r1, c1 = min(r0 + tile_rows, w.shape[0]), min(c0 + tile_pairs, w.shape[1])
            volts = batch[:, r0:r1]
            keep = np.any(volts != 0, axis=1)
            part = Crossbar(LinearCells(g[r0:r1, 2 * c0:2 * c1]), r_row=r_wire, r_col=r_wire, differential=True, v_read=v_read)
            if not keep.any() or not np.any(part.conductances() > g_min * (1 + 1e-9)):
                continue  # nothing flows above background: no NF to report
            result = study(part, volts[keep])
            studies.append(result)
            tiles.append({"rows": [r0, r1], "outputs": [c0, c1], "shape": list(part.shape), **result.as_dict()})
    if not studies:
        raise CosimError("every tile is idle: the inputs or the weights are all zero")
    nf_before = float(np.mean([s.before.tile_nf for s in studies]))
    nf_after = float(np.mean([s.after.tile_nf for s in studies]))
    report: dict[str, object] = {
        "nf_before": nf_before,
        "nf_after": nf_after,
        "nf_reduction": 1.0 - nf_after / nf_before,
        "output_error_before": float(np.mean([s.before.output_error for s in studies])),
        "output_error_after": float(np.mean([s.after.output_error for s in studies])),
        "ideal_unchanged": all(s.ideal_unchanged for s in studies),
        "tiles": tiles,
    }
    if len(studies) == 1:
        report.update(manhattan_cost_before=studies[0].cost_before, manhattan_cost_after=studies[0].cost_after)
        report.update(studies[0].remap.as_dict())
    return report


def analog_compensation(
    weights: np.ndarray,
    inputs: np.ndarray,
    remap: Remap,
    methods: Sequence[str],
    *,
    g_min: float = 1 / 75e3,
    g_max: float = 1 / 4.5e3,
    r_wire: float = 1.0,
    v_read: float = 0.2,
    probe_seed: int = 0,
) -> list[dict[str, Any]]:
    """Compensation ``methods`` on the one crossbar of :func:`analog_tiles` (``tile`` = 0),
    as mapped and as placed by ``remap`` (e.g. ``Remap.from_dict`` of its report), for input
    voltages ``inputs`` (K, inputs) [V]: one row per method, see
    :func:`cosim.compensation.compare_with_mdm`. What ``cosim mdm --compensation`` runs.

    The array holds the exact conductances of :meth:`Crossbar.from_weights` (one scale,
    max|W| → ``g_max`` [S]) in the window they span, with ``r_wire`` [Ω] row and column
    segments; ``probe_seed`` seeds the gain calibration's probe vectors. ``"insitu"`` programs
    devices and is refused here (use :func:`cosim.compensation.compensate` with devices).
    """
    from cosim.compensation import ArraySpec, CompensationError, CompensationOptions, check_methods, compare_with_mdm
    from cosim.s4d.circuit import Wires
    from cosim.s4d.mapping import ConductanceWindow

    names = check_methods(methods)
    if "insitu" in names:
        raise CompensationError("method 'insitu' programs devices; analog_compensation reads exact conductances")
    w = np.asarray(weights, dtype=float)
    crossbar = Crossbar.from_weights(w, g_min=g_min, g_max=g_max, differential=True, r_row=r_wire, r_col=r_wire,
                                     v_read=v_read)
    g = crossbar.conductances()
    scale = np.full(w.shape[1], (g.max() - g.min()) / max(float(np.abs(w).max()), 1e-300))
    spec = ArraySpec(weights=w, window=ConductanceWindow(float(g.min()), float(g.max())), scale=scale,
                     v_read=crossbar.v_read, wires=Wires(crossbar.r_row, crossbar.r_col, crossbar.r_source, crossbar.r_sense))
    return compare_with_mdm(spec, remap, inputs, names, options=CompensationOptions(probe_seed=probe_seed))
