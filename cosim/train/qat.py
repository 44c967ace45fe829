"""Quantization- and noise-aware training of S4D crossbar matrices (PyTorch).

The trainable S4D layer (:mod:`cosim.train.model`) builds, at every forward pass, the very
(H, N+1, N+1) matrices a crossbar stores (:func:`cosim.s4d.ideal.combined_matrices`, variant
``full`` or ``delta``) and computes its kernel from them; this module perturbs those matrices
the way deployment will:

* **quantization** (:func:`fake_quantize`): n-bit (2–8) symmetric codes with one max-abs
  scale per group, or ternary codes with the TWN threshold (Li, Zhang, Liu 2016,
  arXiv:1605.04711) — exactly the quantizers of :mod:`cosim.s4d.quant`, with the same groups
  (:func:`cosim.s4d.ideal.group_labels`). Gradients pass by the straight-through estimator
  (Bengio, Léonard, Courville 2013, arXiv:1308.3432): forward ``q(w)``, backward identity.
* **programming noise** (:func:`inject_noise`): a crossbar column holds one output row of M as
  differential pairs ``G± = G_min + s·w±`` with ``s = (G_max − G_min)/max|row|``
  (:mod:`cosim.s4d.mapping`, layout ``channel``); write-verify leaves a relative conductance
  error of rms ``r`` per device (measured by :func:`programming_statistics` from the device
  model), so entry ``w`` gets ``N(0, r²((g₀ + w⁺)² + (g₀ + w⁻)²))`` with ``g₀ = G_min/s``
  (also on the structural zeros, which are G_min pairs); ``r`` is the standard deviation of the
  relative error (its mean is a common gain, see :func:`programming_statistics`);
* **per-output gain jitter**: every output row is multiplied by ``1 + N(0, σ_g²)`` (wires and
  converters act on crossbar outputs as gains).

Noise is drawn from a ``torch.Generator`` seeded by the training seed, a fresh draw per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch

from cosim.s4d.ideal import GroupScheme, group_labels

Bits = Union[int, Literal["ternary"], None]

TERNARY_THRESHOLD = 0.7
"""TWN threshold ratio (as the default of :func:`cosim.s4d.quant.ternarize_program`)."""


@dataclass(frozen=True)
class QuantSpec:
    """What the stored matrices become: ``bits`` (2–8, ``"ternary"`` or None for float) with
    scales per ``scheme`` group."""

    bits: Bits = None
    scheme: GroupScheme = "block"

    @property
    def active(self) -> bool:
        return self.bits is not None

    def label(self) -> str:
        return "float" if self.bits is None else str(self.bits)


@dataclass(frozen=True)
class NoiseSpec:
    """Training-time perturbations: relative conductance error rms ``rel_sigma`` of a programmed
    device, ``g_min_ratio`` = G_min/(G_max − G_min) of the window, per-output gain jitter
    ``gain_sigma`` (all dimensionless)."""

    rel_sigma: float = 0.0
    g_min_ratio: float = 0.0
    gain_sigma: float = 0.0

    @property
    def active(self) -> bool:
        return self.rel_sigma > 0 or self.gain_sigma > 0


def group_index(n_channels: int, state_size: int, scheme: GroupScheme) -> tuple[torch.Tensor, int]:
    """(labels as a long tensor, number of groups); −1 at structural zeros."""
    labels = group_labels(n_channels, state_size, scheme)
    return torch.from_numpy(labels.astype(np.int64)), int(labels.max()) + 1


def _ste(w: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return w + (q - w).detach()


def quantize_values(w: torch.Tensor, labels: torch.Tensor, n_groups: int, bits: Bits) -> torch.Tensor:
    """Quantized copy of ``w`` (no STE): n-bit max-abs or ternary TWN per group."""
    mask = labels >= 0
    flat, idx = w[mask], labels[mask]
    mag = flat.abs()
    if bits == "ternary":
        counts = torch.zeros(n_groups, dtype=w.dtype).index_add_(0, idx, torch.ones_like(mag))
        mean_abs = torch.zeros(n_groups, dtype=w.dtype).index_add_(0, idx, mag) / counts.clamp(min=1)
        kept = (mag > TERNARY_THRESHOLD * mean_abs[idx]).to(w.dtype)
        kept_n = torch.zeros(n_groups, dtype=w.dtype).index_add_(0, idx, kept)
        scale = torch.zeros(n_groups, dtype=w.dtype).index_add_(0, idx, mag * kept) / kept_n.clamp(min=1)
        q = torch.sign(flat) * kept * scale[idx]
    else:
        levels = 2 ** (int(bits) - 1) - 1  # type: ignore[arg-type]
        peak = torch.zeros(n_groups, dtype=w.dtype).scatter_reduce(0, idx, mag, reduce="amax", include_self=True)
        step = (peak / levels)[idx]
        safe = torch.where(step > 0, step, torch.ones_like(step))
        q = torch.where(step > 0, torch.round(flat / safe) * step, torch.zeros_like(flat))
    out = torch.zeros_like(w)
    out[mask] = q
    return out


def fake_quantize(w: torch.Tensor, labels: torch.Tensor, n_groups: int, bits: Bits) -> torch.Tensor:
    """``quantize_values`` in the forward pass, identity gradient (STE)."""
    if bits is None:
        return w
    with torch.no_grad():
        q = quantize_values(w.detach(), labels, n_groups, bits)
    return _ste(w, q)


def inject_noise(M: torch.Tensor, spec: NoiseSpec, generator: torch.Generator) -> torch.Tensor:
    """Programming error and per-output gain jitter on (H, N+1, N+1) matrices (see module doc).
    The noise scale is computed without gradient (it models the hardware, not a parameter)."""
    if not spec.active:
        return M
    out = M
    if spec.rel_sigma > 0:
        with torch.no_grad():
            peak = M.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)  # per output row
            g0 = spec.g_min_ratio * peak
            sd = spec.rel_sigma * torch.sqrt((g0 + M.clamp(min=0)) ** 2 + (g0 + (-M).clamp(min=0)) ** 2)
        out = out + sd * torch.randn(M.shape, generator=generator, dtype=M.dtype)
    if spec.gain_sigma > 0:
        gain = 1.0 + spec.gain_sigma * torch.randn(M.shape[:-1] + (1,), generator=generator, dtype=M.dtype)
        out = out * gain
    return out


def programming_statistics(device_model: object, seed: int = 0, n_devices: int = 400,
                           tolerance: float = 0.05) -> dict[str, float]:
    """Relative conductance error of write-verify on this device model: ``n_devices`` devices
    (ids 0.., drawn from ``seed``) programmed to targets spread evenly over the conductance
    window. Returns ``rel_sigma`` (rms relative error), the mean error, and the window
    ratio ``g_min_ratio`` = G_min/(G_max − G_min)."""
    from cosim.device.model import DeviceArray
    from cosim.device.programming import ProgramConfig, conductance_window, program

    g_min, g_max = conductance_window(device_model, seed=seed)  # type: ignore[arg-type]
    targets = np.linspace(g_min, g_max, n_devices)
    devices = DeviceArray(device_model, device_ids=np.arange(n_devices), seed=seed)  # type: ignore[arg-type]
    result = program(devices, targets, ProgramConfig(tolerance=tolerance))
    error = result.relative_error
    return {
        "rel_sigma": float(np.std(error)),
        "rel_rms": float(np.sqrt(np.mean(error**2))),
        "rel_mean": float(np.mean(error)),
        "g_min_ratio": float(g_min / (g_max - g_min)),
        "g_min_S": float(g_min),
        "g_max_S": float(g_max),
        "devices": float(n_devices),
        "seed": float(seed),
    }


def prune_model(model: object, X: np.ndarray, keep_modes: int | None, keep_channels: int | None,
                samples: int = 256) -> tuple[object, dict[str, object]]:
    """Structured pruning of a trained :class:`cosim.train.model.S4DClassifier`.

    * modes: in every channel of every S4D layer keep the ``keep_modes`` complex modes with the
      largest kernel energy ``Σ_l (2 Re C_n B̄_n Ā_n^l)²`` over the sequence length; the state
      size becomes ``2·keep_modes`` (a smaller crossbar);
    * channels: in every S4D layer keep the ``keep_channels`` channels whose S4D output has the
      largest mean square on the first ``samples`` training inputs; the others are switched
      off (output 0, no crossbar).

    Returns a new model (weights copied) and a record of what was kept.
    """
    import copy

    from cosim.s4d.ideal import discretize

    arch = copy.deepcopy(model.arch)  # type: ignore[attr-defined]
    length = X.shape[-1]
    info: dict[str, object] = {"keep_modes": keep_modes, "keep_channels": keep_channels}
    energies: list[torch.Tensor] = []
    model.eval()  # type: ignore[attr-defined]

    def record(index: int, u: torch.Tensor) -> torch.Tensor:
        y = model.s4d_layers()[index](u)  # type: ignore[attr-defined]
        energies.append((y**2).mean(dim=(0, 2)))
        return y

    with torch.no_grad():
        model(torch.from_numpy(X[:samples]), record)  # type: ignore[operator]
    kept_modes = []
    for layer in model.s4d_layers():  # type: ignore[attr-defined]
        params = layer.export()
        A_bar, B_bar = discretize(params)
        powers = A_bar[..., None] ** np.arange(length)
        mode_energy = np.sum((2 * np.real((params.C * B_bar)[..., None] * powers)) ** 2, axis=-1)
        count = params.n_modes if keep_modes is None else keep_modes
        kept_modes.append(np.sort(np.argsort(-mode_energy, axis=1, kind="stable")[:, :count], axis=1))
    if keep_modes is not None:
        arch.state_size = 2 * keep_modes
    new = type(model)(arch, seed=0)  # type: ignore[call-arg]
    state = {k: v.clone() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    for index, keep in enumerate(kept_modes):
        prefix = f"blocks.{index}.s4d."
        gather = torch.from_numpy(keep)
        for name in ("log_A_real", "A_imag", "C_re", "C_im"):
            state[prefix + name] = torch.gather(state[prefix + name], 1, gather)
    active: list[list[int]] = []
    for index, energy in enumerate(energies):
        mask = torch.ones_like(energy)
        if keep_channels is not None:
            order = torch.argsort(-energy, stable=True)
            mask[order[keep_channels:]] = 0.0
        state[f"blocks.{index}.s4d.channel_mask"] = mask * state[f"blocks.{index}.s4d.channel_mask"]
        active.append([int(i) for i in torch.nonzero(state[f"blocks.{index}.s4d.channel_mask"]).ravel()])
    new.arch.active_channels = active  # type: ignore[attr-defined]
    new.load_state_dict(state)  # type: ignore[attr-defined]
    info["kept_modes"] = [k.tolist() for k in kept_modes]
    info["active_channels"] = active
    return new, info


def stored_stability_penalty(model: object, margin: float) -> torch.Tensor:
    """Differentiable floor on the stored recurrence: ``Σ max(0, |λ_q| − (1 − margin))`` over
    every quantized 2×2 mode block of every active channel (|λ_q| by
    :func:`cosim.train.model.stored_mode_radii`, gradient through the STE)."""
    total = torch.zeros(())
    for layer in model.s4d_layers():  # type: ignore[attr-defined]
        excess = torch.relu(layer.stored_radii() - (1.0 - margin))
        total = total + (excess * layer.channel_mask[:, None]).sum()
    return total


def stored_margins(model: object) -> list[np.ndarray]:
    """Per layer, (active channels, N/2) stored margins ``1 − |λ_q|`` (quantizer as set)."""
    out = []
    with torch.no_grad():
        for layer in model.s4d_layers():  # type: ignore[attr-defined]
            active = layer.channel_mask > 0
            out.append((1.0 - layer.stored_radii()[active]).double().numpy())
    return out


def project_stored_modes(model: object, margin: float, max_rounds: int = 200,
                         shrink: float = 0.999) -> dict[str, object]:
    """Projection at export: while a quantized mode block of an active channel has
    ``|λ_q| > 1 − margin``, scale that mode's continuous ``|Ā| = exp(−rate·dt)`` by
    ``shrink·(1 − margin)/|λ_q|`` (its angle Im A·dt is kept) by raising its decay rate, and
    quantize again (a smaller entry can change its group's scale, hence the rounds).

    Returns ``projected_modes`` (distinct modes changed), ``modes`` (their (layer, channel,
    mode) indices), ``rounds`` and
    ``min_stored_margin`` (over all layers, after projection; may stay below ``margin`` only
    if ``max_rounds`` did not suffice, which the caller reports)."""
    limit = 1.0 - margin
    changed: set[tuple[int, int, int]] = set()
    rounds = 0
    with torch.no_grad():
        for index, layer in enumerate(model.s4d_layers()):  # type: ignore[attr-defined]
            for rounds_here in range(max_rounds):
                radii = layer.stored_radii()
                bad = (radii > limit) & (layer.channel_mask[:, None] > 0)
                if not bool(bad.any()):
                    break
                dt = layer.dt()
                rate = layer.rates(dt)
                magnitude = torch.exp(-rate * dt[:, None])
                target = magnitude * shrink * limit / radii
                new_rate = -torch.log(target) / dt[:, None]
                layer.log_A_real.copy_(torch.where(bad, torch.log(new_rate), layer.log_A_real))
                for h, m in torch.nonzero(bad).tolist():
                    changed.add((index, h, m))
                rounds = max(rounds, rounds_here + 1)
    margins = [m for m in stored_margins(model) if m.size]
    minimum = float(min(m.min() for m in margins)) if margins else float("nan")
    return {"margin": margin, "projected_modes": len(changed), "rounds": rounds, "min_stored_margin": minimum,
            "modes": sorted(changed)}
