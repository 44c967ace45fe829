"""Import S4D weights trained with the state-spaces/s4 code (Gu et al. 2022) as a cosim layer.

Entry point: :func:`import_s4d_state_dict` (state dict → :class:`cosim.s4d.ideal.S4DLayer`).
Two layouts of that code are recognised (keys may carry any prefix, e.g.
``layers.0.layer.``):

* the stand-alone S4D layer (``models/s4/s4d.py``): ``kernel.log_dt`` (H,),
  ``kernel.log_A_real`` (H, N/2), ``kernel.A_imag`` (H, N/2), ``kernel.C`` (H, N/2, 2) as
  (real, imaginary) pairs, ``D`` (H,); there ``A = −exp(log_A_real) + i·A_imag`` and B = 1;
* the general diagonal kernel (``SSMKernelDiag``): ``kernel.inv_dt`` (H, 1) or, with
  ``dt_tie=False``, (H, N/2) under a transform (``exp`` by default, ``softplus`` optional),
  ``kernel.A_real`` (S, N/2) with Re A = −exp(A_real), ``kernel.A_imag`` (S, N/2) with
  Im A = −A_imag (so Im A ≤ 0), ``kernel.B`` (1, S, N/2, 2), ``kernel.C`` (1, H, N/2, 2) and
  ``D`` (1, H); S (``n_ssm``) divides H and A, B repeat over the H/S groups.

Conventions: this project keeps Im A ≥ 0. The kernel ``2 Re Σ C B̄ Ā^l`` is unchanged when A, B
and C are all conjugated, so a layer with Im A ≤ 0 is imported as (conj A, conj B, conj C).
A per-mode step dt_n folds exactly into one step per channel dt_h (geometric mean of the
channel's dt_n): ``A′ = A·dt_n/dt_h`` and ``B′ = B·dt_n/dt_h`` give the same Ā and B̄ under
ZOH and bilinear discretisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from cosim.s4d.ideal import S4DError, S4DLayer, S4DParams


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=float)


def _find(state: Mapping[str, Any], prefix: str, *names: str) -> tuple[str, np.ndarray] | None:
    for name in names:
        key = f"{prefix}{name}"
        if key in state:
            return key, _array(state[key])
    return None


def _complex(pairs: np.ndarray, key: str) -> np.ndarray:
    if pairs.shape[-1] != 2:
        raise S4DError(f"state dict '{key}': expected (..., 2) real/imaginary pairs, got shape {pairs.shape}")
    return pairs[..., 0] + 1j * pairs[..., 1]


def _dt(raw: np.ndarray, transform: str) -> np.ndarray:
    if transform == "exp":
        return np.exp(raw)
    if transform == "softplus":
        return np.log1p(np.exp(raw))
    raise S4DError(f"dt_transform must be 'exp' or 'softplus', got {transform!r}")


def _repeat(values: np.ndarray, channels: int, key: str) -> np.ndarray:
    copies = values.shape[0]
    if channels % copies:
        raise S4DError(f"state dict '{key}': {copies} SSM copies do not divide H = {channels}")
    return np.tile(values, (channels // copies, 1))


def import_s4d_state_dict(
    state: Mapping[str, Any],
    prefix: str = "",
    *,
    dt_transform: Literal["exp", "softplus"] = "exp",
    method: Literal["zoh", "bilinear"] = "zoh",
) -> S4DLayer:
    """Build the cosim layer of one S4D layer of a state-spaces/s4 state dict (module doc).

    Args:
        state: the state dict (tensors or arrays).
        prefix: key prefix of the layer, e.g. ``"layers.0.layer."``.
        dt_transform: transform of ``inv_dt`` in the general kernel ("exp" or "softplus").
        method: the discretisation the model was trained with.
    """
    kernel = f"{prefix}kernel."
    found_c = _find(state, kernel, "C")
    found_d = _find(state, prefix, "D")
    if found_c is None or found_d is None:
        raise S4DError(f"state dict: no S4D layer at prefix {prefix!r} (need '{kernel}C' and '{prefix}D')")
    c_key, c_raw = found_c
    C = _complex(c_raw, c_key)
    if C.ndim == 3:  # (channels, H, N/2)
        if C.shape[0] != 1:
            raise S4DError(f"state dict '{c_key}': only one output channel per layer is supported, got {C.shape[0]}")
        C = C[0]
    if C.ndim != 2:
        raise S4DError(f"state dict '{c_key}': expected shape (H, N/2, 2), got {c_raw.shape}")
    H, modes = C.shape
    D = found_d[1].reshape(-1)
    if D.size != H:
        raise S4DError(f"state dict '{found_d[0]}': expected {H} values, got {D.size}")
    standalone = _find(state, kernel, "log_A_real")
    if standalone is not None:
        a_real_key, log_a_real = standalone
        imag = _find(state, kernel, "A_imag")
        log_dt = _find(state, kernel, "log_dt")
        if imag is None or log_dt is None:
            raise S4DError(f"state dict: '{a_real_key}' needs '{kernel}A_imag' and '{kernel}log_dt'")
        A = -np.exp(log_a_real) + 1j * imag[1]
        B = np.ones_like(A)
        dt = np.exp(log_dt[1])
    else:
        a_real = _find(state, kernel, "A_real")
        a_imag = _find(state, kernel, "A_imag")
        inv_dt = _find(state, kernel, "inv_dt", "log_dt")
        b = _find(state, kernel, "B")
        if a_real is None or a_imag is None or inv_dt is None:
            raise S4DError(f"state dict: no diagonal S4D kernel under '{kernel}' (need A_real/log_A_real, A_imag, inv_dt/log_dt)")
        if a_real[1].shape != a_imag[1].shape:
            raise S4DError(f"state dict: '{a_real[0]}' {a_real[1].shape} and '{a_imag[0]}' {a_imag[1].shape} differ in shape")
        A = _repeat(-np.exp(a_real[1]) - 1j * a_imag[1], H, a_real[0])
        B = np.ones_like(A) if b is None else _repeat(_complex(b[1], b[0]).reshape(-1, modes), H, b[0])
        dt = _dt(inv_dt[1], dt_transform)
    if A.shape != (H, modes):
        raise S4DError(f"state dict: A has shape {A.shape}, C has (H, N/2) = {(H, modes)}")
    dt = np.asarray(dt, dtype=float)
    if dt.shape in ((H,), (H, 1)):
        dt_h = dt.reshape(H)
    elif dt.shape == (H, modes):  # per-mode dt: fold into A and B
        dt_h = np.exp(np.log(dt).mean(axis=1))
        ratio = dt / dt_h[:, None]
        A, B = A * ratio, B * ratio
    else:
        raise S4DError(f"state dict: dt has shape {dt.shape}; expected (H,), (H, 1) or (H, N/2) with H={H}, N/2={modes}")
    if np.any(A.imag < 0):  # their convention (Im A <= 0) -> ours: conjugate A, B, C together
        flip = A.imag < 0
        A, B, C = np.where(flip, A.conj(), A), np.where(flip, B.conj(), B), np.where(flip, C.conj(), C)
    return S4DLayer(S4DParams(A=A, B=B, C=C, D=D, dt=dt_h), method=method)
