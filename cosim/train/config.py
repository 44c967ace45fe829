"""Settings of ``cosim train`` (TRAIN.toml) and ``cosim deploy`` (DEPLOY.toml), validated by
pydantic; unknown keys are errors and messages name the file and the field.

TRAIN.toml (every key optional; values shown are the defaults unless noted)::

    seed = 0                  # weights, batch order, dropout and training noise
    task = "digits"           # or data = "my.npz" (relative to this file); CLI flags win
    threads = 1               # torch intra-op threads

    [model]
    channels = 32             # H
    state_size = 16           # N (real state size, even)
    layers = 2
    dropout = 0.0
    init = "lin"              # S4D-Lin or "inv"
    dt_min = 0.01
    dt_max = 1.0
    variant = "delta"         # crossbar matrices trained for: "delta" or "full"

    [training]
    epochs = 30
    batch_size = 64
    lr = 0.01                 # encoder, mixing layers, decoder, C, D
    ssm_lr = 0.001            # dt and A (no weight decay), as in the S4D reference code
    weight_decay = 0.01
    split_seed = 0            # digits' stratified split

    [qat]
    bits = 4                  # 2..8 or "ternary"; omit for float training (default)
    scheme = "block"          # group scheme of the scales (cosim.s4d.quant)
    start_epoch = 0           # float warm-up epochs before quantization is switched on

    [noise]
    programming = false       # inject the device model's write-verify error
    model_file = "m.json"     # device model (omit: the packaged default)
    rel_sigma = 0.03          # override the measured relative conductance error (example)
    gain_sigma = 0.0          # per-output gain jitter (e.g. 0.01)

    [stability]
    dt_floor = 0.0            # lower bound on dt (0: none)
    margin_floor = 0.0        # lower bound on 1 − |Ā| per mode (0: none)
    stored_floor = false      # floor on the STORED (quantized) mode blocks: penalty + projection
    stored_margin = 0.003     # ... every stored |λ| ≤ 1 − stored_margin after training
    stored_penalty = 1.0      # ... weight of Σ max(0, |λ_q| − (1 − stored_margin)) in the loss

    [prune]
    keep_modes = 4            # complex modes kept per channel (omit: no pruning)
    keep_channels = 16        # channels kept per layer (omit: no pruning)
    finetune_epochs = 10

DEPLOY.toml::

    levels = ["float", "quantized", "devices", "devices_wires"]
    variants = ["delta"]      # default: the variant the model was trained for
    bits = 4                  # quantized/device targets (default: the training bits, else 8)
    compensation = ["none", "gain"]   # for devices_wires (default: none and the best available)
    mdm = [false]             # MDM placement at devices_wires (true, false or both)
    device_seeds = [0, 1, 2]
    max_samples = 0           # test samples used (0: all)
    model_file = "m.json"     # device model (omit: the packaged default)
    tolerance = 0.05          # write-verify tolerance
    engine = "probe"          # devices_wires: in-circuit matrix read once ("probe") or a
                              # nodal solve at every time step ("step"; same result, slower)

    [wires]                   # Ω
    r_row = 1.0
    r_col = 1.0
    r_source = 1.0
    r_sense = 1.0

    [spot_check]              # ngspice against the nodal solver
    enabled = true
    samples = 2
    steps = 8                 # time steps of the first layer compared
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cosim.errors import DataFileError
from cosim.s4d.config import StateSize, WiresSettings
from cosim.validation import load_toml, validate


def _check_bits(value: Any) -> Any:
    if isinstance(value, int) and not 2 <= value <= 8:
        raise ValueError("bits must be 2..8 or 'ternary'")
    return value


Bits = Annotated[Union[Literal["ternary"], int, None], AfterValidator(_check_bits)]
"""Crossbar-matrix precision: 2..8 bits, "ternary", or None for float."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Strict):
    channels: int = Field(32, ge=1, le=512)
    state_size: StateSize = 16
    layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.0, ge=0, lt=1)
    init: Literal["lin", "inv"] = "lin"
    dt_min: float = Field(0.01, gt=0)
    dt_max: float = Field(1.0, gt=0)
    variant: Literal["full", "delta"] = "delta"

    @model_validator(mode="after")
    def _dt(self) -> "ModelSettings":
        if self.dt_min > self.dt_max:
            raise ValueError("dt_min must not exceed dt_max")
        return self


class TrainingSettings(_Strict):
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(0.01, gt=0)
    ssm_lr: float = Field(0.001, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    split_seed: int = Field(0, ge=0, le=2**31 - 1)


class QATSettings(_Strict):
    bits: Bits = None
    scheme: Literal["block", "row", "channel"] = "block"
    start_epoch: int = Field(0, ge=0)


class NoiseSettings(_Strict):
    programming: bool = False
    model_file: Optional[Path] = None
    rel_sigma: Optional[float] = Field(None, ge=0, le=1)
    gain_sigma: float = Field(0.0, ge=0, le=0.5)


class StabilitySettings(_Strict):
    dt_floor: float = Field(0.0, ge=0)
    margin_floor: float = Field(0.0, ge=0, lt=1)
    stored_floor: bool = False
    stored_margin: float = Field(0.003, gt=0, lt=0.5)
    stored_penalty: float = Field(1.0, ge=0)


class PruneSettings(_Strict):
    keep_modes: Optional[int] = Field(None, ge=1)
    keep_channels: Optional[int] = Field(None, ge=1)
    finetune_epochs: int = Field(10, ge=0, le=10_000)


class TrainConfig(_Strict):
    """Everything ``cosim train`` does (module doc)."""

    seed: int = Field(0, ge=0, le=2**31 - 1)
    task: Optional[str] = None
    data: Optional[Path] = None
    threads: int = Field(1, ge=1, le=64)
    model: ModelSettings = Field(default_factory=ModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    qat: QATSettings = Field(default_factory=QATSettings)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)
    stability: StabilitySettings = Field(default_factory=StabilitySettings)
    prune: PruneSettings = Field(default_factory=PruneSettings)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.task is not None and self.data is not None:
            raise ValueError("give task or data, not both")
        if self.prune.keep_modes is not None and self.prune.keep_modes > self.model.state_size // 2:
            raise ValueError(f"prune.keep_modes must be <= state_size/2 = {self.model.state_size // 2}")
        if self.prune.keep_channels is not None and self.prune.keep_channels > self.model.channels:
            raise ValueError(f"prune.keep_channels must be <= channels = {self.model.channels}")
        return self


class SpotCheckSettings(_Strict):
    enabled: bool = True
    samples: int = Field(2, ge=1, le=64)
    steps: int = Field(8, ge=1, le=4096)
    timeout_s: float = Field(300.0, gt=0)


Level = Literal["float", "quantized", "devices", "devices_wires"]
LEVELS: tuple[str, ...] = ("float", "quantized", "devices", "devices_wires")


class DeployConfig(_Strict):
    """Everything ``cosim deploy`` does (module doc)."""

    levels: list[Level] = Field(default_factory=lambda: list(LEVELS))
    variants: Optional[list[Literal["full", "delta"]]] = None
    bits: Bits = None
    compensation: Optional[list[str]] = None
    mdm: list[bool] = Field(default_factory=lambda: [False])
    device_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    max_samples: int = Field(0, ge=0)
    model_file: Optional[Path] = None
    tolerance: float = Field(0.05, gt=0, lt=1)
    engine: Literal["probe", "step"] = "probe"
    wires: WiresSettings = Field(default_factory=WiresSettings)
    spot_check: SpotCheckSettings = Field(default_factory=SpotCheckSettings)

    @field_validator("device_seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one device seed")
        if any(s < 0 or s > 2**31 - 1 for s in value) or len(set(value)) != len(value):
            raise ValueError("device seeds must be distinct integers in 0 .. 2^31-1")
        return value

    @model_validator(mode="after")
    def _check(self) -> "DeployConfig":
        if not self.levels or len(set(self.levels)) != len(self.levels):
            raise ValueError("levels: give each of float, quantized, devices, devices_wires at most once")
        if not self.mdm:
            raise ValueError("mdm: give true, false or both")
        return self


def _relative(data: dict[str, Any], keys: tuple[str, ...], base: Path) -> None:
    """Resolve the file path at ``data[keys...]`` relative to ``base``."""
    *parents, last = keys
    node: Any = data
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and isinstance(node.get(last), str) and not Path(node[last]).is_absolute():
        node[last] = str((base / node[last]).resolve())


def load_train_config(path: Path | None = None, **overrides: Any) -> TrainConfig:
    """TRAIN.toml (None: defaults) with non-None ``overrides`` (seed, task, data) applied."""
    if overrides.get("task") is not None and overrides.get("data") is not None:
        raise DataFileError("give exactly one of --task NAME or --data FILE.npz, not both")
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = load_toml(path)
        _relative(data, ("data",), Path(path).parent)
        _relative(data, ("noise", "model_file"), Path(path).parent)
    if overrides.get("task") is not None or overrides.get("data") is not None:
        data.pop("task", None)
        data.pop("data", None)
    for key, value in overrides.items():
        if value is not None:
            data[key] = str(value) if isinstance(value, Path) else value
    return validate(TrainConfig, data, source)


def load_deploy_config(path: Path | None = None) -> DeployConfig:
    """DEPLOY.toml (None: defaults)."""
    if path is None:
        return DeployConfig()
    data = load_toml(path)
    _relative(data, ("model_file",), Path(path).parent)
    return validate(DeployConfig, data, str(path))
