"""Quantization of the stored S4D crossbar matrices, and the software model of a stored program.

Every entry of the (H, N+1, N+1) matrices belongs to a *group* (``ideal.group_labels``); a
group shares one real scale and its entries become integer codes:

* n-bit (``quantize_program``): symmetric mid-tread grid, codes in
  ``−(2^{b−1}−1) … 2^{b−1}−1``, scale = group max |w| / (2^{b−1}−1) (the largest entry is
  represented exactly, nothing clips);
* ternary (``ternarize_program``): codes in {−1, 0, +1}; following Ternary Weight Networks
  (Li, Zhang, Liu 2016, arXiv:1605.04711) entries with |w| ≤ t = ``threshold_ratio``·mean|w|
  become 0 and the scale is the mean |w| of the kept entries (the L2-optimal scale for that
  support).

The quantized program is an ordinary ``CrossbarProgram``; its *software model* is the same
recurrence driven by the quantized matrices (``simulate``). ``program_kernel`` computes the
kernel of any stored program independently, in closed form from the eigen-decomposition of
its state transition, so that the recurrence can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.s4d.ideal import (
    CrossbarProgram,
    GroupScheme,
    S4DError,
    group_labels,
    group_max_abs,
    ideal_matvec,
    run_recurrence,
)


@dataclass(frozen=True, eq=False)
class QuantizedProgram:
    """A quantized crossbar program.

    Attributes:
        program: the program holding the dequantized matrices ``codes · scale``.
        codes: integer (H, N+1, N+1) codes; 0 at structural zeros.
        scales: real scale per group (index = group id of ``labels``).
        labels: (H, N+1, N+1) group ids, −1 at structural zeros.
        levels: largest code magnitude (2^{b−1}−1; 1 for ternary).
        scheme: grouping scheme ("block", "row" or "channel").
    """

    program: CrossbarProgram
    codes: np.ndarray
    scales: np.ndarray
    labels: np.ndarray
    levels: int
    scheme: GroupScheme

    def dequantized(self) -> np.ndarray:
        """Recompute ``codes · scale`` (H, N+1, N+1) from codes and scales."""
        per_entry = np.where(self.labels >= 0, self.scales[np.maximum(self.labels, 0)], 0.0)
        return self.codes * per_entry


def _groups(program: CrossbarProgram, scheme: GroupScheme) -> np.ndarray:
    labels = group_labels(program.n_channels, program.state_size, scheme)
    outside = program.matrices[labels < 0]
    if np.any(outside != 0):
        raise S4DError(
            "CrossbarProgram.matrices has non-zero entries outside the S4D block structure "
            f"(largest |w| = {np.abs(outside).max():.3g}); cannot group them"
        )
    return labels


def quantize_program(program: CrossbarProgram, bits: int, scheme: GroupScheme = "block") -> QuantizedProgram:
    """n-bit symmetric quantization with one max-abs scale per group (see module doc)."""
    if not isinstance(bits, (int, np.integer)) or bits < 2:
        raise S4DError(f"bits must be an integer >= 2, got {bits!r}")
    labels = _groups(program, scheme)
    levels = 2 ** (bits - 1) - 1
    scales = group_max_abs(program.matrices, labels) / levels
    per_entry = np.where(labels >= 0, scales[np.maximum(labels, 0)], 0.0)
    safe = np.where(per_entry > 0, per_entry, 1.0)
    codes = np.where(per_entry > 0, np.round(program.matrices / safe), 0).astype(np.int64)
    quantized = program.with_matrices(codes * per_entry, label=f"{program.label} {bits}-bit {scheme}")
    return QuantizedProgram(quantized, codes, scales, labels, levels, scheme)


def ternarize_program(
    program: CrossbarProgram, scheme: GroupScheme = "block", threshold_ratio: float = 0.7
) -> QuantizedProgram:
    """Ternary {−α, 0, +α} per group with the TWN threshold ``threshold_ratio · mean|w|``."""
    if not threshold_ratio >= 0:
        raise S4DError(f"threshold_ratio must be >= 0, got {threshold_ratio!r}")
    labels = _groups(program, scheme)
    n_groups = int(labels.max()) + 1
    mask = labels >= 0
    flat_labels, magnitudes = labels[mask], np.abs(program.matrices[mask])
    counts = np.bincount(flat_labels, minlength=n_groups)
    mean_abs = np.bincount(flat_labels, weights=magnitudes, minlength=n_groups) / np.maximum(counts, 1)
    kept = magnitudes > threshold_ratio * mean_abs[flat_labels]
    kept_counts = np.bincount(flat_labels[kept], minlength=n_groups)
    kept_sums = np.bincount(flat_labels[kept], weights=magnitudes[kept], minlength=n_groups)
    scales = kept_sums / np.maximum(kept_counts, 1)
    codes = np.zeros(program.matrices.shape, dtype=np.int64)
    codes[mask] = np.sign(program.matrices[mask]).astype(np.int64) * kept
    per_entry = np.where(mask, scales[np.maximum(labels, 0)], 0.0)
    quantized = program.with_matrices(codes * per_entry, label=f"{program.label} ternary {scheme}")
    return QuantizedProgram(quantized, codes, scales, labels, 1, scheme)


def perturb_program(
    program: CrossbarProgram, sigma: float, seed: int, scheme: GroupScheme = "block"
) -> CrossbarProgram:
    """Frozen Gaussian weight error, as left by imperfect programming.

    Every structural entry gets ``N(0, (sigma · s_g)²)`` added, with ``s_g`` the max |w| of its
    group (noise relative to the range its conductances span). Draws come from ``seed``.
    """
    if not sigma >= 0:
        raise S4DError(f"sigma must be >= 0, got {sigma!r}")
    labels = _groups(program, scheme)
    scales = group_max_abs(program.matrices, labels)
    per_entry = np.where(labels >= 0, scales[np.maximum(labels, 0)], 0.0)
    noise = np.random.default_rng(seed).standard_normal(program.matrices.shape) * sigma * per_entry
    return program.with_matrices(program.matrices + noise, label=f"{program.label} noise {sigma:g} seed {seed}")


def simulate(program: CrossbarProgram | QuantizedProgram, u: np.ndarray) -> np.ndarray:
    """Software model: the step-form recurrence with exactly the stored matrices (no converters)."""
    if isinstance(program, QuantizedProgram):
        program = program.program
    return run_recurrence(ideal_matvec, program, u)


def program_kernel(program: CrossbarProgram | QuantizedProgram, length: int) -> np.ndarray:
    """Closed-form kernel (H, length) of a stored program, independent of the recurrence.

    With ``T`` the effective state transition (``I + stored`` for delta), ``b`` the stored input
    column, ``c`` the stored output row and ``d`` its last entry: ``h[0] = d``,
    ``h[l] = c T^{l−1} b`` (l ≥ 1), computed as ``Σ_i (cV)_i (V⁻¹b)_i λ_i^{l−1}`` from
    ``T = V diag(λ) V⁻¹``. Returns ``h − D δ`` with the program's nominal D. Falls back to
    explicit powers when V is ill-conditioned (cond > 1e10).
    """
    if isinstance(program, QuantizedProgram):
        program = program.program
    if length < 1:
        raise S4DError(f"kernel length must be >= 1, got {length}")
    n = program.state_size
    kernel = np.empty((program.n_channels, length))
    for h, (transition, matrix) in enumerate(zip(program.state_transition, program.matrices)):
        b, c = matrix[:n, n], matrix[n, :n]
        kernel[h, 0] = matrix[n, n] - program.D[h]
        kernel[h, 1:] = _markov_parameters(transition, b, c, length - 1)
    return kernel


def _markov_parameters(transition: np.ndarray, b: np.ndarray, c: np.ndarray, count: int) -> np.ndarray:
    """``c T^j b`` for j = 0..count−1."""
    if count == 0:
        return np.zeros(0)
    eigenvalues, vectors = np.linalg.eig(transition)
    if np.linalg.cond(vectors) < 1e10:
        weights = (c @ vectors) * np.linalg.solve(vectors, b)
        powers = eigenvalues[:, None] ** np.arange(count)
        return np.real(weights @ powers)
    out = np.empty(count)
    state = b.astype(float)
    for j in range(count):
        out[j] = c @ state
        state = transition @ state
    return out
