"""Bit-sliced crossbar mapping of a weight matrix, tiling, and digital shift-and-add.

A signed weight matrix W (inputs × outputs) is quantized symmetrically to integers
q = round(W / max|W| · (2^(b−1) − 1)) of ``weight_bits`` b bits. Each integer is split into
slices of ``slice_bits`` s bits (s = 1: one bit per cell, s = 2: four levels per cell) stored
in adjacent columns, most significant slice first (next to the row drivers in the
conventional layout). A slice value v ∈ {0 … 2^s − 1} is held at
G = G_off + v·(G_on − G_off)/(2^s − 1) [S], so zero bits stay in HRS (G_off).

Signed weights, two encodings:

* ``"differential"`` (sign–magnitude): |q| has b − 1 bits; the positive part goes to G⁺
  cells, the negative part to G⁻ cells; slice k of one output is the adjacent column pair
  (G⁺_k, G⁻_k). The G_off background cancels in each pair.
* ``"offset"`` (offset binary): u = q + 2^(b−1) has b bits in b/s single columns per output,
  and every tile has one offset column of G_on cells whose current I_ref = G_on·ΣV_i lets the
  digital side remove the offset and the HRS background.

Digital shift-and-add: every tile's column currents I (K, N_phys) [A] become outputs by one
fixed linear map, y = I·D with D (N_phys × n_out) holding ±2^(s·k)/ΔG (ΔG = (G_on − G_off)/
(2^s − 1)) and, for offset binary, the offset column's correction. Wire-free, y is exactly
Σ_i V_i q_ij [V]; multiplied by the input and weight scales it is x·W_q.

Tiling: rows are split into tiles of ``tile_rows`` inputs (partial sums are added
digitally), columns into tiles of at most ``tile_cols`` physical columns holding whole
outputs (all slices of an output stay in one tile).

Inputs (:class:`InputEncoding`): analog (V = v_read·x/x_max, one read) or bit-serial (x
quantized to ``input_bits`` bits, one read per bit plane at 0 or v_read, results added with
weights 2^t; negative inputs take a second set of planes subtracted).

References: bit slicing and shift-and-add as in ISAAC (Shafiee et al., ISCA 2016); the
setting of Farias, Martins and Kung (2025), arXiv:2511.04798.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cosim.errors import CosimError

Signed = Literal["differential", "offset"]
DEFAULT_G_ON = 1.0 / 4.5e3
"""Default LRS conductance [S] (the project's default device window, 4.5 kΩ)."""


@dataclass(frozen=True)
class SliceConfig:
    """How weights become cells: bits, slices, signed encoding and the two cell levels [S]."""

    weight_bits: int = 8
    slice_bits: int = 1
    signed: Signed = "differential"
    g_on: float = DEFAULT_G_ON
    g_off: float = DEFAULT_G_ON / 10.0

    def __post_init__(self) -> None:
        if not 2 <= int(self.weight_bits) <= 16:
            raise CosimError(f"weight bits must be between 2 and 16, got {self.weight_bits}")
        if int(self.slice_bits) not in (1, 2, 3, 4):
            raise CosimError(f"slice bits must be 1, 2, 3 or 4, got {self.slice_bits}")
        if self.signed not in ("differential", "offset"):
            raise CosimError(f"signed encoding must be 'differential' or 'offset', got {self.signed!r}")
        if not (math.isfinite(self.g_on) and math.isfinite(self.g_off) and 0 < self.g_off < self.g_on):
            raise CosimError(f"need 0 < G_off < G_on, got G_off {self.g_off} S, G_on {self.g_on} S")

    @classmethod
    def from_on_off(cls, on_off: float, g_on: float = DEFAULT_G_ON, **kwargs: object) -> "SliceConfig":
        """Cells at G_on [S] and G_off = G_on / ``on_off``."""
        if not (math.isfinite(on_off) and on_off > 1):
            raise CosimError(f"ON/OFF ratio must be a number above 1, got {on_off}")
        return cls(g_on=g_on, g_off=g_on / on_off, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_device_model(cls, model: object, seed: int = 0, **kwargs: object) -> "SliceConfig":
        """Cells at the fitted model's levels: G_off, G_on = the window reachable in 99 % of
        cycles (:func:`cosim.device.programming.conductance_window`, from ``seed``)."""
        from cosim.device.programming import conductance_window

        g_min, g_max = conductance_window(model, seed=seed, n_devices=500, n_cycles=20)  # type: ignore[arg-type]
        return cls(g_on=g_max, g_off=g_min, **kwargs)  # type: ignore[arg-type]

    @property
    def on_off(self) -> float:
        return self.g_on / self.g_off

    @property
    def q_max(self) -> int:
        """Largest |q| of the symmetric quantization."""
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def magnitude_bits(self) -> int:
        """Bits stored per output and sign: b − 1 (differential) or b (offset binary)."""
        return self.weight_bits - 1 if self.signed == "differential" else self.weight_bits

    @property
    def n_slices(self) -> int:
        return -(-self.magnitude_bits // self.slice_bits)

    @property
    def level_step(self) -> float:
        """ΔG between neighbouring slice levels [S]."""
        return (self.g_on - self.g_off) / (2**self.slice_bits - 1)

    @property
    def columns_per_output(self) -> int:
        return 2 * self.n_slices if self.signed == "differential" else self.n_slices

    def slice_values(self, magnitude: np.ndarray) -> np.ndarray:
        """Slices of non-negative integers (...,) → (..., n_slices), most significant first."""
        base = 2**self.slice_bits
        shifts = self.slice_bits * np.arange(self.n_slices - 1, -1, -1)
        return (np.asarray(magnitude, dtype=np.int64)[..., None] >> shifts) % base

    def as_dict(self) -> dict[str, object]:
        return {
            "weight_bits": self.weight_bits, "slice_bits": self.slice_bits, "signed": self.signed,
            "g_on_S": self.g_on, "g_off_S": self.g_off, "on_off": self.on_off,
        }


def quantize(weights: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Symmetric integer weights q (|q| ≤ 2^(bits−1) − 1) and the scale with W ≈ scale·q."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.size == 0 or not np.isfinite(w).all():
        raise CosimError(f"weights: expected a finite 2-D (inputs × outputs) array, got shape {w.shape}")
    q_max = 2 ** (bits - 1) - 1
    peak = float(np.abs(w).max())
    scale = peak / q_max if peak > 0 else 1.0
    return np.round(w / scale).astype(np.int64), scale


@dataclass(frozen=True)
class Tile:
    """One crossbar: rows ``row_start:row_stop`` of the layer, logical ``outputs``."""

    row_start: int
    row_stop: int
    outputs: np.ndarray
    """Logical output (column of W) indices held by this tile."""
    g: np.ndarray
    """Target conductances (rows, physical columns) [S]."""
    decode: np.ndarray
    """Shift-and-add map (physical columns × outputs): outputs [V·level] = I·decode / 1 A."""
    differential: bool
    slice_of_column: np.ndarray
    """Slice index per physical column (0 = least significant; −1 for the offset column)."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape  # type: ignore[return-value]

    def ones(self, g_off: float) -> np.ndarray:
        """Active (non-HRS) cells, (rows, physical columns)."""
        return self.g > g_off * (1 + 1e-9)


@dataclass(frozen=True)
class SlicedMatrix:
    """A weight matrix (inputs × outputs) mapped onto bit-sliced tiles."""

    config: SliceConfig
    q: np.ndarray
    """Integer weights (inputs × outputs)."""
    weight_scale: float
    """W ≈ weight_scale · q."""
    tiles: tuple[Tile, ...] = field(repr=False)
    tile_rows: int = 128
    tile_cols: int = 128

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.shape  # type: ignore[return-value]

    @classmethod
    def from_weights(
        cls, weights: np.ndarray, config: SliceConfig, tile_rows: int = 128, tile_cols: int = 128
    ) -> "SlicedMatrix":
        """Quantize ``weights`` (inputs × outputs) and place them on tiles of at most
        ``tile_rows`` × ``tile_cols`` cells."""
        q, scale = quantize(weights, config.weight_bits)
        per_output = config.columns_per_output
        spare = 1 if config.signed == "offset" else 0
        if tile_rows < 1 or tile_cols < per_output + spare:
            raise CosimError(
                f"tile {tile_rows}x{tile_cols} is too small: one output needs {per_output + spare} columns"
            )
        per_tile = (tile_cols - spare) // per_output
        tiles = []
        for start in range(0, q.shape[0], tile_rows):
            stop = min(start + tile_rows, q.shape[0])
            for first in range(0, q.shape[1], per_tile):
                outputs = np.arange(first, min(first + per_tile, q.shape[1]))
                tiles.append(_make_tile(q[start:stop][:, outputs], config, start, stop, outputs))
        return cls(config, q, scale, tuple(tiles), tile_rows, tile_cols)

    def ideal_outputs(self, x: np.ndarray) -> np.ndarray:
        """Exact x·W_q with the quantized weights, (K, outputs)."""
        return np.atleast_2d(np.asarray(x, float)) @ (self.q * self.weight_scale)


def _make_tile(q: np.ndarray, config: SliceConfig, start: int, stop: int, outputs: np.ndarray) -> Tile:
    rows, n_out = q.shape
    n_s, step = config.n_slices, config.level_step
    significance = 2.0 ** (config.slice_bits * np.arange(n_s - 1, -1, -1))  # MSB first
    slice_index = np.arange(n_s - 1, -1, -1)
    if config.signed == "differential":
        plus, minus = config.slice_values(np.clip(q, 0, None)), config.slice_values(np.clip(-q, 0, None))
        values = np.empty((rows, n_out, n_s, 2), dtype=np.int64)
        values[..., 0], values[..., 1] = plus, minus
        values = values.reshape(rows, n_out * 2 * n_s)
        decode = np.zeros((n_out * 2 * n_s, n_out))
        pair = np.stack([significance, -significance], axis=1).ravel() / step
        for j in range(n_out):
            decode[j * 2 * n_s:(j + 1) * 2 * n_s, j] = pair
        slices = np.tile(np.repeat(slice_index, 2), n_out)
    else:
        offset = 2 ** (config.weight_bits - 1)
        values = config.slice_values(q + offset).reshape(rows, n_out * n_s)
        values = np.concatenate([values, np.full((rows, 1), 2**config.slice_bits - 1)], axis=1)
        decode = np.zeros((n_out * n_s + 1, n_out))
        for j in range(n_out):
            decode[j * n_s:(j + 1) * n_s, j] = significance / step
        # I_ref = G_on·ΣV removes the HRS background (G_off/ΔG·Σ significance per unit ΣV) and the offset
        decode[-1, :] = -(config.g_off / step * significance.sum() + offset) / config.g_on
        slices = np.concatenate([np.tile(slice_index, n_out), [-1]])
    g = config.g_off + values * step
    return Tile(start, stop, outputs, g, decode, config.signed == "differential", slices)


@dataclass(frozen=True)
class InputEncoding:
    """How activations x become row voltages [V]: ``"analog"`` or ``"bit-serial"``."""

    kind: Literal["analog", "bit-serial"] = "analog"
    v_read: float = 0.2
    input_bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in ("analog", "bit-serial"):
            raise CosimError(f"input encoding must be 'analog' or 'bit-serial', got {self.kind!r}")
        if not (math.isfinite(self.v_read) and self.v_read > 0):
            raise CosimError(f"v_read must be positive, got {self.v_read}")
        if not 1 <= int(self.input_bits) <= 16:
            raise CosimError(f"input bits must be between 1 and 16, got {self.input_bits}")

    def encode(self, x: np.ndarray, x_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Voltages (P, K, M) [V] of the P reads and their weights (P,) [1/V·x]: x ≈ Σ_p w_p V_p
        (bit-serial: x quantized to ``input_bits`` bits of ``x_max``)."""
        batch = np.atleast_2d(np.asarray(x, dtype=float))
        scale = x_max / self.v_read if x_max > 0 else 1.0
        if self.kind == "analog":
            return (batch / scale)[None], np.array([scale])
        levels = 2**self.input_bits - 1
        code = np.round(np.clip(np.abs(batch) / (x_max or 1.0), 0, 1) * levels).astype(np.int64)
        unit = (x_max or 1.0) / levels / self.v_read
        planes, weights = [], []
        for sign in (1, -1):
            part = np.where(np.sign(batch) == sign, code, 0)
            if sign == -1 and not part.any():
                continue
            for t in range(self.input_bits):
                planes.append(((part >> t) & 1) * self.v_read)
                weights.append(sign * unit * 2.0**t)
        return np.stack(planes), np.asarray(weights)

    def as_dict(self) -> dict[str, object]:
        return {"encoding": self.kind, "v_read_V": self.v_read, "input_bits": self.input_bits if self.kind == "bit-serial" else None}
