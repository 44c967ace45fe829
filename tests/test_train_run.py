"""Training runs and deployment end to end on tiny models (seconds each)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import torch  # the train extra, installed by scripts/setup.sh

from cosim.s4d.ideal import ideal_matvec, run_recurrence
from cosim.train.config import DeployConfig, load_train_config
from cosim.train.deploy import (
    CSV_COLUMNS,
    Corrected,
    GainCorrected,
    _circuit_matvecs,
    _Hardware,
    _programmed,
    effective_matvec,
    layer_setups,
    probe_gains,
)
from cosim.train.trainer import load_run, train_run

SMALL = """
seed = {seed}
[model]
channels = 8
state_size = 4
layers = 1
[training]
epochs = {epochs}
batch_size = 16
lr = 0.02
ssm_lr = 0.01
"""


def sines(path, seed=0, n_train=128, n_test=40, length=32):
    """Two classes: slow vs fast noisy sines with random phase."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 2, n)
        t = np.arange(length)
        freq = np.where(y == 0, 0.06, 0.2)[:, None]
        x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1))) + 0.3 * rng.normal(size=(n, length))
        return x.astype(np.float32), y

    X_tr, y_tr = make(n_train)
    X_te, y_te = make(n_test)
    np.savez(path, X_train=X_tr, y_train=y_tr, X_test=X_te, y_test=y_te)
    return path


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    data = sines(folder / "sines.npz")
    config_file = folder / "train.toml"
    config_file.write_text(SMALL.format(seed=3, epochs=12))
    config = load_train_config(config_file, data=data)
    result = train_run(config, folder / "run", progress=False)
    return folder, config, result


def test_training_reduces_the_loss_and_beats_chance(sine_run):
    _, _, result = sine_run
    history = result.record["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert result.metrics["test_accuracy"] >= 0.85  # chance is 0.5
    assert result.metrics["n_test"] == 40


def test_same_seed_same_model_and_accuracy_other_seed_differs(sine_run, tmp_path):
    folder, config, result = sine_run
    again = train_run(config, tmp_path / "again", progress=False)
    assert again.metrics["test_accuracy"] == result.metrics["test_accuracy"]
    for (name, a), (_, b) in zip(result.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name
    other = train_run(config.model_copy(update={"seed": 4}), tmp_path / "other", progress=False)
    assert not torch.equal(other.model.encoder.weight, result.model.encoder.weight)


def test_run_folder_round_trips(sine_run):
    folder, _, result = sine_run
    record = json.loads((folder / "run" / "train.json").read_text())
    assert record["seeds"]["model"] == 3 and record["versions"]["torch"].startswith("2.13")
    assert len(record["history"]) == 12
    model, _, data = load_run(folder / "run")
    from cosim.train.trainer import evaluate

    assert evaluate(model, data.X_test, data.y_test) == pytest.approx(result.metrics["test_accuracy"])


def test_digits_small_model_learns_in_a_few_epochs(tmp_path):
    config = load_train_config(None, task="digits", seed=0)
    config = config.model_copy(update={
        "model": config.model.model_copy(update={"channels": 16, "state_size": 8, "layers": 1}),
        "training": config.training.model_copy(update={"epochs": 6, "batch_size": 32, "lr": 0.03}),
    })
    result = train_run(config, tmp_path / "digits", progress=False)
    assert result.metrics["test_accuracy"] > 0.4  # chance is 0.1


def test_qat_run_records_bits_and_memory(tmp_path):
    data = sines(tmp_path / "s.npz", seed=1)
    config_file = tmp_path / "q.toml"
    config_file.write_text(SMALL.format(seed=0, epochs=3) + "[qat]\nbits = 3\n[prune]\nkeep_modes = 1\nfinetune_epochs = 1\n")
    result = train_run(load_train_config(config_file, data=data), tmp_path / "q", progress=False)
    assert result.metrics["bits"] == "3"
    assert result.metrics["crossbar_memory_bits"] == 8 * (4 * 2 + 1) * 3  # pruned to N = 2
    assert result.metrics["float_crossbar_memory_bits"] == 8 * (4 * 2 + 1) * 32
    assert [h["phase"] for h in result.record["history"]] == ["train"] * 3 + ["finetune"]


def test_probe_engine_equals_a_nodal_solve_per_step_and_gain_calibration(sine_run):
    from cosim.device.modelfile import load_model
    from cosim.device.programming import ProgramConfig
    from cosim.paths import DEFAULT_MODEL
    from cosim.s4d.circuit import CircuitBackend, Wires
    from cosim.s4d.mapping import ConductanceWindow

    folder, _, _ = sine_run
    model, _, data = load_run(folder / "run")
    setups = layer_setups(model, data.X_test[:8], "delta", 4, "block")
    device_model = load_model(DEFAULT_MODEL)
    hw = _Hardware(device_model, ConductanceWindow.from_device_model(device_model), ProgramConfig(), Wires())
    mapped = _programmed(setups, hw, 0, {})
    setup = setups[0]
    u = np.random.default_rng(0).normal(size=(3, setup.program.n_channels, 10))
    with CircuitBackend(mapped[0], Wires(), solver="nodal") as backend:
        stepwise = run_recurrence(backend, setup.program, u, dac=setup.dac)
        probed = run_recurrence(effective_matvec(backend), setup.program, u, dac=setup.dac)
    assert np.allclose(probed, stepwise, rtol=1e-9, atol=1e-12)
    # gain calibration recovers a known per-output gain
    gains = np.linspace(0.9, 1.05, setup.program.n_channels * 5).reshape(setup.program.n_channels, 5)
    skewed = lambda m, v: ideal_matvec(m, v) * gains  # noqa: E731
    found, offsets = probe_gains(skewed, setup.program, seed=0)
    assert np.allclose(found, gains) and np.allclose(offsets, 0)
    corrected = GainCorrected(skewed, found, offsets)
    volts = np.random.default_rng(1).uniform(-0.2, 0.2, (4, setup.program.n_channels, 5))
    assert np.allclose(corrected(setup.program.matrices, volts), ideal_matvec(setup.program.matrices, volts))
    matvecs, backends = _circuit_matvecs(setups, mapped, hw, "gain", False, probe_seed=0)
    for backend in backends:
        backend.close()
    assert isinstance(matvecs[0], (GainCorrected, Corrected))  # own calibration, or cosim.compensation's


def _cosim(*args):
    return subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True, text=True, timeout=600)


def test_cli_train_and_deploy_write_their_files(tmp_path):
    data = sines(tmp_path / "s.npz", seed=2, n_test=12)
    (tmp_path / "t.toml").write_text(SMALL.format(seed=1, epochs=6) + "[qat]\nbits = 4\n")
    done = _cosim("train", "-o", str(tmp_path / "run"), "--data", str(data), "--config", str(tmp_path / "t.toml"), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"test_accuracy", "n_test"} <= set(metrics) and metrics["n_test"] == 12
    (tmp_path / "d.toml").write_text(
        'device_seeds = [0, 1]\nmdm = [false, true]\ncompensation = ["none", "gain", "predistort"]\n'
        "[spot_check]\nsamples = 1\nsteps = 4\n")
    done = _cosim("deploy", str(tmp_path / "run"), "-o", str(tmp_path / "dep"), "--config", str(tmp_path / "d.toml"), "--quiet")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "dep" / "accuracy.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert sorted(set(table.level)) == ["devices", "devices_wires", "float", "quantized"]
    assert len(table) == 2 + 2 * (1 + 3 * 2)
    assert (table.n_test == 12).all() and table.accuracy.between(0, 1).all()
    quantized = table[table.level == "quantized"].accuracy.item()
    assert quantized == pytest.approx(metrics["test_accuracy"])  # deploy's software level = training's metric
    record = json.loads((tmp_path / "dep" / "deploy.json").read_text())
    assert record["spot_check"]["max_relative_difference"] < 1e-6
    for name in ("report.md", "accuracy.png", "summary.csv"):
        assert (tmp_path / "dep" / name).stat().st_size > 0


def test_cli_errors_are_one_line(tmp_path):
    done = _cosim("train", "-o", str(tmp_path / "r"), "--data", str(tmp_path / "missing.npz"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and "missing.npz: no such file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = _cosim("deploy", str(tmp_path / "nothing"), "-o", str(tmp_path / "d"))
    assert done.returncode == 2 and "not a training run folder" in done.stderr
    (tmp_path / "bad.toml").write_text("[model]\nstate_size = 5\n")
    done = _cosim("train", "-o", str(tmp_path / "r"), "--task", "digits", "--config", str(tmp_path / "bad.toml"))
    assert done.returncode == 2 and "field 'model.state_size'" in done.stderr
    assert not (tmp_path / "r").exists()
    done = _cosim("train", "-o", str(tmp_path / "r"), "--task", "digits", "--data", str(tmp_path / "x.npz"))
    assert done.returncode == 2 and "give exactly one of --task NAME or --data FILE.npz" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda record: record.pop("architecture"), "not a training record (missing key 'architecture')"),
        (lambda record: record["architecture"].update(bogus=1), "invalid training record"),
        (lambda record: record["architecture"].update(channels=5), "model.npz: does not match the architecture"),
    ],
)
def test_broken_run_folder_gives_a_one_line_error(sine_run, tmp_path, edit, message):
    import shutil

    from cosim.errors import CosimError

    run = tmp_path / "run"
    shutil.copytree(sine_run[0] / "run", run)
    record = json.loads((run / "train.json").read_text())
    edit(record)
    (run / "train.json").write_text(json.dumps(record))
    with pytest.raises(CosimError) as info:
        load_run(run)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_run_with_a_test_split_that_does_not_fit_the_model(sine_run, tmp_path):
    import shutil

    from cosim.errors import CosimError

    run = tmp_path / "run"
    shutil.copytree(sine_run[0] / "run", run)
    np.savez(run / "test_split.npz", X_test=np.zeros((3, 2, 32), np.float32), y_test=np.zeros(3, np.int64),
             X_calib=np.zeros((3, 1, 32), np.float32))
    with pytest.raises(CosimError, match="test_split.npz: X_test .* do not fit a model with 1 input channel"):
        load_run(run)


def test_deploy_report_with_equal_seed_accuracies(tmp_path):
    from cosim.train.report import write_deploy_report

    value = 0.1 + 0.2  # not exactly representable: the mean of equal values may differ from them
    rows = [{"level": "devices", "variant": "delta", "bits": "4", "compensation": "none", "mdm": False,
             "device_seed": s, "accuracy": value, "n_test": 7} for s in range(3)]
    record = {"run": "r", "trained": {"variant": "delta", "bits": 4, "test_accuracy_software": 0.3},
              "bits": "4", "scheme": "block", "variants": ["delta"], "layout": "channel", "window_S": [1e-5, 1e-4],
              "v_read_V": 0.2, "config": {"wires": {}, "device_seeds": [0, 1, 2]}, "compensation": ["none"],
              "memory_bits": {"quantized": 10, "float": 80}, "spot_check": None}
    files = write_deploy_report(pd.DataFrame(rows, columns=CSV_COLUMNS), record, tmp_path / "out")
    assert {f.name for f in files} == {"accuracy.csv", "summary.csv", "deploy.json", "accuracy.png", "report.md"}
    assert "| devices | delta | 4 | none | no | 30.00 %" in (tmp_path / "out" / "report.md").read_text()
