"""Quantized S4D crossbar programs: structure of codes and scales, exact software model,
and the (reported, not bounded) distance to the ideal kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosim.s4d import (
    TEST_MODEL_LENGTH,
    CrossbarProgram,
    S4DError,
    S4DLayer,
    causal_fft_conv,
    ideal_matvec,
    impulse_kernel,
    init_s4d_lin,
    test_model,
)
from cosim.s4d.metrics import effective_eigenvalues, relative_l2, stability_margin
from cosim.s4d.quant import (
    QuantizedProgram,
    perturb_program,
    program_kernel,
    quantize_program,
    simulate,
    ternarize_program,
)

L = TEST_MODEL_LENGTH


@pytest.fixture(scope="module")
def layer() -> S4DLayer:
    return test_model()


def _cases(layer: S4DLayer) -> dict[str, QuantizedProgram]:
    cases = {}
    for variant in ("full", "delta"):
        program = layer.crossbar_program(variant)
        for bits in (4, 8, 12):
            cases[f"{bits}-bit {variant} block"] = quantize_program(program, bits, "block")
        cases[f"8-bit {variant} row"] = quantize_program(program, 8, "row")
        cases[f"8-bit {variant} channel"] = quantize_program(program, 8, "channel")
        cases[f"ternary {variant} block"] = ternarize_program(program, "block")
        cases[f"ternary {variant} row"] = ternarize_program(program, "row")
    return cases


@pytest.fixture(scope="module")
def cases(layer: S4DLayer) -> dict[str, QuantizedProgram]:
    return _cases(layer)


def test_codes_and_scales(layer: S4DLayer) -> None:
    program = layer.crossbar_program("delta")
    quantized = quantize_program(program, 6, "block")
    levels = 2**5 - 1
    assert quantized.levels == levels
    assert np.abs(quantized.codes).max() == levels
    np.testing.assert_array_equal(quantized.dequantized(), quantized.program.matrices)
    per_entry = np.where(quantized.labels >= 0, quantized.scales[np.maximum(quantized.labels, 0)], 0)
    # Round to nearest: entry error at most half a step; each group's largest entry is exact.
    assert np.all(np.abs(quantized.program.matrices - program.matrices) <= per_entry / 2 + 1e-15)
    for group, scale in enumerate(quantized.scales):
        members = quantized.labels == group
        if scale > 0:
            assert np.abs(quantized.codes[members]).max() == levels
    # Structural zeros stay zero; variant and D carried over.
    assert np.all(quantized.codes[quantized.labels < 0] == 0)
    assert quantized.program.variant == "delta"
    np.testing.assert_array_equal(quantized.program.D, layer.params.D)


def test_ternary_follows_twn_threshold_and_scale() -> None:
    # One channel, one mode: block [[0.9, −0.2], [0.2, 0.9]] → mean|w| = 0.55, threshold 0.385:
    # the ±0.2 entries drop, the scale is the mean of the kept |w| = 0.9.
    matrices = np.array([[[0.9, -0.2, 0.05], [0.2, 0.9, 0.01], [0.3, -0.6, 0.7]]])
    quantized = ternarize_program(CrossbarProgram(matrices), "block")
    np.testing.assert_array_equal(quantized.codes[0, :2, :2], [[1, 0], [0, 1]])
    assert quantized.scales[0] == pytest.approx(0.9)
    # B column group [0.05, 0.01]: mean 0.03, threshold 0.021 → keeps 0.05 only.
    np.testing.assert_array_equal(quantized.codes[0, :2, 2], [1, 0])
    assert quantized.scales[1] == pytest.approx(0.05)
    # Output row [0.3, −0.6, 0.7]: mean 0.5333, threshold 0.3733 → keeps −0.6, 0.7, scale 0.65.
    np.testing.assert_array_equal(quantized.codes[0, 2], [0, -1, 1])
    assert quantized.scales[2] == pytest.approx(0.65)
    assert set(np.unique(quantized.codes)) <= {-1, 0, 1}


def test_quantized_recurrence_matches_closed_form_kernel(cases: dict[str, QuantizedProgram]) -> None:
    """The recurrence driven by the quantized matrix equals an independent computation: the
    kernel from the eigen-decomposition of the quantized state transition."""
    for label, quantized in cases.items():
        from_recurrence = impulse_kernel(ideal_matvec, quantized.program, L)
        closed_form = program_kernel(quantized, L)
        scale = np.abs(closed_form).max(axis=1, keepdims=True)  # unstable cases grow large
        worst = (np.abs(from_recurrence - closed_form) / scale).max()
        assert worst <= 1e-11, f"{label}: recurrence vs closed form differ by {worst:.2e} (relative)"


def test_quantized_output_matches_own_software_model(cases: dict[str, QuantizedProgram]) -> None:
    """Random input: the quantized recurrence equals FFT convolution with its own kernel."""
    u = np.random.default_rng(77).standard_normal((4, L))
    for label, quantized in cases.items():
        expected = causal_fft_conv(u, program_kernel(quantized, L), quantized.program.D)
        got = simulate(quantized, u)
        # Relative to the output size, because some programs (ternary delta) diverge.
        worst = np.abs(got - expected).max() / max(np.abs(expected).max(), 1.0)
        assert worst <= 1e-10, f"{label}: recurrence vs FFT with own kernel differ by {worst:.2e}"


def test_report_distance_to_ideal_kernel(layer: S4DLayer, cases: dict[str, QuantizedProgram]) -> None:
    """Reported, not bounded: relative L2 distance of each quantized kernel to the ideal one."""
    ideal = layer.kernel(L)
    distance = {label: relative_l2(program_kernel(q, L), ideal) for label, q in cases.items()}
    lines = [f"{label:24s} " + " ".join(f"{d:10.3g}" for d in dist) for label, dist in distance.items()]
    report = "relative L2 distance to the ideal kernel, channels 0..3:\n" + "\n".join(lines)
    print(report)
    # Robust orderings only (more bits closer, per channel, by a wide factor).
    assert np.all(distance["8-bit delta block"] < distance["4-bit delta block"]), report
    assert np.all(distance["12-bit delta block"] < distance["8-bit delta block"]), report
    assert np.all(distance["12-bit full block"] < distance["4-bit full block"]), report
    assert np.all(distance["8-bit delta block"] < 0.5 * distance["ternary delta row"]), report


def test_weight_noise_full_versus_delta(layer: S4DLayer) -> None:
    """1% weight error (of each block's range), 5 seeds: each noisy program matches its own
    software model; distance to the ideal kernel and stability margin are reported."""
    ideal = layer.kernel(L)
    lines = []
    median_error = {}
    for variant in ("full", "delta"):
        errors, margins = [], []
        for seed in range(5):
            noisy = perturb_program(layer.crossbar_program(variant), 0.01, seed, "block")
            kernel = program_kernel(noisy, L)
            measured = impulse_kernel(ideal_matvec, noisy, L)
            scale = np.abs(kernel).max(axis=1, keepdims=True)
            assert (np.abs(measured - kernel) / scale).max() <= 1e-11, f"{variant} seed {seed}"
            errors.append(relative_l2(kernel, ideal))
            margins.append(stability_margin(effective_eigenvalues(noisy)))
        median_error[variant] = np.median(errors, axis=0)
        lines.append(
            f"{variant:5s} median rel. L2 {np.round(median_error[variant], 3)}, "
            f"max {np.round(np.max(errors, axis=0), 3)}, min margin {np.round(np.min(margins, axis=0), 4)}"
        )
    report = "1% block-relative weight noise, seeds 0-4, channels 0..3:\n" + "\n".join(lines)
    print(report)
    # The slowest channel is the sensitive one (docs/s4d.md); storing Ā − I protects it.
    assert median_error["delta"][0] < median_error["full"][0], report


def test_quantizer_rejects_bad_input(layer: S4DLayer) -> None:
    program = layer.crossbar_program("full")
    with pytest.raises(S4DError, match="bits"):
        quantize_program(program, 1)
    stray = program.matrices.copy()
    stray[0, 0, 5] = 0.1  # outside the 2×2 block structure
    with pytest.raises(S4DError, match="outside the S4D block structure"):
        quantize_program(program.with_matrices(stray, "stray"), 8)
    with pytest.raises(S4DError, match="scheme"):
        quantize_program(program, 8, "column")  # type: ignore[arg-type]
    with pytest.raises(S4DError, match="sigma"):
        perturb_program(program, -0.1, seed=0)


@settings(max_examples=12, deadline=None)
@given(
    n_channels=st.integers(1, 3),
    n_modes=st.integers(1, 5),
    bits=st.integers(2, 12),
    seed=st.integers(0, 2**16),
    variant=st.sampled_from(["full", "delta"]),
    scheme=st.sampled_from(["block", "row", "channel"]),
)
def test_quantization_properties_on_random_layers(
    n_channels: int, n_modes: int, bits: int, seed: int, variant: str, scheme: str
) -> None:
    layer = S4DLayer(init_s4d_lin(n_channels, 2 * n_modes, seed=seed))
    program = layer.crossbar_program(variant)  # type: ignore[arg-type]
    quantized = quantize_program(program, bits, scheme)  # type: ignore[arg-type]
    per_entry = np.where(quantized.labels >= 0, quantized.scales[np.maximum(quantized.labels, 0)], 0)
    assert np.all(np.abs(quantized.codes) <= quantized.levels)
    assert np.all(np.abs(quantized.program.matrices - program.matrices) <= per_entry / 2 * (1 + 1e-12))
    length = 40
    closed_form = program_kernel(quantized, length)
    from_recurrence = impulse_kernel(ideal_matvec, quantized.program, length)
    scale = np.maximum(np.abs(closed_form).max(axis=1, keepdims=True), 1e-300)
    assert (np.abs(from_recurrence - closed_form) / scale).max() <= 1e-9
