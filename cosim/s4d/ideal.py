"""Ideal (numpy) S4D: parameters, discretisation, kernels, step form and crossbar matrices.

Conventions follow Gu et al., "On the Parameterization and Initialization of Diagonal State
Space Models" (NeurIPS 2022, arXiv:2206.11893) and the state-spaces/s4 code, with the
conventions of docs/s4d.md:

* one layer has ``H`` independent channels; channel ``h`` has ``N/2`` complex diagonal modes
  (``N`` is the *real* state size, as in the paper);
* ZOH: ``Ā = exp(ΔA)``, ``B̄ = (Ā − 1)/A · B``; bilinear: ``Ā = (1 + ΔA/2)/(1 − ΔA/2)``,
  ``B̄ = Δ B/(1 − ΔA/2)``;
* kernel ``K[l] = 2 Re Σ_n C_n B̄_n Ā_n^l`` and output ``y = K * u + D u`` (causal);
* step form ``x_k = Ā x_{k−1} + B̄ u_k``, ``y_k = 2 Re(C x_k) + D u_k`` (no one-step delay);
* real form: mode ``n`` becomes the block ``[[a, −b], [b, a]]`` with ``a + ib = Ā_n``, input
  column ``(Re B̄_n, Im B̄_n)`` and output row ``(2 Re C_n, −2 Im C_n)``;
* one crossbar matrix per channel, (N+1)×(N+1):
  ``M = [[Ā_r, B̄_r], [c_r Ā_r, c_r B̄_r + D]]`` so that ``[x_k; y_k] = M [x_{k−1}; u_k]``.

The *delta* variant stores ``M_Δ = M − diag(1,…,1, 0)`` (i.e. ``Ā_r − I`` in the state block,
everything else unchanged) and adds the previous state digitally:
``[x_k; y_k] = M_Δ [x_{k−1}; u_k] + [x_{k−1}; 0]``.

All quantities are dimensionless except ``dt`` (time step, in the same time unit as ``1/A``)
and the converter voltages (volts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import scipy.linalg

from cosim.errors import CosimError

Discretisation = Literal["zoh", "bilinear"]
Variant = Literal["full", "delta"]
GroupScheme = Literal["block", "row", "channel"]

#: Sequence length of the deterministic test model (docs/s4d.md).
TEST_MODEL_LENGTH = 256


class S4DError(CosimError, ValueError):
    """Invalid S4D parameters, shapes or options; the message names the field."""


# --------------------------------------------------------------------------------------
# Parameters and initialisations
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class S4DParams:
    """Continuous-time parameters of one S4D layer.

    Attributes:
        A: complex (H, N/2) diagonal state matrix (Re A < 0 for a stable model), 1/time unit.
        B: complex (H, N/2) input vector.
        C: complex (H, N/2) output vector.
        D: real (H,) skip (feed-through) gain.
        dt: real (H,) positive time step Δ per channel, in the time unit of 1/A.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    dt: np.ndarray

    def __post_init__(self) -> None:
        arrays = {
            "A": np.asarray(self.A, dtype=complex),
            "B": np.asarray(self.B, dtype=complex),
            "C": np.asarray(self.C, dtype=complex),
            "D": np.asarray(self.D, dtype=float),
            "dt": np.asarray(self.dt, dtype=float),
        }
        if arrays["A"].ndim != 2 or arrays["A"].size == 0:
            raise S4DError(f"S4DParams.A must be a non-empty (H, N/2) array, got shape {arrays['A'].shape}")
        shape = arrays["A"].shape
        for name in ("B", "C"):
            if arrays[name].shape != shape:
                raise S4DError(f"S4DParams.{name} must have the shape of A {shape}, got {arrays[name].shape}")
        for name in ("D", "dt"):
            if arrays[name].shape != (shape[0],):
                raise S4DError(f"S4DParams.{name} must have shape (H,)=({shape[0]},), got {arrays[name].shape}")
        for name, value in arrays.items():
            if not np.all(np.isfinite(value)):
                raise S4DError(f"S4DParams.{name} contains non-finite values")
        if np.any(arrays["dt"] <= 0):
            raise S4DError("S4DParams.dt must be positive")
        for name, value in arrays.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_channels(self) -> int:
        """Number of channels H."""
        return self.A.shape[0]

    @property
    def n_modes(self) -> int:
        """Number of complex modes per channel, N/2."""
        return self.A.shape[1]

    @property
    def state_size(self) -> int:
        """Real state size N = 2 · (number of complex modes)."""
        return 2 * self.A.shape[1]


def _log_uniform_dt(rng: np.random.Generator, n_channels: int, dt_min: float, dt_max: float) -> np.ndarray:
    if not 0 < dt_min <= dt_max:
        raise S4DError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    return np.exp(rng.uniform(np.log(dt_min), np.log(dt_max), size=n_channels))


def _random_init(
    a_imag: np.ndarray, n_channels: int, dt_min: float, dt_max: float, seed: int
) -> S4DParams:
    """Shared part of the S4D initialisations: B = 1, C ~ CN(0, 1), D ~ N(0, 1), log-uniform Δ."""
    rng = np.random.default_rng(seed)
    n_modes = a_imag.size
    A = np.tile(-0.5 + 1j * a_imag, (n_channels, 1))
    B = np.ones((n_channels, n_modes), dtype=complex)
    C = (rng.standard_normal((n_channels, n_modes)) + 1j * rng.standard_normal((n_channels, n_modes))) / np.sqrt(2)
    D = rng.standard_normal(n_channels)
    dt = _log_uniform_dt(rng, n_channels, dt_min, dt_max)
    return S4DParams(A=A, B=B, C=C, D=D, dt=dt)


def _check_sizes(n_channels: int, state_size: int) -> None:
    if n_channels < 1:
        raise S4DError(f"n_channels must be >= 1, got {n_channels}")
    if state_size < 2 or state_size % 2:
        raise S4DError(f"state_size N must be even and >= 2, got {state_size}")


def init_s4d_lin(
    n_channels: int, state_size: int, *, dt_min: float = 1e-3, dt_max: float = 1e-1, seed: int = 0
) -> S4DParams:
    """S4D-Lin: ``A_n = −1/2 + iπn``, n = 0..N/2−1; B = 1; C ~ CN(0,1); D ~ N(0,1); Δ log-uniform.

    Args:
        n_channels: H.
        state_size: real state size N (even).
        dt_min, dt_max: range of the log-uniform time step Δ.
        seed: seed of every random draw (C, D, Δ).
    """
    _check_sizes(n_channels, state_size)
    return _random_init(np.pi * np.arange(state_size // 2), n_channels, dt_min, dt_max, seed)


def init_s4d_inv(
    n_channels: int, state_size: int, *, dt_min: float = 1e-3, dt_max: float = 1e-1, seed: int = 0
) -> S4DParams:
    """S4D-Inv: ``A_n = −1/2 + i (N/π)(N/(2n+1) − 1)``, n = 0..N/2−1; other parameters as S4D-Lin."""
    _check_sizes(n_channels, state_size)
    n = np.arange(state_size // 2)
    a_imag = state_size / np.pi * (state_size / (2 * n + 1) - 1)
    return _random_init(a_imag, n_channels, dt_min, dt_max, seed)


def test_model_params() -> S4DParams:
    """Deterministic test model (docs/s4d.md): H = 4, N = 16 (use L = TEST_MODEL_LENGTH = 256).

    S4D-Lin ``A_n = −0.5 + iπn``, B = 1, ``dt = exp(linspace(ln 0.01, ln 0.1, H))``,
    ``C_{h,n} = 0.5·exp(iπ(h + 2n)/8)``, D = 0.5.
    """
    n_channels, n_modes = 4, 8
    n = np.arange(n_modes)
    h = np.arange(n_channels)[:, None]
    return S4DParams(
        A=np.tile(-0.5 + 1j * np.pi * n, (n_channels, 1)),
        B=np.ones((n_channels, n_modes), dtype=complex),
        C=0.5 * np.exp(1j * np.pi * (h + 2 * n) / 8),
        D=np.full(n_channels, 0.5),
        dt=np.exp(np.linspace(np.log(0.01), np.log(0.1), n_channels)),
    )


# pytest would otherwise try to collect ``test_model*`` names imported into test modules.
test_model_params.__test__ = False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------
# Discretisation and convolution
# --------------------------------------------------------------------------------------


def discretize(params: S4DParams, method: Discretisation = "zoh") -> tuple[np.ndarray, np.ndarray]:
    """Return (Ā, B̄), complex (H, N/2), for ``method`` "zoh" or "bilinear"."""
    dtA = params.dt[:, None] * params.A
    if method == "zoh":
        A_bar = np.exp(dtA)
        # (Ā − 1)/A = Δ·expm1(ΔA)/(ΔA); expm1 keeps accuracy for |ΔA| ≪ 1 and A = 0.
        with np.errstate(invalid="ignore", divide="ignore"):
            phi = np.where(dtA == 0, 1.0, np.expm1(dtA) / np.where(dtA == 0, 1.0, dtA))
        B_bar = params.dt[:, None] * phi * params.B
    elif method == "bilinear":
        denominator = 1.0 - dtA / 2
        A_bar = (1.0 + dtA / 2) / denominator
        B_bar = params.dt[:, None] * params.B / denominator
    else:
        raise S4DError(f"discretisation method must be 'zoh' or 'bilinear', got {method!r}")
    return A_bar, B_bar


def vandermonde_kernel(A_bar: np.ndarray, CB_bar: np.ndarray, length: int) -> np.ndarray:
    """``K[h, l] = 2 Re Σ_n CB̄[h, n] · Ā[h, n]^l`` for l = 0..length−1; real (H, length)."""
    if length < 1:
        raise S4DError(f"kernel length must be >= 1, got {length}")
    powers = A_bar[..., None] ** np.arange(length)
    return 2.0 * np.real(np.einsum("hn,hnl->hl", CB_bar, powers))


def causal_fft_conv(u: np.ndarray, kernel: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Causal convolution ``y[..., h, k] = Σ_{j<=k} K[h, j] u[..., h, k−j] + D[h] u[..., h, k]``.

    Args:
        u: real (..., H, L) input.
        kernel: real (H, L_k) kernel, L_k >= L (longer kernels are truncated).
        D: real (H,) skip gain.
    """
    u = np.asarray(u, dtype=float)
    length = u.shape[-1]
    if kernel.shape[-1] < length:
        raise S4DError(f"kernel length {kernel.shape[-1]} is shorter than the input length {length}")
    n_fft = 2 * length  # zero padding: no circular wrap-around
    spectrum = np.fft.rfft(u, n=n_fft) * np.fft.rfft(kernel[..., :length], n=n_fft)
    return np.fft.irfft(spectrum, n=n_fft)[..., :length] + D[:, None] * u


# --------------------------------------------------------------------------------------
# Real block form and crossbar matrices
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RealForm:
    """Real 2×2-block form of a discretised layer.

    Attributes:
        blocks: (H, N/2, 2, 2) blocks ``[[a, −b], [b, a]]`` with ``a + ib = Ā_n``.
        B: (H, N) input column ``(Re B̄_0, Im B̄_0, Re B̄_1, …)``.
        C: (H, N) output row ``(2 Re C_0, −2 Im C_0, 2 Re C_1, …)``.
        D: (H,) skip gain.
    """

    blocks: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray

    @property
    def A(self) -> np.ndarray:
        """Dense (H, N, N) block-diagonal state matrix Ā_r."""
        n_channels, n_modes = self.blocks.shape[:2]
        dense = np.zeros((n_channels, 2 * n_modes, 2 * n_modes))
        for m in range(n_modes):
            dense[:, 2 * m : 2 * m + 2, 2 * m : 2 * m + 2] = self.blocks[:, m]
        return dense


def real_form(A_bar: np.ndarray, B_bar: np.ndarray, C: np.ndarray, D: np.ndarray) -> RealForm:
    """Build the real block form from complex (H, N/2) Ā, B̄, C and (H,) D."""
    a, b = A_bar.real, A_bar.imag
    blocks = np.stack([np.stack([a, -b], axis=-1), np.stack([b, a], axis=-1)], axis=-2)
    B_r = np.stack([B_bar.real, B_bar.imag], axis=-1).reshape(A_bar.shape[0], -1)
    C_r = np.stack([2 * C.real, -2 * C.imag], axis=-1).reshape(A_bar.shape[0], -1)
    return RealForm(blocks=blocks, B=B_r, C=C_r, D=np.asarray(D, dtype=float))


@dataclass(frozen=True, eq=False)
class CrossbarProgram:
    """The per-channel (N+1)×(N+1) matrices a crossbar stores, and how to use them.

    Attributes:
        matrices: real (H, N+1, N+1); rows are outputs ``[x_k; y_k]``, columns inputs
            ``[x_{k−1}; u_k]``. (A crossbar with inputs on its rows holds the transpose.)
        variant: "full" (``M``) or "delta" (``M_Δ = M − diag(1,…,1,0)``; the previous state
            is added digitally).
        D: (H,) nominal skip gain used to separate the kernel from the impulse response.
        label: free text recorded with results (e.g. "ideal", "8-bit block").
    """

    matrices: np.ndarray
    variant: Variant = "full"
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    label: str = "ideal"

    def __post_init__(self) -> None:
        matrices = np.asarray(self.matrices, dtype=float)
        if matrices.ndim != 3 or matrices.shape[1] != matrices.shape[2] or matrices.shape[1] < 2:
            raise S4DError(f"CrossbarProgram.matrices must be (H, N+1, N+1), got shape {matrices.shape}")
        if self.variant not in ("full", "delta"):
            raise S4DError(f"CrossbarProgram.variant must be 'full' or 'delta', got {self.variant!r}")
        D = np.asarray(self.D, dtype=float)
        if D.size == 0:
            D = np.zeros(matrices.shape[0])
        if D.shape != (matrices.shape[0],):
            raise S4DError(f"CrossbarProgram.D must have shape ({matrices.shape[0]},), got {D.shape}")
        object.__setattr__(self, "matrices", matrices)
        object.__setattr__(self, "D", D)

    @property
    def n_channels(self) -> int:
        """H."""
        return self.matrices.shape[0]

    @property
    def state_size(self) -> int:
        """N (real state size)."""
        return self.matrices.shape[1] - 1

    @property
    def state_transition(self) -> np.ndarray:
        """Effective (H, N, N) state matrix of the recurrence (``I + stored`` for delta)."""
        block = self.matrices[:, :-1, :-1]
        if self.variant == "delta":
            return block + np.eye(self.state_size)
        return block.copy()

    def with_matrices(self, matrices: np.ndarray, label: str) -> CrossbarProgram:
        """Same variant and D, other matrices (e.g. quantized or read back from a circuit)."""
        return replace(self, matrices=np.asarray(matrices, dtype=float), label=label)

    def layer_matrix(self) -> np.ndarray:
        """Block-diagonal (H(N+1), H(N+1)) matrix of the whole layer, outputs × inputs."""
        return scipy.linalg.block_diag(*self.matrices)

    def crossbar_weights(self) -> np.ndarray:
        """Weights in crossbar orientation, inputs (rows) × outputs (columns): the transpose
        of ``layer_matrix``. Input/output index ``h·(N+1) + i`` is entry i of channel h."""
        return self.layer_matrix().T

    def group_scales(self, scheme: GroupScheme = "block") -> tuple[np.ndarray, np.ndarray]:
        """(labels, max |w| per group) for ``scheme``: the per-block scales used by quantization
        and by a mapping to conductances (each group spans its own conductance range)."""
        labels = group_labels(self.n_channels, self.state_size, scheme)
        return labels, group_max_abs(self.matrices, labels)


def combined_matrices(form: RealForm, variant: Variant = "full") -> np.ndarray:
    """(H, N+1, N+1) matrices ``[[Ā_r, B̄_r], [c_r Ā_r, c_r B̄_r + D]]`` (minus I_N for delta)."""
    A_r = form.A
    n_channels, n = form.B.shape
    matrices = np.zeros((n_channels, n + 1, n + 1))
    matrices[:, :n, :n] = A_r
    matrices[:, :n, n] = form.B
    matrices[:, n, :n] = np.einsum("hi,hij->hj", form.C, A_r)
    matrices[:, n, n] = np.einsum("hi,hi->h", form.C, form.B) + form.D
    if variant == "delta":
        matrices[:, :n, :n] -= np.eye(n)
    elif variant != "full":
        raise S4DError(f"variant must be 'full' or 'delta', got {variant!r}")
    return matrices


def group_labels(n_channels: int, state_size: int, scheme: GroupScheme = "block") -> np.ndarray:
    """Integer (H, N+1, N+1) group id of every matrix entry; −1 marks structural zeros.

    Group ids are unique across the layer. Schemes:

    * "block": each 2×2 mode block of the state part, the B̄ column (N entries) and the output
      row (N+1 entries, including ``c_r B̄_r + D``) of every channel are separate groups;
    * "row": every output row (state row: its 2 block entries and its B̄ entry; the y row) is
      a group — the one directly realisable with one ADC gain per crossbar column;
    * "channel": one group per channel matrix.
    """
    n = state_size
    if scheme not in ("block", "row", "channel"):
        raise S4DError(f"group scheme must be 'block', 'row' or 'channel', got {scheme!r}")
    n_modes = n // 2
    local = np.full((n + 1, n + 1), -1, dtype=int)
    for m in range(n_modes):  # state part: 2x2 mode blocks
        rows = slice(2 * m, 2 * m + 2)
        local[rows, rows] = m
    local[:n, n] = n_modes  # B column
    local[n, :] = n_modes + 1  # output row
    if scheme == "row":
        rows_of = np.broadcast_to(np.arange(n + 1)[:, None], local.shape)
        local = np.where(local >= 0, rows_of, -1)
    elif scheme == "channel":
        local = np.where(local >= 0, 0, -1)
    per_channel = int(local.max()) + 1
    labels = np.stack([np.where(local >= 0, local + h * per_channel, -1) for h in range(n_channels)])
    return labels


def group_max_abs(matrices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Largest |entry| of every group (index = group id); 0 for an all-zero group."""
    n_groups = int(labels.max()) + 1
    scales = np.zeros(n_groups)
    mask = labels >= 0
    np.maximum.at(scales, labels[mask], np.abs(matrices[mask]))
    return scales


# --------------------------------------------------------------------------------------
# Converters and the pluggable recurrence
# --------------------------------------------------------------------------------------


def _uniform_code(x: np.ndarray, bits: int | None, clip: bool) -> np.ndarray:
    """Symmetric mid-tread quantizer of values normalised to full scale 1."""
    if clip:
        x = np.clip(x, -1.0, 1.0)
    if bits is None:
        return x
    levels = 2 ** (bits - 1) - 1
    return np.round(x * levels) / levels


def _check_bits(bits: int | None, owner: str) -> None:
    if bits is not None and (not isinstance(bits, (int, np.integer)) or bits < 2):
        raise S4DError(f"{owner}.bits must be an integer >= 2 or None, got {bits!r}")


@dataclass(frozen=True, eq=False)
class DAC:
    """Digital-to-analog converter: digital value → row voltage.

    ``v = v_read · Q_bits(clip(s / full_scale))``: a symmetric mid-tread grid of
    ``2^bits − 1`` levels over ±``v_read`` volts. ``full_scale`` (digital units) is a scalar or
    one value per channel (H,), never per entry: a per-entry input scale would have to be
    folded into the stored matrix. ``bits=None`` means no rounding.
    """

    bits: int | None = None
    full_scale: float | np.ndarray = 1.0
    v_read: float = 0.2
    clip: bool = True

    def __post_init__(self) -> None:
        _check_bits(self.bits, "DAC")
        if np.any(np.asarray(self.full_scale) <= 0) or self.v_read <= 0:
            raise S4DError("DAC.full_scale and DAC.v_read must be positive")

    def channel_scale(self) -> np.ndarray:
        """Full scale shaped (H, 1) (or (1, 1)) to broadcast over (..., H, N+1)."""
        return np.asarray(self.full_scale, dtype=float).reshape(-1, 1)

    def to_volts(self, digital: np.ndarray) -> np.ndarray:
        """(..., H, N+1) digital values → volts."""
        return self.v_read * _uniform_code(digital / self.channel_scale(), self.bits, self.clip)


@dataclass(frozen=True, eq=False)
class ADC:
    """Analog-to-digital converter of the product ``M v`` (volts-equivalent, see run_recurrence).

    ``Q_bits(clip(p / full_scale)) · full_scale``; ``full_scale`` in volts is a scalar or
    broadcasts over (H, N+1) (one value per crossbar output). ``bits=None`` and an infinite
    full scale make it transparent.
    """

    bits: int | None = None
    full_scale: float | np.ndarray = np.inf
    clip: bool = True

    def __post_init__(self) -> None:
        _check_bits(self.bits, "ADC")
        full_scale = np.asarray(self.full_scale, dtype=float)
        if np.any(full_scale <= 0):
            raise S4DError("ADC.full_scale must be positive")
        if self.bits is not None and not np.all(np.isfinite(full_scale)):
            raise S4DError("ADC.full_scale must be finite when ADC.bits is set")

    def convert(self, analog: np.ndarray) -> np.ndarray:
        """Digitise (..., H, N+1) analog products; result in the same (volt) units."""
        full_scale = np.asarray(self.full_scale, dtype=float)
        if self.bits is None and np.all(np.isinf(full_scale)):
            return analog
        return _uniform_code(analog / full_scale, self.bits, self.clip) * full_scale


#: ``matvec(matrices, volts)``: (H, N+1, N+1) stored matrices and (..., H, N+1) row voltages
#: → (..., H, N+1) products ``matrices @ volts`` in volts-equivalent (a circuit backend returns
#: its column currents divided by its conductance-per-unit-weight).
MatVec = Callable[[np.ndarray, np.ndarray], np.ndarray]


def ideal_matvec(matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
    """Exact per-channel product ``matrices[h] @ volts[..., h, :]``."""
    return np.einsum("hij,...hj->...hi", matrices, volts)


def layer_matvec(layer_fn: Callable[[np.ndarray], np.ndarray]) -> MatVec:
    """Adapt a whole-layer function (one crossbar of H(N+1) inputs, e.g. a circuit solver
    taking a (H(N+1),) voltage vector and returning the H(N+1) products) to the MatVec form.
    Leading batch dimensions are looped over."""

    def matvec(matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        flat = volts.reshape(-1, volts.shape[-2] * volts.shape[-1])
        out = np.stack([np.asarray(layer_fn(v), dtype=float) for v in flat])
        return out.reshape(volts.shape)

    return matvec


def run_recurrence(
    matvec: MatVec,
    program: CrossbarProgram | S4DLayer,
    u: np.ndarray,
    *,
    dac: DAC | None = None,
    adc: ADC | None = None,
    return_states: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Run the step form, one ``matvec`` per time step for the whole layer.

    Per step k: ``s = [x_{k−1}; u_k]`` (H, N+1) per channel → ``v = dac.to_volts(s)`` →
    ``p = matvec(program.matrices, v)`` → ``o = adc.convert(p) · dac.full_scale / dac.v_read``
    → ``[x_k; y_k] = o`` ("full") or ``x_k = x_{k−1} + o[:N]``, ``y_k = o[N]`` ("delta").

    Args:
        matvec: the product backend (ideal_matvec, a quantized model, a circuit).
        program: stored matrices (or an S4DLayer, whose full-variant matrices are used).
        u: real (..., H, L) input.
        dac, adc: converter models; None means ideal (no rounding, no clipping; DAC full
            scale 1 and v_read 0.2 V).
        return_states: also return the states x, (..., H, L, N).

    Returns:
        y (..., H, L), and the states if requested.
    """
    if isinstance(program, S4DLayer):
        program = program.crossbar_program("full")
    u = np.asarray(u, dtype=float)
    if u.ndim < 2 or u.shape[-2] != program.n_channels:
        raise S4DError(f"input u must be (..., H={program.n_channels}, L), got shape {u.shape}")
    dac = dac or DAC(clip=False)
    adc = adc or ADC()
    if dac.channel_scale().shape[0] not in (1, program.n_channels):
        raise S4DError(f"DAC.full_scale must be a scalar or have H={program.n_channels} values")
    n = program.state_size
    back_to_digital = dac.channel_scale() / dac.v_read
    x = np.zeros(u.shape[:-1] + (n,))
    y = np.empty_like(u)
    states = np.empty(u.shape + (n,)) if return_states else None
    stacked = np.empty(u.shape[:-1] + (n + 1,))
    for k in range(u.shape[-1]):
        stacked[..., :n] = x
        stacked[..., n] = u[..., k]
        products = matvec(program.matrices, dac.to_volts(stacked))
        if products.shape != stacked.shape:
            raise S4DError(f"matvec returned shape {products.shape}, expected {stacked.shape}")
        out = adc.convert(products) * back_to_digital
        x = x + out[..., :n] if program.variant == "delta" else out[..., :n]
        y[..., k] = out[..., n]
        if states is not None:
            states[..., k, :] = x
    return (y, states) if return_states else y


def impulse_kernel(
    matvec: MatVec,
    program: CrossbarProgram,
    length: int,
    *,
    amplitude: float = 1.0,
    dac: DAC | None = None,
    adc: ADC | None = None,
) -> np.ndarray:
    """Kernel K̂ (H, length) from an impulse of ``amplitude`` on every channel.

    ``K̂ = y/amplitude − D δ`` with the program's nominal D, so any error of the stored
    ``c_r B̄_r + D`` entry shows up in K̂[:, 0].
    """
    u = np.zeros((program.n_channels, length))
    u[:, 0] = amplitude
    y = run_recurrence(matvec, program, u, dac=dac, adc=adc) / amplitude
    y[:, 0] -= program.D
    return y


def calibrate_converters(
    program: CrossbarProgram,
    u: np.ndarray,
    *,
    dac_bits: int | None = None,
    adc_bits: int | None = None,
    v_read: float = 0.2,
    headroom: float = 1.1,
) -> tuple[DAC, ADC]:
    """Full scales from an ideal run on ``u``: DAC per channel (max |[x; u]|), ADC per output.

    Both get ``headroom`` × the observed peak, so an ideal run does not clip.
    """
    _, states = run_recurrence(ideal_matvec, program, u, return_states=True)
    u = np.asarray(u, dtype=float)
    n = program.state_size
    prev = np.concatenate([np.zeros(states.shape[:-2] + (1, n)), states[..., :-1, :]], axis=-2)
    stacked = np.concatenate([prev, u[..., None]], axis=-1)  # (..., H, L, N+1)
    stacked = np.moveaxis(stacked, -2, 0).reshape(-1, program.n_channels, n + 1)  # (samples, H, N+1)
    peak_in = np.abs(stacked).max(axis=(0, 2))
    peak_in = np.where(peak_in > 0, peak_in, 1.0) * headroom
    dac = DAC(bits=dac_bits, full_scale=peak_in, v_read=v_read)
    products = ideal_matvec(program.matrices, dac.to_volts(stacked))
    peak_out = np.abs(products).max(axis=0)
    peak_out = np.where(peak_out > 0, peak_out, v_read) * headroom
    return dac, ADC(bits=adc_bits, full_scale=peak_out)


def trajectory_inputs(program: CrossbarProgram, u: np.ndarray) -> np.ndarray:
    """The crossbar inputs ``[x_{k−1}; u_k]`` of an ideal run on ``u`` (H, L): (L, H, N+1),
    digital units."""
    _, states = run_recurrence(ideal_matvec, program, u, return_states=True)
    n = program.state_size
    previous = np.concatenate([np.zeros(states.shape[:-2] + (1, n)), states[..., :-1, :]], axis=-2)
    stacked = np.concatenate([previous, np.asarray(u, float)[..., None]], axis=-1)  # (H, L, N+1)
    return np.moveaxis(stacked, -2, 0)


def dac_range_bits(program: CrossbarProgram, u: np.ndarray, dac: DAC) -> np.ndarray:
    """Bits of the DAC range each input leaves unused, (H, N+1): ``log2(full_scale / peak)``
    with ``peak`` the largest |input| of an ideal run on ``u`` (0: the input spans the range).
    Effective bits of input i = DAC bits − this."""
    peak = np.abs(trajectory_inputs(program, u)).max(axis=0)
    scale = np.broadcast_to(dac.channel_scale(), peak.shape)
    with np.errstate(divide="ignore"):
        return np.log2(scale / np.where(peak > 0, peak, np.nan))


def balance_states(program: CrossbarProgram, u: np.ndarray) -> tuple[CrossbarProgram, np.ndarray]:
    """Fold per-state input scales into the stored matrices so that every state uses the
    DAC range of its channel.

    The state is rescaled, ``x' = T x`` with ``T = diag(t)`` per channel (one value per
    complex mode, so the 2×2 rotation blocks keep their form), and the matrices become
    ``M' = diag(T, 1) M diag(T⁻¹, 1)`` (the same similarity for the delta variant): kernel,
    output and eigenvalues are unchanged. ``t`` brings each mode's peak |x| in an ideal run on
    ``u`` (H, L) up to the channel's largest input peak. Returns the balanced program and
    ``t`` (H, N)."""
    inputs = np.abs(trajectory_inputs(program, u)).max(axis=0)  # (H, N+1)
    n = program.state_size
    mode_peak = inputs[:, :n].reshape(program.n_channels, n // 2, 2).max(axis=-1)
    mode_peak = np.repeat(mode_peak, 2, axis=-1)
    target = inputs.max(axis=-1, keepdims=True)
    t = np.where(mode_peak > 0, target / np.where(mode_peak > 0, mode_peak, 1.0), 1.0)
    scale = np.concatenate([t, np.ones((program.n_channels, 1))], axis=-1)  # (H, N+1)
    matrices = program.matrices * scale[:, :, None] / scale[:, None, :]
    return program.with_matrices(matrices, label=f"{program.label} balanced"), t


# --------------------------------------------------------------------------------------
# The layer object
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S4DLayer:
    """A discretised S4D layer with one entry point per operation.

    Attributes:
        params: continuous-time parameters.
        method: discretisation, "zoh" (default) or "bilinear".
    """

    params: S4DParams
    method: Discretisation = "zoh"

    def __post_init__(self) -> None:
        if self.method not in ("zoh", "bilinear"):
            raise S4DError(f"S4DLayer.method must be 'zoh' or 'bilinear', got {self.method!r}")

    @property
    def n_channels(self) -> int:
        """H."""
        return self.params.n_channels

    @property
    def state_size(self) -> int:
        """N (real state size)."""
        return self.params.state_size

    def discrete(self) -> tuple[np.ndarray, np.ndarray]:
        """(Ā, B̄), complex (H, N/2)."""
        return discretize(self.params, self.method)

    def kernel(self, length: int) -> np.ndarray:
        """Vandermonde kernel K, real (H, length); D not included."""
        A_bar, B_bar = self.discrete()
        return vandermonde_kernel(A_bar, self.params.C * B_bar, length)

    def apply_fft(self, u: np.ndarray) -> np.ndarray:
        """Output y = K * u + D u by causal FFT convolution; u real (..., H, L)."""
        u = self._check_input(u)
        return causal_fft_conv(u, self.kernel(u.shape[-1]), self.params.D)

    def apply_step(self, u: np.ndarray) -> np.ndarray:
        """Output by the complex diagonal step form (reference recurrence)."""
        u = self._check_input(u)
        A_bar, B_bar = self.discrete()
        x = np.zeros(u.shape[:-1] + (A_bar.shape[1],), dtype=complex)
        y = np.empty_like(u)
        for k in range(u.shape[-1]):
            x = A_bar * x + B_bar * u[..., k, None]
            y[..., k] = 2.0 * np.real(np.sum(self.params.C * x, axis=-1)) + self.params.D * u[..., k]
        return y

    def real_form(self) -> RealForm:
        """Real 2×2-block form (blocks, B_r, c_r, D)."""
        A_bar, B_bar = self.discrete()
        return real_form(A_bar, B_bar, self.params.C, self.params.D)

    def apply_real(self, u: np.ndarray) -> np.ndarray:
        """Output by the real block-form recurrence ``x_k = Ā_r x_{k−1} + B̄_r u_k``."""
        u = self._check_input(u)
        form = self.real_form()
        A_r = form.A
        x = np.zeros(u.shape[:-1] + (form.B.shape[1],))
        y = np.empty_like(u)
        for k in range(u.shape[-1]):
            x = np.einsum("hij,...hj->...hi", A_r, x) + form.B * u[..., k, None]
            y[..., k] = np.einsum("hi,...hi->...h", form.C, x) + form.D * u[..., k]
        return y

    def crossbar_program(self, variant: Variant = "full") -> CrossbarProgram:
        """Per-channel (N+1)×(N+1) matrices M (or M_Δ) packaged for run_recurrence."""
        return CrossbarProgram(
            matrices=combined_matrices(self.real_form(), variant),
            variant=variant,
            D=self.params.D,
            label=f"ideal {variant}",
        )

    def layer_matrix(self, variant: Variant = "full") -> np.ndarray:
        """Block-diagonal (H(N+1), H(N+1)) matrix of the whole layer."""
        return self.crossbar_program(variant).layer_matrix()

    def apply_crossbar(
        self,
        u: np.ndarray,
        matvec: MatVec = ideal_matvec,
        variant: Variant = "full",
        dac: DAC | None = None,
        adc: ADC | None = None,
    ) -> np.ndarray:
        """Output by the (N+1)×(N+1) step form with a pluggable product backend."""
        return run_recurrence(matvec, self.crossbar_program(variant), self._check_input(u), dac=dac, adc=adc)

    def _check_input(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if u.ndim < 2 or u.shape[-2] != self.n_channels:
            raise S4DError(f"input u must be (..., H={self.n_channels}, L), got shape {u.shape}")
        return u


def test_model(method: Discretisation = "zoh") -> S4DLayer:
    """The test model (docs/s4d.md) as a layer (use L = TEST_MODEL_LENGTH = 256)."""
    return S4DLayer(test_model_params(), method)


test_model.__test__ = False  # type: ignore[attr-defined]
