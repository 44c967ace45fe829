"""Reading user netlists and writing result tables safely (atomic replace, clear errors)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from cosim.errors import DataFileError, NetlistError
from cosim.spice.render import check_netlist_settings

log = logging.getLogger(__name__)

MAX_NETLIST_BYTES = 200 * 1024 * 1024


def read_netlist_file(path: Path | str) -> str:
    """Read a SPICE netlist as text; raise :class:`NetlistError` naming the file if unusable.

    A netlist's first line is its title; it needs at least one more line. Netlists lacking
    ``.options klu`` or ``set num_threads=1`` are accepted with a logged warning (cosim's
    own templates always carry both).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise NetlistError(f"cannot read netlist {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise NetlistError(f"netlist {path} is not a regular file")
    if size > MAX_NETLIST_BYTES:
        raise NetlistError(f"netlist {path} is {size} bytes, over the {MAX_NETLIST_BYTES} limit")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NetlistError(f"netlist {path} is not UTF-8 text (byte {exc.start})") from exc
    if len([line for line in text.splitlines() if line.strip()]) < 2:
        raise NetlistError(f"netlist {path} is empty or has only a title line")
    try:
        check_netlist_settings(text, str(path))
    except NetlistError as exc:
        log.warning("%s (running it anyway; expect a slower solve)", exc)
    return text


def write_frame_atomic(frame: pd.DataFrame, destination: Path | str) -> Path:
    """Write ``frame`` as Parquet (or CSV if the name ends in ``.csv``) atomically."""
    destination = Path(destination)
    folder = destination.parent if str(destination.parent) else Path(".")
    if not folder.is_dir():
        raise DataFileError(f"output folder {folder} does not exist (for {destination})")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        if destination.suffix.lower() == ".csv":
            frame.to_csv(tmp_name, index=False)
        else:
            frame.to_parquet(tmp_name, index=False)
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return destination
