"""Non-ideality factor (NF) and differential output error of a crossbar read (docs/crossbar.md).

* NF per column j and input vector k: (I_ideal − I_real) / I_ideal, with
  I_ideal[k, j] = Σ_i G_ij V_ki — the wire-free product of the inputs [V] and the cells'
  static conductances [S] at the crossbar's read voltage. Columns whose |I_ideal| is below
  ``threshold`` (default 1e−3) of the largest |I_ideal| of the same input vector are
  skipped (NaN). Tile NF = mean over the remaining columns and input vectors.
* Differential output error: Σ|ΔI_real − ΔI_ideal| / Σ|ΔI_ideal| with ΔI = I_2k − I_2k+1.

Real currents may come from any backend: pass a (K, N) array, a :class:`SimResult` whose
vectors ``i(vsns<j>)`` hold one point per input vector, or a list of such results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cosim.crossbar.spec import Crossbar
from cosim.errors import CosimError
from cosim.spice.result import SimResult

SKIP_THRESHOLD = 1e-3


def ideal_currents(crossbar: Crossbar, inputs: np.ndarray) -> np.ndarray:
    """Wire-free column currents [A], (K, N): Σ_i V_ki·G_ij for inputs (K, M) [V], G [S].

    Each sum is correctly rounded (:func:`math.fsum`), so the result does not depend on the
    order of the rows: a row permutation (MDM) leaves it bit-for-bit unchanged.
    """
    batch = np.atleast_2d(np.asarray(inputs, dtype=float))
    if batch.shape[1] != crossbar.rows:
        raise CosimError(f"inputs: expected (K, {crossbar.rows}), got {batch.shape}")
    conductance = crossbar.conductances()
    out = np.empty((batch.shape[0], crossbar.cols))
    for k, vector in enumerate(batch):
        products = vector[:, None] * conductance  # (M, N), exact per-cell products
        out[k] = [math.fsum(column) for column in products.T]
    return out


def column_currents(result: SimResult | Sequence[SimResult] | np.ndarray, n_cols: int) -> np.ndarray:
    """Column currents [A], (K, N), from a backend result (or several) or an array."""
    if isinstance(result, np.ndarray):
        currents = np.atleast_2d(result).astype(float)
    elif isinstance(result, SimResult):
        missing = [j for j in range(n_cols) if f"i(vsns{j})" not in result]
        if missing:
            raise CosimError(f"result from backend {result.backend!r} lacks i(vsns{missing[0]})")
        currents = np.column_stack([np.real(result[f"i(vsns{j})"]) for j in range(n_cols)])
    else:
        currents = np.concatenate([column_currents(r, n_cols) for r in result], axis=0)
    if currents.shape[1] != n_cols:
        raise CosimError(f"expected {n_cols} column currents, got {currents.shape[1]}")
    return currents


def nonideality_factor(i_ideal: np.ndarray, i_real: np.ndarray, threshold: float = SKIP_THRESHOLD) -> np.ndarray:
    """NF per input vector and column, (K, N); NaN where the column is skipped."""
    ideal, real = np.atleast_2d(i_ideal), np.atleast_2d(i_real)
    if ideal.shape != real.shape:
        raise CosimError(f"ideal {ideal.shape} and real {real.shape} currents differ in shape")
    peak = np.max(np.abs(ideal), axis=1, keepdims=True)
    keep = (np.abs(ideal) >= threshold * peak) & (peak > 0)
    nf = np.full(ideal.shape, np.nan)
    nf[keep] = (ideal[keep] - real[keep]) / ideal[keep]
    return nf


def differential(currents: np.ndarray) -> np.ndarray:
    """Signed pair outputs ΔI = I_2k − I_2k+1 [A], (K, N/2)."""
    currents = np.atleast_2d(currents)
    if currents.shape[1] % 2:
        raise CosimError("differential output needs an even number of columns")
    return currents[:, 0::2] - currents[:, 1::2]


def differential_error(i_ideal: np.ndarray, i_real: np.ndarray) -> float:
    """Σ|ΔI_real − ΔI_ideal| / Σ|ΔI_ideal| over all pairs and input vectors."""
    d_ideal, d_real = differential(i_ideal), differential(i_real)
    denominator = float(np.sum(np.abs(d_ideal)))
    if denominator == 0:
        raise CosimError("differential error undefined: the ideal differential output is zero")
    return float(np.sum(np.abs(d_real - d_ideal)) / denominator)


@dataclass(frozen=True)
class NFReport:
    """NF figures of one crossbar read."""

    nf: np.ndarray
    """(K, N) NF per input vector and column, NaN where skipped."""
    tile_nf: float
    """Mean NF over kept columns and input vectors."""
    skipped: int
    """Number of (input, column) entries skipped for a small ideal current."""
    output_error: float | None
    """Differential output error (None for single-ended layouts)."""

    def as_dict(self) -> dict[str, float | int | None]:
        return {"tile_nf": self.tile_nf, "skipped": self.skipped, "output_error": self.output_error}


def evaluate(
    crossbar: Crossbar,
    inputs: np.ndarray,
    real: SimResult | Sequence[SimResult] | np.ndarray,
    threshold: float = SKIP_THRESHOLD,
) -> NFReport:
    """NF and output error of ``real`` currents (any backend) for ``inputs`` (K, M) [V]."""
    ideal = ideal_currents(crossbar, inputs)
    measured = column_currents(real, crossbar.cols)
    if measured.shape != ideal.shape:
        raise CosimError(f"{measured.shape[0]} results for {ideal.shape[0]} input vectors")
    nf = nonideality_factor(ideal, measured, threshold)
    kept = ~np.isnan(nf)
    if not kept.any():
        raise CosimError("every column was skipped: ideal currents are all zero")
    error = differential_error(ideal, measured) if crossbar.differential else None
    return NFReport(nf=nf, tile_nf=float(np.mean(nf[kept])), skipped=int((~kept).sum()), output_error=error)
