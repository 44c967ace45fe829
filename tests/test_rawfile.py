"""Raw-file reader against golden files whose values follow from circuit analysis.

The golden files in tests/data/raw/ were written by ngspice 46 from the netlists next to
them (`ngspice -b -r NAME.raw NAME.cir`); each netlist states the analytic answer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cosim.spice.rawfile import RawFileError, parse_raw, read_raw

RAW_DIR = Path(__file__).parent / "data" / "raw"
GOLDEN = [
    "divider_op", "divider_tran", "divider_ascii", "rc_ac", "rc_ac_ascii", "multi_plot",
    "multi_plot_ascii",
]

R1, R2 = 1e3, 3e3  # divider resistors (ohm)
R_LP, C_LP = 1e3, 1e-6  # RC low-pass (ohm, farad)


def rc_lowpass(freq: np.ndarray) -> np.ndarray:
    """Transfer function of the RC low-pass, v(out)/v(in)."""
    return 1.0 / (1.0 + 2j * np.pi * freq * R_LP * C_LP)


def test_binary_operating_point_matches_divider_formula() -> None:
    result = read_raw(RAW_DIR / "divider_op.raw")
    assert len(result.plots) == 1
    plot = result.plot()
    assert plot.name == "Operating Point"
    assert plot.units == {"v(in)": "voltage", "v(out)": "voltage", "i(v1)": "current"}
    assert result["v(out)"][0] == pytest.approx(1.0 * R2 / (R1 + R2), rel=1e-14)
    assert result["i(v1)"][0] == pytest.approx(-1.0 / (R1 + R2), rel=1e-14)
    assert result.backend == "batch"


def test_binary_transient_follows_ramp() -> None:
    plot = read_raw(RAW_DIR / "divider_tran.raw").plot()
    time = plot.vectors["time"]
    assert plot.name == "Transient Analysis"
    assert time[0] == 0.0 and time[-1] == pytest.approx(1e-3, rel=1e-12)
    assert np.all(np.diff(time) > 0)
    np.testing.assert_allclose(plot.vectors["v(in)"], 1e3 * time, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        plot.vectors["v(out)"], R2 / (R1 + R2) * plot.vectors["v(in)"], rtol=1e-12, atol=1e-15
    )


def test_ascii_operating_point() -> None:
    result = read_raw(RAW_DIR / "divider_ascii.raw")
    assert b"Values:" in (RAW_DIR / "divider_ascii.raw").read_bytes()
    assert result["v(in)"][0] == 2.0
    assert result["v(out)"][0] == pytest.approx(2.0 * R2 / (R1 + R2), rel=1e-14)
    assert result["i(v1)"][0] == pytest.approx(-2.0 / (R1 + R2), rel=1e-14)


@pytest.mark.parametrize(("name", "freqs"), [
    ("rc_ac", 10.0 ** np.arange(1.0, 4.01, 0.5)),
    ("rc_ac_ascii", np.array([10.0, 100.0, 1000.0])),
])
def test_complex_ac_matches_transfer_function(name: str, freqs: np.ndarray) -> None:
    plot = read_raw(RAW_DIR / f"{name}.raw").plot()
    assert plot.is_complex and plot.name == "AC Analysis"
    frequency = plot.vectors["frequency"]
    assert not np.iscomplexobj(frequency)  # imaginary half is uninitialised in the file
    np.testing.assert_allclose(frequency, freqs, rtol=1e-12)
    v_out = plot.vectors["v(out)"]
    np.testing.assert_allclose(v_out, rc_lowpass(freqs), rtol=1e-12)
    np.testing.assert_allclose(plot.vectors["i(v1)"], -(1.0 - v_out) / R_LP, rtol=1e-12)


@pytest.mark.parametrize("name", ["multi_plot", "multi_plot_ascii"])
def test_multi_plot_file_gives_both_analyses(name: str) -> None:
    result = read_raw(RAW_DIR / f"{name}.raw")
    assert [p.name for p in result.plots] == ["Operating Point", "Transient Analysis"]
    op, tran = result.plots
    assert op.vectors["v(out)"][0] == pytest.approx(0.75 * 0.5, rel=1e-14)
    time = tran.vectors["time"]
    np.testing.assert_allclose(tran.vectors["v(in)"], 0.5 + 500.0 * time, rtol=1e-12)
    np.testing.assert_allclose(tran.vectors["v(out)"], 0.75 * tran.vectors["v(in)"], rtol=1e-12)
    assert result["v(out)"] is tran.vectors["v(out)"]  # indexing uses the last plot
    frame = result.to_long_frame()
    assert set(frame["plot"]) == {0, 1}
    assert len(frame) == 3 * 1 + 4 * len(time)


def test_golden_files_carry_the_ngspice46_command_line() -> None:
    """The keyword parser must cope with the `Command:` header line positional parsers miss."""
    for name in GOLDEN:
        assert b"\nCommand: ngspice-" in (RAW_DIR / f"{name}.raw").read_bytes()


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_files_are_reproduced_by_their_netlists(name: str, tmp_path: Path) -> None:
    """Re-running each netlist with the installed ngspice gives the checked-in vectors."""
    raw = tmp_path / "out.raw"
    subprocess.run(
        [shutil.which("ngspice") or "ngspice", "-b", "-r", str(raw), str(RAW_DIR / f"{name}.cir")],
        capture_output=True, check=True, timeout=60, cwd=tmp_path,
    )
    fresh, golden = read_raw(raw).plots, read_raw(RAW_DIR / f"{name}.raw").plots
    assert [p.name for p in fresh] == [p.name for p in golden]
    for new, old in zip(fresh, golden):
        assert list(new.vectors) == list(old.vectors)
        for key in old.vectors:
            np.testing.assert_allclose(new.vectors[key], old.vectors[key], rtol=1e-12, atol=1e-18)


def test_truncated_binary_file_is_refused_with_its_name(tmp_path: Path) -> None:
    data = (RAW_DIR / "divider_tran.raw").read_bytes()
    cut = tmp_path / "cut.raw"
    cut.write_bytes(data[:-8])
    with pytest.raises(RawFileError, match=r"cut\.raw, plot 1: binary data truncated"):
        read_raw(cut)


def test_header_without_point_count_is_refused() -> None:
    data = (RAW_DIR / "divider_op.raw").read_bytes().replace(b"No. Points:", b"No. Pts:")
    with pytest.raises(RawFileError, match="no. points"):
        parse_raw(data, source="x.raw")


def test_ascii_with_a_bad_number_names_the_value() -> None:
    data = (RAW_DIR / "divider_ascii.raw").read_bytes().replace(b"1.500000000000000e+00", b"1.5x")
    with pytest.raises(RawFileError, match=r"bad value '1\.5x'"):
        parse_raw(data, source="x.raw")


def test_variable_count_mismatch_is_refused() -> None:
    data = (RAW_DIR / "divider_op.raw").read_bytes().replace(b"No. Variables: 3", b"No. Variables: 4")
    with pytest.raises(RawFileError, match="lists 3 variables, expected 4"):
        parse_raw(data)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    with pytest.raises(RawFileError, match="no plots"):
        read_raw(empty)
