"""Configuration of an S4D circuit study (``cosim s4d --config F.toml``), validated by pydantic.

Every key is optional; the defaults give the deterministic test model (docs/s4d.md) on one
layer crossbar with 1 Ω wires, the default device model, three device seeds, analog weights,
ideal converters and the compensation methods "none" and "gain".
An example with every key (values are examples, not all defaults)::

    seed = 0                      # input seed; device seeds default to seed, seed+1, ...
    variants = ["full", "delta"]  # crossbar matrices to study
    length = 256                  # kernel / input length L
    layout = "layer"              # "layer" (one block-diagonal crossbar) or "channel"
    scale = "column"              # weight→conductance scale per output ("column") or "global"
    weight_bits = 8               # device levels 2^(b-1) per cell (omit: analog targets)
    dac_bits = 8                  # omit for ideal converters
    adc_bits = 8
    mdm = true
    dac_balance = false           # fold per-state scales into the matrix (states use the DAC range)
    read_inputs = "uniform"       # NF/output-error inputs: "uniform" random or the "trajectory"

    [model]
    kind = "test"                 # "test" (deterministic), "lin" (S4D-Lin) or "inv" (S4D-Inv)
    channels = 4                  # H, N, init seed, dt range: for "lin"/"inv" only
    state_size = 16
    init_seed = 0
    method = "zoh"

    [wires]                       # Ω
    r_row = 1.0
    r_col = 1.0
    r_source = 1.0
    r_sense = 1.0

    [devices]
    model_file = "models/my.json" # relative to this file; omit: the packaged default model
    seeds = [0, 1, 2]
    cell_model = "linear"         # or "polynomial" (device I–V at the programmed states)
    tolerance = 0.05              # write-verify (every ProgramConfig field): relative band
    set_voltage = -2.0            # V
    reset_start = 0.5             # V
    reset_step = 0.01             # V, coarse RESET ramp step
    fine_step = 0.0025            # V, RESET step inside the band
    centred = true                # centred acceptance (no systematic bias)
    max_pulses = 300
    max_attempts = 6
    read_noise = false

    [compensation]
    methods = ["none", "gain"]    # any of "none", "gain", "predistort", "insitu"
    probe_vectors = 32            # gain: known random input vectors
    max_iterations = 12           # predistort: solver iterations (bound)
    tolerance = 1e-6              # predistort: relative matrix residual to stop at
    insitu_passes = 3             # insitu: programming passes
    insitu_tolerance = 0.01       # insitu: in-circuit error that sends a cell back

    [backends]
    nodal = true
    ngspice = true                # default false; in-process ngspice, first `ngspice_length` steps
    ngspice_length = 32

Unknown keys are errors (a typo must not be silently ignored); messages name the file and the
field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cosim.validation import load_toml, validate


def _even_state_size(value: int) -> int:
    if value % 2:
        raise ValueError("state_size must be even (complex modes come in conjugate pairs)")
    return value


StateSize = Annotated[int, Field(ge=2, le=256), AfterValidator(_even_state_size)]
"""State size N of an S4D layer: even (complex modes come in conjugate pairs), 2..256."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """Which S4D layer to study."""

    kind: Literal["test", "lin", "inv"] = "test"
    channels: int = Field(4, ge=1, le=64)
    state_size: StateSize = 16
    init_seed: int = Field(0, ge=0)
    dt_min: float = Field(1e-3, gt=0)
    dt_max: float = Field(1e-1, gt=0)
    method: Literal["zoh", "bilinear"] = "zoh"


class WiresSettings(_Strict):
    """Parasitic resistances [Ω] of the 'with wires' cases."""

    r_row: float = Field(1.0, gt=0)
    r_col: float = Field(1.0, gt=0)
    r_source: float = Field(1.0, gt=0)
    r_sense: float = Field(1.0, gt=0)


class DevicesConfig(_Strict):
    """Stochastic devices and their programming."""

    model_file: Optional[Path] = None
    seeds: Optional[list[int]] = None
    count: int = Field(3, ge=1, le=100)
    """Number of device seeds when ``seeds`` is not given (seed, seed+1, ...)."""
    tolerance: float = Field(0.05, gt=0, lt=1)
    set_voltage: float = Field(-2.0, lt=0)
    reset_start: float = Field(0.5, gt=0)
    reset_step: float = Field(0.01, gt=0)
    fine_step: float = Field(0.0025, gt=0)
    centred: bool = True
    max_pulses: int = Field(300, ge=2)
    max_attempts: int = Field(6, ge=1)
    read_noise: bool = False
    cell_model: Literal["linear", "polynomial"] = "linear"
    window_coverage: float = Field(0.99, gt=0.5, lt=1)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: Optional[list[int]]) -> Optional[list[int]]:
        if value is not None:
            if not value:
                raise ValueError("give at least one device seed")
            if any(s < 0 or s > 2**31 - 1 for s in value):
                raise ValueError("device seeds must be in 0 .. 2^31-1")
            if len(set(value)) != len(value):
                raise ValueError("device seeds must be distinct")
        return value


class CompensationSettings(_Strict):
    """Compensation methods of the study (see :mod:`cosim.compensation`)."""

    methods: list[Literal["none", "gain", "predistort", "insitu"]] = Field(default_factory=lambda: ["none", "gain"])
    probe_vectors: int = Field(32, ge=2, le=100_000)
    max_iterations: int = Field(12, ge=1, le=1000)
    tolerance: float = Field(1e-6, gt=0, lt=1)
    insitu_passes: int = Field(3, ge=1, le=100)
    insitu_tolerance: float = Field(0.01, gt=0, lt=1)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('give at least one of "none", "gain", "predistort", "insitu"')
        if len(set(value)) != len(value):
            raise ValueError("a method is listed twice")
        return value


class BackendsConfig(_Strict):
    """Which circuit solvers run."""

    nodal: bool = True
    ngspice: bool = False
    ngspice_length: int = Field(32, ge=2, le=4096)
    timeout_s: float = Field(300.0, gt=0)


class S4DStudyConfig(_Strict):
    """The whole study; see the module doc for the TOML form."""

    seed: int = Field(0, ge=0, le=2**31 - 1)
    variants: list[Literal["full", "delta"]] = Field(default_factory=lambda: ["full", "delta"])
    length: int = Field(256, ge=2, le=100_000)
    layout: Literal["layer", "channel"] = "layer"
    scale: Literal["column", "global"] = "column"
    weight_bits: Optional[int] = Field(None, ge=2, le=24)
    dac_bits: Optional[int] = Field(None, ge=2, le=24)
    adc_bits: Optional[int] = Field(None, ge=2, le=24)
    mdm: bool = True
    dac_balance: bool = False
    read_inputs: Literal["uniform", "trajectory"] = "uniform"
    model: ModelConfig = Field(default_factory=ModelConfig)
    wires: WiresSettings = Field(default_factory=WiresSettings)
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    backends: BackendsConfig = Field(default_factory=BackendsConfig)
    compensation: CompensationSettings = Field(default_factory=CompensationSettings)

    @model_validator(mode="after")
    def _check(self) -> "S4DStudyConfig":
        if not self.variants:
            raise ValueError("variants: give at least one of 'full', 'delta'")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants: listed twice")
        if not (self.backends.nodal or self.backends.ngspice):
            raise ValueError("backends: enable nodal or ngspice")
        if self.model.dt_min > self.model.dt_max:
            raise ValueError("model: dt_min must not exceed dt_max")
        return self

    def device_seeds(self) -> list[int]:
        """The device seeds used: the listed ones, or ``seed, seed+1, …`` (``devices.count``)."""
        if self.devices.seeds is not None:
            return list(self.devices.seeds)
        return [self.seed + k for k in range(self.devices.count)]

    def program_config(self) -> Any:
        """The write-verify settings (:class:`cosim.device.programming.ProgramConfig`)."""
        from cosim.device.programming import ProgramConfig

        keys = ProgramConfig.keys()
        return ProgramConfig(**{k: v for k, v in self.devices.model_dump().items() if k in keys})

    def compensation_options(self) -> Any:
        """The compensation settings (:class:`cosim.compensation.CompensationOptions`);
        probe vectors are drawn from the study seed."""
        from cosim.compensation import CompensationOptions

        c = self.compensation
        return CompensationOptions(
            probe_vectors=c.probe_vectors, probe_seed=self.seed, max_iterations=c.max_iterations,
            tolerance=c.tolerance, insitu_passes=c.insitu_passes, insitu_tolerance=c.insitu_tolerance,
        )

    def resolved(self) -> dict[str, Any]:
        """JSON-friendly dict of every setting, with the device seeds spelled out."""
        data = self.model_dump(mode="json")
        data["devices"]["seeds"] = self.device_seeds()
        return data


def parse_study_config(data: dict[str, Any], source: str = "configuration") -> S4DStudyConfig:
    """Validate a dict; a bad value raises :class:`CosimError` naming ``source`` and the field."""
    return validate(S4DStudyConfig, data, source)


def load_study_config(path: Path | None = None, seed: int | None = None) -> S4DStudyConfig:
    """Read a TOML study file (None: defaults); ``seed`` overrides the file's ``seed``."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = load_toml(path)
        model_file = data.get("devices", {}).get("model_file") if isinstance(data.get("devices"), dict) else None
        if isinstance(model_file, str) and not Path(model_file).is_absolute():
            data["devices"]["model_file"] = str((Path(path).parent / model_file).resolve())
    if seed is not None:
        data["seed"] = seed
    return parse_study_config(data, source)
