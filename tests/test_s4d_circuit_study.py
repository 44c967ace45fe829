"""The S4D circuit study: configuration, study runner, report and the `cosim s4d` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.errors import CosimError
from cosim.paths import DEFAULT_MODEL
from cosim.s4d.config import load_study_config, parse_study_config
from cosim.s4d.report import write_report
from cosim.s4d.study import run_s4d_study


@pytest.fixture(scope="module")
def study():
    """Test model, delta variant, one layer crossbar, 1 Ω wires, three device seeds, L = 32."""
    config = parse_study_config({"length": 32, "variants": ["delta"], "seed": 7, "devices": {"count": 3}})
    return run_s4d_study(config)


def test_config_defaults_and_seeds():
    config = parse_study_config({})
    assert config.variants == ["full", "delta"] and config.layout == "layer"
    assert config.device_seeds() == [0, 1, 2]
    assert parse_study_config({"seed": 5}).device_seeds() == [5, 6, 7]
    assert parse_study_config({"devices": {"seeds": [9, 3]}}).device_seeds() == [9, 3]
    assert load_study_config(None, seed=4).resolved()["devices"]["seeds"] == [4, 5, 6]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"lenght": 10}, "lenght"),
        ({"variants": ["half"]}, "variants.0"),
        ({"wires": {"r_row": 0}}, "wires.r_row"),
        ({"devices": {"seeds": [1, 1]}}, "devices.seeds"),
        ({"model": {"kind": "lin", "state_size": 5}}, "model.state_size"),
        ({"backends": {"nodal": False}}, "top level"),
    ],
)
def test_config_errors_name_the_field(data, field):
    with pytest.raises(CosimError, match=field.replace(".", r"\.")):
        parse_study_config(data, source="study.toml")


def test_config_file_relative_model_path(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.json").write_text(DEFAULT_MODEL.read_text())
    path = tmp_path / "study.toml"
    path.write_text('seed = 3\n[devices]\nmodel_file = "models/m.json"\n')
    config = load_study_config(path, seed=8)
    assert config.seed == 8
    assert config.devices.model_file == (tmp_path / "models" / "m.json").resolve()
    path.write_text("seed = \n")
    with pytest.raises(CosimError, match="invalid TOML"):
        load_study_config(path)


def test_study_covers_every_case_and_records_seeds(study):
    summary = study.summary
    assert study.config["devices"]["seeds"] == [7, 8, 9]
    assert study.config["input_seed"] == 7
    cases = summary.groupby("case").seed.unique().to_dict()
    assert list(cases["ideal_nowire"]) == [-1]
    for case in ("devices_model", "devices_wires", "devices_mdm"):
        assert sorted(cases[case]) == [7, 8, 9]
    # raw rows for every case, "gain" rows for the circuit cases with wires (default methods)
    assert len(summary) == 4 * (1 + 2 + 3 * (1 + 2 + 2))
    assert set(summary.compensation) == {"none", "gain"}
    assert set(summary[summary.compensation == "gain"].case) == {"ideal_wires", "devices_wires", "devices_mdm"}
    ideal = summary[summary.case == "ideal_nowire"]
    assert ideal.kernel_rel_l2.max() <= 1e-6 and ideal.output_rel_l2.max() <= 1e-6
    assert ideal.eigenvalue_error.max() <= 1e-6 and ideal.nf.max() <= 1e-6
    # wires cost accuracy; the NF of a 68×136 crossbar with 1 Ω wires is far from 0
    wired = summary[(summary.case == "ideal_wires") & (summary.compensation == "none")]
    assert wired.nf.min() > 1e-3
    assert (wired.kernel_rel_l2 > ideal.kernel_rel_l2.to_numpy()).all()
    table = study.table()
    assert {"kernel_rel_l2", "kernel_rel_l2_sd"} <= set(table.columns)
    mdm = study.mdm_table()
    assert sorted(mdm[mdm.compensation == "none"].seed) == [7, 8, 9]
    assert sorted(mdm[mdm.compensation == "gain"].seed) == [7, 8, 9]
    assert set(mdm.mdm_effect) <= {"helps", "hurts", "neutral"}
    # the sign is the one of the kernel-error change, with a ±2 % neutral band
    for row in mdm.itertuples():
        expected = "helps" if row.kernel_change < -0.02 else "hurts" if row.kernel_change > 0.02 else "neutral"
        assert row.mdm_effect == expected
    print("\nMDM at circuit level (test model, delta, L = 32, 1 Ω wires):\n", mdm.to_string(index=False))


SMALL = {"length": 24, "variants": ["delta"], "layout": "channel", "seed": 3,
         "model": {"kind": "lin", "channels": 2, "state_size": 4}, "devices": {"count": 2}}


def test_study_is_reproducible_for_a_seed():
    first = run_s4d_study(parse_study_config(SMALL))
    again = run_s4d_study(parse_study_config(SMALL))
    other = run_s4d_study(parse_study_config({**SMALL, "seed": 4}))
    columns = ["kernel_rel_l2", "nf", "output_error", "mvm_error"]
    pd.testing.assert_frame_equal(again.summary[columns], first.summary[columns])
    devices = first.summary.case == "devices_wires"
    assert not np.allclose(other.summary[devices].kernel_rel_l2, first.summary[devices].kernel_rel_l2)


def test_report_files(study, tmp_path):
    written = write_report(study, tmp_path / "out")
    names = {p.name for p in written}
    assert {"summary.csv", "table.csv", "mdm.csv", "study.json", "kernels.npz", "report.md",
            "kernels_delta.png", "errors_delta.png", "mdm.png", "programming.csv", "failures.csv",
            "compensation.csv"} <= names
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    record = json.loads((tmp_path / "out" / "study.json").read_text())
    assert record["config"]["devices"]["seeds"] == [7, 8, 9]
    assert any(m["device_seed"] == 8 for m in record["mappings"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "device seeds [7, 8, 9]" in report and "![mdm.png](mdm.png)" in report
    kernels = np.load(tmp_path / "out" / "kernels.npz")
    assert np.array_equal(kernels["ideal"], study.ideal_kernel)
    assert (tmp_path / "out" / "kernels_delta.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_small_study_with_ngspice(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(
        'length = 16\nvariants = ["full"]\nlayout = "channel"\nweight_bits = 8\ndac_bits = 10\nadc_bits = 10\n'
        '[model]\nkind = "lin"\nchannels = 1\nstate_size = 4\n[devices]\ncount = 1\n'
        "[backends]\nngspice = true\nngspice_length = 3\n"
    )
    result = CliRunner().invoke(app, ["s4d", "--config", str(config), "--seed", "2", "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    spice = summary[summary.backend == "ngspice"]
    assert set(spice.case) == {"ideal_nowire", "ideal_wires", "devices_wires", "devices_mdm"}
    assert (spice.steps == 3).all() and spice.vs_nodal.max() <= 1e-6
    assert json.loads((tmp_path / "r" / "study.json").read_text())["config"]["devices"]["seeds"] == [2]


def test_cli_bad_config_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("length = -3\n")
    result = CliRunner().invoke(app, ["s4d", "--config", str(config), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "length" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()
