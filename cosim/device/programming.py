"""Write-verify programming of devices to target conductances (read at U0).

Each attempt: one SET pulse (to LRS), read-verify, then partial-RESET pulses of increasing
voltage, each followed by a read-verify, until the conductance is within tolerance of the
target. An overshoot (conductance below the band) costs a new attempt: SET again (this starts
from the next cycle's LRS) and ramp again from just below the voltage that overshot, with
half the step. Pulses per device are bounded. Conductances in S, voltages in V.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from cosim.device.model import DeviceArray, feature_sequences, hrs_ohm
from cosim.device.modelfile import DeviceModel


@dataclass
class ProgramConfig:
    """Settings of the write-verify loop."""

    tolerance: float = 0.05  #: accepted relative error |G − G_t| / G_t
    set_voltage: float = -2.0  #: SET pulse level, V
    reset_start: float = 0.5  #: first partial-RESET level, V
    reset_step: float = 0.01  #: initial step of the RESET ramp, V
    max_pulses: int = 300  #: bound on SET + RESET pulses per device
    max_attempts: int = 6  #: bound on SET + ramp attempts per device
    read_noise: bool = False  #: add read noise to every verify read


@dataclass
class ProgramResult:
    """Outcome per device (arrays of length N)."""

    target: np.ndarray  #: target conductance, S
    achieved: np.ndarray  #: conductance after programming (noise-free read), S
    success: np.ndarray  #: True if within tolerance at the last verify read
    set_pulses: np.ndarray
    reset_pulses: np.ndarray
    reads: np.ndarray
    attempts: np.ndarray
    config: ProgramConfig = field(default_factory=ProgramConfig)

    @property
    def pulses(self) -> np.ndarray:
        """SET + RESET pulses per device."""
        return self.set_pulses + self.reset_pulses

    @property
    def relative_error(self) -> np.ndarray:
        """(G_achieved − G_target) / G_target."""
        return (self.achieved - self.target) / self.target

    def summary(self) -> dict[str, float]:
        """Error statistics of the programmed population."""
        err = self.relative_error
        return {
            "devices": float(err.size),
            "success_rate": float(self.success.mean()),
            "rel_error_mean": float(err.mean()),
            "rel_error_sd": float(err.std()),
            "rel_error_rms": float(np.sqrt(np.mean(err**2))),
            "rel_error_max_abs": float(np.abs(err).max()),
            "pulses_mean": float(self.pulses.mean()),
            "pulses_max": float(self.pulses.max()),
            "attempts_mean": float(self.attempts.mean()),
        }


def conductance_window(model: DeviceModel, seed: int = 0, n_devices: int = 2000, n_cycles: int = 20,
                       coverage: float = 0.99) -> tuple[float, float]:
    """(G_min, G_max) in S reachable in ``coverage`` of device cycles.

    G_max is the (1 − coverage) quantile of 1/LRS, G_min the ``coverage`` quantile of 1/HRS,
    estimated from ``n_devices`` × ``n_cycles`` model samples (seeded).
    """
    y = feature_sequences(model, seed, np.arange(n_devices), n_cycles)
    g_lrs = 1.0 / y[..., 2].ravel()
    g_hrs = 1.0 / hrs_ohm(model, y[..., 0]).ravel()
    return float(np.quantile(g_hrs, coverage)), float(np.quantile(g_lrs, 1.0 - coverage))


def achievable_levels(model: DeviceModel, n_levels: int, seed: int = 0, coverage: float = 0.99) -> np.ndarray:
    """``n_levels`` equally spaced conductance levels (S) across :func:`conductance_window`."""
    if n_levels < 2:
        raise ValueError("n_levels must be >= 2")
    g_min, g_max = conductance_window(model, seed=seed, coverage=coverage)
    return np.linspace(g_min, g_max, n_levels)


def program(devices: DeviceArray, target: np.ndarray | float,
            config: Optional[ProgramConfig] = None) -> ProgramResult:
    """Program every device of ``devices`` to ``target`` conductance(s) (S) by write-verify.

    ``devices`` is modified in place (its final states are the programmed states).
    """
    cfg = config or ProgramConfig()
    n = devices.n_devices
    g_t = np.broadcast_to(np.asarray(target, dtype=np.float64), (n,)).copy()
    if np.any(g_t <= 0):
        raise ValueError("target conductances must be positive")
    umax = devices.model.umax
    done = np.zeros(n, dtype=bool)
    counters = {k: np.zeros(n, dtype=np.int64) for k in ("set", "reset", "reads", "attempts")}
    start = np.full(n, cfg.reset_start)
    step = np.full(n, cfg.reset_step)

    def verify(sel: np.ndarray) -> np.ndarray:
        counters["reads"][sel] += 1
        g = devices.conductance(noise=cfg.read_noise)
        return sel & (np.abs(g - g_t) <= cfg.tolerance * g_t), sel & (g < g_t * (1 - cfg.tolerance)), g

    for _ in range(cfg.max_attempts):
        active = ~done & (counters["set"] + counters["reset"] < cfg.max_pulses)
        if not active.any():
            break
        counters["attempts"][active] += 1
        devices.apply(np.where(active, cfg.set_voltage, 0.0))
        counters["set"][active] += 1
        ok, low, _ = verify(active)
        done |= ok
        # a device whose LRS is already below the band cannot get closer by resetting: it
        # skips the ramp and tries the next cycle's LRS in the next attempt
        ramping = active & ~ok & ~low
        skip = active & low
        if skip.any():  # full RESET so that the next SET starts a new cycle
            devices.apply(np.where(skip, umax, 0.0))
            counters["reset"][skip] += 1
        u = start.copy()
        last_good = start.copy()
        while True:
            ramping &= (u < umax + 1e-12) & (counters["set"] + counters["reset"] < cfg.max_pulses)
            if not ramping.any():
                break
            devices.apply(np.where(ramping, np.minimum(u, umax), 0.0))
            counters["reset"][ramping] += 1
            ok, low, _ = verify(ramping)
            done |= ok
            over = low & ramping
            # next attempt starts a little below the level that overshot, with a finer step
            start[over] = np.maximum(cfg.reset_start, last_good[over] - step[over])
            step[over] *= 0.5
            still = ramping & ~ok & ~over
            last_good[still] = u[still]
            u[still] += step[still]
            ramping = still
    achieved = devices.conductance()
    success = done & (np.abs(achieved - g_t) <= cfg.tolerance * g_t) if not cfg.read_noise else done
    return ProgramResult(g_t, achieved, success, counters["set"], counters["reset"], counters["reads"],
                         counters["attempts"], cfg)
