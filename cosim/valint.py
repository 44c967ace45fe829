"""Lint Verilog-A for constructs that OpenVAF (openvaf-r) compiles differently from Spectre.

Many published compact models were written for Spectre, where a variable keeps its value
from one evaluation to the next and events run once. Under OpenVAF/OSDI (ngspice, VACASK)
every evaluation starts with fresh variables, so such a model compiles and then silently
never changes state. :func:`lint_file` finds these patterns before compiling; each
:class:`LintWarning` prints as ``file:line:col: warning: text (fix: ...)``:

* ``hidden-state`` — a variable read before it is assigned on every path through the
  analog block (``x = x + dx``, ``if (v > vth) s = 1;`` then ``s`` used): under OpenVAF it
  reads 0 at every evaluation (measured: a latch ``if (V > 0.5) s = 1`` forgets ``s`` as
  soon as V drops);
* ``random`` — ``$random``, ``$arandom``, ``$rdist_*``, ``$dist_*``: not supported;
* ``event`` — ``@(cross)``, ``@(above)``, ``@(timer)`` are rejected; ``@(initial_step)`` /
  ``@(final_step)`` compile, but the body runs at every evaluation (measured with
  openvaf-r and ngspice 46), so an "initialise once" block re-initialises forever;
* ``idt-ic`` — ``idt(x, ic)``: the initial condition holds at the operating point only; the
  transient integrates from 0 (measured: the ic's contribution disappears at the first step).

The checker is a small recursive-descent reader of the analog block (statements, not full
expressions), with definite-assignment analysis: an ``if`` without ``else`` assigns nothing
for sure, a ``case`` only with a ``default``, a loop body possibly never. Analog functions are
not analysed (their locals are per call). See docs/veriloga.md, "Porting a model to OpenVAF".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cosim.errors import CosimError

FIX = {
    "hidden-state": (
        "keep the state in an internal node: `electrical s_n;` and "
        "`I(s_n) <+ ddt(V(s_n)) + f;` with f = V(s_n) - s0 at $abstime <= 0 (a DC equation) and "
        "f = -(rate of change) afterwards; read it as V(s_n)"
    ),
    "random": (
        "draw per-device values outside the model and pass them as instance parameters, or use a "
        "counter-based hash of (seed, device id, cycle) as the generative model does (docs/rng.md)"
    ),
    "event": (
        "replace the event by state in an internal node driven through a smooth gate of the "
        "threshold (e.g. a C1 step of a few mV width), and initial values by a DC equation at "
        "$abstime <= 0"
    ),
    "idt-ic": (
        "hold the integral in an internal node: `I(x) <+ ddt(V(x)) - f;` with `V(x) - x0` as its "
        "equation at $abstime <= 0, instead of idt(f, x0)"
    ),
}

_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+)
      |(?P<attr>\(\*.*?\*\))
      |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[TGMKkmunpfa]?)
      |(?P<sys>\$[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<macro>`[A-Za-z_][A-Za-z0-9_]*)
      |(?P<id>[A-Za-z_][A-Za-z0-9_$]*|\\\S+)
      |(?P<op><\+|==|!=|<=|>=|&&|\|\||<<|>>|\*\*|[-+*/%<>=!~&|^?:;,.()\[\]{}@#'])
    """,
    re.VERBOSE | re.DOTALL,
)
_RANDOM_RE = re.compile(r"^\$(random|arandom|rdist_\w+|dist_\w+)$")
_EVENTS = {"cross", "above", "timer", "initial_step", "final_step", "absdelta"}
_KEYWORDS = {
    "begin", "end", "if", "else", "case", "endcase", "default", "for", "while", "repeat",
    "analog", "function", "endfunction", "module", "endmodule", "real", "integer", "parameter",
    "localparam", "electrical", "inout", "input", "output", "genvar", "branch", "string",
}


@dataclass(frozen=True)
class LintWarning:
    """One finding; ``line``/``column`` are 1-based."""

    file: str
    line: int
    column: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: warning: {self.message} (fix: {FIX[self.kind]})"


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int
    col: int


def _strip(text: str) -> str:
    """Comments, strings and compiler directives become spaces (line/column positions kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i) or (text[i] == "`" and re.match(r"`(include|define|ifdef|ifndef|else|endif|undef|timescale)\b", text[i:])):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('"' + " " * (j - i - 2) + '"' if j - i >= 2 else " ")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    line, line_start, pos = 1, 0, 0
    clean = _strip(text)
    while pos < len(clean):
        match = _TOKEN_RE.match(clean, pos)
        if match is None:  # a character we do not need (e.g. a string quote): skip it
            if clean[pos] == "\n":
                line, line_start = line + 1, pos + 1
            pos += 1
            continue
        kind, value = match.lastgroup or "", match.group()
        if kind not in ("ws", "attr"):
            toks.append(_Tok(kind, value, line, pos - line_start + 1))
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + value.rfind("\n") + 1
        pos = match.end()
    return toks


class _Reader:
    """Walks one module's tokens and records warnings."""

    def __init__(self, toks: list[_Tok], file: str) -> None:
        self.t = toks
        self.i = 0
        self.file = file
        self.variables: set[str] = set()
        self.warned: set[str] = set()
        self.found: list[LintWarning] = []

    # -- helpers ------------------------------------------------------------------
    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def at(self, text: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok.text == text

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _EndOfInput
        self.i += 1
        return tok

    def warn(self, tok: _Tok, kind: str, message: str) -> None:
        self.found.append(LintWarning(self.file, tok.line, tok.col, kind, message))

    def skip_balanced(self) -> list[_Tok]:
        """Consume ``( ... )`` (at an opening parenthesis) and return the inner tokens."""
        assert self.at("(")
        close = _matching(self.t, self.i)
        if close is None:
            raise _EndOfInput
        inner, self.i = self.t[self.i + 1:close], close + 1
        return inner

    def until(self, stop: str) -> list[_Tok]:
        """Tokens up to (and consuming) ``stop`` at parenthesis depth 0."""
        depth, out = 0, []
        while True:
            tok = self.take()
            if tok.text in "([{":
                depth += 1
            elif tok.text in ")]}":
                depth -= 1
            elif tok.text == stop and depth <= 0:
                return out
            out.append(tok)

    # -- expressions --------------------------------------------------------------
    def reads(self, expr: list[_Tok], assigned: set[str]) -> None:
        for k, tok in enumerate(expr):
            nxt = expr[k + 1].text if k + 1 < len(expr) else ""
            if tok.kind == "sys" and _RANDOM_RE.match(tok.text):
                self.warn(tok, "random", f"{tok.text} is not supported by OpenVAF (the compile fails)")
            elif tok.kind == "id" and tok.text in ("idt", "idtmod") and nxt == "(":
                args = _split_args(expr, k + 1)
                if tok.text == "idt" and len(args) >= 2:
                    self.warn(tok, "idt-ic", "idt() initial condition holds at the operating point only; "
                              "the transient integrates from 0 and loses it")
            elif tok.kind == "id" and tok.text in self.variables and nxt != "(":
                if tok.text not in assigned and tok.text not in self.warned:
                    self.warned.add(tok.text)
                    self.warn(tok, "hidden-state",
                              f"variable '{tok.text}' is read before it is assigned in this evaluation: it "
                              "keeps its value between evaluations (hidden state), which OpenVAF does not "
                              "support (it reads 0 here, so the state never builds up)")

    # -- statements ---------------------------------------------------------------
    def statement(self, assigned: set[str]) -> set[str]:
        tok = self.peek()
        if tok is None:
            raise _EndOfInput
        text = tok.text
        if text == "begin":
            self.take()
            if self.at(":"):
                self.take()
                self.take()
            current = set(assigned)
            while not self.at("end"):
                if self.peek() is not None and self.peek().text in ("real", "integer"):
                    start = self.i
                    self.until(";")
                    self.variables |= _declared_names(self.t[start:self.i])
                    continue
                current = self.statement(current)
            self.take()
            return current
        if text == "if":
            self.take()
            self.reads(self.skip_balanced(), assigned)
            then = self.statement(set(assigned))
            if self.at("else"):
                self.take()
                other = self.statement(set(assigned))
                return then & other
            return set(assigned)
        if text == "case":
            self.take()
            self.reads(self.skip_balanced(), assigned)
            branches, has_default = [], False
            while not self.at("endcase"):
                if self.at("default"):
                    has_default = True
                    self.take()
                    if self.at(":"):
                        self.take()
                else:
                    self.reads(self.until(":"), assigned)
                branches.append(self.statement(set(assigned)))
            self.take()
            if has_default and branches:
                return set.intersection(*branches)
            return set(assigned)
        if text in ("for", "while", "repeat"):
            self.take()
            header = self.skip_balanced()
            inner = set(assigned)
            if text == "for":
                parts = _split_top(header, ";")
                if parts and parts[0]:
                    inner = self._assignment_tokens(parts[0], inner)
                if len(parts) > 1:
                    self.reads(parts[1], inner)
                after_init = set(inner)
                body = self.statement(set(inner))
                if len(parts) > 2 and parts[2]:
                    self._assignment_tokens(parts[2], body)
                return after_init
            self.reads(header, inner)
            self.statement(set(inner))
            return set(assigned)
        if text == "@":
            at = self.take()
            event = self.skip_balanced() if self.at("(") else [self.take()]
            names = {e.text for e in event if e.kind == "id"}
            which = sorted(names & _EVENTS) or [event[0].text if event else "?"]
            if names & {"initial_step", "final_step"}:
                msg = (f"@({which[0]}) compiles under OpenVAF but its body runs at every evaluation, "
                       "not once")
            else:
                msg = f"event @({which[0]}(...)) is not supported by OpenVAF (the compile fails)"
            self.warn(at, "event", msg)
            self.reads([e for e in event if e.kind == "sys"], assigned)
            self.statement(set(assigned))
            return set(assigned)
        if text == ";":
            self.take()
            return assigned
        if tok.kind == "sys":  # system task: $strobe(...); $bound_step(...);
            self.take()
            if self.at("("):
                self.reads(self.skip_balanced(), assigned)
            if self.at(";"):
                self.take()
            return assigned
        stmt = self.until(";")
        if any(s.text == "<+" for s in stmt):
            split = next(k for k, s in enumerate(stmt) if s.text == "<+")
            self.reads(stmt[:split], assigned)
            self.reads(stmt[split + 1:], assigned)
            return assigned
        return self._assignment_tokens(stmt, assigned)

    def _assignment_tokens(self, stmt: list[_Tok], assigned: set[str]) -> set[str]:
        eq = next((k for k, s in enumerate(stmt) if s.text == "="), None)
        if eq is None:
            self.reads(stmt, assigned)
            return assigned
        self.reads(stmt[eq + 1:], assigned)
        self.reads(stmt[1:eq], assigned)  # index expressions
        result = set(assigned)
        if stmt and stmt[0].kind == "id":
            result.add(stmt[0].text)
        return result


class _EndOfInput(Exception):
    pass


def _split_top(toks: list[_Tok], sep: str) -> list[list[_Tok]]:
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for tok in toks:
        if tok.text in "([{":
            depth += 1
        elif tok.text in ")]}":
            depth -= 1
        if tok.text == sep and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def _matching(toks: list[_Tok], open_index: int) -> int | None:
    """Index of the ``)`` closing the ``(`` at ``toks[open_index]`` (None if unbalanced)."""
    depth = 0
    for k in range(open_index, len(toks)):
        if toks[k].text == "(":
            depth += 1
        elif toks[k].text == ")":
            depth -= 1
            if depth == 0:
                return k
    return None


def _split_args(expr: list[_Tok], open_index: int) -> list[list[_Tok]]:
    """Arguments of the call whose ``(`` is at ``expr[open_index]``."""
    close = _matching(expr, open_index)
    inner = expr[open_index + 1:len(expr) if close is None else close]
    return [a for a in _split_top(inner, ",") if a]


def _declared_names(decl: list[_Tok]) -> set[str]:
    """Variable names of ``real a, b = 1, c[0:3];`` (tokens from the type up to the ';')."""
    names, depth, expect = set(), 0, True
    for tok in decl[1:]:
        if tok.text in "([{":
            depth += 1
        elif tok.text in ")]}":
            depth -= 1
        elif depth == 0 and tok.text == ",":
            expect = True
        elif depth == 0 and tok.text == "=":
            expect = False
        elif expect and depth == 0 and tok.kind == "id":
            names.add(tok.text)
            expect = False
    return names


def lint_text(text: str, file: str = "<text>") -> list[LintWarning]:
    """Warnings for Verilog-A source ``text`` (``file`` names it in the messages)."""
    toks = _tokens(text)
    found: list[LintWarning] = []
    i = 0
    while i < len(toks):
        if toks[i].text != "module":
            i += 1
            continue
        end = next((k for k in range(i, len(toks)) if toks[k].text == "endmodule"), len(toks))
        found.extend(_lint_module(toks[i:end], file))
        i = end + 1
    return sorted(found, key=lambda w: (w.line, w.column))


def _lint_module(toks: list[_Tok], file: str) -> list[LintWarning]:
    reader = _Reader(toks, file)
    analog_starts: list[int] = []
    k = 0
    while k < len(toks):
        tok = toks[k]
        if tok.text == "analog" and k + 1 < len(toks) and toks[k + 1].text == "function":
            k = next((m for m in range(k, len(toks)) if toks[m].text == "endfunction"), len(toks)) + 1
            continue
        if tok.text in ("real", "integer") and not (k > 0 and toks[k - 1].text in ("parameter", "localparam")):
            end = next((m for m in range(k, len(toks)) if toks[m].text == ";"), len(toks))
            reader.variables |= _declared_names(toks[k:end + 1])
            k = end + 1
            continue
        if tok.text == "analog":
            analog_starts.append(k + 1)
        k += 1
    for start in analog_starts:
        reader.i = start
        if reader.at("initial"):
            reader.take()
        try:
            reader.statement(set())
        except _EndOfInput:  # unbalanced source: the compiler will report it
            pass
    return reader.found


def lint_file(path: Path | str) -> list[LintWarning]:
    """Warnings for one Verilog-A file (included files are not followed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CosimError(f"{path}: cannot read ({exc.strerror})") from exc
    if not re.search(r"\bmodule\b", _strip(text)):
        raise CosimError(f"{path}: no Verilog-A module (module ... endmodule) found; nothing to lint or compile")
    return lint_text(text, str(path))
