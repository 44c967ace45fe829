"""Safe netlist rendering: a Jinja2 environment over ``templates/`` that escapes for SPICE.

Netlists are code: a value such as ``"1k\\n.control\\nshell rm -rf ~"`` pasted into a card
would add commands. This environment therefore refuses to print anything that has not been
made safe by code:

* ``{{ x | ident }}`` — an identifier (element, node, model or parameter name) matching
  :data:`IDENT_PATTERN`;
* ``{{ x | num }}`` — a finite real number, formatted by :func:`format_number` to
  :data:`NETLIST_DIGITS` significant digits (plain ``int`` / ``float`` values are formatted
  this way automatically);
* ``{{ x | path }}`` — an absolute file path made of a conservative character set;
* ``{{ x | title }}`` — free text for the title line, restricted to printable characters
  that cannot start a card.

Any other value reaching the output (a ``str``, ``None``, a list, ...) raises
:class:`~cosim.errors.NetlistError` naming the value. Every netlist rendered through
:func:`render_netlist` must carry ``.options klu`` and ``set num_threads=1`` (see
``templates/base.cir.j2``); the function checks this.
"""

from __future__ import annotations

import math
import numbers
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from cosim.errors import NetlistError
from cosim.paths import TEMPLATES_DIR

# Patterns are applied with ``fullmatch``: ``match`` with ``$`` would accept a trailing
# newline ("r1\n" → a new card).
IDENT_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
"""Identifiers: a letter or underscore, then letters, digits, underscores; at most 64 chars."""

NODE_PATTERN = re.compile(r"^(?:0|[A-Za-z_][A-Za-z0-9_]{0,63})$")
"""Node names: an identifier, or ``0`` for ground."""

PATH_PATTERN = re.compile(r"^/[A-Za-z0-9_./+\-]{1,1000}$")
"""Absolute paths without spaces, quotes, semicolons or newlines."""

TITLE_PATTERN = re.compile(r"^[A-Za-z0-9 _.,:=()+\-/×]{0,200}$")

REQUIRED_LINES = (".options klu", "set num_threads=1")
_KLU_RE = re.compile(r"^\.options?\b(?:.*\s)?klu(?:\s|$)")
_THREADS_RE = re.compile(r"^set\s+num_threads\s*=\s*1\s*$")


class Spice(str):
    """Text that has been checked for safe inclusion in a netlist."""


def ident(value: Any) -> Spice:
    """Check that ``value`` is a SPICE identifier and return it marked safe."""
    if not isinstance(value, str) or not IDENT_PATTERN.fullmatch(value):
        raise NetlistError(
            f"invalid identifier {value!r}: must match {IDENT_PATTERN.pattern} "
            "(letters, digits, underscore; no spaces, dots, newlines or SPICE syntax)"
        )
    return Spice(value)


def node(value: Any) -> Spice:
    """Check that ``value`` is a node name (identifier or ``0``), or an int ≥ 0."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return Spice(str(int(value)))
    if not isinstance(value, str) or not NODE_PATTERN.fullmatch(value):
        raise NetlistError(f"invalid node name {value!r}: must match {NODE_PATTERN.pattern}")
    return Spice(value)


NETLIST_DIGITS = 12
"""Significant digits of a float printed into a netlist or Verilog-A file by default.

Twelve digits keep every value to a relative 5e-13 (far below any simulator tolerance) while
dropping the last bits of a double, which differ between CPUs and math libraries (e.g. an
AVX-512 ``exp``): the same inputs print the same text on any x86-64 machine except in the
rare case where a value lies on a rounding boundary, so golden files are compared as numbers.
"""


def format_number(value: Any, digits: int | None = None) -> Spice:
    """Format a finite real number for SPICE, no units.

    By default :data:`NETLIST_DIGITS` significant digits, written as the shortest text of the
    rounded value (``2.0``, ``0.1``, ``18992.4558687``); with ``digits``, that many
    significant digits in ``%g`` form.

    ``bool``, strings, NaN and infinities are refused: SPICE reads ``1meg`` and ``1m``
    differently, so only code-formatted numbers are allowed.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise NetlistError(f"invalid number {value!r}: expected a finite real number")
    as_float = float(value)
    if not math.isfinite(as_float):
        raise NetlistError(f"invalid number {value!r}: must be finite")
    if isinstance(value, (int, np.integer)):
        return Spice(str(int(value)))
    if digits is None:
        return Spice(repr(float(f"{as_float:.{NETLIST_DIGITS}g}")))
    return Spice(f"{as_float:.{digits}g}")


def path(value: Any) -> Spice:
    """Check an absolute file path (e.g. an OSDI file for ``pre_osdi``)."""
    text = str(value) if isinstance(value, Path) else value
    if not isinstance(text, str) or not PATH_PATTERN.fullmatch(text):
        raise NetlistError(
            f"invalid path {value!r}: must be absolute and use only letters, digits and _./+-"
        )
    return Spice(text)


def title(value: Any) -> Spice:
    """Check free text for the title/comment line."""
    if not isinstance(value, str) or not TITLE_PATTERN.fullmatch(value):
        raise NetlistError(f"invalid title {value!r}: use letters, digits, spaces and _.,:=()+-/")
    return Spice(value)


def _finalize(value: Any) -> Any:
    if isinstance(value, Spice):
        return value
    if isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool):
        return format_number(value)
    raise NetlistError(
        f"refusing to write unchecked value {value!r} into a netlist; "
        "pass it through |ident, |node, |num, |path or |title"
    )


@lru_cache(maxsize=4)
def environment(templates_dir: str = str(TEMPLATES_DIR)) -> jinja2.Environment:
    """The Jinja2 environment for netlists and Verilog-A templates in ``templates_dir``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(ident=ident, node=node, num=format_number, path=path, title=title)
    return env


def render(template_name: str, **context: Any) -> str:
    """Render any template under ``templates/`` with the SPICE-safe environment."""
    try:
        return environment().get_template(template_name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise NetlistError(f"template not found: {exc.name} (looked in {TEMPLATES_DIR})") from exc
    except jinja2.UndefinedError as exc:
        raise NetlistError(f"template {template_name}: {exc.message}") from exc


def render_netlist(template_name: str, **context: Any) -> str:
    """Render a netlist template and check it carries the mandatory solver settings."""
    text = render(template_name, **context)
    check_netlist_settings(text, template_name)
    return text


def check_netlist_settings(text: str, source: str = "netlist", rendered: bool = True) -> None:
    """Raise :class:`NetlistError` unless ``text`` selects KLU and one OSDI thread.

    Accepted spellings: an ``.option``/``.options`` card whose words include ``klu`` (other
    options may follow, e.g. ``.options klu reltol=1e-6``) and ``set num_threads=1``
    (spaces around ``=`` allowed). ``rendered``: the text came from a cosim template (the
    message says so); False for a netlist a user wrote.
    """
    missing = []
    lines = [line.strip().lower() for line in text.splitlines()]
    if not any(_KLU_RE.match(line) for line in lines):
        missing.append(REQUIRED_LINES[0])
    if not any(_THREADS_RE.match(line) for line in lines):
        missing.append(REQUIRED_LINES[1])
    if missing:
        what = "rendered netlist" if rendered else "netlist"
        raise NetlistError(f"{source}: {what} lacks {', '.join(missing)}")
