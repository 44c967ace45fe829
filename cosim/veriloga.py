"""Verilog-A rendering of the generative ReRAM model (docs/veriloga.md) and its instance parameters.

:func:`render_reram` fills ``templates/reram.va.j2`` with the constants of a
:class:`~cosim.device.modelfile.DeviceModel`: I–V basis polynomials, Γ polynomials, the
truncated MA coefficients Ψ_k·L up to order J, U0, Umax, η. Per-device values — the D2D
vectors μ, σ (drawn in Python by :func:`cosim.device.model.draw_d2d`), the RNG seed, the
device id and the initial state — are instance parameters; :func:`instance_params` returns
them for a set of device ids so that a netlist can put them on each ``N`` line.

Units: voltages V, resistances Ω, time s. Feature order HRS, US, LRS, UR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from cosim.device import rng
from cosim.device.model import draw_d2d, passive_r_limit
from cosim.fileio import write_text_atomic
from cosim.device.modelfile import DEFAULT_MA_ORDER, DeviceModel
from cosim.errors import CosimError
from cosim.paths import VERILOGA_DIR
from cosim.spice.render import ident, render

TEMPLATE = "reram.va.j2"
DEFAULT_MODULE = "cosim_reram"
DEFAULT_TAU = 1e-9
"""Relaxation time [s] of the state nodes (counters, peak, latches)."""
DEFAULT_TAUPK = 1e-14
"""Relaxation time [s] of the peak node while it follows a rising RESET voltage."""
DEFAULT_DGATE = 1e-3
"""Width [V] of the threshold gates (the sharpness parameter, docs/veriloga.md)."""
DEFAULT_DPEAK = 1e-8
"""Width [V] of the smooth corner of the peak ratchet."""
DEFAULT_TOL_LATCH = 1e-9
"""A latch whose index node is closer than this to its key (cycle + parameter fingerprint) holds its features."""
MAX_ORDER = 500
FEATURE_KEYS = ("hrs", "us", "lrs", "ur")
DEFAULT_VA = VERILOGA_DIR / "reram_default.va"
BASELINE_VA = VERILOGA_DIR / "baseline_drift.va"


@dataclass(frozen=True)
class RenderOptions:
    """Template switches: MA order J, module name, latching, numerical parameters."""

    order: int = DEFAULT_MA_ORDER
    module: str = DEFAULT_MODULE
    latch: bool = True
    tau: float = DEFAULT_TAU
    taupk: float = DEFAULT_TAUPK
    dgate: float = DEFAULT_DGATE
    dpeak: float = DEFAULT_DPEAK
    tol_latch: float = DEFAULT_TOL_LATCH

    def check(self) -> None:
        ident(self.module)
        if not 0 <= int(self.order) <= MAX_ORDER:
            raise CosimError(f"MA order J must lie in [0, {MAX_ORDER}], got {self.order}")
        for name in ("tau", "taupk", "dgate", "dpeak", "tol_latch"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise CosimError(f"{name} must be a positive number, got {value!r}")


def _limbs(c: int) -> tuple[int, int, int]:
    return c & 0x7FFF, (c >> 15) & 0x7FFF, c >> 30


def _rng_constants() -> dict[str, object]:
    return {"INIT": rng.INIT, "SECOND": rng.SECOND, "MASK31": rng.MASK31,
            "C1": _limbs(rng.MIX_C1), "C2": _limbs(rng.MIX_C2)}


def template_context(model: DeviceModel, options: RenderOptions = RenderOptions()) -> dict[str, object]:
    """All numbers the template prints, computed from ``model``."""
    options.check()
    ma = model.ma_coefficients(int(options.order))  # (J+1, 4, 4)
    nonzero = [[[j for j in range(4) if ma[k, f, j] != 0.0] for f in range(4)] for k in range(ma.shape[0])]
    used = {key: [[any(j in nonzero[k][f] for f in rows) for j in range(4)] for k in range(ma.shape[0])]
            for key, rows in (("a", (2, 3)), ("b", (0, 1)))}
    weights = model.d2d_weights / model.d2d_weights.sum()
    mean = model.d2d_means @ weights  # (8,) mixture mean of [μ; σ]
    provenance = model.provenance or {}
    source = str(provenance.get("licence", "")) or "no provenance recorded"
    return {
        "module": options.module,
        "model_name": _safe_title(model.name),
        "source": _safe_title("parameters: " + source),
        "order": int(options.order),
        "ma": ma.tolist(),
        "nonzero": nonzero,
        "used": used,
        "gamma": model.gamma.tolist(),
        "llrs": model.iv_llrs.tolist(),
        "hhrs": model.iv_hhrs.tolist(),
        "u0": float(model.u0),
        "umax": float(model.umax),
        "eta": float(model.eta),
        "r_max": float(passive_r_limit(model)),
        "hrs_log10": bool(model.hrs_log10),
        "latch": bool(options.latch),
        "mu_default": mean[:4].tolist(),
        "sigma_default": mean[4:].tolist(),
        "rng": _rng_constants(),
        "tau": float(options.tau),
        "taupk": float(options.taupk),
        "dgate": float(options.dgate),
        "dpeak": float(options.dpeak),
        "tol_latch": float(options.tol_latch),
    }


def _safe_title(text: str) -> str:
    """Reduce free text to the characters the |title filter accepts (comment lines)."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.,:=()+-/")
    return "".join(ch if ch in allowed else " " for ch in text)[:200]


def render_reram(model: DeviceModel, options: RenderOptions = RenderOptions()) -> str:
    """Verilog-A source text of the generative model for ``model``."""
    return render(TEMPLATE, **template_context(model, options))


def write_reram(model: DeviceModel, output: Path | str, options: RenderOptions = RenderOptions()) -> Path:
    """Render and write the Verilog-A file atomically; returns its path."""
    return write_text_atomic(output, render_reram(model, options))


# ----------------------------------------------------------------- instance parameters
def instance_params(model: DeviceModel, seed: int, device_ids: np.ndarray,
                    cycle0: Optional[np.ndarray] = None, lrs0: Optional[np.ndarray] = None
                    ) -> dict[str, np.ndarray]:
    """Instance parameters per device: ``seed``, ``devid``, ``mu_<f>``, ``sg_<f>``, ``cycle0``, ``lrs0``.

    ``device_ids`` may have any shape (e.g. (M, N) for a crossbar); every returned array has
    that shape. μ, σ come from :func:`cosim.device.model.draw_d2d` with the same seed and ids,
    so the Verilog-A devices and :class:`cosim.device.model.DeviceArray` share their D2D draw.
    """
    seed = rng.check_seed(seed)
    ids = np.asarray(device_ids, dtype=np.int64)
    if ids.size == 0:
        raise CosimError("instance_params: no device ids given")
    if ids.min() < 0 or ids.max() > rng.MASK31:
        raise CosimError(f"device ids must lie in [0, {rng.MASK31}]")
    params = draw_d2d(model, seed, ids.ravel())
    shape = ids.shape
    out: dict[str, np.ndarray] = {"seed": np.full(shape, seed, dtype=np.int64), "devid": ids.copy()}
    for f, key in enumerate(FEATURE_KEYS):
        out[f"mu_{key}"] = params.mu[:, f].reshape(shape)
        out[f"sg_{key}"] = params.sigma[:, f].reshape(shape)
    for name, value in (("cycle0", cycle0), ("lrs0", lrs0)):
        arr = np.zeros(shape, dtype=np.int64) if value is None else np.broadcast_to(
            np.asarray(value, dtype=np.int64), shape).copy()
        if arr.min() < 0 or (name == "lrs0" and arr.max() > 1):
            raise CosimError(f"{name} must be {'0 or 1' if name == 'lrs0' else '>= 0'}")
        out[name] = arr
    return out


def instance_line_params(params: dict[str, np.ndarray], index: int | tuple[int, ...]) -> dict[str, float | int]:
    """Parameters of one device (an index into the arrays of :func:`instance_params`)."""
    result: dict[str, float | int] = {}
    for name, arr in params.items():
        value = arr[index]
        result[name] = int(value) if np.issubdtype(arr.dtype, np.integer) else float(value)
    return result


# ----------------------------------------------------------------- compile
def compile_reram(model: DeviceModel, options: RenderOptions = RenderOptions()) -> Path:
    """Render the model and compile it with openvaf-r (both cached); returns the OSDI path.

    The rendered source is kept under the compile cache (``<cache>/va-src``) by a hash of its
    text, so the same model and options reuse one compiled library.
    """
    import hashlib

    from cosim.compile import cache_dir, compile_va

    text = render_reram(model, options)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    source = cache_dir().parent / "va-src" / f"{options.module}-{digest}.va"
    if not source.is_file() or source.read_text(encoding="utf-8") != text:
        write_text_atomic(source, text)
    return compile_va(source)
