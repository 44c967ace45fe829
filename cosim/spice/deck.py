"""Flatten and check a netlist before it reaches libngspice (the in-process backend).

ngspice treats several things in a netlist as *commands*, and its ``shell`` command (or a
backquote in any command line) runs a program:

* the ``.control`` … ``.endc`` block, in the netlist **and in every file it includes**;
* comment lines starting ``*#`` (an old SPICE3 way of writing a control line);
* a deck whose title line is ``*ng_script`` (the whole file is a script);
* a ``.spiceinit`` file in the working directory (read when the simulator starts).

The in-process backend promises that a netlist cannot run a shell command (see
``docs/security.md``). It therefore never lets ngspice open a netlist file itself: this module
reads every ``.include`` and ``.lib`` file, checks each line and splices the text in, so the
circuit handed to ``ngSpice_Circ`` holds no include card at all. Any ``.control``, ``.endc`` or
``*#`` line in an included file, and any ``*#`` line or ``*ng_script`` title in the netlist
itself, raises :class:`~cosim.errors.NetlistError` naming the file and line.

Include rules (those of ngspice): a card starting ``.inc`` (``.include``, ``.inc``) names one
file; ``.lib FILE SECTION`` splices the lines between ``.lib SECTION`` and the next ``.endl`` of
FILE. A relative name is resolved against the folder of the file that holds the card (for
netlist text: the folder the caller gives, by default the working directory); quotes around the
name are removed and ``~`` expands to the home folder. Includes nest up to
:data:`MAX_DEPTH` levels; a file including itself is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cosim.errors import NetlistError

MAX_DEPTH = 20
"""Deepest chain of nested includes accepted."""
MAX_TOTAL_BYTES = 200 * 1024 * 1024
"""Largest flattened netlist (all included files together), bytes."""

_INCLUDE_RE = re.compile(r"^\.inc\S*(?:\s+(?P<rest>.*))?$", re.IGNORECASE)
_LIB_RE = re.compile(r"^\.lib\S*(?:\s+(?P<rest>.*))?$", re.IGNORECASE)
_ENDL_RE = re.compile(r"^\.endl\b", re.IGNORECASE)
_COMMAND_CARD_RE = re.compile(r"^\.(control|endc)\b", re.IGNORECASE)


@dataclass(frozen=True)
class SourceLine:
    """One line of the flattened netlist and where it came from (for messages)."""

    text: str
    origin: str
    """File name, or ``""`` for netlist text without a file."""
    number: int
    """1-based line number in ``origin``."""


def _where(origin: str, number: int) -> str:
    return f"{origin}: line {number}" if origin else f"line {number}"


def refuse_command_lines(line: str, origin: str, number: int, *, included: bool) -> None:
    """Raise :class:`NetlistError` if ``line`` would make ngspice run commands.

    ``*#`` lines are refused everywhere; ``.control`` / ``.endc`` only in included files (the
    netlist's own control block is translated by :mod:`cosim.spice.pyspice_backend`).
    """
    stripped = line.strip()
    if stripped.startswith("*#"):
        raise NetlistError(
            f"{_where(origin, number)}: '*#' lines are ngspice commands, not comments; "
            "the in-process backend refuses them (write '* #' for a comment)"
        )
    if included and _COMMAND_CARD_RE.match(stripped):
        raise NetlistError(
            f"{_where(origin, number)}: {stripped.split()[0]} in an included file: the "
            "in-process backend refuses control blocks outside the netlist itself "
            "(they can run shell commands)"
        )


def _file_name(rest: str | None, origin: str, number: int, card: str) -> tuple[str, str]:
    """The (unquoted) file name after ``card`` and the rest of the line."""
    rest = (rest or "").strip()
    if not rest:
        raise NetlistError(f"{_where(origin, number)}: {card} names no file")
    if rest[0] in "'\"":
        quote = rest[0]
        end = rest.find(quote, 1)
        if end < 0:
            raise NetlistError(f"{_where(origin, number)}: {card} file name has no closing quote")
        return rest[1:end], rest[end + 1 :].strip()
    name, *tail = rest.split(None, 1)  # a space or a tab separates the name
    return name, tail[0].strip() if tail else ""


def _resolve(name: str, folder: Path, origin: str, number: int) -> Path:
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = folder / path
    path = path.resolve()
    if not path.is_file():
        raise NetlistError(f"{_where(origin, number)}: included file {name} not found ({path})")
    return path


class _Flattener:
    """Splices included files into the line list, checking every line it reads."""

    def __init__(self) -> None:
        self.total_bytes = 0

    def read(self, path: Path, origin: str, number: int) -> list[str]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NetlistError(
                f"{_where(origin, number)}: cannot read {path}: {exc.strerror or exc}"
            ) from None
        self.total_bytes += len(data)
        if self.total_bytes > MAX_TOTAL_BYTES:
            raise NetlistError(f"{path}: included files exceed {MAX_TOTAL_BYTES} bytes in total")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NetlistError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        lines = text.splitlines()
        for k, line in enumerate(lines, start=1):  # the whole file: ngspice reads all of it
            refuse_command_lines(line, str(path), k, included=True)
        return lines

    def expand(
        self, lines: list[SourceLine], folder: Path, chain: tuple[tuple[Path, str | None], ...]
    ) -> list[SourceLine]:
        out: list[SourceLine] = []
        for line in lines:
            stripped = line.text.strip()
            include = _INCLUDE_RE.match(stripped)
            library = None if include else _LIB_RE.match(stripped)
            if include:
                name, _ = _file_name(include["rest"], line.origin, line.number, ".include")
                out.extend(self._splice(name, None, line, folder, chain))
            elif library:
                name, section = _file_name(library["rest"], line.origin, line.number, ".lib")
                if not section:  # ".lib NAME" starts a section: only valid inside a library
                    raise NetlistError(
                        f"{_where(line.origin, line.number)}: .lib needs a file and a section "
                        "name (.lib FILE SECTION)"
                    )
                out.extend(self._splice(name, section.split()[0], line, folder, chain))
            elif _ENDL_RE.match(stripped):
                raise NetlistError(f"{_where(line.origin, line.number)}: .endl outside a library")
            else:
                out.append(line)
        return out

    def _splice(
        self, name: str, section: str | None, card: SourceLine, folder: Path,
        chain: tuple[tuple[Path, str | None], ...],
    ) -> list[SourceLine]:
        path = _resolve(name, folder, card.origin, card.number)
        key = (path, None if section is None else section.lower())
        if key in chain:
            raise NetlistError(f"{_where(card.origin, card.number)}: {path} includes itself")
        if len(chain) >= MAX_DEPTH:
            raise NetlistError(
                f"{_where(card.origin, card.number)}: includes nest deeper than {MAX_DEPTH} levels"
            )
        lines = self.read(path, card.origin, card.number)
        numbered = [SourceLine(text, str(path), k) for k, text in enumerate(lines, start=1)]
        if section is not None:
            numbered = _section(numbered, section, path, card)
        return self.expand(numbered, path.parent, (*chain, key))


def _section(lines: list[SourceLine], section: str, path: Path, card: SourceLine) -> list[SourceLine]:
    """The lines of ``.lib SECTION`` … ``.endl`` in a library file."""
    start = None
    for k, line in enumerate(lines):
        match = _LIB_RE.match(line.text.strip())
        if match and start is None:
            words = (match["rest"] or "").split()
            if len(words) == 1 and words[0].lower() == section.lower():
                start = k + 1
        elif start is not None and _ENDL_RE.match(line.text.strip()):
            return lines[start:k]
    if start is None:
        raise NetlistError(f"{_where(card.origin, card.number)}: {path} has no section {section!r}")
    raise NetlistError(f"{path}: section {section!r} has no closing .endl")


def flatten(lines: list[SourceLine], folder: Path, top: Path | None = None) -> list[SourceLine]:
    """Replace every ``.include`` / ``.lib`` card in ``lines`` by the checked file content.

    ``folder``: where relative names in ``lines`` are resolved. ``top``: the netlist file the
    lines came from (so that it cannot include itself). The title line is not checked for
    include cards; call this with the lines after it.
    """
    for line in lines:
        refuse_command_lines(line.text, line.origin, line.number, included=False)
    chain: tuple[tuple[Path, str | None], ...] = ((top.resolve(), None),) if top else ()
    return _Flattener().expand(lines, folder, chain)


def check_title(title: str, origin: str) -> None:
    """Refuse a ``*ng_script`` title (ngspice would run the whole deck as a script) and a
    ``*#`` title (a command line wherever it stands)."""
    refuse_command_lines(title, origin, 1, included=False)
    if title.strip().lower().startswith("*ng_script"):
        raise NetlistError(
            f"{_where(origin, 1)}: a '*ng_script' deck is an ngspice script; the in-process "
            "backend runs circuits only"
        )
