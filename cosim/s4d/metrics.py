"""Comparison metrics between an estimated and a reference S4D kernel, output or program.

Per channel h (vectors along the last axis; ``e = estimate``, ``r = reference``):

* relative L2 error ``‖e − r‖ / ‖r‖``;
* SNR in dB ``10 log10(‖r‖² / ‖e − r‖²)`` (+inf when equal);
* cosine similarity ``⟨e, r⟩ / (‖e‖ ‖r‖)`` and gain ratio ``‖e‖ / ‖r‖``; together they give
  the relative error back: ``rel² = 1 + gain² − 2 gain cos``;
* single-step MVM error: relative error of one product through the backend (with its
  converters) against the exact product with the reference matrix, over random inputs;
* effective eigenvalues of the state transition (``I + stored`` for the delta variant), their
  error after optimal one-to-one matching, and the stability margin ``1 − max|λ|`` (negative:
  the recurrence diverges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from cosim.s4d.ideal import (
    ADC,
    DAC,
    CrossbarProgram,
    MatVec,
    S4DError,
    S4DLayer,
    ideal_matvec,
    impulse_kernel,
)


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    estimate, reference = np.asarray(estimate, dtype=float), np.asarray(reference, dtype=float)
    if estimate.shape != reference.shape:
        raise S4DError(f"estimate shape {estimate.shape} differs from reference shape {reference.shape}")
    return estimate, reference


def relative_l2(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``‖e − r‖₂ / ‖r‖₂`` along the last axis."""
    estimate, reference = _pair(estimate, reference)
    return np.linalg.norm(estimate - reference, axis=-1) / np.linalg.norm(reference, axis=-1)


def snr_db(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``10 log10(‖r‖² / ‖e − r‖²)`` in dB along the last axis (+inf for an exact match)."""
    estimate, reference = _pair(estimate, reference)
    signal = np.sum(reference**2, axis=-1)
    noise = np.sum((estimate - reference) ** 2, axis=-1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(signal / noise)


def cosine_similarity(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``⟨e, r⟩ / (‖e‖ ‖r‖)`` along the last axis."""
    estimate, reference = _pair(estimate, reference)
    norms = np.linalg.norm(estimate, axis=-1) * np.linalg.norm(reference, axis=-1)
    return np.sum(estimate * reference, axis=-1) / norms


def gain_ratio(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``‖e‖ / ‖r‖`` along the last axis."""
    estimate, reference = _pair(estimate, reference)
    return np.linalg.norm(estimate, axis=-1) / np.linalg.norm(reference, axis=-1)


def _backend_product(
    matvec: MatVec, stored: CrossbarProgram, digital: np.ndarray, dac: DAC, adc: ADC
) -> np.ndarray:
    """One product through DAC → matvec → ADC, back in digital units (as in run_recurrence)."""
    volts = dac.to_volts(digital)
    return adc.convert(matvec(stored.matrices, volts)) * dac.channel_scale() / dac.v_read


def single_step_mvm_error(
    matvec: MatVec,
    stored: CrossbarProgram,
    reference: CrossbarProgram,
    *,
    n_vectors: int = 64,
    seed: int = 0,
    dac: DAC | None = None,
    adc: ADC | None = None,
) -> np.ndarray:
    """Per-channel relative error of one step's product, ``‖p̂ − M s‖_F / ‖M s‖_F``.

    ``s`` are ``n_vectors`` random inputs per channel, uniform in ±(DAC full scale); ``p̂`` is the
    backend's product with ``stored`` through the converters; ``M`` the reference matrices
    (same variant). The draw is made from ``seed``.
    """
    if stored.matrices.shape != reference.matrices.shape or stored.variant != reference.variant:
        raise S4DError("stored and reference programs must have the same shape and variant")
    dac = dac or DAC(clip=False)
    adc = adc or ADC()
    rng = np.random.default_rng(seed)
    shape = (n_vectors, stored.n_channels, stored.state_size + 1)
    digital = rng.uniform(-1.0, 1.0, size=shape) * dac.channel_scale()
    estimate = _backend_product(matvec, stored, digital, dac, adc)
    exact = np.einsum("hij,vhj->vhi", reference.matrices, digital)
    return np.linalg.norm(estimate - exact, axis=(0, 2)) / np.linalg.norm(exact, axis=(0, 2))


def probe_program(
    matvec: MatVec,
    stored: CrossbarProgram,
    *,
    amplitude: float = 1.0,
    dac: DAC | None = None,
    adc: ADC | None = None,
) -> CrossbarProgram:
    """Effective matrices seen through the backend: column j from the input ``amplitude · e_j``.

    The result has the variant and D of ``stored``; use it for effective eigenvalues.
    """
    dac = dac or DAC(clip=False)
    adc = adc or ADC()
    size = stored.state_size + 1
    digital = amplitude * np.broadcast_to(np.eye(size)[:, None, :], (size, stored.n_channels, size))
    columns = _backend_product(matvec, stored, np.ascontiguousarray(digital), dac, adc) / amplitude
    return stored.with_matrices(np.transpose(columns, (1, 2, 0)), label=f"{stored.label} (probed)")


def effective_eigenvalues(program: CrossbarProgram) -> np.ndarray:
    """Eigenvalues (H, N) of the effective state transition, sorted by angle then modulus."""
    eigenvalues = np.linalg.eigvals(program.state_transition)
    order = np.lexsort((np.abs(eigenvalues), np.angle(eigenvalues)), axis=-1)
    return np.take_along_axis(eigenvalues, order, axis=-1)


def eigenvalue_error(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per channel max |λ̂ − λ| after the matching that minimises the total distance."""
    estimate, reference = np.asarray(estimate), np.asarray(reference)
    if estimate.shape != reference.shape:
        raise S4DError(f"eigenvalue shapes differ: {estimate.shape} vs {reference.shape}")
    errors = np.empty(estimate.shape[:-1])
    for index in np.ndindex(*estimate.shape[:-1]):
        distance = np.abs(estimate[index][:, None] - reference[index][None, :])
        rows, cols = linear_sum_assignment(distance)
        errors[index] = distance[rows, cols].max()
    return errors


def stability_margin(eigenvalues: np.ndarray) -> np.ndarray:
    """``1 − max|λ|`` per channel (last axis); negative means unstable."""
    return 1.0 - np.abs(eigenvalues).max(axis=-1)


@dataclass(frozen=True)
class KernelComparison:
    """Per-channel metrics of one estimate against the reference (arrays of shape (H,))."""

    label: str
    relative_l2: np.ndarray
    snr_db: np.ndarray
    cosine: np.ndarray
    gain: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per channel."""
        return pd.DataFrame(
            {
                "label": self.label,
                "channel": np.arange(self.relative_l2.size),
                "relative_l2": self.relative_l2,
                "snr_db": self.snr_db,
                "cosine": self.cosine,
                "gain": self.gain,
            }
        )


def compare_kernels(estimate: np.ndarray, reference: np.ndarray, label: str = "") -> KernelComparison:
    """All kernel/output metrics at once (per channel, along the last axis)."""
    return KernelComparison(
        label=label,
        relative_l2=relative_l2(estimate, reference),
        snr_db=snr_db(estimate, reference),
        cosine=cosine_similarity(estimate, reference),
        gain=gain_ratio(estimate, reference),
    )


def program_report(
    programs: dict[str, CrossbarProgram],
    layer: S4DLayer,
    length: int,
    *,
    matvec: MatVec = ideal_matvec,
    seed: int = 0,
) -> pd.DataFrame:
    """Table (one row per program and channel) of every metric against the ideal ``layer``.

    Kernels come from an impulse through ``matvec`` and are compared with ``layer.kernel``;
    eigenvalues are those of the probed effective state transition; the MVM error is against
    the ideal program of the same variant, with test vectors drawn from ``seed``.
    """
    reference_kernel = layer.kernel(length)
    reference_eigenvalues = effective_eigenvalues(layer.crossbar_program("full"))
    frames = []
    for label, program in programs.items():
        kernel = impulse_kernel(matvec, program, length)
        frame = compare_kernels(kernel, reference_kernel, label).to_frame()
        frame.insert(1, "variant", program.variant)
        eigenvalues = effective_eigenvalues(probe_program(matvec, program))
        frame["eigenvalue_error"] = eigenvalue_error(eigenvalues, reference_eigenvalues)
        frame["stability_margin"] = stability_margin(eigenvalues)
        reference = layer.crossbar_program(program.variant)
        frame["mvm_error"] = single_step_mvm_error(matvec, program, reference, seed=seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
