"""Turning user-caused failures into one ``error: ...`` line, and checks done before work.

:func:`guard_commands` wraps every registered command once: a :class:`~cosim.errors.CosimError`,
an :class:`OSError` (a path that cannot be read or written) or a :class:`MemoryError` becomes
``error: <message>`` on stderr and exit status 2, without a traceback. Every other exception
is a bug and keeps its traceback; ``COSIM_TRACEBACK=1`` in the environment shows the traceback
of the handled ones too.

Output policy (see docs/commands/index.md): an output *file* that exists is replaced
atomically; an output file path that is a folder, or an output *folder* path that is a file,
is refused before any work is done.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
from pathlib import Path
from typing import Any, Callable

import typer

from cosim.errors import CosimError

EXIT_USER_ERROR = 2


def _describe_os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else None
    reason = exc.strerror or type(exc).__name__
    if where is not None and exc.filename2 is not None:
        return f"{where} -> {exc.filename2}: {reason}"
    return f"{where}: {reason}" if where is not None else reason


def guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` with CosimError / OSError / MemoryError turned into an ``error:`` line."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("COSIM_TRACEBACK"):  # debugging: let everything through
            return callback(*args, **kwargs)
        try:
            return callback(*args, **kwargs)
        except CosimError as exc:
            message = str(exc)
        except MemoryError:
            message = ("out of memory; reduce the problem size (array, devices, cycles) or "
                       "run on a machine with more memory")
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # output piped into `head`: not an error
                raise typer.Exit(code=0) from None
            message = _describe_os_error(exc)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(code=EXIT_USER_ERROR)

    run.__cosim_guarded__ = True  # type: ignore[attr-defined]
    return run


def guard_commands(app: typer.Typer) -> None:
    """Wrap the callback of every command of ``app`` and of its sub-groups (once)."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "__cosim_guarded__", False):
            info.callback = guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_commands(group.typer_instance)


# --------------------------------------------------------------------------- outputs
def check_output_file(path: Path, option: str = "--output") -> Path:
    """Refuse an output file path that is a folder or lies below a file; return it.

    An existing file is fine: it is replaced atomically when the command succeeds.
    """
    if path.is_dir():
        raise CosimError(f"{option} {path}: is a folder; give a file name")
    _check_parents(path, option)
    return path


FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_file(path: Path, option: str = "--output") -> Path:
    """:func:`check_output_file` for a figure: the name must end in .png, .pdf or .svg."""
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise CosimError(f"{option} {path}: a figure needs a .png, .pdf or .svg name")
    return check_output_file(path, option)


def check_output_folder(path: Path, option: str = "--output") -> Path:
    """Refuse an output folder path that is an existing file (or lies below a file)."""
    if path.exists() and not path.is_dir():
        raise CosimError(f"{option} {path}: is a file; give a folder")
    _check_parents(path, option)
    return path


def _check_parents(path: Path, option: str) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CosimError(f"{option} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CosimError(f"{option} {path}: folder {parent} is not writable")
            return


# --------------------------------------------------------------------------- memory
def available_memory_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by an address-space limit."""
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError):
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(int(soft))
    return min(limits) if limits else None


def check_memory(needed_bytes: float, what: str) -> None:
    """Raise CosimError before the work when ``what`` needs more memory than is available."""
    available = available_memory_bytes()
    if available is not None and needed_bytes > available:
        raise CosimError(f"{what} needs about {_gb(needed_bytes)} of memory, but only "
                         f"{_gb(available)} is available; use a smaller size")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"
