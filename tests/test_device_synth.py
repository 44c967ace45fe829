"""`cosim synth` / `cosim model ...`: layouts, determinism, recorded seed, consistency with the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.device.model import feature_sequences
from cosim.device.modelfile import load_model
from cosim.device.synth import CYCLE_COLUMNS, IV_COLUMNS, synth_cycles, synth_iv, sweep_waveform
from cosim.paths import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
SYNAPTOGEN = REPO.parent / "shared" / "reference" / "synaptogen" / "default_params.json"
runner = CliRunner()


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


def test_cycles_without_noise_are_the_model_features(model) -> None:
    frame = synth_cycles(model, 4, 30, seed=12, noise=False)
    assert list(frame.columns) == CYCLE_COLUMNS
    y = feature_sequences(model, 12, np.arange(4), 31)
    lrs = frame["LRS_ohm"].to_numpy().reshape(4, 30)
    hrs = frame["HRS_ohm"].to_numpy().reshape(4, 30)
    np.testing.assert_allclose(lrs, y[:, :30, 2], rtol=1e-10)
    np.testing.assert_allclose(frame["US_V"].to_numpy().reshape(4, 30), y[:, :30, 1], rtol=1e-12)
    np.testing.assert_allclose(frame["UR_V"].to_numpy().reshape(4, 30), y[:, :30, 3], rtol=1e-12)
    np.testing.assert_allclose(hrs, 10 ** y[:, 1:, 0], rtol=1e-10)  # reset of cycle n reaches HRS_{n+1}


def test_cycles_noise_is_small_and_seeded(model) -> None:
    clean = synth_cycles(model, 6, 40, seed=3, noise=False)
    noisy = synth_cycles(model, 6, 40, seed=3, noise=True)
    rel = (noisy["LRS_ohm"] - clean["LRS_ohm"]) / clean["LRS_ohm"]
    assert 0 < rel.abs().max() < 0.01
    assert rel.std() > 1e-5
    again = synth_cycles(model, 6, 40, seed=3, noise=True)
    pd.testing.assert_frame_equal(noisy, again)


def test_iv_sweeps_show_set_reset_and_reads(model) -> None:
    frame = synth_iv(model, 2, 4, seed=5, noise=False)
    assert list(frame.columns) == IV_COLUMNS
    volts, is_read = sweep_waveform(model)
    assert volts.min() == pytest.approx(-2.0) and volts.max() == pytest.approx(1.5)
    n_s = volts.size
    assert len(frame) == 2 * 4 * n_s
    for _, dev in frame.groupby("device"):
        assert np.all(np.diff(dev["t_s"].to_numpy()) > 0)
    y = feature_sequences(model, 5, np.arange(2), 5)
    reads = frame["I"].to_numpy().reshape(2, 4, n_s)[:, :, is_read]  # LRS read, HRS read
    np.testing.assert_allclose(model.u0 / reads[:, :, 0], y[:, :4, 2], rtol=1e-10)
    np.testing.assert_allclose(model.u0 / reads[:, :, 1], 10 ** y[:, 1:5, 0], rtol=1e-10)
    # on the way down to −2 V the current jumps at the first sample at or below US
    dev0 = frame[(frame.device == 0) & (frame.cycle == 0)]
    down = dev0.iloc[: int(round(2.0 / 0.01)) + 1]
    us = y[0, 0, 1]
    g = (down["I"] / down["V"]).to_numpy()[1:]
    v = down["V"].to_numpy()[1:]
    jump = np.argmax(g > 2 * g[0])
    assert v[jump] <= us < v[jump - 1]


def test_cli_synth_deterministic_with_metadata(tmp_path: Path) -> None:
    out1, out2 = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (out1, out2):
        res = runner.invoke(app, ["synth", "--devices", "3", "--cycles", "7", "--seed", "21",
                                  "--format", "cycles", "-o", str(out)])
        assert res.exit_code == 0, res.output
    assert out1.read_bytes() == out2.read_bytes()
    meta = json.loads((tmp_path / "a.csv.meta.json").read_text())
    assert meta["seed"] == 21 and meta["rows"] == 21 and meta["format"] == "cycles"
    res = runner.invoke(app, ["synth", "--devices", "3", "--cycles", "7", "--seed", "22", "-o", str(out2)])
    assert res.exit_code == 0 and out1.read_bytes() != out2.read_bytes()
    frame = pd.read_csv(out1)
    assert list(frame.columns) == CYCLE_COLUMNS and frame.notna().all().all()


def test_cli_synth_iv(tmp_path: Path) -> None:
    out = tmp_path / "iv.csv"
    res = runner.invoke(app, ["synth", "--devices", "2", "--cycles", "2", "--seed", "1", "--format", "iv",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == IV_COLUMNS
    assert set(frame["device"]) == {0, 1}


def test_cli_errors_are_one_line_and_leave_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1}')
    out = tmp_path / "x.csv"
    res = runner.invoke(app, ["synth", "--model", str(bad), "-o", str(out)])
    assert res.exit_code == 2
    assert "bad.json" in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == [bad]


def test_cli_import_synaptogen_and_show(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    res = runner.invoke(app, ["model", "import-synaptogen", str(SYNAPTOGEN), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) == json.loads(DEFAULT_MODEL.read_text())
    res = runner.invoke(app, ["model", "show", str(out)])
    assert res.exit_code == 0 and "spectral radius 0.96" in res.output
    res = runner.invoke(app, ["model", "import-synaptogen", str(tmp_path / "none.json"), "-o", str(out)])
    assert res.exit_code == 2 and "none.json" in res.output


def test_device_blocks_concatenate_to_the_full_table(model) -> None:
    full = synth_cycles(model, 5, 12, seed=4)
    parts = [synth_cycles(model, 2, 12, seed=4, first_device=0),
             synth_cycles(model, 3, 12, seed=4, first_device=2)]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), full)
    iv_full = synth_iv(model, 2, 2, seed=4, dv=0.05)
    iv_parts = pd.concat([synth_iv(model, 1, 2, seed=4, dv=0.05, first_device=d) for d in (0, 1)],
                         ignore_index=True)
    pd.testing.assert_frame_equal(iv_parts, iv_full)


def test_cli_streams_devices_in_blocks(tmp_path: Path, model, monkeypatch) -> None:
    import cosim.commands.device as device_commands

    monkeypatch.setattr(device_commands, "SYNTH_BLOCK_ROWS", 70)  # blocks of 3 devices
    out = tmp_path / "big.csv"
    res = runner.invoke(app, ["synth", "--devices", "10", "--cycles", "20", "--seed", "6", "-o", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    whole = synth_cycles(model, 10, 20, seed=6)
    assert len(frame) == 200 and list(frame["device"].unique()) == list(range(10))
    np.testing.assert_allclose(frame.to_numpy(), whole.to_numpy(), rtol=1e-8)
    assert json.loads((tmp_path / "big.csv.meta.json").read_text())["rows"] == 200
