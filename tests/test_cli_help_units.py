"""Units in CLI help survive rich markup.

Rich reads ``[lowercase...]`` as a style tag and drops it, so a unit such as ``[ohm]`` or
``[s]`` vanished from ``--help``; units are written ``[Ω]`` or escaped ``\\[s]``.
"""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from cosim.cli import app

RICH_TAG = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")


def _commands(command, path: tuple[str, ...] = ()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, path + (name,))


def test_no_option_help_contains_a_bracket_that_rich_would_swallow():
    offenders, seen = [], 0
    for path, command in _commands(typer.main.get_command(app)):
        seen += 1
        for param in command.params:
            text = getattr(param, "help", None) or ""
            offenders += [f"{' '.join(path)} {param.name}: {m}" for m in RICH_TAG.findall(text)]
    assert seen > 15  # every subcommand was visited
    assert offenders == []


def test_units_are_shown_in_rendered_help():
    runner = CliRunner()
    res = runner.invoke(app, ["netlist", "crossbar", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "Every cell's resistance [Ω]" in res.output
    res = runner.invoke(app, ["library", "iv", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "quarter of the sweep [s]" in res.output
