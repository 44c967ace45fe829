"""Write-verify programming of devices to target conductances (read at U0), as a lab runs it.

Each attempt: one SET pulse (to LRS), read-verify, then partial-RESET pulses of increasing
voltage, each followed by a read-verify, until the conductance is accepted. An overshoot
(conductance below the band) costs a new attempt: SET again (this starts from the next
cycle's LRS) and ramp again from just below the voltage that overshot, with half the step.
Pulses per device are bounded. Conductances in S, voltages in V.

Acceptance (no systematic bias). A RESET ramp only lowers the conductance, so a loop that
stops at the first read inside the ±``tolerance`` band stops, on average, in the upper part
of the band (with the default 0.01 V step: +3.2 % ± 1.1 %). With ``centred = True`` (the
default) the loop switches to the finer ``fine_step`` once inside the band and keeps pulsing
while the next pulse is expected to land closer to the target than the present state: it
stops when ``G − G_t ≤ d/2``, ``d`` being the conductance decrement predicted for the next
pulse from the last one. The final error is then centred on zero: 2000 devices of the
default model at 8 levels end at mean −1e−5, sd 0.30 % with 46.5 pulses per device, where
the first-in-band stop (``centred = False``) ends at +2.8 % ± 1.3 % with 42.9 pulses.

Failures are never silent: :attr:`ProgramResult.success` marks cells not accepted within the
pulse and attempt budget, :meth:`ProgramResult.failures` names them (device id, target,
achieved, final error, pulses) and :meth:`ProgramResult.summary` reports bias, spread,
pulses per device and the failure count.

Verify reads: by default every verify read is the device's own static conductance
(optionally with read noise). ``verify_read`` replaces it, e.g. by a read through the array
and its wires (in-situ write-verify, :mod:`cosim.compensation`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional

import numpy as np

from cosim.device.model import DeviceArray, feature_sequences, hrs_ohm
from cosim.device.modelfile import DeviceModel
from cosim.errors import CosimError


class ProgrammingError(CosimError, ValueError):
    """Invalid write-verify settings or targets."""


VerifyRead = Callable[[DeviceArray], np.ndarray]
"""``verify_read(devices) -> conductances (n,) [S]`` as the verify step sees them."""


@dataclass
class ProgramConfig:
    """Settings of the write-verify loop (every field settable from study files)."""

    tolerance: float = 0.05  #: accepted relative error |G − G_t| / G_t
    set_voltage: float = -2.0  #: SET pulse level, V
    reset_start: float = 0.5  #: first partial-RESET level, V
    reset_step: float = 0.01  #: initial step of the RESET ramp, V
    fine_step: float = 0.0025  #: RESET step once inside the band (centred acceptance), V
    centred: bool = True  #: inside the band, keep pulsing while the next pulse lands closer
    max_pulses: int = 300  #: bound on SET + RESET pulses per device
    max_attempts: int = 6  #: bound on SET + ramp attempts per device
    read_noise: bool = False  #: add read noise to every verify read

    def __post_init__(self) -> None:
        checks = {
            "tolerance": 0 < self.tolerance < 1,
            "set_voltage": self.set_voltage < 0,
            "reset_start": self.reset_start > 0,
            "reset_step": self.reset_step > 0,
            "fine_step": self.fine_step > 0,
            "max_pulses": self.max_pulses >= 2,
            "max_attempts": self.max_attempts >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ProgrammingError(f"write-verify setting {name}: invalid value {getattr(self, name)!r}")

    @classmethod
    def keys(cls) -> list[str]:
        """Names of every setting (the keys a study file may give)."""
        return [f.name for f in fields(cls)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProgramResult:
    """Outcome per device (arrays of length N)."""

    target: np.ndarray  #: target conductance, S
    achieved: np.ndarray  #: conductance after programming (noise-free read), S
    success: np.ndarray  #: True if accepted and within tolerance at the last verify read
    set_pulses: np.ndarray
    reset_pulses: np.ndarray
    reads: np.ndarray
    attempts: np.ndarray
    config: ProgramConfig = field(default_factory=ProgramConfig)
    device_ids: Optional[np.ndarray] = None  #: device ids (RNG keys); None: 0..N−1
    verified: Optional[np.ndarray] = None  #: conductance at the last verify read, S

    @classmethod
    def concatenate(cls, results: "list[ProgramResult]") -> "ProgramResult":
        """One result for several device populations (e.g. the tiles of a layer)."""
        if not results:
            raise ProgrammingError("no programming results to combine")

        def join(name: str) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(r, name)) for r in results])

        ids = join("device_ids") if all(r.device_ids is not None for r in results) else None
        verified = join("verified") if all(r.verified is not None for r in results) else None
        return cls(join("target"), join("achieved"), join("success"), join("set_pulses"), join("reset_pulses"),
                   join("reads"), join("attempts"), results[0].config, device_ids=ids, verified=verified)

    @property
    def pulses(self) -> np.ndarray:
        """SET + RESET pulses per device."""
        return self.set_pulses + self.reset_pulses

    @property
    def relative_error(self) -> np.ndarray:
        """(G_achieved − G_target) / G_target."""
        return (self.achieved - self.target) / self.target

    def failures(self) -> "Any":
        """Cells not accepted, by name: a DataFrame with device id, target and achieved
        conductance [S], final relative error, pulses and attempts (empty when none failed)."""
        import pandas as pd

        bad = ~self.success
        ids = np.arange(self.target.size) if self.device_ids is None else np.asarray(self.device_ids)
        return pd.DataFrame({
            "device": ids[bad],
            "target_S": self.target[bad],
            "achieved_S": self.achieved[bad],
            "rel_error": self.relative_error[bad],
            "pulses": self.pulses[bad],
            "attempts": self.attempts[bad],
        })

    def summary(self) -> dict[str, float]:
        """Error statistics of the programmed population: bias (mean relative error), spread
        (its sd), pulses per device and failures (cells not accepted)."""
        err = self.relative_error
        ok = self.success
        return {
            "devices": float(err.size),
            "success_rate": float(ok.mean()),
            "failures": float((~ok).sum()),
            "rel_error_mean": float(err.mean()),
            "rel_error_sd": float(err.std()),
            "rel_error_rms": float(np.sqrt(np.mean(err**2))),
            "rel_error_max_abs": float(np.abs(err).max()),
            "rel_error_mean_accepted": float(err[ok].mean()) if ok.any() else float("nan"),
            "rel_error_sd_accepted": float(err[ok].std()) if ok.any() else float("nan"),
            "failed_rel_error_max_abs": float(np.abs(err[~ok]).max()) if (~ok).any() else 0.0,
            "pulses_mean": float(self.pulses.mean()),
            "pulses_max": float(self.pulses.max()),
            "reads_mean": float(self.reads.mean()),
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
            config: Optional[ProgramConfig] = None, verify_read: Optional[VerifyRead] = None,
            select: Optional[np.ndarray] = None) -> ProgramResult:
    """Program every device of ``devices`` to ``target`` conductance(s) (S) by write-verify.

    ``devices`` is modified in place (its final states are the programmed states).
    ``verify_read``: how a verify read sees the devices (default: each device's own static
    conductance, with read noise if configured); it is called once per verify round with the
    whole array, and once more at the end to judge success. ``select`` (bool, (N,)): program
    only these devices; the others get no pulse and are judged as they are.
    """
    cfg = config or ProgramConfig()
    n = devices.n_devices
    g_t = np.broadcast_to(np.asarray(target, dtype=np.float64), (n,)).copy()
    if np.any(~np.isfinite(g_t)) or np.any(g_t <= 0):
        raise ProgrammingError("target conductances must be positive and finite")
    reader: VerifyRead = verify_read or (lambda d: d.conductance(noise=cfg.read_noise))
    umax = devices.model.umax
    done = np.zeros(n, dtype=bool) if select is None else ~np.broadcast_to(np.asarray(select, dtype=bool), (n,)).copy()
    counters = {k: np.zeros(n, dtype=np.int64) for k in ("set", "reset", "reads", "attempts")}
    start = np.full(n, cfg.reset_start)
    step = np.full(n, cfg.reset_step)
    band = cfg.tolerance * g_t

    def verify(sel: np.ndarray) -> np.ndarray:
        counters["reads"][sel] += 1
        return np.asarray(reader(devices), dtype=np.float64)

    for _ in range(cfg.max_attempts):
        active = ~done & (counters["set"] + counters["reset"] < cfg.max_pulses)
        if not active.any():
            break
        counters["attempts"][active] += 1
        devices.apply(np.where(active, cfg.set_voltage, 0.0))
        counters["set"][active] += 1
        g = verify(active)
        inside = np.abs(g - g_t) <= band
        ok = active & inside & ((g <= g_t) | (not cfg.centred))
        low = active & (g < g_t - band)
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
        current_step = step.copy()
        g_prev = g.copy()
        while True:
            ramping &= (u < umax + 1e-12) & (counters["set"] + counters["reset"] < cfg.max_pulses)
            if not ramping.any():
                break
            devices.apply(np.where(ramping, np.minimum(u, umax), 0.0))
            counters["reset"][ramping] += 1
            g = verify(ramping)
            inside = np.abs(g - g_t) <= band
            if cfg.centred:
                # next pulse: the fine step inside the band; its predicted decrement scales
                # with the step from the last observed one
                next_step = np.where(inside, np.minimum(cfg.fine_step, current_step), current_step)
                decrement = np.maximum(g_prev - g, 0.0) * next_step / current_step
                ok = ramping & inside & (g - g_t <= 0.5 * decrement)
            else:
                next_step = current_step
                ok = ramping & inside
            g_prev = np.where(ramping, g, g_prev)
            done |= ok
            over = ramping & ~ok & (g < g_t - band)
            # next attempt starts a little below the level that overshot, with a finer step
            start[over] = np.maximum(cfg.reset_start, last_good[over] - step[over])
            step[over] *= 0.5
            still = ramping & ~ok & ~over
            last_good[still] = u[still]
            current_step[still] = next_step[still]
            u[still] += current_step[still]
            ramping = still
    achieved = devices.conductance()
    if verify_read is None:
        final = achieved
    else:
        final = verify(np.ones(n, dtype=bool))
    success = done & (np.abs(final - g_t) <= band) if not cfg.read_noise else done
    return ProgramResult(g_t, achieved, success, counters["set"], counters["reset"], counters["reads"],
                         counters["attempts"], cfg, device_ids=np.asarray(devices.ids).copy(), verified=final)
