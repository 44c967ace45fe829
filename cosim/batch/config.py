"""Sweep configuration: a TOML file validated with pydantic, expanded into jobs.

Example (see ``data/sweeps/example.toml`` and ``docs/batch.md``)::

    name = "wires"
    kind = "crossbar_ideal_nf"
    timeout_s = 60          # per attempt, seconds
    retries = 1             # extra attempts after a failure
    seeds = { count = 3, base = 1000 }   # or seeds = [1, 2, 3]

    [grid]                  # cartesian product of these lists
    rows = [8, 16]
    r_wire = [0.5, 1.0, 2.0]

    [fixed]                 # the same for every job
    cols = 8

Each grid point × seed is one :class:`Job`, identified by a hash of (kind, params, seed), so the
same job has the same id in every sweep file that contains it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from cosim.batch.jobs import discover_job_kinds, get_job_kind
from cosim.validation import describe_errors
from cosim.errors import CosimError

Scalar = StrictBool | StrictInt | StrictFloat | str
RESERVED_COLUMNS = frozenset(
    {"job_id", "kind", "status", "error", "seed", "attempt", "elapsed_s", "pid", "row"}
)
MAX_SEED = 2**63 - 1
DEFAULT_MAX_JOBS = 100_000
"""Largest sweep accepted unless the file raises ``max_jobs`` (each job costs memory in the
runner and a part file on disk; a typo in ``seeds.count`` should not mean a million jobs)."""
NOT_FINGERPRINTED = ("max_jobs",)
"""Fields that do not change any job's result (left out of :meth:`Sweep.fingerprint`)."""


def _value_kind(value: Any) -> str:
    """'boolean', 'number' (int or float) or 'text': one parquet column type each."""
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "text"


class SweepConfigError(CosimError):
    """The sweep file is malformed; the message names the file and field."""


class SeedRange(BaseModel):
    """``count`` consecutive seeds starting at ``base``."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=1, le=100_000_000)
    base: int = Field(default=0, ge=0, le=MAX_SEED)


class SweepConfig(BaseModel):
    """The validated content of a sweep file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str = Field(min_length=1)
    grid: dict[str, list[Scalar]] = Field(default_factory=dict)
    fixed: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    seeds: list[int] | SeedRange = Field(default_factory=lambda: [0])
    timeout_s: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
    """Wall-clock limit of one attempt, seconds."""
    retries: int = Field(default=1, ge=0, le=10)
    """Extra attempts after a failed one (exception, timeout, crash)."""
    modules: list[str] = Field(default_factory=list)
    """Extra Python modules that register job kinds."""
    files: list[str] = Field(default_factory=list)
    """Files the sweep depends on (paths relative to the sweep file); hashed into the manifest."""
    max_jobs: int = Field(default=DEFAULT_MAX_JOBS, ge=1)
    """Refuse the sweep if grid points × seeds exceed this (an explicit override)."""

    @field_validator("grid")
    @classmethod
    def _grid_lists_valid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid parameter {key!r} has an empty list of values")
            if len({json.dumps(v) for v in values}) != len(values):
                raise ValueError(f"grid parameter {key!r} repeats a value")
            kinds = {_value_kind(v) for v in values}
            if len(kinds) > 1:
                raise ValueError(f"grid parameter {key!r} mixes {' and '.join(sorted(kinds))}")
        return grid

    @field_validator("seeds")
    @classmethod
    def _seeds_valid(cls, seeds: list[int] | SeedRange) -> list[int] | SeedRange:
        if isinstance(seeds, list):
            if not seeds:
                raise ValueError("seeds is an empty list")
            if len(set(seeds)) != len(seeds):
                raise ValueError("seeds repeats a value")
            if any(s < 0 or s > MAX_SEED for s in seeds):
                raise ValueError(f"seeds must lie in [0, {MAX_SEED}]")
        return seeds

    @model_validator(mode="after")
    def _parameter_names_valid(self) -> SweepConfig:
        overlap = sorted(set(self.grid) & set(self.fixed))
        if overlap:
            raise ValueError(f"parameters {overlap} are both in [grid] and [fixed]")
        for key in [*self.grid, *self.fixed]:
            if not key.isidentifier():
                raise ValueError(f"parameter name {key!r} is not an identifier")
            if key in RESERVED_COLUMNS:
                raise ValueError(f"parameter name {key!r} is reserved for a result column")
        return self

    def n_jobs(self) -> int:
        """Grid points × seeds, computed without expanding either."""
        count = self.seeds.count if isinstance(self.seeds, SeedRange) else len(self.seeds)
        for values in self.grid.values():
            count *= len(values)
        return count

    def seed_list(self) -> list[int]:
        """The seeds, resolved to a list."""
        if isinstance(self.seeds, SeedRange):
            return [self.seeds.base + k for k in range(self.seeds.count)]
        return list(self.seeds)

    def grid_points(self) -> list[dict[str, Any]]:
        """Cartesian product of the grid (in file order), each merged with the fixed params."""
        keys = list(self.grid)
        points = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            points.append({**self.fixed, **dict(zip(keys, values))})
        return points


@dataclass(frozen=True)
class Job:
    """One unit of work: a job kind applied to one parameter set with one seed."""

    id: str
    kind: str
    params: dict[str, Any]
    seed: int


def job_id(kind: str, params: dict[str, Any], seed: int) -> str:
    """Stable id: first 16 hex digits of SHA-256 over canonical JSON of (kind, params, seed)."""
    text = json.dumps(
        {"kind": kind, "params": params, "seed": seed}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep: its file, validated config and expanded jobs."""

    path: Path
    config: SweepConfig
    jobs: list[Job]

    def resolved(self) -> dict[str, Any]:
        """The config with defaults filled in and seeds resolved (JSON-ready)."""
        data = self.config.model_dump(mode="json", exclude=set(NOT_FINGERPRINTED))
        data["seeds"] = self.config.seed_list()
        return data

    def fingerprint(self) -> str:
        """Hash of the resolved config; a different value means a different sweep."""
        text = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def declared_files(self) -> list[Path]:
        """Files listed in the sweep and declared by the job kind, deduplicated, sorted."""
        files = {(self.path.parent / f).resolve() for f in self.config.files}
        kind = get_job_kind(self.config.kind)
        if kind.files is not None:
            for job in self.jobs:
                files.update(Path(f).resolve() for f in kind.files(job.params))
        return sorted(files)


def _validate_params(path: Path, config: SweepConfig, point: dict[str, Any]) -> dict[str, Any]:
    kind = get_job_kind(config.kind)
    if kind.params_model is None:
        return point
    try:
        return kind.params_model.model_validate(point).model_dump(mode="json")
    except ValidationError as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in point.items() if k in config.grid)
        raise SweepConfigError(
            describe_errors(f"{path}: grid point ({shown or 'fixed only'})", exc)
        ) from None


def parse_sweep(text: str, path: Path) -> Sweep:
    """Parse and validate sweep TOML ``text`` (``path`` is used in messages and for ``files``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise SweepConfigError(describe_errors(str(path), exc)) from None
    try:
        discover_job_kinds(config.modules)
        get_job_kind(config.kind)
    except CosimError as exc:
        raise SweepConfigError(f"{path}: field 'kind': {exc}") from None
    n_jobs = config.n_jobs()
    if n_jobs > config.max_jobs:
        raise SweepConfigError(
            f"{path}: the sweep expands to {n_jobs:,} jobs (grid points × seeds), over the "
            f"limit of {config.max_jobs:,}; check 'seeds' and '[grid]', or raise the limit "
            f"with max_jobs = {n_jobs} in the sweep file"
        )
    for name in config.files:
        if not (path.parent / name).is_file():
            raise SweepConfigError(f"{path}: field 'files': {name!r} does not exist")
    jobs = []
    for point in config.grid_points():
        params = _validate_params(path, config, point)
        for seed in config.seed_list():
            jobs.append(Job(job_id(config.kind, params, seed), config.kind, params, seed))
    if len({job.id for job in jobs}) != len(jobs):
        raise SweepConfigError(
            f"{path}: field 'grid': two grid points give the same parameters after validation"
        )
    return Sweep(path=path, config=config, jobs=jobs)


def load_sweep(path: str | Path) -> Sweep:
    """Read, validate and expand the sweep file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepConfigError(f"{path}: cannot read sweep file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SweepConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are "
                               "UTF-8") from None
    return parse_sweep(text, path)
