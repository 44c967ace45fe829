"""Property-based tests: damaged measurement files give a clear CosimError or QC entries,
never another exception (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosim.device.modelfile import load_model, validate
from cosim.errors import CosimError
from cosim.fit.extract import ExtractConfig
from cosim.fit.fit import FitConfig, fit_file
from cosim.fit.qc import QCConfig
from cosim.paths import DEFAULT_MODEL

SMALL = FitConfig(max_var_order=2, max_components=2, qc=QCConfig(min_cycles=5),
                  extract=ExtractConfig())
MUTATIONS = ["none", "drop_column", "nan_cells", "text_cell", "empty", "single_device",
             "single_cycle", "shuffle", "duplicate_rows", "binary_tail", "truncate_line",
             "header_only", "swap_sign", "huge_value"]


def _cycle_table(seed: int = 0, n_dev: int = 3, n_cyc: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_dev * n_cyc
    return pd.DataFrame({
        "device": np.repeat(np.arange(n_dev), n_cyc), "cycle": np.tile(np.arange(n_cyc), n_dev),
        "HRS_ohm": 10 ** rng.normal(4.9, 0.2, n), "US_V": rng.normal(-0.7, 0.06, n),
        "LRS_ohm": rng.normal(4500, 180, n), "UR_V": rng.normal(0.74, 0.04, n)})


@pytest.fixture(scope="module")
def iv_frame() -> pd.DataFrame:
    from cosim.device.synth import synth_iv

    return synth_iv(load_model(DEFAULT_MODEL), 2, 8, seed=2, dv=0.05)


def _mutate(frame: pd.DataFrame, mutation: str, data: st.DataObject) -> bytes:
    rows = len(frame)
    numeric = [c for c in frame.columns if c not in ("device", "cycle")]
    if mutation == "drop_column":
        frame = frame.drop(columns=[data.draw(st.sampled_from(list(frame.columns)))])
    elif mutation == "nan_cells":
        for _ in range(data.draw(st.integers(1, 10))):
            frame.loc[data.draw(st.integers(0, rows - 1)),
                      data.draw(st.sampled_from(numeric))] = np.nan
    elif mutation == "text_cell":
        frame = frame.astype({c: object for c in frame.columns})
        frame.loc[data.draw(st.integers(0, rows - 1)), data.draw(st.sampled_from(
            list(frame.columns)))] = data.draw(st.text(min_size=1, max_size=8))
    elif mutation == "empty":
        return b""
    elif mutation == "single_device":
        frame = frame[frame["device"] == frame["device"].iloc[0]]
    elif mutation == "single_cycle":
        frame = frame[frame["cycle"] == frame["cycle"].iloc[0]]
    elif mutation == "shuffle":
        frame = frame.sample(frac=1.0, random_state=data.draw(st.integers(0, 1000)))
    elif mutation == "duplicate_rows":
        picks = data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=5))
        frame = pd.concat([frame, frame.iloc[picks]])
    elif mutation == "swap_sign":
        col = data.draw(st.sampled_from(numeric))
        frame.loc[data.draw(st.integers(0, rows - 1)), col] *= -1
    elif mutation == "huge_value":
        frame.loc[data.draw(st.integers(0, rows - 1)), data.draw(st.sampled_from(numeric))] = \
            data.draw(st.sampled_from([1e300, -1e300, 0.0, 1e-300]))
    text = frame.to_csv(index=False).encode()
    if mutation == "binary_tail":
        text += data.draw(st.binary(min_size=1, max_size=64))
    elif mutation == "truncate_line":
        text = text[: data.draw(st.integers(0, len(text)))]
    elif mutation == "header_only":
        text = text.split(b"\n", 1)[0] + b"\n"
    return text


def _check(content: bytes, mutation: str, fmt: str = "auto") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.csv"
        path.write_bytes(content)
        try:
            result = fit_file(path, fmt, SMALL)  # type: ignore[arg-type]
        except CosimError as exc:
            message = str(exc)
            assert message.strip(), "error without a message"
            return
        validate(result.model)
        kinds = set(result.qc.to_frame()["kind"])
        if mutation == "nan_cells":
            assert kinds & {"missing", "extraction"}, kinds
        if mutation == "duplicate_rows":
            assert "duplicate" in kinds, kinds
        if mutation == "shuffle":
            assert "unsorted" in kinds or len(result.table) > 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_damaged_cycle_tables(mutation: str, data: st.DataObject) -> None:
    _check(_mutate(_cycle_table(), mutation, data), mutation)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_damaged_iv_loops(iv_frame: pd.DataFrame, mutation: str, data: st.DataObject) -> None:
    _check(_mutate(iv_frame.copy(), mutation, data), mutation, "iv")


@settings(max_examples=25, deadline=None)
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes(content: bytes) -> None:
    _check(content, "binary")


@settings(max_examples=30, deadline=None)
@given(content=st.text(max_size=300))
def test_arbitrary_text(content: str) -> None:
    _check(content.encode("utf-8", "surrogatepass") if content else b"", "text")
