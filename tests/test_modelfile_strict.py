"""Model files: strict JSON types and limits, VAR memory the MA(J) form can carry, valid D2D draws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.device.model import draw_d2d
from cosim.device.modelfile import (
    DEFAULT_MA_ORDER,
    MAX_INVALID_D2D,
    MIN_MA_VARIANCE_CAPTURED,
    DeviceModel,
    d2d_invalid,
    d2d_invalid_fraction,
    load_model,
    ma_variance_captured,
)
from cosim.device.synth import synth_cycles
from cosim.errors import ModelFileError
from cosim.paths import DEFAULT_MODEL

DEFAULT = json.loads(DEFAULT_MODEL.read_text())


def edited(**changes: object) -> dict:
    data = json.loads(json.dumps(DEFAULT))
    data.update(changes)
    return data


@pytest.mark.parametrize("field, value, message", [
    ("hrs_log10", "false", "'hrs_log10' must be true or false"),
    ("hrs_log10", 0, "'hrs_log10' must be true or false"),
    ("u0", "0.2", "'u0' must be a number, got string"),
    ("eta", True, "'eta' must be a number, got boolean"),
    ("name", None, "'name' must be a string, got null"),
    ("name", 3, "'name' must be a string"),
    ("schema_version", True, "schema_version"),
    ("iv_hhrs", ["1e-6", 0, 0, 0, 0], "'iv_hhrs' is not a numeric array (contains strings)"),
    ("d2d_weights", [True, False, False], "'d2d_weights' is not a numeric array"),
    ("gamma", [[0, 0, 0, 1, None]] * 4, "'gamma' is not a numeric array (contains null)"),
    ("features", "HRS", "'features' must be a list"),
])
def test_types_are_strict(field: str, value: object, message: str) -> None:
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DeviceModel.from_dict(edited(**{field: value}), "m.json")


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
    ('{"schema_version": 1, "eta": 1' + "0" * 400 + "}", "401 digits is too large"),
    ('{"schema_version": 1, "eta": NaN}', "NaN is not a JSON number"),
])
def test_json_limits_give_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_overflowing_float_literal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(edited()).replace('"eta": 3.0567', '"eta": 1e400'))
    with pytest.raises(ModelFileError, match="'eta' must be finite"):
        load_model(path)


def test_cli_names_the_bad_field_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(edited(name=None)))
    for args in (["model", "show", str(path)], ["va", "--model", str(path), "-o", str(tmp_path / "x.va")],
                 ["synth", "--model", str(path), "-o", str(tmp_path / "x.csv")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "error:" in result.output and "'name' must be a string, got null" in result.output
        assert not isinstance(result.exception, ModelFileError)  # handled, no traceback
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def unit_root_var(rho: float) -> dict:
    lags = np.zeros((1, 4, 4))
    lags[0] = np.diag([0.3, 0.3, rho, 0.3])
    return edited(var_lags=lags.tolist())


def test_var_too_close_to_a_unit_root_is_refused() -> None:
    with pytest.raises(ModelFileError, match=r"'var_lags': companion spectral radius 0.9999999 .*"
                                             r"keeps .* of the LRS variance"):
        DeviceModel.from_dict(unit_root_var(0.9999999))
    with pytest.raises(ModelFileError, match="var_lags"):
        DeviceModel.from_dict(unit_root_var(0.99))  # keeps 1 − 0.99^102 = 0.64
    model = DeviceModel.from_dict(unit_root_var(0.95))  # keeps 1 − 0.95^102 = 0.995
    kept = ma_variance_captured(model.var_lags, model.var_chol, DEFAULT_MA_ORDER)
    assert kept.min() >= MIN_MA_VARIANCE_CAPTURED


def wide_lrs_spread(mean_over_sd: float) -> dict:
    """The default model with the device-to-device sd of the mean LRS set to mean/ratio."""
    chol, means = np.array(DEFAULT["d2d_chol"]), np.array(DEFAULT["d2d_means"])
    for k in range(chol.shape[0]):
        chol[k][2] *= means[2, k] / mean_over_sd / np.linalg.norm(chol[k][2])
    return edited(d2d_chol=chol.tolist())


def test_d2d_draws_never_give_negative_resistances() -> None:
    """About 0.5 % of this mixture's draws have μ_LRS ≤ 0 (accepted, < 1 %): they are redrawn,
    so `cosim synth` writes no negative LRS (it wrote 26 in these 9000 rows before)."""
    model = DeviceModel.from_dict(wide_lrs_spread(2.8))
    weights = model.d2d_weights / model.d2d_weights.sum()
    assert 0.001 < d2d_invalid_fraction(model) @ weights <= MAX_INVALID_D2D
    params = draw_d2d(model, 1, np.arange(5000))
    assert params.redrawn > 5
    assert np.all(params.sigma > 0) and np.all(params.mu[:, 2] > 0)
    assert not d2d_invalid(model, np.hstack([params.mu, params.sigma])).any()
    table = synth_cycles(model, 3000, 3, 1)
    assert (table[["HRS_ohm", "LRS_ohm"]].to_numpy() > 0).all()
    # the published parameters need a redraw for about 1e-4 of the devices
    plain = draw_d2d(load_model(DEFAULT_MODEL), 0, np.arange(20_000))
    assert 0 < plain.redrawn <= 10 and np.all(plain.sigma > 0)


def test_mixture_with_many_invalid_draws_is_refused() -> None:
    with pytest.raises(ModelFileError, match=r"'d2d_means'/'d2d_chol': 0\.\d+ of the D2D draws"):
        DeviceModel.from_dict(wide_lrs_spread(1.5))


def test_model_show_reports_the_redraw_fraction() -> None:
    result = CliRunner().invoke(app, ["model", "show"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("D2D draws redrawn"))
    assert 1e-5 < float(line.split(":")[1].split()[0]) < 1e-3  # about 1e-4 of devices


def test_non_utf8_and_nested_files_are_refused_by_every_reader(tmp_path: Path) -> None:
    from cosim.device.modelfile import import_synaptogen

    binary, nested = tmp_path / "bin.json", tmp_path / "nested.json"
    binary.write_bytes(b'{"name": "caf\xe9"}')
    nested.write_text("[" * 5000 + "]" * 5000)
    for reader in (load_model, import_synaptogen):
        with pytest.raises(ModelFileError, match="not UTF-8"):
            reader(binary)
        with pytest.raises(ModelFileError, match="nested deeper"):
            reader(nested)


def test_synth_metadata_counts_redrawn_devices(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    result = CliRunner().invoke(app, ["synth", "--devices", "20000", "--cycles", "1", "--seed", "0",
                                      "--no-noise", "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
    expected = draw_d2d(load_model(DEFAULT_MODEL), 0, np.arange(20_000)).redrawn
    assert meta["d2d_redrawn"] == expected > 0
