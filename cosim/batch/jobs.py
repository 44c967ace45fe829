"""Registry of batch job kinds.

A *job kind* is a plain function ``(params: dict, seed: int) -> dict | list[dict]`` registered
under a name::

    from cosim.batch.jobs import register_job

    @register_job("my_kind", params=MyParams, files=lambda p: [Path(p["netlist"])])
    def my_kind(params: dict, seed: int) -> dict:
        ...
        return {"nf": 0.12, "iterations": 7}

* ``params`` (optional): a pydantic model; every grid point is validated against it when the
  sweep file is loaded (errors name the field), and the job receives the validated values
  (defaults filled in) as a dict.
* ``files`` (optional): ``params -> list[Path]`` naming the files the job reads (netlists,
  OSDI, model files); their SHA-256 go into the sweep manifest.
* ``warmup`` (optional): a no-argument function the local pool's workers call once before
  they fork job processes (load compiled kernels, cache data every job reads), so that each
  job process inherits the work instead of redoing it. It must not start threads.
* The return value is one result row (dict of scalars: int, float, bool, str, None) or a list
  of such rows. Draw every random number from ``seed``.

Discovery: the built-in kinds live in :mod:`cosim.batch.batch_jobs`; any module named
``cosim.<area>.batch_jobs`` is imported automatically, and a sweep file may list extra modules
(``modules = ["mypkg.jobs"]``) that are imported in the runner and in every job process.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cosim.errors import CosimError

JobResult = dict[str, Any] | list[dict[str, Any]]
JobFunction = Callable[[dict[str, Any], int], JobResult]

_DISCOVERY_MODULE = "batch_jobs"


@dataclass(frozen=True)
class JobKind:
    """A registered job kind."""

    name: str
    function: JobFunction
    params_model: type[BaseModel] | None = None
    files: Callable[[dict[str, Any]], Iterable[Path]] | None = None
    warmup: Callable[[], None] | None = None

    @property
    def module(self) -> str:
        """Module that defines the function (imported again in job processes)."""
        return self.function.__module__


_REGISTRY: dict[str, JobKind] = {}


def register_job(
    name: str,
    *,
    params: type[BaseModel] | None = None,
    files: Callable[[dict[str, Any]], Iterable[Path]] | None = None,
    warmup: Callable[[], None] | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Decorator registering ``function`` as job kind ``name`` (see the module docstring)."""
    if not name.isidentifier():
        raise ValueError(f"job kind name {name!r} must be an identifier")

    def decorate(function: JobFunction) -> JobFunction:
        existing = _REGISTRY.get(name)
        same = existing is not None and (
            existing.function.__module__,
            existing.function.__qualname__,
        ) == (function.__module__, function.__qualname__)
        if existing is not None and not same:
            raise CosimError(
                f"job kind {name!r} is already registered by "
                f"{existing.module}.{existing.function.__qualname__}"
            )
        _REGISTRY[name] = JobKind(name, function, params, files, warmup)
        return function

    return decorate


def discover_job_kinds(extra_modules: Iterable[str] = ()) -> None:
    """Import the built-in kinds, every ``cosim.<area>.batch_jobs`` module and ``extra_modules``."""
    import cosim

    names = ["cosim.batch.batch_jobs"]
    for folder in cosim.__path__:
        for info in pkgutil.iter_modules([folder]):
            # look for the file first: importing every area package just to ask is slow
            if info.ispkg and (Path(folder) / info.name / f"{_DISCOVERY_MODULE}.py").is_file():
                names.append(f"cosim.{info.name}.{_DISCOVERY_MODULE}")
    names.extend(extra_modules)
    for module in names:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise CosimError(f"job module {module!r} not found (is it on PYTHONPATH?)") from exc
            raise


def get_job_kind(name: str) -> JobKind:
    """The registered kind ``name``; a clear error listing the known kinds otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise CosimError(f"unknown job kind {name!r} (known: {known})") from None


def registered_kinds() -> list[str]:
    """Names of all registered kinds, sorted."""
    return sorted(_REGISTRY)
