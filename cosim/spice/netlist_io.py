"""Reading user netlists safely (size limit, clear errors, solver-settings check)."""

from __future__ import annotations

import logging
from pathlib import Path


from cosim.errors import NetlistError
from cosim.spice.render import check_netlist_settings

log = logging.getLogger(__name__)

MAX_NETLIST_BYTES = 200 * 1024 * 1024


def read_netlist_text(path: Path | str) -> str:
    """Read a netlist file (any simulator's dialect) as UTF-8 text.

    Raises :class:`NetlistError` naming the file if it is missing, not a regular file, larger
    than :data:`MAX_NETLIST_BYTES`, not UTF-8, or holds no line after its first.
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
    return text


def read_netlist_file(path: Path | str) -> str:
    """Read a SPICE netlist as text; raise :class:`NetlistError` naming the file if unusable.

    A netlist's first line is its title; it needs at least one more line. Netlists lacking
    ``.options klu`` or ``set num_threads=1`` are accepted with a logged warning (cosim's
    own templates always carry both).
    """
    text = read_netlist_text(path)
    try:
        check_netlist_settings(text, str(path), rendered=False)
    except NetlistError as exc:
        log.warning("%s (running it anyway; expect a slower solve)", exc)
    return text
