"""Import of state-spaces/s4 S4D state dicts: the imported cosim layer has their kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest

import torch  # the train extra, installed by scripts/setup.sh
from torch import nn

from cosim.s4d.ideal import S4DError
from cosim.train.importer import import_s4d_state_dict


def their_kernel(A: np.ndarray, B: np.ndarray, C: np.ndarray, dt: np.ndarray, length: int, method: str = "zoh") -> np.ndarray:
    """Their kernel, written from their convention: 2 Re Σ_n C_n B̄_n Ā_n^l with per-mode dt
    (A, B, C, dt all (H, N/2))."""
    dtA = dt * A
    if method == "zoh":
        A_bar, B_bar = np.exp(dtA), (np.exp(dtA) - 1) / A * B
    else:
        A_bar, B_bar = (1 + dtA / 2) / (1 - dtA / 2), dt * B / (1 - dtA / 2)
    return 2 * np.real(np.einsum("hn,hnl->hl", C * B_bar, A_bar[..., None] ** np.arange(length)))


class DiagKernel(nn.Module):
    """A tiny general diagonal kernel with their parameter names and shapes."""

    def __init__(self, H: int, modes: int, n_ssm: int, dt_tie: bool, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        shape = (H, 1) if dt_tie else (H, modes)
        self.inv_dt = nn.Parameter(torch.rand(*shape, generator=g) * (math.log(0.1) - math.log(0.005)) + math.log(0.005))
        self.A_real = nn.Parameter(torch.log(0.2 + torch.rand(n_ssm, modes, generator=g)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(modes).repeat(n_ssm, 1) + torch.rand(n_ssm, modes, generator=g))
        self.B = nn.Parameter(torch.randn(1, n_ssm, modes, 2, generator=g))
        self.C = nn.Parameter(torch.randn(1, H, modes, 2, generator=g))


class TheirLayer(nn.Module):
    def __init__(self, H: int = 4, modes: int = 3, n_ssm: int = 2, dt_tie: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.kernel = DiagKernel(H, modes, n_ssm, dt_tie, seed)
        self.D = nn.Parameter(torch.randn(1, H, generator=torch.Generator().manual_seed(seed + 1)))


class Model(nn.Module):
    def __init__(self, **kw) -> None:
        super().__init__()
        self.layers = nn.ModuleList([TheirLayer(**kw), TheirLayer(seed=9, **kw)])


def _reference(state: dict, prefix: str, H: int, length: int, method: str = "zoh") -> np.ndarray:
    k = {name: state[prefix + "kernel." + name].detach().numpy().astype(float) for name in ("inv_dt", "A_real", "A_imag", "B", "C")}
    reps = H // k["A_real"].shape[0]
    A = np.tile(-np.exp(k["A_real"]) - 1j * k["A_imag"], (reps, 1))  # Im A <= 0
    B = np.tile(k["B"][0, ..., 0] + 1j * k["B"][0, ..., 1], (reps, 1))
    C = k["C"][0, ..., 0] + 1j * k["C"][0, ..., 1]
    dt = np.broadcast_to(np.exp(k["inv_dt"]), A.shape)
    return their_kernel(A, B, C, dt, length, method)


@pytest.mark.parametrize("dt_tie", [False, True])
@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_general_diag_kernel_imports_with_per_mode_dt_and_tied_copies(dt_tie, method):
    model = Model(H=4, modes=3, n_ssm=2, dt_tie=dt_tie)
    state = model.state_dict()
    for index in range(2):
        prefix = f"layers.{index}."
        layer = import_s4d_state_dict(state, prefix, method=method)
        assert np.all(layer.params.A.imag >= 0)  # this project's convention
        assert layer.params.dt.shape == (4,)
        expected = _reference(state, prefix, 4, 100, method)
        got = layer.kernel(100)
        assert np.max(np.abs(got - expected)) < 1e-10 * max(1.0, np.abs(expected).max())
        assert np.allclose(layer.params.D, state[prefix + "D"].detach().numpy().ravel())
        # the imported layer runs: FFT and the crossbar step form agree
        u = np.random.default_rng(index).normal(size=(4, 50))
        assert np.allclose(layer.apply_fft(u), layer.apply_crossbar(u, variant="delta"), atol=1e-9)


def test_standalone_s4d_layout_imports():
    g = torch.Generator().manual_seed(3)
    H, modes = 3, 4
    state = {
        "kernel.log_dt": torch.rand(H, generator=g) * 2 - 4,
        "kernel.log_A_real": torch.log(0.5 * torch.ones(H, modes)),
        "kernel.A_imag": math.pi * torch.arange(modes).repeat(H, 1).float(),
        "kernel.C": torch.randn(H, modes, 2, generator=g),
        "D": torch.randn(H, generator=g),
    }
    layer = import_s4d_state_dict(state)
    A = -np.exp(state["kernel.log_A_real"].numpy()) + 1j * state["kernel.A_imag"].numpy()
    C = state["kernel.C"].numpy()[..., 0] + 1j * state["kernel.C"].numpy()[..., 1]
    dt = np.exp(state["kernel.log_dt"].numpy().astype(float))[:, None] * np.ones((1, modes))
    expected = their_kernel(A, np.ones_like(A), C, dt, 64)
    assert np.allclose(layer.kernel(64), expected, rtol=1e-6, atol=1e-9)


def test_import_errors_name_the_key():
    state = Model(H=4, modes=3, n_ssm=2).state_dict()
    with pytest.raises(S4DError, match="no S4D layer at prefix 'layers.5.'"):
        import_s4d_state_dict(state, "layers.5.")
    bad = dict(state)
    bad["layers.0.kernel.C"] = torch.zeros(2, 4, 3, 2)
    with pytest.raises(S4DError, match="only one output channel"):
        import_s4d_state_dict(bad, "layers.0.")
    bad = dict(state)
    bad["layers.0.kernel.A_real"] = torch.zeros(3, 3)
    bad["layers.0.kernel.A_imag"] = torch.zeros(3, 3)
    with pytest.raises(S4DError, match="3 SSM copies do not divide H = 4"):
        import_s4d_state_dict(bad, "layers.0.")
    bad["layers.0.kernel.A_imag"] = torch.zeros(2, 3)
    with pytest.raises(S4DError, match="differ in shape"):
        import_s4d_state_dict(bad, "layers.0.")
