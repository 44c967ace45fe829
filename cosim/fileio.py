"""Atomic file output: every file cosim writes appears whole or not at all.

Each writer creates a temporary file in the destination's folder (so the final rename stays
on one file system), writes and flushes it, then moves it into place with :func:`os.replace`.
On any error the temporary file is removed and the destination is left as it was.

``tempfile.mkstemp`` creates its file with mode 0600; before the rename the file gets the mode
an ordinary ``open(..., "w")`` would have given it, ``0666`` minus the process umask
(:func:`current_umask`), so results are as readable as any other file the user writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "current_umask",
    "make_ordinary",
    "write_text_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_frame_atomic",
    "save_figure_atomic",
    "sha256_file",
]


def current_umask() -> int:
    """The process umask, read without changing it (``/proc/self/status`` on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (briefly) and restoring it
    os.umask(mask)
    return mask


def make_ordinary(path: str | os.PathLike[str], mode: int = 0o666) -> None:
    """Give a freshly created temporary file ``mode`` minus the umask (mkstemp made it 0600)."""
    os.chmod(path, mode & ~current_umask())


_PENDING: set[str] = set()
"""Temporary files of atomic writes in progress (removed by :func:`remove_pending_temporaries`)."""


def remove_pending_temporaries() -> None:
    """Delete the temporary files of atomic writes in progress (before a hard exit)."""
    for name in list(_PENDING):
        try:
            os.unlink(name)
        except OSError:
            pass


@contextmanager
def atomic_path(destination: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it into place on success.

    The temporary name keeps the destination's suffix so that writers choosing a format by
    suffix (matplotlib, pandas) behave as for the final name. Parent folders are created.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=f".tmp{destination.suffix}"
    )
    os.close(fd)
    temp = Path(temp_name)
    _PENDING.add(temp_name)
    try:
        make_ordinary(temp)
        yield temp
        if fsync:
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
        _PENDING.discard(temp_name)


def write_text_atomic(destination: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``destination`` atomically; return the path."""
    with atomic_path(destination) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(destination)


def write_bytes_atomic(destination: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``destination`` atomically; return the path."""
    with atomic_path(destination) as temp:
        temp.write_bytes(data)
    return Path(destination)


def write_json_atomic(destination: str | os.PathLike[str], data: Any, indent: int = 1) -> Path:
    """Write ``data`` as JSON (with a final newline) atomically; return the path."""
    return write_text_atomic(destination, json.dumps(data, indent=indent) + "\n")


def write_frame_atomic(destination: str | os.PathLike[str], frame: Any, **options: Any) -> Path:
    """Write a pandas DataFrame as CSV (``.csv``) or Parquet (anything else) atomically."""
    with atomic_path(destination) as temp:
        if Path(destination).suffix.lower() == ".csv":
            frame.to_csv(temp, index=False, **options)
        else:
            frame.to_parquet(temp, index=False, **options)
    return Path(destination)


def save_figure_atomic(destination: str | os.PathLike[str], figure: Any, dpi: int = 120) -> Path:
    """Save a matplotlib figure (format from the suffix) atomically; return the path."""
    with atomic_path(destination) as temp:
        figure.savefig(temp, dpi=dpi, format=Path(destination).suffix.lstrip(".") or None)
    return Path(destination)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
