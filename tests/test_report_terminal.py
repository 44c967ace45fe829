"""`cosim report` tables are readable in an 80-column terminal: nothing cut, nothing wider."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from cosim.batch.report import terminal_tables

METRICS = ("nf", "output_error", "total_error", "prog_error", "prog_success", "ideal_unchanged",
           "solve_s", "a_rather_long_metric_name")


def _aggregate() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    grid = pd.MultiIndex.from_product([[0.5, 1.0, 2.0], [32, 64], [False, True]],
                                      names=["r_wire", "size", "mdm"]).to_frame(index=False)
    for m in METRICS:
        if m == "ideal_unchanged":
            grid[f"{m}_mean"], grid[f"{m}_std"] = 1.0, 0.0
        else:
            grid[f"{m}_mean"] = rng.uniform(1e-5, 0.4, len(grid)) / 7
            grid[f"{m}_std"] = rng.uniform(1e-6, 1e-2, len(grid)) / 3
        grid[f"{m}_count"] = 4
    return grid


def _render(title: str, frame: pd.DataFrame, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*map(str, row))
    console.print(table)
    return console.export_text().splitlines()


def test_tables_fit_80_columns_without_cutting_cells() -> None:
    aggregate = _aggregate()
    tables, notes = terminal_tables(aggregate, width=80, first="solve_s")
    assert len(tables) > 1
    shown = [c for _, frame in tables for c in frame.columns if c not in ("r_wire", "size", "mdm", "n")]
    assert shown[0] == "solve_s"  # the chosen metric comes first
    assert sorted(shown) == sorted(m for m in METRICS if m != "ideal_unchanged")
    assert notes == ["ideal_unchanged = 1 at every grid point"]
    for title, frame in tables:
        assert list(frame.columns[:3]) == ["r_wire", "size", "mdm"] and frame.columns[-1] == "n"
        lines = _render(title, frame, 80)
        assert max(map(len, lines)) <= 80
        text = "\n".join(lines)
        assert "…" not in text
        # every cell is printed whole: the mean of the first row, to 3 significant digits
        for column in frame.columns:
            assert frame[column].iloc[0] in text
    nf = tables[0][1] if "nf" in tables[0][1] else next(f for _, f in tables if "nf" in f)
    mean, sd = aggregate["nf_mean"].iloc[0], aggregate["nf_std"].iloc[0]
    assert nf["nf"].iloc[0] == f"{mean:.3g} ± {sd:.2g}"


def test_wide_terminal_uses_one_table() -> None:
    tables, _ = terminal_tables(_aggregate(), width=400)
    assert len(tables) == 1 and tables[0][0] == "results, mean ± sd over seeds"


def test_cosim_report_at_80_columns(tmp_path) -> None:
    from typer.testing import CliRunner

    from cosim.batch.config import load_sweep
    from cosim.batch.runner import run_sweep
    from cosim.cli import app

    sweep = tmp_path / "s.toml"
    sweep.write_text('name = "tiny"\nkind = "crossbar_ideal_nf"\nseeds = [1, 2]\n'
                     '[grid]\nr_wire = [0.5, 1.0, 2.0]\nrows = [4, 8]\n[fixed]\ncols = 2\nn_inputs = 2\n',
                     encoding="utf-8")
    out = tmp_path / "out"
    run_sweep(load_sweep(sweep), out, workers=1, show_progress=False)
    result = CliRunner().invoke(app, ["report", str(out), "--metric", "nf", "--x", "r_wire"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(map(len, result.output.splitlines())) <= 80
    assert " ± " in result.output and "nf" in result.output
