"""Model file: Synaptogen conversion, validation with field names, atomic save, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cosim.device.modelfile import (
    DEFAULT_MA_ORDER,
    DeviceModel,
    import_synaptogen,
    load_model,
    ma_variance_captured,
    save_model,
    stationary_covariance,
)
from cosim.errors import ModelFileError
from cosim.paths import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
SYNAPTOGEN = REPO.parent / "shared" / "reference" / "synaptogen" / "default_params.json"


@pytest.fixture(scope="module")
def model() -> DeviceModel:
    return load_model(DEFAULT_MODEL)


def test_converter_reproduces_shipped_default(tmp_path: Path) -> None:
    out = tmp_path / "default.json"
    save_model(import_synaptogen(SYNAPTOGEN), out)
    assert json.loads(out.read_text()) == json.loads(DEFAULT_MODEL.read_text())


def test_conversion_keeps_source_values(model: DeviceModel) -> None:
    src = json.loads(SYNAPTOGEN.read_text())
    var = np.asarray(src["VAR_010"])
    np.testing.assert_array_equal(model.var_chol, var[:, :4])
    # source layout [L | A_10 | ... | A_1]: the last block is the lag-1 matrix
    np.testing.assert_array_equal(model.var_lags[0], var[:, -4:])
    np.testing.assert_array_equal(model.var_lags[9], var[:, 4:8])
    ldtd = np.asarray(src["LDtD"])
    np.testing.assert_array_equal(model.d2d_chol[2], ldtd[:, 16:24])
    np.testing.assert_array_equal(model.d2d_means, np.asarray(src["μDtD"]))
    np.testing.assert_array_equal(model.iv_llrs, np.asarray(src["LLRS"])[:-1])
    assert model.u0 == 0.2 and model.umax == 1.46 and model.eta == 3.0567
    assert "MIT" in model.provenance["licence"]
    assert "2404.06344" in model.provenance["source"]


@pytest.mark.parametrize("p", [1, 3, 5, 10])
def test_lag_order_gives_unit_stationary_variance(p: int) -> None:
    """docs/device-model.md (C2C): only the oldest-first reading of VAR_00p gives unit latent variance."""
    m = import_synaptogen(SYNAPTOGEN, var_order=p)
    var = np.diag(stationary_covariance(m.var_lags, m.var_chol))
    np.testing.assert_allclose(var, 1.0, atol=0.02)
    reversed_var = np.diag(stationary_covariance(m.var_lags[::-1].copy(), m.var_chol))
    if p > 1:
        assert np.max(np.abs(reversed_var - 1.0)) > 0.02


def test_latent_correlations_match_design(model: DeviceModel) -> None:
    cov = stationary_covariance(model.var_lags, model.var_chol)
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert corr[0, 1] == pytest.approx(-0.23, abs=0.01)
    assert corr[2, 3] == pytest.approx(0.19, abs=0.01)


def test_default_ma_order_keeps_98_percent(model: DeviceModel) -> None:
    kept = ma_variance_captured(model.var_lags, model.var_chol, DEFAULT_MA_ORDER)
    assert np.all(kept >= 0.98)
    # docs/veriloga.md: LRS keeps 0.81 / 0.91 / 0.99 at J = 10 / 20 / 50
    lrs = [ma_variance_captured(model.var_lags, model.var_chol, j)[2] for j in (10, 20, 50)]
    np.testing.assert_allclose(lrs, [0.81, 0.91, 0.99], atol=0.006)


def test_round_trip(tmp_path: Path, model: DeviceModel) -> None:
    path = tmp_path / "m.json"
    save_model(model, path)
    again = load_model(path)
    assert again.to_dict() == model.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp files left


def _mutated(model: DeviceModel, **changes: object) -> dict:
    data = model.to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("var_chol", [[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "var_chol"),
        ("d2d_weights", [0.5, 0.2, 0.2], "d2d_weights"),
        ("gamma", [[0, 0, -1, 0, 0]] * 4, "gamma"),
        ("iv_llrs", [1, 2, 3], "iv_llrs"),
        ("d2d_means", [[0.0] * 3] * 7, "d2d_means"),
        ("umax", -1.0, "umax"),
        ("schema_version", 99, "schema_version"),
        ("features", ["LRS", "HRS", "US", "UR"], "features"),
    ],
)
def test_validation_names_the_field(model: DeviceModel, field: str, value: object, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        DeviceModel.from_dict(_mutated(model, **{field: value}), source="x.json")


def test_unstable_var_is_rejected(model: DeviceModel) -> None:
    lags = model.var_lags.copy()
    lags[0] = lags[0] + 0.9 * np.eye(4)
    with pytest.raises(ModelFileError, match="var_lags.*not stable"):
        DeviceModel.from_dict(_mutated(model, var_lags=lags.tolist()))


def test_non_monotone_gamma_names_feature(model: DeviceModel) -> None:
    gamma = model.gamma.copy()
    gamma[2] = [0.0, 0.1, 0.0, -0.5, 0.0]  # 0.1 x^3 - 0.5 x: decreasing near 0
    with pytest.raises(ModelFileError, match=r"gamma\[2\].*LRS"):
        DeviceModel.from_dict(_mutated(model, gamma=gamma.tolist()))


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ModelFileError, match="bad.json.*line 1"):
        load_model(bad)
    with pytest.raises(ModelFileError, match="missing.json"):
        load_model(tmp_path / "missing.json")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"schema_version": 1, "gamma": []}))
    with pytest.raises(ModelFileError, match="partial.json: missing field.*d2d_weights"):
        load_model(partial)


def test_synaptogen_import_reports_missing_keys(tmp_path: Path) -> None:
    src = json.loads(SYNAPTOGEN.read_text())
    del src["LDtD"]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(src))
    with pytest.raises(ModelFileError, match="LDtD"):
        import_synaptogen(path)


def test_models_compare_by_value(model: DeviceModel) -> None:
    same = DeviceModel.from_dict(model.to_dict())
    assert same == model
    other = DeviceModel.from_dict(_mutated(model, eta=3.0))
    assert other != model
