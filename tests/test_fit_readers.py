"""Readers of measurement CSVs: aliases, units, layout detection, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosim.errors import DataFileError
from cosim.fit.readers import parse_header, read_measurements

DATA = Path(__file__).parent / "data" / "fit"


def test_aliases_units_and_semicolons() -> None:
    m = read_measurements(DATA / "cycles_aliases.csv")
    assert m.kind == "cycles"
    f = m.frame
    assert list(f["device"]) == ["A1", "A1", "A1", "B7", "B7"]
    assert list(f["cycle"]) == [0, 1, 2, 0, 1]
    # kohm → Ω, mV → V, plain names → SI
    np.testing.assert_allclose(f["HRS_ohm"], [120.5e3, 98.2e3, 101.0e3, 140.0e3, 85.5e3])
    np.testing.assert_allclose(f["US_V"], [-0.650, -0.702, -0.688, -0.610, -0.655])
    np.testing.assert_allclose(f["LRS_ohm"], [4500, 4610, 4420, 4700, 4580])
    np.testing.assert_allclose(f["UR_V"], [0.71, 0.74, 0.69, 0.78, 0.75])
    assert list(f["line"]) == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("header, canonical, factor", [
    ("HRS_ohm", "HRS_ohm", 1.0), ("R_HRS_kohm", "HRS_ohm", 1e3), ("hrs [Mohm]", "HRS_ohm", 1e6),
    ("Vset", "US_V", 1.0), ("V_SET (mV)", "US_V", 1e-3), ("Vreset_V", "UR_V", 1.0),
    ("voltage", "V", 1.0), ("Voltage [mV]", "V", 1e-3), ("current_uA", "I", 1e-6),
    ("I (nA)", "I", 1e-9), ("I_mA", "I", 1e-3), ("time", "t_s", 1.0), ("t_ms", "t_s", 1e-3),
    ("t_us", "t_s", 1e-6), ("device_id", "device", 1.0), ("cyc", "cycle", 1.0),
    ("cycle_index", "cycle", 1.0), ("R_LRS", "LRS_ohm", 1.0), ("LRS kOhm", "LRS_ohm", 1e3),
])
def test_header_parsing(header: str, canonical: str, factor: float) -> None:
    spec = parse_header(header, Path("x.csv"))
    assert spec is not None and spec.canonical == canonical
    assert spec.factor == pytest.approx(factor)


def test_unknown_columns_are_ignored_not_errors() -> None:
    assert parse_header("temperature", Path("x.csv")) is None


@pytest.mark.parametrize("header, message", [
    ("HRS_mV", "voltage unit"), ("HRS [mohm]", "ambiguous"), ("V [furlong]", "unknown unit"),
])
def test_bad_units_name_the_column(header: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        parse_header(header, Path("x.csv"))


def test_text_in_number_column_names_file_line_and_column() -> None:
    with pytest.raises(DataFileError) as err:
        read_measurements(DATA / "cycles_bad_text.csv")
    text = str(err.value)
    assert "cycles_bad_text.csv" in text and "line 4" in text and "'US_V'" in text
    assert "oops" in text


def test_missing_columns_listed(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("device,cycle,HRS_ohm,US_V\n0,0,1e5,-0.7\n")
    with pytest.raises(DataFileError, match="missing column.*LRS_ohm.*UR_V"):
        read_measurements(path)


def test_iv_layout_and_format_override(tmp_path: Path) -> None:
    path = tmp_path / "iv.csv"
    path.write_text("Device,Loop,Time [ms],Voltage [mV],Current [uA]\n"
                    "a,0,0,0,0\na,0,1,-100,-2.5\na,0,2,-200,-5\n")
    m = read_measurements(path)
    assert m.kind == "iv"
    np.testing.assert_allclose(m.frame["V"], [0, -0.1, -0.2])
    np.testing.assert_allclose(m.frame["I"], [0, -2.5e-6, -5e-6])
    np.testing.assert_allclose(m.frame["t_s"], [0, 1e-3, 2e-3])
    with pytest.raises(DataFileError, match="missing column"):
        read_measurements(path, "cycles")


def test_duplicate_meaning_rejected(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("device,cycle,V,voltage,I\n0,0,1,1,1\n")
    with pytest.raises(DataFileError, match="both mean 'V'"):
        read_measurements(path)


def test_empty_and_binary_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataFileError, match="empty"):
        read_measurements(empty)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataFileError, match="not a text CSV"):
        read_measurements(binary)
    header_only = tmp_path / "h.csv"
    header_only.write_text("device,cycle,V,I\n")
    with pytest.raises(DataFileError, match="no data rows"):
        read_measurements(header_only)
    with pytest.raises(DataFileError, match="cannot read"):
        read_measurements(tmp_path / "absent.csv")


def test_non_integer_cycle(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("device,cycle,V,I\n0,1.5,0.1,1e-6\n")
    with pytest.raises(DataFileError, match="line 2.*not an integer"):
        read_measurements(path)
