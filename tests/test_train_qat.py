"""Quantization- and noise-aware training pieces: the torch crossbar matrices, quantizers (equal
to cosim.s4d.quant), STE, noise injection, stability floors and structured pruning."""

from __future__ import annotations

import numpy as np
import pytest

import torch  # the train extra, installed by scripts/setup.sh

from cosim.s4d.ideal import S4DLayer, init_s4d_inv
from cosim.s4d.quant import program_kernel as reference_kernel
from cosim.s4d.quant import quantize_program, ternarize_program
from cosim.train.model import Architecture, S4DClassifier, program_kernel
from cosim.train.qat import NoiseSpec, QuantSpec, fake_quantize, group_index, inject_noise, prune_model, quantize_values


@pytest.fixture
def layer():
    torch.set_default_dtype(torch.float64)
    try:
        model = S4DClassifier(Architecture(n_inputs=1, n_classes=3, channels=3, state_size=8), seed=1)
        yield model.s4d_layers()[0]
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("variant", ["full", "delta"])
def test_torch_matrices_and_kernel_equal_the_numpy_layer(layer, variant):
    reference = S4DLayer(layer.export()).crossbar_program(variant)
    M = layer.matrices(variant).detach().numpy()
    assert np.allclose(M, reference.matrices, rtol=0, atol=1e-12)
    kernel = program_kernel(torch.from_numpy(reference.matrices), variant, 40).numpy()
    expected = reference_kernel(reference, 40)
    expected[:, 0] += reference.D
    assert np.allclose(kernel, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scheme", ["block", "row", "channel"])
@pytest.mark.parametrize("bits", [2, 3, 4, 8, "ternary"])
def test_quantizers_equal_cosim_s4d_quant(bits, scheme):
    params = init_s4d_inv(4, 12, seed=7)
    for variant in ("full", "delta"):
        program = S4DLayer(params).crossbar_program(variant)
        labels, groups = group_index(4, 12, scheme)
        ours = quantize_values(torch.from_numpy(program.matrices), labels, groups, bits).numpy()
        theirs = (ternarize_program(program, scheme) if bits == "ternary" else quantize_program(program, bits, scheme))
        assert np.allclose(ours, theirs.program.matrices, rtol=0, atol=1e-12)
        levels = 1 if bits == "ternary" else 2 ** (bits - 1) - 1
        assert np.unique(theirs.codes).size <= 2 * levels + 1


def test_straight_through_estimator_passes_the_gradient_unchanged():
    labels, groups = group_index(2, 4, "block")
    w = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(0)) * (labels >= 0)
    w.requires_grad_(True)
    q = fake_quantize(w, labels, groups, 3)
    assert not torch.allclose(q, w)  # the forward pass is quantized
    (q * torch.arange(50.0).reshape(2, 5, 5)).sum().backward()
    assert torch.allclose(w.grad, torch.arange(50.0).reshape(2, 5, 5))


def test_noise_injection_follows_the_differential_pair_model_and_its_seed():
    M = torch.zeros(200, 3, 3)
    M[:, 0, 0], M[:, 0, 1] = 1.0, -0.5
    spec = NoiseSpec(rel_sigma=0.02, g_min_ratio=0.1, gain_sigma=0.0)
    noisy = inject_noise(M, spec, torch.Generator().manual_seed(5))
    again = inject_noise(M, spec, torch.Generator().manual_seed(5))
    assert torch.equal(noisy, again)
    # row peak 1, g0 = 0.1: w = 1 -> sd 0.02*sqrt(1.1² + 0.1²); w = 0 -> 0.02*sqrt(2)*0.1
    sd_one = (noisy[:, 0, 0] - 1).std().item()
    sd_zero = noisy[:, 0, 2].std().item()
    assert sd_one == pytest.approx(0.02 * np.hypot(1.1, 0.1), rel=0.15)
    assert sd_zero == pytest.approx(0.02 * np.sqrt(2) * 0.1, rel=0.15)
    assert noisy[:, 1:].abs().max().item() < 1e-10  # all-zero output rows: (almost) no noise
    gains = inject_noise(torch.ones(2000, 1, 4), NoiseSpec(gain_sigma=0.05), torch.Generator().manual_seed(1))
    per_row = gains[:, 0, :]
    assert torch.allclose(per_row, per_row[:, :1].expand_as(per_row))  # one gain per output row
    assert per_row[:, 0].std().item() == pytest.approx(0.05, rel=0.1)


def test_stability_margin_and_dt_floors_hold():
    arch = Architecture(n_inputs=1, n_classes=2, channels=4, state_size=8, dt_min=1e-4, dt_max=1e-3,
                        dt_floor=5e-3, margin_floor=0.05)
    layer = S4DClassifier(arch, seed=0).s4d_layers()[0]
    with torch.no_grad():
        layer.log_A_real.fill_(-20.0)  # nearly undamped without the floor
    params = layer.export()
    assert np.all(params.dt >= 5e-3 * (1 - 1e-6))
    A_bar = np.exp(params.dt[:, None] * params.A)
    assert np.all(1 - np.abs(A_bar) >= 0.05 - 1e-6)


def test_structured_pruning_shrinks_modes_and_switches_off_channels():
    torch.manual_seed(0)
    arch = Architecture(n_inputs=1, n_classes=3, channels=6, state_size=8, layers=2)
    model = S4DClassifier(arch, seed=2)
    X = np.random.default_rng(0).normal(size=(16, 1, 20)).astype(np.float32)
    pruned, info = prune_model(model, X, keep_modes=2, keep_channels=3)
    assert pruned.arch.state_size == 4
    assert [len(a) for a in info["active_channels"]] == [3, 3]
    assert pruned.crossbar_memory_bits(4) == 2 * 3 * (4 * 4 + 1) * 4
    assert model.crossbar_memory_bits(None) == 2 * 6 * (4 * 8 + 1) * 32
    pruned.eval()
    with torch.no_grad():
        logits = pruned(torch.from_numpy(X))
    assert logits.shape == (16, 3) and torch.all(torch.isfinite(logits))
    layer = pruned.s4d_layers()[0]
    off = [h for h in range(6) if h not in info["active_channels"][0]]
    M = layer.matrices().detach()
    assert torch.all(M[off, -1, :] == 0)  # switched-off channels output nothing
    # kept modes are the strongest ones: the pruned layer's kernel keeps most of the energy
    full_k = S4DLayer(model.s4d_layers()[0].export()).kernel(20)
    kept_k = S4DLayer(layer.export()).kernel(20)
    on = info["active_channels"][0]
    assert np.linalg.norm(kept_k[on]) > 0.5 * np.linalg.norm(full_k[on])


def test_quant_spec_is_applied_in_the_forward_pass():
    model = S4DClassifier(Architecture(n_inputs=1, n_classes=2, channels=2, state_size=4), seed=0)
    layer = model.s4d_layers()[0]
    model.set_hardware(QuantSpec(bits=2))
    stored = layer.stored_matrices().detach().numpy()
    program = S4DLayer(layer.export()).crossbar_program("delta")
    expected = quantize_program(program, 2).program.matrices
    assert np.allclose(stored, expected, atol=1e-5)
