"""Synthetic, measurement-like data from the device model (``cosim synth``).

Two layouts (docs/file-formats.md):

* ``cycles``: one row per device-cycle, columns ``device, cycle, HRS_ohm, US_V, LRS_ohm, UR_V``.
  HRS and LRS are static resistances U0 / I(U0) read after each RESET / SET, with read noise
  (σ² = 4kT·BW·G + 2q|I|·BW) unless disabled; US/UR are the model's switching thresholds.
  Row ``cycle = n`` holds US_n, LRS_n, UR_n of cycle n and the HRS reached by its RESET, i.e.
  the HRS drawn with cycle n + 1 (what a tester records per SET/RESET pair).
* ``iv``: one row per sample, columns ``device, cycle, t_s, V, I``. Each cycle is a triangular
  SET sweep 0 → v_set → 0, a read at U0, a triangular RESET sweep 0 → v_reset → 0 and a read
  at U0, sampled every ``dv`` volts at ``sweep_rate`` V/s, with measurement noise on I.

All randomness comes from the counter RNG (seeded); a metadata JSON written next to the CSV
records the seed, model and settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from cosim.device import rng
from cosim.device.model import DeviceArray, read_noise_sigma
from cosim.device.modelfile import DeviceModel
from cosim.fileio import atomic_path, write_json_atomic

CYCLE_COLUMNS = ["device", "cycle", "HRS_ohm", "US_V", "LRS_ohm", "UR_V"]
IV_COLUMNS = ["device", "cycle", "t_s", "V", "I"]


def _noisy(model: DeviceModel, i: np.ndarray, u: np.ndarray | float, z: np.ndarray,
           floor_a: float = 0.0) -> np.ndarray:
    """Add measurement noise: read-noise σ plus an instrument floor (A)."""
    sigma = np.sqrt(read_noise_sigma(model, i, u) ** 2 + floor_a**2)
    return i + sigma * z


def synth_cycles(model: DeviceModel, n_devices: int, n_cycles: int, seed: int,
                 v_set: float = -2.0, v_reset: float = 1.5, noise: bool = True,
                 first_device: int = 0) -> pd.DataFrame:
    """Cycle table of devices ``first_device ..`` + ``n_devices`` × ``n_cycles`` cycles.

    Devices are independent, so blocks of device ids concatenate to the full table.
    """
    _check_sizes(n_devices, n_cycles)
    dev = DeviceArray(model, seed=seed, device_ids=np.arange(first_device, first_device + n_devices))
    ids = dev.ids
    out = {k: np.empty((n_devices, n_cycles)) for k in ("US_V", "UR_V", "I_lrs", "I_hrs")}
    switched = np.ones((n_devices, n_cycles), dtype=bool)
    for c in range(n_cycles):
        out["US_V"][:, c] = dev.us
        dev.apply(v_set)
        switched[:, c] &= dev.in_lrs
        out["I_lrs"][:, c] = dev.read()
        out["UR_V"][:, c] = dev.ur_thr
        dev.apply(v_reset)
        out["I_hrs"][:, c] = dev.read()
    if noise:
        cyc = np.arange(n_cycles)[None, :]
        for draw, key in ((0, "I_lrs"), (1, "I_hrs")):
            z = rng.normal(seed, ids[:, None], cyc, rng.STREAM_MEAS_NOISE, draw)
            out[key] = _noisy(model, out[key], model.u0, z)
    if not switched.all():  # a level that misses US leaves the device in HRS: keep, but say so
        out["US_V"][~switched] = np.nan
    frame = pd.DataFrame({
        "device": np.repeat(ids, n_cycles),
        "cycle": np.tile(np.arange(n_cycles), n_devices),
        "HRS_ohm": (model.u0 / out["I_hrs"]).ravel(),
        "US_V": out["US_V"].ravel(),
        "LRS_ohm": (model.u0 / out["I_lrs"]).ravel(),
        "UR_V": out["UR_V"].ravel(),
    })
    frame = frame[CYCLE_COLUMNS]
    frame.attrs["d2d_redrawn"] = int(dev.params.redrawn)  # devices with a redrawn D2D vector
    return frame


def sweep_waveform(model: DeviceModel, v_set: float = -2.0, v_reset: float = 1.5, dv: float = 0.01,
                   read_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Voltages of one cycle and a flag marking the read samples at U0."""
    if dv <= 0 or v_set >= 0 or v_reset <= 0 or read_samples < 1:
        raise ValueError("need dv > 0, v_set < 0, v_reset > 0 and read_samples >= 1")

    def tri(peak: float) -> np.ndarray:
        n = max(int(round(abs(peak) / dv)), 1)
        up = np.linspace(0.0, peak, n + 1)
        return np.concatenate([up, up[-2::-1]])

    read = np.full(read_samples, model.u0)
    parts = [tri(v_set), read, tri(v_reset), read]
    flags = [np.zeros(p.size, dtype=bool) if i % 2 == 0 else np.ones(p.size, dtype=bool)
             for i, p in enumerate(parts)]
    return np.concatenate(parts), np.concatenate(flags)


def synth_iv(model: DeviceModel, n_devices: int, n_cycles: int, seed: int, v_set: float = -2.0,
             v_reset: float = 1.5, dv: float = 0.01, sweep_rate: float = 1e3, read_samples: int = 1,
             noise: bool = True, noise_floor_a: float = 1e-9, first_device: int = 0) -> pd.DataFrame:
    """Raw I–V samples of triangular sweeps (see module doc). ``sweep_rate`` in V/s.

    Devices ``first_device`` .. ``first_device + n_devices - 1``; blocks concatenate.
    """
    _check_sizes(n_devices, n_cycles)
    if sweep_rate <= 0:
        raise ValueError("sweep_rate must be positive")
    volts, _ = sweep_waveform(model, v_set, v_reset, dv, read_samples)
    n_s = volts.size
    dt = dv / sweep_rate
    dev = DeviceArray(model, seed=seed, device_ids=np.arange(first_device, first_device + n_devices))
    ids = dev.ids
    cur = np.empty((n_devices, n_cycles, n_s))
    for c in range(n_cycles):
        for s, v in enumerate(volts):
            dev.apply(v)
            cur[:, c, s] = dev.current(v)
    if noise:
        z = rng.normal(seed, ids[:, None, None], np.arange(n_cycles)[None, :, None],
                       rng.STREAM_MEAS_NOISE, np.arange(n_s)[None, None, :])
        cur = _noisy(model, cur, volts[None, None, :], z, noise_floor_a)
    t = (np.arange(n_cycles * n_s) * dt).reshape(n_cycles, n_s)
    frame = pd.DataFrame({
        "device": np.repeat(ids, n_cycles * n_s),
        "cycle": np.tile(np.repeat(np.arange(n_cycles), n_s), n_devices),
        "t_s": np.tile(t.ravel(), n_devices),
        "V": np.tile(volts, n_devices * n_cycles),
        "I": cur.ravel(),
    })[IV_COLUMNS]
    frame.attrs["d2d_redrawn"] = int(dev.params.redrawn)  # devices with a redrawn D2D vector
    return frame


def _check_sizes(n_devices: int, n_cycles: int) -> None:
    if n_devices < 1 or n_cycles < 1:
        raise ValueError("devices and cycles must be >= 1")
    if n_devices > rng.MASK31 or n_cycles > rng.MASK31:
        raise ValueError("devices and cycles must be < 2**31")


def metadata_path(csv_path: str | os.PathLike[str]) -> Path:
    """Sidecar metadata file of a synthetic CSV: ``OUT.csv`` → ``OUT.csv.meta.json``."""
    p = Path(csv_path)
    return p.with_name(p.name + ".meta.json")


def write_csv_atomic(frames: pd.DataFrame | Iterable[pd.DataFrame], path: str | os.PathLike[str],
                     meta: Optional[dict[str, Any]] = None) -> int:
    """Write one frame or a stream of frames (same columns) as one CSV, atomically
    (temp file + rename), the metadata sidecar first; returns the number of rows.

    ``meta`` gets ``rows`` filled in. On any error no output file is left behind.
    """
    rows = 0
    with atomic_path(path) as tmp:
        parts = [frames] if isinstance(frames, pd.DataFrame) else frames
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for i, part in enumerate(parts):
                part.to_csv(fh, index=False, header=(i == 0), float_format="%.9g")
                rows += len(part)
        if meta is not None:
            write_json_atomic(metadata_path(path), dict(meta, rows=rows))
    return rows
