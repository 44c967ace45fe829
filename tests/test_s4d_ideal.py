"""Ideal S4D: reference values of docs/s4d.md, equivalence of all computation paths."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from cosim.s4d import (
    ADC,
    DAC,
    TEST_MODEL_LENGTH,
    CrossbarProgram,
    S4DError,
    S4DLayer,
    S4DParams,
    calibrate_converters,
    group_labels,
    ideal_matvec,
    impulse_kernel,
    init_s4d_inv,
    init_s4d_lin,
    layer_matvec,
    run_recurrence,
    test_model,
)

L = TEST_MODEL_LENGTH


@pytest.fixture(scope="module")
def layer() -> S4DLayer:
    return test_model()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """Random input with a batch dimension: (2, H=4, L=256)."""
    return np.random.default_rng(1234).standard_normal((2, 4, L))


# --- reference values (docs/s4d.md) -------------------------------------------------------


def test_kernel_matches_design_reference(layer: S4DLayer) -> None:
    kernel = layer.kernel(L)
    assert kernel.shape == (4, L)
    # Seven decimals are given: agree to half a unit in the last place.
    np.testing.assert_allclose(kernel[0, :3], [0.0015129, 0.0044721, 0.0072250], atol=5e-8, rtol=0)
    np.testing.assert_allclose(
        np.linalg.norm(kernel, axis=1), [0.1377165, 0.2073088, 0.2884624, 0.3818657], atol=5e-8, rtol=0
    )


def test_matrix_entry_range_matches_design(layer: S4DLayer) -> None:
    matrices = layer.crossbar_program("full").matrices
    # docs/s4d.md gives [−0.99305, 0.99501] rounded to five decimals.
    assert round(float(matrices.min()), 5) == -0.99305
    assert round(float(matrices.max()), 5) == 0.99501
    # The largest entry is Ā of the real mode n = 0 in the slowest channel: exp(−0.5·0.01).
    assert matrices.max() == pytest.approx(np.exp(-0.5 * 0.01), abs=1e-15)


def test_layer_matrix_is_block_diagonal_68_with_247_nonzeros(layer: S4DLayer) -> None:
    big = layer.layer_matrix("full")
    assert big.shape == (68, 68)
    assert np.count_nonzero(big) == 247
    # Nothing outside the four 17×17 diagonal blocks.
    mask = scipy.linalg.block_diag(*[np.ones((17, 17))] * 4).astype(bool)
    assert np.count_nonzero(big[~mask]) == 0
    # Two of the 247 are rounding residue of cos(π/2) (channel 3, mode 5: Δ·Im A = π/2):
    # a = Re Ā on that block's diagonal, ~1e-16 instead of 0.
    tiny = np.argwhere((big != 0) & (np.abs(big) < 1e-12))
    np.testing.assert_array_equal(tiny, [[3 * 17 + 10, 3 * 17 + 10], [3 * 17 + 11, 3 * 17 + 11]])
    assert np.abs(big[tuple(tiny.T)]).max() < 1e-15


# --- Equivalence of computation paths ---------------------------------------------------------


def test_fft_equals_complex_step_and_crossbar_recurrence(layer: S4DLayer, inputs: np.ndarray) -> None:
    y_fft = layer.apply_fft(inputs)
    scale = np.abs(y_fft).max()
    assert np.abs(layer.apply_step(inputs) - y_fft).max() <= 1e-10 * scale
    for variant in ("full", "delta"):
        y_rec = run_recurrence(ideal_matvec, layer.crossbar_program(variant), inputs)
        assert np.abs(y_rec - y_fft).max() <= 1e-10 * scale, variant


def test_fft_convolution_equals_direct_convolution(layer: S4DLayer, inputs: np.ndarray) -> None:
    kernel = layer.kernel(L)
    u = inputs[0]
    direct = np.stack([np.convolve(u[h], kernel[h])[:L] + layer.params.D[h] * u[h] for h in range(4)])
    np.testing.assert_allclose(layer.apply_fft(u), direct, atol=1e-12, rtol=0)


def test_real_block_form_equals_complex_form(layer: S4DLayer, inputs: np.ndarray) -> None:
    # Outputs of the two recurrences.
    assert np.abs(layer.apply_real(inputs) - layer.apply_step(inputs)).max() <= 1e-12
    # Kernel from powers of the real block matrix against the complex Vandermonde kernel.
    form = layer.real_form()
    A_r = form.A
    state = form.B.copy()
    real_kernel = np.empty((4, L))
    for step in range(L):
        real_kernel[:, step] = np.einsum("hi,hi->h", form.C, state)
        state = np.einsum("hij,hj->hi", A_r, state)
    assert np.abs(real_kernel - layer.kernel(L)).max() <= 1e-12
    # Block structure: [[a, −b], [b, a]] with a + ib = Ā_n.
    A_bar, _ = layer.discrete()
    np.testing.assert_array_equal(form.blocks[..., 0, 0], A_bar.real)
    np.testing.assert_array_equal(form.blocks[..., 1, 0], A_bar.imag)
    np.testing.assert_array_equal(form.blocks[..., 0, 1], -A_bar.imag)


def test_impulse_through_recurrence_gives_kernel(layer: S4DLayer) -> None:
    for variant in ("full", "delta"):
        kernel = impulse_kernel(ideal_matvec, layer.crossbar_program(variant), L, amplitude=0.3)
        assert np.abs(kernel - layer.kernel(L)).max() <= 1e-12, variant


def test_combined_matrix_step_identity(layer: S4DLayer) -> None:
    """[x_k; y_k] = M [x_{k−1}; u_k] and the delta form M_Δ = M − diag(I_N, 0)."""
    full = layer.crossbar_program("full").matrices
    delta = layer.crossbar_program("delta").matrices
    expected = full.copy()
    expected[:, :16, :16] -= np.eye(16)
    np.testing.assert_array_equal(delta, expected)
    rng = np.random.default_rng(5)
    u = rng.standard_normal((4, 3))
    y, states = run_recurrence(ideal_matvec, layer.crossbar_program("full"), u, return_states=True)
    stacked = np.concatenate([states[:, 1, :], u[:, 2:3]], axis=1)
    out = np.einsum("hij,hj->hi", full, stacked)
    np.testing.assert_allclose(out[:, :16], states[:, 2, :], atol=1e-15)
    np.testing.assert_allclose(out[:, 16], y[:, 2], atol=1e-15)


# --- Discretisation, initialisation --------------------------------------------------------------


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_discretisation_matches_scipy_cont2discrete(method: str) -> None:
    params = init_s4d_lin(2, 6, seed=3)
    A_bar, B_bar = S4DLayer(params, method).discrete()
    for h in range(2):
        for n in range(3):
            a, b = params.A[h, n].real, params.A[h, n].imag
            A = np.array([[a, -b], [b, a]])
            B = np.array([[params.B[h, n].real], [params.B[h, n].imag]])
            Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, np.eye(2), np.zeros((2, 1))), params.dt[h], method=method)
            np.testing.assert_allclose(Ad[:, 0], [A_bar[h, n].real, A_bar[h, n].imag], atol=1e-14)
            np.testing.assert_allclose(Bd[:, 0], [B_bar[h, n].real, B_bar[h, n].imag], atol=1e-14)


def test_bilinear_layer_paths_agree(inputs: np.ndarray) -> None:
    layer = test_model("bilinear")
    y_fft = layer.apply_fft(inputs)
    y_rec = layer.apply_crossbar(inputs, variant="delta")
    assert np.abs(y_rec - y_fft).max() <= 1e-10 * np.abs(y_fft).max()
    assert np.abs(layer.kernel(L) - test_model("zoh").kernel(L)).max() > 1e-6  # really different


def test_s4d_lin_and_inv_initialisations() -> None:
    lin = init_s4d_lin(3, 8, dt_min=1e-3, dt_max=1e-1, seed=7)
    np.testing.assert_array_equal(lin.A[1], -0.5 + 1j * np.pi * np.arange(4))
    inv = init_s4d_inv(3, 8, seed=7)
    n = np.arange(4)
    np.testing.assert_allclose(inv.A[2], -0.5 + 1j * 8 / np.pi * (8 / (2 * n + 1) - 1))
    assert lin.state_size == 8 and lin.n_modes == 4 and lin.n_channels == 3
    assert np.all((lin.dt >= 1e-3) & (lin.dt <= 1e-1))
    np.testing.assert_array_equal(lin.B, 1.0)
    # Same seed, same draw; other seed, other draw.
    np.testing.assert_array_equal(init_s4d_lin(3, 8, seed=7).C, lin.C)
    assert not np.allclose(init_s4d_lin(3, 8, seed=8).C, lin.C)


def test_random_layer_paths_agree() -> None:
    layer = S4DLayer(init_s4d_inv(3, 10, seed=11))
    u = np.random.default_rng(2).standard_normal((3, 100))
    y_fft = layer.apply_fft(u)
    assert np.abs(layer.apply_crossbar(u) - y_fft).max() <= 1e-10 * np.abs(y_fft).max()
    assert np.abs(layer.apply_real(u) - layer.apply_step(u)).max() <= 1e-12 * np.abs(y_fft).max()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dt": np.array([0.1, -0.1])}, "dt"),
        ({"C": np.ones((2, 3))}, "C"),
        ({"D": np.ones(3)}, "D"),
        ({"A": np.array([[np.nan, 1], [1, 1]])}, "A"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict, field: str) -> None:
    base = {"A": -np.ones((2, 2)), "B": np.ones((2, 2)), "C": np.ones((2, 2)), "D": np.ones(2), "dt": np.ones(2)}
    base.update(kwargs)
    with pytest.raises(S4DError, match=rf"\b{field}\b"):
        S4DParams(**base)


def test_bad_options_raise(layer: S4DLayer) -> None:
    with pytest.raises(S4DError, match="method"):
        S4DLayer(layer.params, "euler")  # type: ignore[arg-type]
    with pytest.raises(S4DError, match="N"):
        init_s4d_lin(2, 5)
    with pytest.raises(S4DError, match="H=4"):
        layer.apply_fft(np.zeros((3, 10)))
    with pytest.raises(S4DError, match="variant"):
        CrossbarProgram(np.zeros((1, 3, 3)), variant="half")  # type: ignore[arg-type]


# --- Converters and the pluggable backend -------------------------------------------------------


def test_layer_function_adapter_matches_ideal(layer: S4DLayer, inputs: np.ndarray) -> None:
    """A whole-crossbar function (68 volts → 68 products), the form a circuit backend has."""
    program = layer.crossbar_program("delta")
    big = program.layer_matrix()
    calls = []

    def crossbar(volts: np.ndarray) -> np.ndarray:
        calls.append(volts.shape)
        return big @ volts

    y = run_recurrence(layer_matvec(crossbar), program, inputs[:, :, :20])
    y_ref = run_recurrence(ideal_matvec, program, inputs[:, :, :20])
    assert calls[0] == (68,) and len(calls) == 2 * 20
    np.testing.assert_allclose(y, y_ref, atol=1e-13)


def test_converter_grids_and_clipping() -> None:
    dac = DAC(bits=4, full_scale=2.0, v_read=0.2)
    volts = dac.to_volts(np.linspace(-5, 5, 1001)[None, :])
    levels = np.unique(np.round(volts / 0.2 * 7, 9))
    np.testing.assert_array_equal(levels, np.arange(-7, 8))  # 2^4 − 1 levels, clipped at ±2
    assert volts.max() == pytest.approx(0.2) and volts.min() == pytest.approx(-0.2)
    adc = ADC(bits=3, full_scale=0.5)
    np.testing.assert_allclose(adc.convert(np.array([0.0, 0.1, 0.2, 0.9, -3.0])), [0, 1 / 6, 1 / 6, 0.5, -0.5])
    with pytest.raises(S4DError, match="bits"):
        DAC(bits=1)
    with pytest.raises(S4DError, match="full_scale"):
        ADC(full_scale=0.0)
    with pytest.raises(S4DError, match="finite"):
        ADC(bits=8)


def test_recurrence_rejects_mismatched_backend_and_converters(layer: S4DLayer) -> None:
    program = layer.crossbar_program("full")
    u = np.ones((4, 3))
    with pytest.raises(S4DError, match="matvec returned shape"):
        run_recurrence(lambda m, v: v[..., :-1], program, u)
    with pytest.raises(S4DError, match="DAC.full_scale"):
        run_recurrence(ideal_matvec, program, u, dac=DAC(full_scale=np.ones(3)))


def test_calibrated_converters_error_shrinks_with_bits(layer: S4DLayer, inputs: np.ndarray) -> None:
    program = layer.crossbar_program("full")
    u = inputs[0]
    y_ideal = layer.apply_fft(u)
    # Unquantized calibrated converters: scaling only, no clipping → exact.
    dac, adc = calibrate_converters(program, u)
    y = run_recurrence(ideal_matvec, program, u, dac=dac, adc=adc)
    assert np.abs(y - y_ideal).max() <= 1e-12 * np.abs(y_ideal).max()
    errors = []
    for bits in (6, 10, 14):
        dac, adc = calibrate_converters(program, u, dac_bits=bits, adc_bits=bits)
        y = run_recurrence(ideal_matvec, program, u, dac=dac, adc=adc)
        errors.append(np.linalg.norm(y - y_ideal) / np.linalg.norm(y_ideal))
    print("converter bits 6/10/14 → output relative L2 error", [f"{e:.3g}" for e in errors])
    assert errors[0] > errors[1] > errors[2] > 0


def test_group_labels_cover_every_structural_nonzero(layer: S4DLayer) -> None:
    matrices = layer.crossbar_program("full").matrices
    for scheme, n_groups in (("block", 4 * 10), ("row", 4 * 17), ("channel", 4)):
        labels = group_labels(4, 16, scheme)
        assert labels.max() + 1 == n_groups, scheme
        assert np.count_nonzero(matrices[labels < 0]) == 0, scheme
        # No group spans two channels.
        for group in range(n_groups):
            assert len(set(np.nonzero(labels == group)[0])) == 1
    # Per-block scales of the delta variant: the max |w| of each group.
    delta = layer.crossbar_program("delta")
    labels, scales = delta.group_scales("block")
    assert scales[0] == pytest.approx(1 - np.exp(-0.5 * 0.01))  # real mode 0 block, channel 0
    assert scales[8] == pytest.approx(np.abs(delta.matrices[0, :16, 16]).max())  # B̄ column
    np.testing.assert_array_equal(delta.crossbar_weights(), delta.layer_matrix().T)
    block = group_labels(1, 4, "block")[0]
    np.testing.assert_array_equal(block[:2, :2], 0)
    np.testing.assert_array_equal(block[2:4, 2:4], 1)
    np.testing.assert_array_equal(block[:4, 4], 2)
    np.testing.assert_array_equal(block[4], 3)
    assert np.all(block[:2, 2:4] == -1)
