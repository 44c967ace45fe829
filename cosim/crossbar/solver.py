"""Fast exact nodal solver for 1R crossbars (backend ``"nodal"``).

The circuit is the one the netlist templates write (see :mod:`cosim.crossbar.spec`): each
cell (i, j) has a row node and a column node, so there are 2·M·N unknown node voltages.
Kirchhoff's current law at every node gives

    F(x) = A_w x + Bᵀ-stamp of I_cell(v_row − v_col) − b = 0,

where ``A_w`` holds the wire, source and sense conductances, ``b`` the inputs V_i / R_source
injected at the row drivers, and ``I_cell`` the cell currents. For linear cells the system
matrix A = A_w + stamp(G) is symmetric positive definite and depends on the conductances only,
so it is factored once and every input vector costs two triangular solves (docs/crossbar.md).

Nonlinear (polynomial) cells are solved by Newton's method in chord form. The first estimate
of each cell's voltage is its row input; the Jacobian A_w + stamp(dI/dV) there (averaged over
the input vectors of a batch) is factored once and reused for all iterations, all input
vectors and later batches while the iteration contracts fast; when it does not (contraction
worse than ``refactor_ratio``) the Jacobian is refactored at the current iterate. The residual is always
the exact KCL residual, so the converged result is the exact circuit solution (to ``rtol``).

Factorization (chosen by benchmark, ``benchmarks/bench_crossbar.py``; see docs/crossbar.md):
SuperLU (``scipy.sparse.linalg.splu``) on unknowns numbered in geometric nested-dissection
order; CHOLMOD (``factorization="cholmod"``) when the optional ``sksparse`` is importable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cosim.crossbar.spec import Crossbar
from cosim.errors import ConvergenceError, CosimError
from cosim.spice.result import Plot, SimResult

Factorization = Literal["auto", "splu", "cholmod"]

SPLU_ORDERING = "NATURAL"
"""SuperLU column ordering: the unknowns already come in nested-dissection order, which beat
SuperLU's own MMD_AT_PLUS_A / COLAMD orderings in ``benchmarks/bench_crossbar.py``."""

ND_LEAF = 16
"""Sub-arrays of at most this many cells are not dissected further."""


def cholmod_available() -> bool:
    """Whether scikit-sparse's CHOLMOD wrapper can be imported."""
    try:
        import sksparse.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class NodalSystem:
    """Sparse pieces of the crossbar's nodal equations (1R cells).

    Unknowns are numbered in nested-dissection order (:func:`nested_dissection_order`);
    ``row_nodes`` / ``col_nodes`` map cell k = i·N + j to its two unknowns.
    """

    wires: sp.csc_matrix
    """A_w [S]: wires, source and sense conductances (2MN × 2MN)."""
    incidence: sp.csc_matrix
    """B (2MN × MN): +1 at the row node and −1 at the column node of each cell."""
    source_nodes: np.ndarray
    """Unknown index of node r_i_0 for each row i."""
    sense_nodes: np.ndarray
    """Unknown index of node c_(M−1)_j for each column j."""
    g_source: float
    g_sense: float
    row_nodes: np.ndarray
    """Unknown index of the row node of each cell (flattened i·N + j)."""
    col_nodes: np.ndarray
    """Unknown index of the column node of each cell."""

    def rhs(self, inputs: np.ndarray) -> np.ndarray:
        """b (2MN × K) for input voltages ``inputs`` (K × M) [V]: V_i·G_source at r_i_0."""
        b = np.zeros((self.wires.shape[0], inputs.shape[0]))
        b[self.source_nodes, :] = inputs.T * self.g_source
        return b

    def matrix(self, cell_conductance: np.ndarray) -> sp.csc_matrix:
        """A_w + B·diag(g)·Bᵀ for per-cell conductances ``g`` (M, N) [S]."""
        stamp = self.incidence @ sp.diags(cell_conductance.ravel()) @ self.incidence.T
        return (self.wires + stamp).tocsc()

    def cell_voltages(self, x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Voltage across each cell, (K, M, N), from node voltages ``x`` (2MN × K)."""
        v = x[self.row_nodes, :] - x[self.col_nodes, :]
        return v.T.reshape((x.shape[1],) + shape)


def nested_dissection_order(rows: int, cols: int, leaf: int = ND_LEAF) -> np.ndarray:
    """Geometric nested-dissection elimination order of the 2·M·N crossbar unknowns.

    Unknown 2k is the row node and 2k + 1 the column node of cell k = i·N + j. The array is
    a grid of cells; a grid line splits it into two halves. Cutting along a row (i = mid)
    only the *column* nodes of that row join the halves (row nodes of that row form a chain
    of their own, ordered first); cutting along a column, only the *row* nodes do. Halves are
    ordered recursively before their separator, which is the classic fill-reducing order for
    grid graphs (George 1973): O(n log n) fill, O(n^1.5) factorization work.
    Returns ``order`` with ``order[position] = unknown``.
    """
    grid = np.arange(rows * cols).reshape(rows, cols)
    pieces: list[np.ndarray] = []
    stack: list[tuple[int, int, int, int] | np.ndarray] = [(0, rows, 0, cols)]
    while stack:  # iterative post-order: children first, then the separator
        item = stack.pop()
        if isinstance(item, np.ndarray):
            pieces.append(item)
            continue
        i0, i1, j0, j1 = item
        if i1 <= i0 or j1 <= j0:
            continue
        if (i1 - i0) * (j1 - j0) <= leaf:
            k = grid[i0:i1, j0:j1].ravel()
            pieces.append(np.column_stack((2 * k, 2 * k + 1)).ravel())
        elif i1 - i0 >= j1 - j0:
            mid = (i0 + i1) // 2
            k = grid[mid, j0:j1]
            pieces.append(2 * k)
            stack.extend([2 * k + 1, (mid + 1, i1, j0, j1), (i0, mid, j0, j1)])
        else:
            mid = (j0 + j1) // 2
            k = grid[i0:i1, mid]
            pieces.append(2 * k + 1)
            stack.extend([2 * k, (i0, i1, mid + 1, j1), (i0, i1, j0, mid)])
    return np.concatenate(pieces)


def build_system(crossbar: Crossbar) -> NodalSystem:
    """Assemble the wire matrix and cell incidence for ``crossbar`` (1R only).

    Unknowns are numbered in nested-dissection order, so the factorization needs no
    further fill-reducing permutation.
    """
    if crossbar.access != "1r":
        raise CosimError("the nodal solver handles 1R crossbars only; simulate 1T1R with ngspice")
    m, n = crossbar.shape
    cell = np.arange(m * n).reshape(m, n)
    position = np.empty(2 * m * n, dtype=np.int64)
    position[nested_dissection_order(m, n)] = np.arange(2 * m * n)
    row_node, col_node = position[2 * cell], position[2 * cell + 1]
    g_row, g_col = 1.0 / crossbar.r_row, 1.0 / crossbar.r_col
    g_source, g_sense = 1.0 / crossbar.r_source, 1.0 / crossbar.r_sense
    a = np.concatenate([row_node[:, :-1].ravel(), col_node[:-1, :].ravel()])
    b = np.concatenate([row_node[:, 1:].ravel(), col_node[1:, :].ravel()])
    g = np.concatenate([np.full(m * (n - 1), g_row), np.full((m - 1) * n, g_col)])
    size = 2 * m * n
    diag = np.bincount(a, g, minlength=size).astype(float) + np.bincount(b, g, minlength=size)
    diag[row_node[:, 0]] += g_source
    diag[col_node[-1, :]] += g_sense
    rows = np.concatenate([a, b, np.arange(size)])
    cols = np.concatenate([b, a, np.arange(size)])
    vals = np.concatenate([-g, -g, diag])
    wires = sp.csc_matrix((vals, (rows, cols)), shape=(size, size))
    inc_rows = np.concatenate([row_node.ravel(), col_node.ravel()])
    inc_cols = np.concatenate([cell.ravel(), cell.ravel()])
    inc_vals = np.concatenate([np.ones(m * n), -np.ones(m * n)])
    incidence = sp.csc_matrix((inc_vals, (inc_rows, inc_cols)), shape=(size, m * n))
    return NodalSystem(
        wires, incidence, row_node[:, 0].copy(), col_node[-1, :].copy(), g_source, g_sense,
        row_node.ravel().copy(), col_node.ravel().copy(),
    )


def factorize(matrix: sp.csc_matrix, method: Factorization = "auto") -> Callable[[np.ndarray], np.ndarray]:
    """Factor ``matrix`` once; return a function solving A x = b for b of shape (n,) or (n, K)."""
    if method == "auto":  # SuperLU in nested-dissection order won the benchmark (docs/crossbar.md)
        method = "splu"
    if method == "cholmod":
        if not cholmod_available():
            raise CosimError("factorization 'cholmod' needs the optional scikit-sparse package")
        from sksparse.cholmod import CholmodNotPositiveDefiniteError, cholesky

        try:
            factor = cholesky(matrix)
        except CholmodNotPositiveDefiniteError:  # non-passive cells: fall back to LU
            return factorize(matrix, "splu")
        return factor
    if method != "splu":
        raise CosimError(f"unknown factorization {method!r}; use auto, splu or cholmod")
    try:  # diagonal pivots keep the nested-dissection order (fine for a passive, SPD system)
        lu = spla.splu(matrix, permc_spec=SPLU_ORDERING, diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    except RuntimeError:  # a zero pivot (non-passive cells): threshold partial pivoting
        try:
            lu = spla.splu(matrix, permc_spec="MMD_AT_PLUS_A")
        except RuntimeError as exc:
            raise ConvergenceError(f"nodal solver: singular circuit matrix ({exc})") from exc
    return lu.solve


@dataclass
class SolveStats:
    """Bookkeeping of one batched solve."""

    factorizations: int = 0
    iterations: int = 0
    factor_s: float = 0.0
    solve_s: float = 0.0


class NodalSolver:
    """Solve one crossbar for many input vectors, reusing factorizations.

    ``rtol``: Newton stops when max|Δx| ≤ rtol·max|x| (per input vector); ``max_iter``:
    iteration cap; ``refactor_ratio``: refactor the Jacobian when ‖Δx_k‖/‖Δx_k−1‖ exceeds it;
    ``chunk``: input vectors solved together (bounds memory at 2MN·chunk doubles).
    """

    def __init__(
        self,
        crossbar: Crossbar,
        factorization: Factorization = "auto",
        rtol: float = 1e-12,
        max_iter: int = 60,
        refactor_ratio: float = 0.25,
        chunk: int = 64,
    ) -> None:
        self.crossbar = crossbar
        self.factorization = factorization
        self.rtol = rtol
        self.max_iter = max_iter
        self.refactor_ratio = refactor_ratio
        self.chunk = chunk
        self.system = build_system(crossbar)
        self.stats = SolveStats()
        self._linear_solve: Callable[[np.ndarray], np.ndarray] | None = None
        self._chord: tuple[Callable[[np.ndarray], np.ndarray], np.ndarray] | None = None
        """Factored chord Jacobian (solve, cell conductances [S]), kept across batches."""

    # -- public API -------------------------------------------------------------------
    def solve_many(self, inputs: np.ndarray) -> np.ndarray:
        """Column currents [A], shape (K, N), for input voltages ``inputs`` [V], shape (K, M).

        Currents flow from each column into its virtual ground (positive for positive
        inputs into positive conductances), like ngspice's ``i(vsns<j>)``.
        """
        x = self.node_voltages(inputs)
        return self.column_currents(x)

    def node_voltages(self, inputs: np.ndarray) -> np.ndarray:
        """All node voltages [V], shape (2MN, K) in the solver's node numbering."""
        batch = self._check_inputs(inputs)
        parts = [self._solve_chunk(batch[s : s + self.chunk]) for s in range(0, len(batch), self.chunk)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.system.wires.shape[0], 0))

    def column_currents(self, x: np.ndarray) -> np.ndarray:
        """Sense currents [A], (K, N), from node voltages ``x`` (2MN × K)."""
        return (x[self.system.sense_nodes, :] * self.system.g_sense).T

    def input_currents(self, x: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Current drawn from each input source [A], (K, M), ngspice sign (into + terminal)."""
        v_first = x[self.system.source_nodes, :].T
        return -(np.asarray(inputs, float) - v_first) * self.system.g_source

    def simulate(self, inputs: np.ndarray | None = None, save_nodes: bool = False) -> SimResult:
        """Solve and package as a :class:`SimResult` (one point per input vector)."""
        start = time.perf_counter()
        batch = self._check_inputs(self.crossbar.input_vector()[None] if inputs is None else inputs)
        x = self.node_voltages(batch)
        vectors: dict[str, np.ndarray] = {}
        for j, current in enumerate(self.column_currents(x).T):
            vectors[f"i(vsns{j})"] = current
        for i, current in enumerate(self.input_currents(x, batch).T):
            vectors[f"i(vin{i})"] = current
        if save_nodes:
            vectors.update(self._node_vectors(x, batch))
        units = {k: ("current" if k.startswith("i(") else "voltage") for k in vectors}
        elapsed = time.perf_counter() - start
        meta = {
            "inputs": batch,
            "factorizations": self.stats.factorizations,
            "iterations": self.stats.iterations,
            "factor_s": self.stats.factor_s,
            "solve_s": self.stats.solve_s,
            "nonlinear": not self.crossbar.cells.is_linear,
        }
        plot = Plot(name="Operating Point", vectors=vectors, title="nodal solver", units=units)
        return SimResult(backend="nodal", plots=[plot], log="", elapsed_s=elapsed, meta=meta)

    # -- internals --------------------------------------------------------------------
    def _check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        batch = np.atleast_2d(np.asarray(inputs, dtype=float))
        if batch.ndim != 2 or batch.shape[1] != self.crossbar.rows:
            raise CosimError(f"inputs: expected shape (K, {self.crossbar.rows}), got {np.shape(inputs)}")
        if not np.isfinite(batch).all():
            raise CosimError("inputs: non-finite voltage")
        return batch

    def _factor(self, conductance: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        start = time.perf_counter()
        solve = factorize(self.system.matrix(conductance), self.factorization)
        self.stats.factorizations += 1
        self.stats.factor_s += time.perf_counter() - start
        return solve

    def _backsolve(self, solve: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        x = solve(rhs)
        self.stats.solve_s += time.perf_counter() - start
        return np.asarray(x).reshape(rhs.shape)

    def _solve_chunk(self, batch: np.ndarray) -> np.ndarray:
        cells = self.crossbar.cells
        b = self.system.rhs(batch)
        if cells.is_linear:
            if self._linear_solve is None:
                self._linear_solve = self._factor(cells.derivative(np.zeros(cells.shape)))
            return self._backsolve(self._linear_solve, b)
        return self._newton(batch, b)

    def _newton(self, batch: np.ndarray, b: np.ndarray) -> np.ndarray:
        cells, shape, system = self.crossbar.cells, self.crossbar.shape, self.system
        count = len(batch)
        # First estimate of each cell's voltage: its row input (wires drop little).
        v_hat = np.broadcast_to(batch[:, :, None], (count,) + shape)
        if self._chord is None:
            self._chord = (self._factor(np.mean(cells.derivative(v_hat), axis=0)), np.mean(cells.derivative(v_hat), axis=0))
        solve, chord_g = self._chord
        # One Newton step about v_hat: cells as chord conductance plus a current offset.
        offset = cells.current(v_hat) - chord_g * v_hat
        x = self._backsolve(solve, b - system.incidence @ offset.reshape(count, -1).T)
        previous, worst = np.inf, np.inf
        for _ in range(self.max_iter):
            currents = cells.current(system.cell_voltages(x, shape)).reshape(count, -1).T
            residual = system.wires @ x - b + system.incidence @ currents
            step = self._backsolve(solve, residual)
            x -= step
            self.stats.iterations += 1
            size = np.max(np.abs(step), axis=0)
            scale = np.maximum(np.max(np.abs(x), axis=0), 1e-300)
            if np.all(size <= self.rtol * scale):
                return x
            worst = float(np.max(size / scale))
            if worst > self.refactor_ratio * previous:  # slow contraction: refresh the Jacobian
                chord_g = np.mean(cells.derivative(system.cell_voltages(x, shape)), axis=0)
                solve = self._factor(chord_g)
                self._chord = (solve, chord_g)
                previous = np.inf
            else:
                previous = worst
        raise ConvergenceError(
            f"nodal solver: Newton did not converge in {self.max_iter} iterations "
            f"(last relative step {worst:.3g}); are the cells passive at these voltages?"
        )

    def _node_vectors(self, x: np.ndarray, batch: np.ndarray) -> dict[str, np.ndarray]:
        m, n = self.crossbar.shape
        vectors: dict[str, np.ndarray] = {}
        for i in range(m):
            vectors[f"v(in{i})"] = batch[:, i]
        for i in range(m):
            for j in range(n):
                k = i * n + j
                vectors[f"v(r{i}_{j})"] = x[self.system.row_nodes[k]]
                vectors[f"v(c{i}_{j})"] = x[self.system.col_nodes[k]]
        for j in range(n):
            vectors[f"v(s{j})"] = np.zeros(len(batch))
        return vectors


def simulate(crossbar: Crossbar, inputs: np.ndarray | None = None, **options: object) -> SimResult:
    """Backend entry point: solve ``crossbar`` (inputs (K, M) [V], default its own) → SimResult."""
    save_nodes = bool(options.pop("save_nodes", False))
    return NodalSolver(crossbar, **options).simulate(inputs, save_nodes=save_nodes)  # type: ignore[arg-type]


def solve_many(crossbar: Crossbar, inputs: np.ndarray, **options: object) -> np.ndarray:
    """Column currents [A], (K, N), for inputs (K, M) [V]; one factorization for linear cells."""
    return NodalSolver(crossbar, **options).solve_many(inputs)  # type: ignore[arg-type]
