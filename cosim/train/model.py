"""The trainable S4D classifier (PyTorch) in the project's S4D conventions.

Architecture (as the S4D example of Gu et al. 2022, arXiv:2206.11893): a linear encoder
C → H, ``layers`` blocks of [S4D layer → GELU → dropout → 1×1 convolution H → 2H → GLU →
dropout → residual → LayerNorm], mean pooling over time and a linear decoder H → K.

Each S4D layer (:class:`S4DCrossbarLayer`) keeps continuous parameters — ``log_dt`` (H,),
``log_A_real`` (H, N/2) with Re A = −exp(log_A_real), ``A_imag`` (H, N/2) ≥ 0 (this project's
convention, docs/s4d.md), ``C`` as real and imaginary parts (H, N/2), ``D`` (H,), B = 1 — and at
every forward pass builds the per-channel crossbar matrices
``M = [[Ā_r, B̄_r], [c_r Ā_r, c_r B̄_r + D]]`` (ZOH; minus I in the state block for the
``delta`` variant) exactly as :func:`cosim.s4d.ideal.combined_matrices` does, perturbs them
as deployment will (:mod:`cosim.train.qat`) and convolves the input with the kernel *of the
stored matrices*: ``h[0] = d``, ``h[l] = c T^{l−1} b`` (T the effective state transition,
b the stored input column, c/d the stored output row), which equals the step recurrence of
:func:`cosim.s4d.ideal.run_recurrence` on those matrices.

Floors (config ``stability``): ``dt ≥ dt_floor`` and a stability margin
``1 − |Ā| ≥ margin_floor`` per mode (Re A is clipped to ``−log(1 − margin)/dt``). These bound
the continuous eigenvalues; the eigenvalues of the *stored* (quantized) 2×2 mode blocks
(:func:`stored_mode_radii`) are bounded by the penalty and projection of
:mod:`cosim.train.qat` (``stored_floor``).

The entry points are :class:`S4DClassifier` and :meth:`S4DClassifier.export` (the numpy
:class:`cosim.s4d.ideal.S4DParams` of every layer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Literal, Optional

import numpy as np
import torch
from torch import nn

from cosim.s4d.ideal import S4DParams
from cosim.train.qat import NoiseSpec, QuantSpec, fake_quantize, group_index, inject_noise

Variant = Literal["full", "delta"]
#: ``override(layer_index, u)``: replace S4D layer ``layer_index`` (u: (B, H, L) tensor) by
#: another evaluation (e.g. a crossbar circuit); returns y of the same shape.
LayerOverride = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass
class Architecture:
    """Shape and initialisation of a classifier (every field is recorded in train.json)."""

    n_inputs: int
    n_classes: int
    channels: int = 32
    state_size: int = 16
    layers: int = 2
    dropout: float = 0.1
    init: Literal["lin", "inv"] = "lin"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    variant: Variant = "delta"
    dt_floor: float = 0.0
    margin_floor: float = 0.0
    active_channels: Optional[list[list[int]]] = None  #: per layer, after channel pruning

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class S4DCrossbarLayer(nn.Module):
    """One S4D layer whose forward pass uses the stored crossbar matrices (module doc)."""

    def __init__(self, channels: int, state_size: int, arch: Architecture, generator: torch.Generator) -> None:
        super().__init__()
        self.H, self.N = channels, state_size
        self.arch = arch
        modes = state_size // 2
        n = torch.arange(modes, dtype=torch.float32)
        imag = math.pi * n if arch.init == "lin" else state_size / math.pi * (state_size / (2 * n + 1) - 1)
        log_dt = torch.rand(channels, generator=generator) * (math.log(arch.dt_max) - math.log(arch.dt_min)) + math.log(arch.dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))
        self.A_imag = nn.Parameter(imag.repeat(channels, 1))
        C = torch.randn(channels, modes, 2, generator=generator) / math.sqrt(2)
        self.C_re = nn.Parameter(C[..., 0].contiguous())
        self.C_im = nn.Parameter(C[..., 1].contiguous())
        self.D = nn.Parameter(torch.randn(channels, generator=generator))
        self.register_buffer("channel_mask", torch.ones(channels))
        labels, groups = group_index(channels, state_size, "block")
        self.register_buffer("labels", labels, persistent=False)
        self.n_groups = groups
        self.quant = QuantSpec()
        self.noise = NoiseSpec()
        self.noise_generator: Optional[torch.Generator] = None

    # -- continuous parameters with floors --------------------------------------------------
    def dt(self) -> torch.Tensor:
        """(H,) time steps, ≥ dt_floor."""
        log_dt = self.log_dt
        if self.arch.dt_floor > 0:
            log_dt = torch.clamp(log_dt, min=math.log(self.arch.dt_floor))
        return torch.exp(log_dt)

    def rates(self, dt: torch.Tensor) -> torch.Tensor:
        """(H, N/2) decay rates −Re A > 0, with 1 − exp(−rate·dt) ≥ margin_floor."""
        rate = torch.exp(self.log_A_real)
        if self.arch.margin_floor > 0:
            floor = (-math.log1p(-self.arch.margin_floor) / dt)[:, None].detach()
            rate = torch.maximum(rate, floor)
        return rate

    def set_scheme(self, scheme: str) -> None:
        labels, groups = group_index(self.H, self.N, scheme)  # type: ignore[arg-type]
        self.labels, self.n_groups = labels, groups

    # -- stored matrices --------------------------------------------------------------------
    def matrices(self, variant: Variant | None = None) -> torch.Tensor:
        """(H, N+1, N+1) matrices M (or M_Δ for ``delta``), unperturbed."""
        variant = variant or self.arch.variant
        dt = self.dt()
        x = -self.rates(dt) * dt[:, None]  # Re(ΔA)
        y = self.A_imag * dt[:, None]  # Im(ΔA)
        decay = torch.exp(x)
        a, b = decay * torch.cos(y), decay * torch.sin(y)
        # Ā − 1 accurately: expm1(x) cos y − 2 sin²(y/2)
        a_minus_1 = torch.expm1(x) * torch.cos(y) - 2 * torch.sin(y / 2) ** 2
        # B̄ = (Ā − 1)/A with B = 1: complex division written out
        ar, ai = x / dt[:, None], y / dt[:, None]
        den = ar**2 + ai**2
        br = (a_minus_1 * ar + b * ai) / den
        bi = (b * ar - a_minus_1 * ai) / den
        mask = self.channel_mask[:, None]
        c0, c1 = 2 * self.C_re * mask, -2 * self.C_im * mask
        diag = (a_minus_1 if variant == "delta" else a).repeat_interleave(2, dim=-1)
        zeros = torch.zeros_like(b)
        upper = torch.stack([-b, zeros], dim=-1).reshape(self.H, -1)[:, :-1]
        lower = torch.stack([b, zeros], dim=-1).reshape(self.H, -1)[:, :-1]
        state = torch.diag_embed(diag) + torch.diag_embed(upper, offset=1) + torch.diag_embed(lower, offset=-1)
        B_r = torch.stack([br, bi], dim=-1).reshape(self.H, -1)
        cA = torch.stack([c0 * a + c1 * b, -c0 * b + c1 * a], dim=-1).reshape(self.H, -1)
        d = (c0 * br + c1 * bi).sum(-1) + self.D * self.channel_mask
        top = torch.cat([state, B_r[:, :, None]], dim=-1)
        bottom = torch.cat([cA[:, None, :], d[:, None, None]], dim=-1)
        return torch.cat([top, bottom], dim=-2)

    def stored_matrices(self) -> torch.Tensor:
        """The matrices as deployment stores them: quantized (STE) and, in training, noisy."""
        M = fake_quantize(self.matrices(), self.labels, self.n_groups, self.quant.bits)
        if self.training and self.noise.active and self.noise_generator is not None:
            M = inject_noise(M, self.noise, self.noise_generator)
        return M

    def stored_radii(self) -> torch.Tensor:
        """(H, N/2) |λ| of the quantized, noise-free stored mode blocks (STE gradient)."""
        M = fake_quantize(self.matrices(), self.labels, self.n_groups, self.quant.bits)
        return stored_mode_radii(M, self.arch.variant)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, H, L) → y (B, H, L): causal convolution with the stored program's kernel."""
        length = u.shape[-1]
        h = program_kernel(self.stored_matrices(), self.arch.variant, length)
        n_fft = 2 * length
        y = torch.fft.irfft(torch.fft.rfft(u, n=n_fft) * torch.fft.rfft(h, n=n_fft), n=n_fft)[..., :length]
        return y

    def export(self) -> S4DParams:
        """Continuous parameters (floors applied) as numpy :class:`S4DParams`; pruned channels
        have C = 0 and D = 0."""
        with torch.no_grad():
            dt = self.dt().double()
            rate = self.rates(dt.float()).double()
            mask = self.channel_mask.double()
            A = (-rate + 1j * self.A_imag.double()).numpy()
            C = ((self.C_re.double() + 1j * self.C_im.double()) * mask[:, None]).numpy()
            return S4DParams(A=A, B=np.ones_like(A), C=C, D=(self.D.double() * mask).numpy(), dt=dt.numpy())


def stored_mode_radii(M: torch.Tensor, variant: Variant) -> torch.Tensor:
    """(H, N/2) spectral radius of every 2×2 mode block ``[[a₁, −b₁], [b₂, a₂]]`` of the state
    transition T of stored matrices M (T = M_Δ + I for ``delta``), exact for any block:
    ``|λ| = √det`` for a complex pair, ``|tr|/2 + √disc`` for real eigenvalues. Differentiable
    (away from the disc = 0 boundary)."""
    n = M.shape[-1] - 1
    T = M[:, :n, :n]
    diag = torch.diagonal(T, dim1=-2, dim2=-1)
    a1, a2 = diag[:, 0::2], diag[:, 1::2]
    if variant == "delta":
        a1, a2 = a1 + 1, a2 + 1
    b2 = torch.diagonal(T, offset=-1, dim1=-2, dim2=-1)[:, 0::2]  # T[2k+1, 2k]
    b1 = -torch.diagonal(T, offset=1, dim1=-2, dim2=-1)[:, 0::2]  # −T[2k, 2k+1]
    half = (a1 + a2) / 2
    det = a1 * a2 + b1 * b2
    disc = half**2 - det
    complex_pair = torch.sqrt(torch.clamp(det, min=1e-30))
    real_pair = half.abs() + torch.sqrt(torch.clamp(disc, min=1e-30))
    return torch.where(disc < 0, complex_pair, real_pair)


def program_kernel(M: torch.Tensor, variant: Variant, length: int) -> torch.Tensor:
    """Impulse response (H, length) of stored matrices: ``h[0] = d``, ``h[l] = c T^{l−1} b``.
    Powers by doubling (log₂ L matrix products)."""
    n = M.shape[-1] - 1
    T = M[:, :n, :n]
    if variant == "delta":
        T = T + torch.eye(n, dtype=M.dtype)
    states = M[:, :n, n:]  # (H, N, 1): T^0 b
    power = T
    while states.shape[-1] < length - 1:
        states = torch.cat([states, power @ states], dim=-1)
        power = power @ power
    markov = (M[:, n:, :n] @ states[..., : max(length - 1, 0)])[:, 0, :]
    return torch.cat([M[:, n, n][:, None], markov], dim=-1)


class S4DBlock(nn.Module):
    """S4D → GELU → dropout → 1×1 conv + GLU → dropout → residual → LayerNorm."""

    def __init__(self, arch: Architecture, generator: torch.Generator) -> None:
        super().__init__()
        self.s4d = S4DCrossbarLayer(arch.channels, arch.state_size, arch, generator)
        self.mix = nn.Conv1d(arch.channels, 2 * arch.channels, 1)
        self.norm = nn.LayerNorm(arch.channels)
        self.dropout = nn.Dropout(arch.dropout)

    def forward(self, u: torch.Tensor, s4d: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        z = self.s4d(u) if s4d is None else s4d(u)
        z = self.dropout(nn.functional.gelu(z))
        z = self.dropout(nn.functional.glu(self.mix(z), dim=1))
        return self.norm((u + z).transpose(-1, -2)).transpose(-1, -2)


class S4DClassifier(nn.Module):
    """Encoder → S4D blocks → mean pool → decoder (module doc). Initial weights come from the
    torch generator seeded with ``seed``."""

    def __init__(self, arch: Architecture, seed: int = 0) -> None:
        super().__init__()
        self.arch = arch
        generator = torch.Generator().manual_seed(int(seed))
        torch.manual_seed(int(seed))  # nn.Linear / Conv1d / LayerNorm initialisation
        self.encoder = nn.Linear(arch.n_inputs, arch.channels)
        self.blocks = nn.ModuleList([S4DBlock(arch, generator) for _ in range(arch.layers)])
        self.decoder = nn.Linear(arch.channels, arch.n_classes)

    def s4d_layers(self) -> list[S4DCrossbarLayer]:
        return [block.s4d for block in self.blocks]  # type: ignore[misc]

    def set_hardware(self, quant: QuantSpec, noise: NoiseSpec | None = None,
                     generator: torch.Generator | None = None) -> None:
        """Quantizer for every S4D layer's stored matrices; training noise (used in train mode)."""
        for layer in self.s4d_layers():
            if layer.quant.scheme != quant.scheme:
                layer.set_scheme(quant.scheme)
            layer.quant = quant
            layer.noise = noise or NoiseSpec()
            layer.noise_generator = generator

    def forward(self, x: torch.Tensor, override: Optional[LayerOverride] = None) -> torch.Tensor:
        """x (B, C, L) → logits (B, K)."""
        u = self.encoder(x.transpose(-1, -2)).transpose(-1, -2)
        for index, block in enumerate(self.blocks):
            hook = None if override is None else (lambda v, i=index: override(i, v))
            u = block(u, hook)
        return self.decoder(u.mean(dim=-1))

    def export(self) -> list[S4DParams]:
        """numpy parameters of every S4D layer."""
        return [layer.export() for layer in self.s4d_layers()]

    def crossbar_memory_bits(self, bits: int | str | None) -> int:
        """Bits the S4D crossbars store: 4N+1 structural entries per active channel (2N in the
        2×2 mode blocks, N in B̄, N+1 in the output row) × bits (32 for float, ~1.58 for
        ternary counted as 2)."""
        per_entry = 32 if bits is None else (2 if bits == "ternary" else int(bits))
        total = 0
        for layer in self.s4d_layers():
            active = int(layer.channel_mask.sum().item())
            total += active * (4 * layer.N + 1) * per_entry
        return total

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
