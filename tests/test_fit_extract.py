"""Feature extraction from raw I–V loops, checked against the model's own switching features.

``cosim synth`` draws the cycle table and the I–V loops of a seed from the same random streams,
so the loops' true features are the noise-free cycle table of the same seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cosim.device.modelfile import load_model
from cosim.device.synth import synth_cycles, synth_iv
from cosim.fit.extract import ExtractConfig, extract_features, extract_loop
from cosim.fit.readers import measurement_from_frame
from cosim.paths import DEFAULT_MODEL

DV = 0.01  # sweep step of the synthetic loops, V


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


def _extract(frame: pd.DataFrame):
    return extract_features(measurement_from_frame(frame).frame)


def _truth(model, n_dev: int, n_cyc: int, seed: int) -> pd.DataFrame:
    return synth_cycles(model, n_dev, n_cyc, seed, noise=False)


def test_noise_free_loops_give_the_model_features(model) -> None:
    table, segments, report = _extract(synth_iv(model, 8, 6, seed=3, dv=DV, noise=False))
    truth = _truth(model, 8, 6, 3)
    assert len(report) == 0 and len(table) == 48
    # SET happens at the first sample at or below US: US is known to half a step
    assert np.max(np.abs(table["US_V"] - truth["US_V"])) <= DV / 2 + 1e-12
    # the RESET onset is interpolated where the current stops following the LRS curve
    assert np.max(np.abs(table["UR_V"] - truth["UR_V"])) < 2e-3
    np.testing.assert_allclose(table["LRS_ohm"], truth["LRS_ohm"], rtol=1e-9)
    np.testing.assert_allclose(table["HRS_ohm"], truth["HRS_ohm"], rtol=1e-9)
    v, _, r = segments.constant_state()
    assert v.size > 0 and np.all(np.isfinite(r))


def test_noisy_loops_stay_close(model) -> None:
    table, _, report = _extract(synth_iv(model, 8, 6, seed=4, dv=DV))
    truth = _truth(model, 8, 6, 4)
    assert len(report) == 0
    assert np.max(np.abs(table["US_V"] - truth["US_V"])) <= DV / 2 + 1e-9
    assert np.max(np.abs(table["UR_V"] - truth["UR_V"])) < DV
    # read noise at 44 µA is ~0.1 %, at 2.6 µA ~1 % (σ² = 4kT·BW·G + 2qI·BW + floor²)
    np.testing.assert_allclose(table["LRS_ohm"], truth["LRS_ohm"], rtol=5e-3)
    np.testing.assert_allclose(table["HRS_ohm"], truth["HRS_ohm"], rtol=3e-2)


def test_loops_without_a_clean_switch_are_reported(model) -> None:
    v = np.concatenate([np.linspace(0, -2, 201), np.linspace(-2, 0, 201),
                        np.linspace(0, 1.5, 151), np.linspace(1.5, 0, 151)])
    ohmic = v / 1e5  # a stuck device: a plain resistor, no SET, no RESET
    feats = extract_loop(v, ohmic, ExtractConfig())
    columns = [c for c, _ in feats.problems]
    assert "US_V" in columns and np.isnan(feats.us)
    assert any("no clean RESET" in t or "no RESET" in t for _, t in feats.problems)
    only_negative = extract_loop(v[:402], ohmic[:402], ExtractConfig())
    assert any("no positive" in t for _, t in only_negative.problems)
    only_positive = extract_loop(v[402:], ohmic[402:], ExtractConfig())
    assert any("no negative" in t for _, t in only_positive.problems)
    nan_loop = extract_loop(np.full(10, np.nan), np.full(10, np.nan), ExtractConfig())
    assert nan_loop.problems


def test_failed_cycles_become_qc_entries_in_the_table(model) -> None:
    frame = synth_iv(model, 2, 3, seed=5, dv=0.02, noise=False)
    # device 1, cycle 1: replace the loop by a plain resistor (no switching)
    sel = (frame["device"] == 1) & (frame["cycle"] == 1)
    frame.loc[sel, "I"] = frame.loc[sel, "V"] / 2e5
    frame.loc[frame.index[5], "I"] = np.nan
    table, _, report = _extract(frame)
    qc = report.to_frame()
    bad = qc[(qc["kind"] == "extraction")]
    assert set(zip(bad["device"], bad["cycle"])) == {("1", 1)}
    assert (bad["action"] == "excluded").all()
    assert table.set_index(["device", "cycle"]).loc[("1", 1), ["US_V", "UR_V"]].isna().all()
    missing = qc[qc["kind"] == "missing"]
    assert list(zip(missing["device"], missing["cycle"])) == [("0", 0)]
