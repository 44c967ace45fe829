"""OpenVAF lint: hidden state, random functions, events, idt initial conditions."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.paths import VERILOGA_DIR
from cosim.valint import lint_file, lint_text

runner = CliRunner()

# A filament-gap model in the Spectre style: the gap is a variable that integrates its own
# rate between evaluations (the pattern that compiles under OpenVAF and never switches).
HIDDEN_STATE = """`include "disciplines.vams"
module gap_cell(te, be);
    inout te, be;
    electrical te, be;
    parameter real g0 = 0.25e-9;
    real gap, dgap, t_prev, dt;
    analog begin
        dt = $abstime - t_prev;
        dgap = -1e3 * sinh(V(te, be) / 0.25);
        gap = gap + dgap * dt;
        t_prev = $abstime;
        I(te, be) <+ 1e-4 * exp(-gap / g0) * sinh(V(te, be) / 0.25);
    end
endmodule
"""


def kinds(text: str) -> list[tuple[str, int, int]]:
    return [(w.kind, w.line, w.column) for w in lint_text(text, "m.va")]


def test_hidden_state_is_flagged_at_the_first_read():
    found = lint_text(HIDDEN_STATE, "gap.va")
    assert [(w.kind, w.line, w.column) for w in found] == [("hidden-state", 8, 25), ("hidden-state", 10, 15)]
    text = str(found[0])
    assert text.startswith("gap.va:8:25: warning: variable 't_prev' is read before it is assigned")
    assert "internal node" in text and "ddt" in text  # the fix is part of the message


def module(body: str, decl: str = "real s, x; integer i;") -> str:
    return (f'`include "disciplines.vams"\nmodule m(p, n);\n    inout p, n;\n    electrical p, n;\n    {decl}\n'
            f"    analog begin\n{body}\n    end\nendmodule\n")


@pytest.mark.parametrize("body", [
    "        if (V(p, n) > 0.5) s = 1.0; else s = 0.0;\n        I(p, n) <+ s * V(p, n);",
    "        s = 0; for (i = 0; i < 3; i = i + 1) s = s + i;\n        I(p, n) <+ s * V(p, n);",
    "        case (1) 1: s = 1; default: s = 2; endcase\n        I(p, n) <+ s * V(p, n);",
    "        begin : blk real y; y = V(p, n); s = y * 2; end\n        I(p, n) <+ s;",
    "        // s = s + 1 (a comment)\n        s = 1; /* x = x */ I(p, n) <+ s * V(p, n);",
])
def test_definitely_assigned_variables_are_not_flagged(body):
    assert kinds(module(body)) == []


@pytest.mark.parametrize("body, expected", [
    ("        if (V(p, n) > 0.5) s = 1.0;\n        I(p, n) <+ s * V(p, n);", [("hidden-state", 8, 20)]),
    ("        case (1) 1: s = 1; endcase\n        I(p, n) <+ s * V(p, n);", [("hidden-state", 8, 20)]),
    ("        for (i = 0; i < 3; i = i + 1) s = 1;\n        I(p, n) <+ s * V(p, n);", [("hidden-state", 8, 20)]),
    ("        x = $rdist_normal(i, 0, 1);\n        I(p, n) <+ x;", [("random", 7, 13), ("hidden-state", 7, 27)]),
    ("        @(cross(V(p, n) - 0.5, +1)) s = 1;\n        s = 0; I(p, n) <+ s;", [("event", 7, 9)]),
    ("        @(initial_step) begin s = 2; end\n        s = 0; I(p, n) <+ s;", [("event", 7, 9)]),
    ("        I(p, n) <+ 1e-6 * idt(V(p, n), 1.0);", [("idt-ic", 7, 27)]),
])
def test_patterns_that_openvaf_treats_differently(body, expected):
    assert kinds(module(body)) == expected


def test_idt_without_initial_condition_is_fine():
    assert kinds(module("        I(p, n) <+ 1e-6 * idt(V(p, n));")) == []


def test_silent_on_the_projects_own_models():
    files = sorted(VERILOGA_DIR.rglob("*.va"))
    assert len(files) >= 4
    for path in files:
        assert lint_file(path) == [], path


def test_compile_prints_located_warnings_and_lint_only_exit_status(tmp_path):
    bad = tmp_path / "gap.va"
    bad.write_text(HIDDEN_STATE)
    res = runner.invoke(app, ["compile", str(bad), "--lint-only"])
    assert res.exit_code == 1
    assert f"{bad}:8:25: warning: variable 't_prev'" in res.output and "1 warning" not in res.output
    good = VERILOGA_DIR / "baseline_drift.va"
    res = runner.invoke(app, ["compile", str(good), "--lint-only"])
    assert res.exit_code == 0 and "0 warning(s)" in res.output


@pytest.mark.parametrize("content", ["* a SPICE netlist\nR1 a 0 1k\n.end\n", "// module m only in a comment\n"])
def test_lint_only_of_a_file_without_a_module_is_an_error(tmp_path, content):
    """A netlist or an empty file passed to --lint-only used to report "0 warning(s)", exit 0."""
    source = tmp_path / "not_va.va"
    source.write_text(content)
    res = runner.invoke(app, ["compile", str(source), "--lint-only"])
    assert res.exit_code == 2
    assert f"error: {source}: no Verilog-A module" in res.output and "0 warning(s)" not in res.output
