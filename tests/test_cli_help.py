"""`--help` shows every help text whole: nothing is swallowed as rich markup (``[ohm]``)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from cosim.cli import app


def _commands() -> list[tuple[str, Any]]:
    """Every command of the ``cosim`` tree with its full name."""
    root = typer.main.get_command(app)
    out: list[tuple[str, Any]] = []

    def walk(name: str, command: Any) -> None:
        out.append((name, command))
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            for sub_name, sub in command.commands.items():
                walk(f"{name} {sub_name}", sub)

    walk("cosim", root)
    return out


def _texts(command: Any) -> list[tuple[str, str]]:
    texts = [("help", command.help or ""), ("short help", command.short_help or "")]
    for param in command.params:
        texts.append((f"{param.name}", getattr(param, "help", None) or ""))
    return [(where, text) for where, text in texts if text]


def test_markup_check_would_catch_ohm_in_brackets() -> None:
    assert Text.from_markup("Row segment resistance [ohm].").plain != "Row segment resistance [ohm]."


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_help_texts_survive_rich_markup(name: str, command: Any) -> None:
    for where, text in _texts(command):
        shown = text.replace("\\[", "[")  # an escaped bracket is shown as a bracket
        assert Text.from_markup(text).plain == shown, f"{name}: {where}: {text!r} loses text as markup"


def test_rendered_help_shows_units() -> None:
    result = CliRunner().invoke(app, ["netlist", "crossbar", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Row segment resistance [Ω]." in result.output
    assert "resistance ." not in result.output
    result = CliRunner().invoke(app, ["library", "iv", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "quarter of the sweep [s]" in result.output


@pytest.mark.parametrize("name", [n for n, _ in _commands()])
def test_help_fits_80_columns_without_cutting_words(name: str) -> None:
    args = name.split()[1:] + ["--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, f"`{name} --help` cuts text at 80 columns:\n{result.output}"
    assert max(map(len, result.output.splitlines())) <= 80


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_summary_line_is_one_line(name: str, command: Any) -> None:
    """The command list shows a help text's first paragraph with its line breaks kept, so a
    summary wrapped in the docstring breaks mid-sentence in `cosim --help`."""
    summary = (command.help or "").strip().split("\n\n")[0]
    assert "\n" not in summary, f"{name}: first help paragraph spans lines: {summary!r}"
