"""Batch sweeps: TOML sweep files → jobs → isolated runs (local pool or Dask) → parquet.

Entry points: :func:`cosim.batch.config.load_sweep`, :func:`cosim.batch.runner.run_sweep`,
:func:`cosim.batch.report.build_report`, and :func:`cosim.batch.jobs.register_job` for new
job kinds. See ``docs/batch.md``.
"""

from cosim.batch.config import Job, Sweep, SweepConfig, SweepConfigError, load_sweep, parse_sweep
from cosim.batch.jobs import JobKind, discover_job_kinds, get_job_kind, register_job

__all__ = [
    "Job",
    "JobKind",
    "Sweep",
    "SweepConfig",
    "SweepConfigError",
    "discover_job_kinds",
    "get_job_kind",
    "load_sweep",
    "parse_sweep",
    "register_job",
]
