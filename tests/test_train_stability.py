"""Stability floor on the stored (quantized) S4D recurrence: radii of the stored mode blocks,
the QAT penalty, the projection at export and its record in train.json / metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

import torch  # the train extra, installed by scripts/setup.sh

from cosim.s4d.ideal import S4DLayer
from cosim.s4d.quant import quantize_program
from cosim.train.config import load_train_config
from cosim.train.model import Architecture, S4DClassifier, stored_mode_radii
from cosim.train.qat import QuantSpec, project_stored_modes, stored_margins, stored_stability_penalty
from cosim.train.trainer import stored_stability, train_run

from tests.test_train_run import SMALL, sines


def unstable_model(variant: str = "delta", bits: int = 4) -> S4DClassifier:
    """Nearly undamped modes: at ``bits`` the stored blocks leave the unit circle."""
    arch = Architecture(n_inputs=1, n_classes=2, channels=4, state_size=8, layers=1, variant=variant,
                        dt_min=0.05, dt_max=0.3)
    model = S4DClassifier(arch, seed=0)
    with torch.no_grad():
        model.s4d_layers()[0].log_A_real.fill_(-12.0)
    model.set_hardware(QuantSpec(bits=bits))
    return model


def block_eigen_radii(matrices: np.ndarray, variant: str) -> np.ndarray:
    n = matrices.shape[-1] - 1
    T = matrices[:, :n, :n] + (np.eye(n) if variant == "delta" else 0)
    return np.array([[np.abs(np.linalg.eigvals(T[h, 2 * k:2 * k + 2, 2 * k:2 * k + 2])).max()
                      for k in range(n // 2)] for h in range(T.shape[0])])


@pytest.mark.parametrize("variant", ["full", "delta"])
def test_stored_radii_are_the_eigenvalues_of_the_quantized_blocks(variant):
    model = unstable_model(variant, bits=3)
    layer = model.s4d_layers()[0]
    program = quantize_program(S4DLayer(layer.export()).crossbar_program(variant), 3, "block").program
    expected = block_eigen_radii(program.matrices, variant)
    radii = layer.stored_radii().detach().double().numpy()
    assert np.allclose(radii, expected, atol=1e-5)
    some = np.array([[[0.5, 0.3, 0], [0.2, 0.4, 0], [0, 0, 0]]])  # real-eigenvalue block
    assert stored_mode_radii(torch.from_numpy(some), "full").item() == pytest.approx(
        np.abs(np.linalg.eigvals(some[0, :2, :2])).max())


@pytest.mark.parametrize("variant", ["full", "delta"])
def test_projection_puts_every_stored_mode_inside_the_margin(variant):
    model = unstable_model(variant, bits=4)
    layer = model.s4d_layers()[0]
    assert layer.stored_radii().max().item() > 1.0  # quantization makes it unstable
    info = project_stored_modes(model, 0.02)
    assert info["projected_modes"] > 0
    assert info["min_stored_margin"] >= 0.02
    assert min(m.min() for m in stored_margins(model)) >= 0.02
    # the deployment quantizer (numpy, float64, from the exported parameters) agrees
    program = quantize_program(S4DLayer(layer.export()).crossbar_program(variant), 4, "block").program
    assert block_eigen_radii(program.matrices, variant).max() <= 1 - 0.02 + 1e-6


def test_penalty_is_differentiable_and_descends():
    model = unstable_model("delta", bits=4)
    layer = model.s4d_layers()[0]
    optimizer = torch.optim.Adam([layer.log_A_real, layer.log_dt], lr=0.2)
    first = stored_stability_penalty(model, 0.02)
    assert first.item() > 0
    for _ in range(60):
        optimizer.zero_grad()
        penalty = stored_stability_penalty(model, 0.02)
        penalty.backward()
        optimizer.step()
    assert penalty.item() < 0.5 * first.item()


def test_option_off_leaves_the_model_alone(tmp_path):
    data_file = sines(tmp_path / "s.npz", seed=2)
    (tmp_path / "t.toml").write_text(SMALL.format(seed=0, epochs=1))
    config = load_train_config(tmp_path / "t.toml", data=data_file)
    assert config.stability.stored_floor is False and config.stability.stored_margin == 0.003
    model = unstable_model("delta", bits=4)
    before = model.s4d_layers()[0].log_A_real.detach().clone()
    from cosim.train.data import load_dataset

    info = stored_stability(model, config, load_dataset(None, data_file))
    assert torch.equal(model.s4d_layers()[0].log_A_real, before)
    assert info["projected_modes"] == 0 and info["max_stored_abs_lambda"] > 1.0


def test_qat_run_with_stored_floor_learns_and_records_the_margin(tmp_path):
    data = sines(tmp_path / "s.npz", seed=1)
    config_file = tmp_path / "q.toml"
    config_file.write_text(SMALL.format(seed=0, epochs=10) + "[qat]\nbits = 3\n"
                           "[stability]\nstored_floor = true\nstored_margin = 0.03\n")
    result = train_run(load_train_config(config_file, data=data), tmp_path / "q", progress=False)
    assert result.metrics["test_accuracy"] >= 0.8  # chance is 0.5
    assert result.metrics["min_stored_margin"] >= 0.03
    record = json.loads((tmp_path / "q" / "train.json").read_text())
    stability = record["stored_stability"]
    assert stability["enabled"] and stability["margin"] == 0.03
    assert stability["max_stored_abs_lambda"] <= 0.97
    # projected after every optimizer step: nothing left to project at export
    assert stability["projected_at_export"] == 0
    assert stability["test_accuracy_before_projection"] == result.metrics["test_accuracy"]
    assert json.loads((tmp_path / "q" / "metrics.json").read_text())["projected_modes"] == stability["projected_modes"]
