"""`cosim fit`: model file, report, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.device.modelfile import load_model
from cosim.device.synth import synth_cycles, synth_iv
from cosim.paths import DEFAULT_MODEL

runner = CliRunner()


@pytest.fixture(scope="module")
def default_model():
    return load_model(DEFAULT_MODEL)


def _run(*args: str):
    return runner.invoke(app, ["fit", *map(str, args)])


def test_cycle_table_fit_and_report(tmp_path: Path, default_model) -> None:
    data = synth_cycles(default_model, 30, 150, seed=8)
    # an instrument-style export: other column names and units
    data = data.rename(columns={"device": "dev", "cycle": "cycle_index"})
    data["R_HRS_kohm"] = data.pop("HRS_ohm") / 1e3
    data["Vset_mV"] = data.pop("US_V") * 1e3
    data["LRS [ohm]"] = data.pop("LRS_ohm")
    data["Vreset"] = data.pop("UR_V")
    src = tmp_path / "meas.csv"
    data.to_csv(src, index=False)
    out = tmp_path / "model.json"
    rep = tmp_path / "rep"
    res = _run(src, "-o", out, "--report", rep, "--seed", 3, "--max-order", 4)
    assert res.exit_code == 0, res.output
    model = load_model(out)
    assert 1 <= model.var_order <= 4
    assert model.provenance["seed"] == 3 and model.provenance["input_file"] == "meas.csv"
    # the cycle table carries no I–V data: basis, η, Umax come from the base model
    assert model.eta == default_model.eta
    assert list(model.iv_llrs) == list(default_model.iv_llrs)
    text = (rep / "report.md").read_text()
    for section in ("## Fitted model", "## Statistics of data and model", "## Quality control",
                    "| LRS | data |", "| LRS | model |"):
        assert section in text
    for fig in ("marginals.png", "autocorrelation.png", "correlation.png", "d2d.png"):
        assert (rep / fig).stat().st_size > 1000
        assert f"]({fig})" in text
    stats = pd.read_csv(rep / "statistics.csv")
    assert set(stats["source"]) == {"data", "model"}
    assert (rep / "qc.csv").exists()


def test_iv_fit_report_has_iv_overlay(tmp_path: Path, default_model) -> None:
    src = tmp_path / "loops.csv"
    synth_iv(default_model, 12, 25, seed=9, dv=0.04).to_csv(src, index=False)
    out = tmp_path / "m.json"
    res = _run(src, "-o", out, "--report", tmp_path / "r", "--format", "iv", "--max-order", 2)
    assert res.exit_code == 0, res.output
    model = load_model(out)
    assert model.provenance["iv"]["source"] == "fitted to the I–V loops"
    assert (tmp_path / "r" / "iv.png").stat().st_size > 1000


def test_bad_input_one_line_error_and_no_output(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("device,cycle,HRS_ohm,US_V,LRS_ohm\n0,0,1e5,-0.7,4500\n")
    out = tmp_path / "m.json"
    res = _run(src, "-o", out)
    assert res.exit_code == 2
    assert "missing column(s) UR_V" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    res = _run(src, "-o", out, "--format", "xml")
    assert res.exit_code == 2 and "--format" in res.output
    res = _run(src, "-o", out, "--hrs-read", "sideways")
    assert res.exit_code == 2 and "--hrs-read" in res.output
    assert not out.exists()
