"""Quality control: every problem reported with device, cycle and action; nothing dropped silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cosim.fit.qc import QCConfig, QCReport, check_cycle_table, robust_z
from cosim.fit.readers import read_measurements

DATA = Path(__file__).parent / "data" / "fit"


def _entries(report: QCReport, kind: str) -> pd.DataFrame:
    frame = report.to_frame()
    return frame[frame["kind"] == kind]


def test_problem_file_entries() -> None:
    m = read_measurements(DATA / "cycles_problems.csv")
    kept, report = check_cycle_table(m.frame, QCConfig(min_cycles=1))
    # unsorted (cycle 1 before cycle 0) → sorted, stated once
    assert len(_entries(report, "unsorted")) == 1
    dup = _entries(report, "duplicate")
    assert list(dup["cycle"]) == [1] and list(dup["action"]) == ["excluded"]
    assert "identical" in dup["detail"].iloc[0]
    missing = _entries(report, "missing")
    assert list(missing["cycle"]) == [2] and list(missing["column"]) == ["HRS_ohm"]
    assert list(missing["line"]) == [5]
    failed = _entries(report, "failed_switching").set_index("cycle")
    assert set(failed.index) == {3, 4, 7}
    assert "HRS <= LRS" in failed.loc[3, "detail"]
    assert "US >= 0" in failed.loc[4, "detail"]
    assert "UR <= 0" in failed.loc[7, "detail"]
    assert (failed["action"] == "excluded").all()
    assert list(kept["cycle"]) == [0, 1]
    # every input row is either kept or named by an 'excluded' entry with its line
    excluded_lines = set(report.to_frame().query("action == 'excluded'")["line"].dropna())
    assert set(kept["line"]) | excluded_lines == set(m.frame["line"])


def _table(n_dev: int = 4, n_cyc: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = n_dev * n_cyc
    return pd.DataFrame({
        "device": np.repeat([f"d{i}" for i in range(n_dev)], n_cyc),
        "cycle": np.tile(np.arange(n_cyc), n_dev),
        "HRS_ohm": 10 ** rng.normal(4.9, 0.19, rows), "US_V": rng.normal(-0.68, 0.06, rows),
        "LRS_ohm": rng.normal(4500, 180, rows), "UR_V": rng.normal(0.74, 0.04, rows),
        "line": np.arange(rows) + 2})


def test_stuck_device_gap_and_outliers() -> None:
    table = _table()
    stuck = table["device"] == "d1"
    table.loc[stuck, "LRS_ohm"] = 4321.0  # no cycle-to-cycle variation
    table = table.drop(index=table.index[(table["device"] == "d2") & table["cycle"].between(10, 14)])
    big = table.index[(table["device"] == "d3") & (table["cycle"] == 30)][0]
    table.loc[big, "UR_V"] = 5.0  # gross outlier (z ≫ 20)
    mild = table.index[(table["device"] == "d0") & (table["cycle"] == 20)][0]
    table.loc[mild, "US_V"] = -0.68 - 8 * 0.06  # ~8 sd: flagged, kept
    kept, report = check_cycle_table(table.reset_index(drop=True))
    stuck_e = _entries(report, "stuck")
    assert list(stuck_e["device"]) == ["d1"] and "LRS_ohm" in stuck_e["detail"].iloc[0]
    assert "d1" not in set(kept["device"])
    gap = _entries(report, "gap")
    assert any((gap["device"] == "d2") & (gap["cycle"] == 15))
    out = _entries(report, "outlier").set_index(["device", "cycle"])
    assert out.loc[("d3", 30), "action"] == "excluded"
    assert out.loc[("d0", 20), "action"] == "kept"
    assert not ((kept["device"] == "d3") & (kept["cycle"] == 30)).any()
    assert ((kept["device"] == "d0") & (kept["cycle"] == 20)).any()
    md = report.to_markdown()
    assert "| stuck |" in md and "d1" in md


def test_too_few_cycles() -> None:
    table = _table(n_dev=2, n_cyc=5)
    kept, report = check_cycle_table(table)
    assert kept.empty
    assert set(_entries(report, "too_few_cycles")["device"]) == {"d0", "d1"}


def test_robust_z_matches_definition() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 10.0, 10.0, 10.0, 10.0, 11.0])
    g = np.array([0] * 5 + [1] * 5)
    z = robust_z(x, g)
    # group 0: median 3, MAD = median(|x-3|) = median(2,1,0,1,97) = 1
    np.testing.assert_allclose(z[:5], 0.6745 * (x[:5] - 3.0))
    # group 1: MAD = 0 → z = 0 (no spread to compare against)
    np.testing.assert_allclose(z[5:], 0.0)


def test_empty_report_markdown() -> None:
    assert "No problems" in QCReport().to_markdown()
    assert QCReport().to_frame().empty


def test_robust_z_of_nothing() -> None:
    assert robust_z(np.empty((0, 4)), np.empty(0)).shape == (0, 4)
    assert robust_z(np.empty(0), np.empty(0)).shape == (0,)
