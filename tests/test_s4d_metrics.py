"""Comparison metrics: hand-checked values, eigenvalues of the test model, probing a backend."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.s4d import (
    ADC,
    DAC,
    TEST_MODEL_LENGTH,
    S4DLayer,
    ideal_matvec,
    impulse_kernel,
    test_model,
)
from cosim.s4d.metrics import (
    compare_kernels,
    cosine_similarity,
    effective_eigenvalues,
    eigenvalue_error,
    gain_ratio,
    probe_program,
    program_report,
    relative_l2,
    single_step_mvm_error,
    snr_db,
    stability_margin,
)
from cosim.s4d.quant import program_kernel, quantize_program, ternarize_program

L = TEST_MODEL_LENGTH


@pytest.fixture(scope="module")
def layer() -> S4DLayer:
    return test_model()


def test_metrics_on_hand_checked_vectors() -> None:
    reference = np.array([[3.0, 4.0], [1.0, 0.0]])
    doubled = 2 * reference
    np.testing.assert_allclose(relative_l2(doubled, reference), [1.0, 1.0])
    np.testing.assert_allclose(gain_ratio(doubled, reference), [2.0, 2.0])
    np.testing.assert_allclose(cosine_similarity(doubled, reference), [1.0, 1.0])
    np.testing.assert_allclose(snr_db(doubled, reference), [0.0, 0.0], atol=1e-12)
    # Orthogonal error of a tenth of the signal: 20 dB, cos = 1/sqrt(1.01).
    tilted = reference + 0.1 * np.array([[-4.0, 3.0], [0.0, 1.0]])
    np.testing.assert_allclose(snr_db(tilted, reference), [20.0, 20.0])
    np.testing.assert_allclose(cosine_similarity(tilted, reference), 1 / np.sqrt(1.01))
    assert np.all(np.isinf(snr_db(reference, reference)))


def test_error_decomposes_into_gain_and_cosine() -> None:
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((5, 40))
    estimate = 0.8 * reference + 0.3 * rng.standard_normal((5, 40))
    result = compare_kernels(estimate, reference, "noisy")
    np.testing.assert_allclose(
        result.relative_l2**2, 1 + result.gain**2 - 2 * result.gain * result.cosine, rtol=1e-12
    )
    frame = result.to_frame()
    assert list(frame.columns) == ["label", "channel", "relative_l2", "snr_db", "cosine", "gain"]
    assert len(frame) == 5


def test_eigenvalues_and_margin_of_test_model(layer: S4DLayer) -> None:
    A_bar, _ = layer.discrete()
    expected = np.concatenate([A_bar, A_bar.conj()], axis=1)
    for variant in ("full", "delta"):
        eigenvalues = effective_eigenvalues(layer.crossbar_program(variant))
        assert eigenvalues.shape == (4, 16)
        assert eigenvalue_error(eigenvalues, expected).max() <= 1e-12, variant
        # |Ā_n| = exp(−Δ/2) for every mode of S4D-Lin.
        np.testing.assert_allclose(stability_margin(eigenvalues), 1 - np.exp(-0.5 * layer.params.dt), rtol=1e-12)


def test_eigenvalue_error_uses_best_matching() -> None:
    reference = np.array([[1.0 + 0j, 2.0, 3.0]])
    assert eigenvalue_error(reference[:, ::-1], reference)[0] == 0.0
    assert eigenvalue_error(reference + np.array([[0.0, 0.1, 0.0]]), reference)[0] == pytest.approx(0.1)
    assert stability_margin(np.array([[0.5, 1.2j]]))[0] == pytest.approx(-0.2)


def test_mvm_error_of_known_backends(layer: S4DLayer) -> None:
    program = layer.crossbar_program("full")
    assert single_step_mvm_error(ideal_matvec, program, program).max() <= 1e-15

    def two_percent_high(matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        return 1.02 * ideal_matvec(matrices, volts)

    np.testing.assert_allclose(single_step_mvm_error(two_percent_high, program, program), 0.02, rtol=1e-12)
    quantized = quantize_program(program, 8).program
    error_8 = single_step_mvm_error(ideal_matvec, quantized, program, seed=1)
    error_4 = single_step_mvm_error(ideal_matvec, quantize_program(program, 4).program, program, seed=1)
    assert np.all(error_8 > 0) and np.all(error_4 > error_8)
    # Same seed, same vectors.
    np.testing.assert_array_equal(error_8, single_step_mvm_error(ideal_matvec, quantized, program, seed=1))


def test_probing_a_perturbed_backend_recovers_its_software_model(layer: S4DLayer) -> None:
    """The circuit-half workflow: a backend whose stored weights are off (here a frozen random
    perturbation, as programmed devices would be) is probed column by column; the probed
    program's closed-form kernel equals the kernel measured through the backend."""
    program = layer.crossbar_program("delta")
    rng = np.random.default_rng(2024)
    structural = program.matrices != 0
    actual = program.matrices * (1 + 0.01 * rng.standard_normal(program.matrices.shape)) * structural

    def device_backend(matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        return ideal_matvec(actual, volts)  # ignores the requested matrices, like a circuit

    probed = probe_program(device_backend, program)
    np.testing.assert_allclose(probed.matrices, actual, atol=1e-15)
    measured = impulse_kernel(device_backend, program, L)
    np.testing.assert_allclose(program_kernel(probed, L), measured, atol=1e-12 * np.abs(measured).max())
    # With converters, probing returns the digitised view (close to, not equal to, actual).
    # Delta entries reach |Ā − 1| ≈ 1.56 (fast channel), so the ADC spans 1.7 × v_read; a unit
    # input is exact on the DAC grid, so the error is at most half an ADC step (digital units).
    dac, adc = DAC(bits=12, full_scale=1.0, v_read=0.2), ADC(bits=12, full_scale=1.7 * 0.2)
    rough = probe_program(device_backend, program, dac=dac, adc=adc).matrices
    half_step = 1.7 / (2**11 - 1) / 2
    assert 0 < np.abs(rough - actual).max() <= half_step + 1e-12


def test_program_report_table(layer: S4DLayer) -> None:
    programs = {
        "ideal delta": layer.crossbar_program("delta"),
        "8-bit delta": quantize_program(layer.crossbar_program("delta"), 8).program,
        "8-bit full": quantize_program(layer.crossbar_program("full"), 8).program,
        "ternary delta": ternarize_program(layer.crossbar_program("delta")).program,
    }
    table = program_report(programs, layer, L, seed=0)
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    assert len(table) == 4 * 4
    ideal = table[table.label == "ideal delta"]
    assert ideal.relative_l2.max() <= 1e-12 and ideal.mvm_error.max() <= 1e-15
    assert ideal.eigenvalue_error.max() <= 1e-12
    # Ternary delta blocks [[0, −α], [α, 0]] + I have |λ| = sqrt(1 + α²) > 1: unstable.
    assert np.all(table[table.label == "ternary delta"].stability_margin < 0)
    assert np.all(table[table.label == "8-bit delta"].stability_margin > 0)
