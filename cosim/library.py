"""Compact-model library: published ReRAM models in Verilog-A for OpenVAF, with Python twins.

Each model lives in ``veriloga/library/<name>.va`` (written here from the published equations,
state in one internal node with a DC equation at the operating point) and has a Python
transcription of the same equations in this module, used to check the Verilog-A
(tests/test_library.py) and to predict a device driven by a known voltage waveform:

* ``vteam`` — VTEAM (Kvatinsky et al., IEEE TCAS-II 62(8), 2015): threshold-type state
  velocity with Kvatinsky windows and the exponential I–V; normalised state w (0 = ON, 1 = OFF);
  SET (ON) at negative U.
* ``stanford_pku`` — Stanford-PKU RRAM model (Jiang et al., IEEE TED 63(5), 2016): tunnelling
  gap g with field- and temperature-accelerated growth/dissolution, I = I0 e^(−g/g0) sinh(U/V0),
  local heating T = T0 + |U·I|·Rth (quasi-static); SET at positive U.

The model parameter defaults are read from the ``.va`` files themselves (one source of truth);
a ``params`` mapping overrides them. States are in the units of the internal node (VTEAM: w;
Stanford-PKU: gap in nm). Voltages V, currents A, time s.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from cosim.errors import CosimError
from cosim.paths import VERILOGA_DIR

LIBRARY_DIR = VERILOGA_DIR / "library"
Q_E = 1.602176634e-19
"""Elementary charge [C] (the value OpenVAF's `P_Q uses)."""
K_B = 1.3806503e-23
"""Boltzmann constant [J/K] as OpenVAF's `P_K (constants.vams)."""

_PARAM_RE = re.compile(r"parameter\s+real\s+(\w+)\s*=\s*([-+0-9.eE]+)")


@lru_cache(maxsize=8)
def va_defaults(path: Path) -> dict[str, float]:
    """``parameter real NAME = NUMBER`` defaults of a Verilog-A file."""
    return {name: float(value) for name, value in _PARAM_RE.findall(Path(path).read_text(encoding="utf-8"))}


@dataclass(frozen=True)
class LibraryModel:
    """One library entry: files, Verilog-A names and the Python equations."""

    name: str
    module: str
    state_node: str
    state_param: str
    """Instance parameter holding the initial state (in parameter units, see ``to_node``)."""
    set_sign: float
    """Sign of the voltage that SETs (−1: negative U, +1: positive U)."""
    lrs_state: float
    hrs_state: float
    """Node values of the fully SET and fully RESET device."""
    to_node: float
    """Node value per unit of the initial-state parameter (1, or 1e9 for a gap in m → nm)."""
    current_fn: Callable[[np.ndarray, np.ndarray, Mapping[str, float]], np.ndarray]
    rate_fn: Callable[[np.ndarray, np.ndarray, Mapping[str, float]], np.ndarray]
    reference: str

    @property
    def source(self) -> Path:
        return LIBRARY_DIR / f"{self.name}.va"

    @property
    def state_nodes(self) -> tuple[str, ...]:
        return (self.state_node,)

    def params(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Model parameters: the ``.va`` defaults with ``overrides`` applied (names checked)."""
        merged = dict(va_defaults(self.source))
        for key, value in (overrides or {}).items():
            if key not in merged:
                raise CosimError(f"{self.name}: no parameter {key!r}; have {', '.join(sorted(merged))}")
            merged[key] = float(value)
        return merged

    def current(self, u: np.ndarray, state: np.ndarray, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Device current [A] at voltage ``u`` [V] and node state ``state``."""
        return self.current_fn(np.asarray(u, float), np.asarray(state, float), self.params(params))

    def rate(self, u: np.ndarray, state: np.ndarray, params: Mapping[str, float] | None = None) -> np.ndarray:
        """d(state)/dt [node units/s] at voltage ``u`` [V]."""
        return self.rate_fn(np.asarray(u, float), np.asarray(state, float), self.params(params))

    def compile(self) -> Path:
        """Compile the Verilog-A (cached) and return the OSDI path."""
        from cosim.compile import compile_va

        return compile_va(self.source)

    def integrate(self, t: np.ndarray, u: np.ndarray, state0: float,
                  params: Mapping[str, float] | None = None, rtol: float = 1e-10) -> np.ndarray:
        """State at times ``t`` [s] of a device driven by the piecewise-linear ``u(t)`` [V]."""
        from scipy.integrate import solve_ivp

        t, u = np.asarray(t, float), np.asarray(u, float)
        p = self.params(params)
        span = float(t[-1] - t[0]) or 1.0

        def rhs(time: float, y: np.ndarray) -> np.ndarray:
            return self.rate_fn(np.interp(time, t, u), y, p)

        sol = solve_ivp(rhs, (t[0], t[-1]), [state0], t_eval=t, method="LSODA", rtol=rtol, atol=1e-12,
                        max_step=span / 2000)
        if not sol.success:
            raise CosimError(f"{self.name}: integration failed: {sol.message}")
        return sol.y[0]


# ----------------------------------------------------------------------------- VTEAM
def _vteam_current(u: np.ndarray, w: np.ndarray, p: Mapping[str, float]) -> np.ndarray:
    return u / (p["ron"] * np.exp(math.log(p["roff"] / p["ron"]) * w))


def _vteam_rate(u: np.ndarray, w: np.ndarray, p: Mapping[str, float]) -> np.ndarray:
    u, w = np.broadcast_arrays(u, w)
    off = u > p["voff"]
    on = u < p["von"]
    rate = np.zeros(np.shape(u))
    with np.errstate(over="ignore", invalid="ignore"):
        rate_off = p["koff"] * np.abs(u / p["voff"] - 1.0) ** p["aoff"] * np.exp(-np.exp((w - p["aoffw"]) / p["wc"]))
        rate_on = p["kon"] * np.abs(u / p["von"] - 1.0) ** p["aon"] * np.exp(-np.exp(-(w - p["aonw"]) / p["wc"]))
    rate = np.where(off, rate_off, rate)
    return np.where(on, rate_on, rate)


# ----------------------------------------------------------------------------- Stanford-PKU
def _step01(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _spku_gap(g_nm: np.ndarray, p: Mapping[str, float]) -> np.ndarray:
    return np.clip(g_nm * 1e-9, 0.0, p["tox"])


def _spku_current(u: np.ndarray, g_nm: np.ndarray, p: Mapping[str, float]) -> np.ndarray:
    return p["i0"] * np.exp(-_spku_gap(g_nm, p) / p["g0"]) * np.sinh(u / p["v0"])


def _spku_rate(u: np.ndarray, g_nm: np.ndarray, p: Mapping[str, float]) -> np.ndarray:
    g = _spku_gap(g_nm, p)
    temp = p["t0"] + np.abs(u * _spku_current(u, g_nm, p)) * p["rth"]
    kq = Q_E / (K_B * temp)
    gamma = p["gamma0"] - p["beta"] * (g / p["g1"]) ** 3
    rate = -p["nu0"] * np.exp(-p["ea"] * kq) * np.sinh(gamma * p["a0"] / p["tox"] * kq * u)
    stop = np.where(rate < 0, _step01((g - p["gmin"]) / p["dg"]), _step01((p["gmax"] - g) / p["dg"]))
    return rate * stop * 1e9


MODELS: dict[str, LibraryModel] = {
    "vteam": LibraryModel(
        name="vteam", module="cosim_vteam", state_node="w", state_param="w0", set_sign=-1.0,
        lrs_state=0.0, hrs_state=1.0, to_node=1.0, current_fn=_vteam_current, rate_fn=_vteam_rate,
        reference="Kvatinsky et al., IEEE TCAS-II 62(8):786-790, 2015",
    ),
    "stanford_pku": LibraryModel(
        name="stanford_pku", module="cosim_stanford_pku", state_node="g", state_param="g_ini", set_sign=1.0,
        lrs_state=0.2, hrs_state=1.7, to_node=1e9, current_fn=_spku_current, rate_fn=_spku_rate,
        reference="Jiang et al., IEEE TED 63(5):1884-1892, 2016",
    ),
}


def get_model(name: str) -> LibraryModel:
    """The library entry ``name``; a clear error lists the others."""
    try:
        return MODELS[name]
    except KeyError:
        raise CosimError(f"no library model {name!r}; have {', '.join(sorted(MODELS))}") from None


IV_STEPS_PER_LEG = 2500
"""Largest transient step of :func:`iv_sweep`: this fraction of a quarter sweep."""


def iv_sweep(name: str, v_peak: float = 1.5, leg: float = 5e-6, tstep: float | None = None,
             params: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Simulate one device (ngspice) over a triangular SET then RESET sweep from HRS.

    The sweep goes 0 → SET polarity × ``v_peak`` [V] → 0 → RESET polarity × ``v_peak`` → 0,
    each quarter taking ``leg`` [s]; ``tstep`` [s] is the largest time step (default
    ``leg / IV_STEPS_PER_LEG``). Returns ``time`` [s], ``v`` [V], ``i`` [A], ``state`` (node units).
    """
    from cosim.spice.batch import run_batch
    from cosim.spice.render import format_number, ident, render_netlist

    model = get_model(name)
    for field_name, value in (("v_peak (--v-peak) [V]", v_peak), ("leg (--leg) [s]", leg)):
        if not (math.isfinite(value) and value > 0):
            raise CosimError(f"{name} I-V sweep: {field_name} must be a positive number, got {value!r}")
    tstep = leg / IV_STEPS_PER_LEG if tstep is None else tstep
    if not (math.isfinite(tstep) and 0 < tstep <= leg):
        raise CosimError(f"{name} I-V sweep: tstep must be in (0, leg = {leg:g} s], got {tstep!r}")
    peak = model.set_sign * abs(float(v_peak))
    points = [(0.0, 0.0), (leg, peak), (2 * leg, 0.0), (3 * leg, -peak), (4 * leg, 0.0)]
    text = render_netlist(
        "single_device.cir.j2", title=f"cosim library {name} iv sweep", osdi_files=[model.compile()],
        module=ident(model.module), params={ident(k): format_number(v) for k, v in (params or {}).items()},
        pwl=points, tstep=tstep, tstop=4 * leg, state_node=ident(model.state_node),
    )
    result = run_batch(text, timeout_s=120)
    return {"time": result["time"], "v": result["v(te)"], "i": -result["i(vdrv)"],
            "state": result[f"v(n1#{model.state_node})"]}


def iv_figure(name: str, output: Path | str, v_peak: float = 1.5, leg: float = 5e-6) -> Path:
    """I–V hysteresis of one device (linear and log current) to ``output``; returns the path.

    ``v_peak`` [V] and ``leg`` [s] as in :func:`iv_sweep`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cosim.fileio import atomic_path

    sweep = iv_sweep(name, v_peak, leg)
    model = get_model(name)
    fig, (lin, log) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    set_part = sweep["time"] <= 2 * leg  # the first two quarters (time steps are adaptive)
    for ax in (lin, log):
        for part, label in ((set_part, "SET sweep"), (~set_part, "RESET sweep")):
            y = sweep["i"][part] * 1e6 if ax is lin else np.abs(sweep["i"][part])
            ax.plot(sweep["v"][part], y, label=label)
        ax.set_xlabel("device voltage U = V(te, be) [V]")
        ax.legend()
    lin.set_ylabel("current I [µA]")
    log.set_ylabel("|I| [A]")
    log.set_yscale("log")
    away = np.abs(sweep["v"]) >= 0.05 * abs(v_peak)
    log.set_ylim(bottom=0.3 * float(np.min(np.abs(sweep["i"][away]))))
    fig.suptitle(f"{model.module}: triangular sweeps ±{v_peak} V, {leg * 1e6:g} µs per quarter "
                 f"({model.reference})", fontsize=9)
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=120, format=output.suffix.lstrip(".") or "png")
    plt.close(fig)
    return output
