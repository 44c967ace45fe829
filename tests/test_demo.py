"""`cosim demo --quick` end to end through the CLI, and stage failures reported clearly.

The checks recompute what they can independently of the demo's own numbers: the fitted model
is reloaded and compared with the measurements, the ngspice cycle table with the Python
reference, the manifest hashes with the files, the report's links with the folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.demo import DemoSettings, run_demo
from cosim.device.model import feature_sequences, hrs_ohm
from cosim.device.modelfile import load_model

pytestmark = pytest.mark.slow  # one quick demo run: about a minute on two cores

SEED = 5
RESISTANCE_RTOL = 1e-6  # tests/test_va_sim.py: simulated reads against the reference
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(app, ["demo", "--quick", "--seed", str(SEED), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_summary_is_printed(demo_dir):
    _, output = demo_dir
    for title in ("Synthesize measurements", "Fit the device model", "Cycle one device in ngspice",
                  "S4D on crossbars"):
        assert title in output
    assert "failed" not in output and "skipped" not in output


def test_fitted_model_loads_and_matches_the_measurements(demo_dir):
    out, _ = demo_dir
    model = load_model(out / "fitted_model.json")  # raises on an invalid file
    data = pd.read_csv(out / "measurements.csv")
    meta = json.loads((out / "measurements.csv.meta.json").read_text())
    assert meta["seed"] == SEED and meta["rows"] == len(data) == data.device.nunique() * data.cycle.nunique()
    y = feature_sequences(model, 0, np.arange(200), 200).reshape(-1, 4)
    assert abs(y[:, 0].mean() - np.log10(data.HRS_ohm).mean()) < 0.05
    assert abs(y[:, 2].mean() / data.LRS_ohm.mean() - 1) < 0.03
    assert abs(y[:, 1].mean() - data.US_V.mean()) < 0.02
    assert abs(y[:, 3].mean() - data.UR_V.mean()) < 0.02


def test_ngspice_cycles_agree_with_python(demo_dir):
    out, _ = demo_dir
    model = load_model(out / "fitted_model.json")
    manifest = json.loads((out / "manifest.json").read_text())
    settings = manifest["settings"]
    table = pd.read_csv(out / "cycling" / "cycles.csv")
    n = settings["va_cycles"]
    assert list(table.cycle) == list(range(n))
    y = feature_sequences(model, manifest["seeds"]["cycling_device_seed"],
                          np.array([manifest["seeds"]["cycling_device_id"]]), n + 1,
                          method="ma", ma_order=settings["ma_order"])[0]
    np.testing.assert_allclose(table.LRS_spice, y[:n, 2], rtol=RESISTANCE_RTOL)
    np.testing.assert_allclose(table.HRS_spice, hrs_ohm(model, y[1:, 0]), rtol=RESISTANCE_RTOL)
    assert np.std(table.LRS_spice) > 10.0  # the sequence varies from cycle to cycle
    # thresholds: time-grid step + gate width + counter lag, as tests/test_va_sim.py
    assert (table.US_tol_V < 0.02).all() and (table.UR_tol_V < 0.02).all()
    assert (np.abs(table.US_spice - y[:n, 1]) <= table.US_tol_V).all()
    assert (np.abs(table.UR_spice - y[:n, 3]) <= table.UR_tol_V).all()
    assert manifest["cycling"]["all_within"] is True
    netlist = (out / "cycling" / "cycling.cir").read_text()
    assert ".options klu" in netlist and "set num_threads=1" in netlist


def test_s4d_has_cases_with_and_without_mdm(demo_dir):
    out, _ = demo_dir
    summary = pd.read_csv(out / "s4d" / "summary.csv")
    for case in ("devices_wires", "devices_mdm"):
        rows = summary[summary.case == case]
        assert len(rows) > 0 and np.isfinite(rows.kernel_rel_l2).all() and (rows.nf > 0).all()
    cases = pd.read_csv(out / "s4d_cases.csv")
    assert set(cases.mdm) == {True, False}
    study = json.loads((out / "s4d" / "study.json").read_text())
    assert study["config"]["devices"]["model_file"] == str((out / "fitted_model.json").resolve())
    assert study["config"]["devices"]["seeds"] == [SEED]


def test_report_links_exist_and_figures_are_png(demo_dir):
    out, _ = demo_dir
    text = (out / "report.md").read_text()
    links = [t for t in LINK.findall(text) if "://" not in t]
    assert len(links) >= 10
    for target in links:
        assert (out / target).is_file(), target
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3
    for image in images:
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for sub in ("fit/report.md", "s4d/report.md"):
        assert sub in links


def test_manifest_records_seeds_tools_and_hashes(demo_dir):
    out, _ = demo_dir
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ok"] is True
    assert manifest["seeds"]["synth"] == SEED and manifest["seeds"]["s4d_devices"] == [SEED]
    assert manifest["tools"]["ngspice"] and manifest["tools"]["openvaf-r"]
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # atomic writes leave no temporary files
    assert [s["status"] for s in manifest["stages"]] == ["ok"] * 6


def test_failed_stage_is_reported_and_dependants_skipped(tmp_path):
    # one device cannot be fitted (the D2D statistics need two); an invalid S4D length
    settings = DemoSettings(seed=1, quick=True, devices=1, cycles=30, s4d={"length": 1})
    result = run_demo(tmp_path / "bad", settings)
    status = {s.key: s.status for s in result.stages}
    assert status == {"synth": "ok", "fit": "failed", "veriloga": "skipped", "cycling": "skipped",
                      "s4d": "failed", "report": "ok"}
    assert not result.ok
    fit = next(s for s in result.stages if s.key == "fit")
    assert "usable device" in fit.error and (tmp_path / "bad" / fit.log).is_file()
    s4d = next(s for s in result.stages if s.key == "s4d")
    assert "length" in s4d.error
    report = (tmp_path / "bad" / "report.md").read_text()
    assert fit.error in report and "skipped" in report
    assert not (tmp_path / "bad" / "fitted_model.json").exists()


def test_cli_exits_1_and_names_the_failed_stages(tmp_path, monkeypatch):
    bad = DemoSettings(seed=2, quick=True, devices=1, cycles=20, s4d={"length": 1})
    monkeypatch.setattr(DemoSettings, "create", classmethod(lambda cls, seed, quick: bad))
    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "fit (failed)" in result.output and "cycling (skipped)" in result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["ok"] is False and manifest["seeds"]["synth"] == 2


def test_unusable_output_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["demo", "--quick", "-o", str(blocker / "out")])
    assert result.exit_code == 2
    assert "cannot create the output folder" in result.output and "Traceback" not in result.output


def test_reproduce_commands_give_the_same_data_and_model(demo_dir, tmp_path):
    """The report's 'Reproduce' commands rebuild the measurements byte for byte and the model."""
    out, _ = demo_dir
    report = (out / "report.md").read_text()
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    synth_args = ["synth", "--devices", str(settings["devices"]), "--cycles", str(settings["cycles"]),
                  "--seed", str(SEED), "-o", str(tmp_path / "measurements.csv")]
    assert "cosim " + " ".join(synth_args[:-1]) in report
    runner = CliRunner()
    assert runner.invoke(app, synth_args).exit_code == 0
    assert (tmp_path / "measurements.csv").read_bytes() == (out / "measurements.csv").read_bytes()
    fit_args = ["fit", str(tmp_path / "measurements.csv"), "-o", str(tmp_path / "fitted_model.json"),
                "--seed", str(SEED)]
    assert f"cosim fit measurements.csv -o fitted_model.json --report fit --seed {SEED}" in report
    assert runner.invoke(app, fit_args).exit_code == 0
    again, demo = load_model(tmp_path / "fitted_model.json"), load_model(out / "fitted_model.json")
    for name in ("d2d_weights", "d2d_means", "d2d_chol", "var_lags", "var_chol", "gamma"):
        np.testing.assert_array_equal(getattr(again, name), getattr(demo, name), err_msg=name)
