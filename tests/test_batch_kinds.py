"""Job kinds: the registry, the built-in kinds checked against independent answers, and the
test-only kinds ``sleep`` and ``fail`` used by the runner tests (imported by job processes as
module ``test_batch_kinds``)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosim.batch.batch_jobs import crossbar_column_currents, crossbar_ideal_nf, ngspice_divider
from cosim.batch.jobs import discover_job_kinds, get_job_kind, register_job
from cosim.batch.runner import execute_job, normalise_rows
from cosim.batch.config import Job
from cosim.errors import ConvergenceError, CosimError
from cosim.spice.batch import run_batch

DATA = Path(__file__).parent / "data" / "batch"


def _log(params: dict[str, Any], line: str) -> None:
    if params.get("log"):
        with open(params["log"], "a", encoding="utf-8") as handle:  # O_APPEND: whole lines
            handle.write(line + "\n")


@register_job("sleep")
def sleep_job(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Sleep ``seconds``; return a seeded value. Logs ``start k`` / ``end k`` to ``log``."""
    k = params.get("k", 0)
    _log(params, f"start {k} {os.getpid()}")
    time.sleep(float(params.get("seconds", 0.0)))
    value = k + np.random.default_rng(seed).standard_normal()
    _log(params, f"end {k} {os.getpid()}")
    return {"value": float(value), "k_squared": k * k}


@register_job("fail")
def fail_job(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Fail in the way ``mode`` says: ok, raise, nonconverge, crash, hang (with a grandchild),
    text (a result of another type than the ok mode's)."""
    mode = params["mode"]
    if mode == "raise":
        raise ValueError(f"boom at seed {seed}")
    if mode == "nonconverge":
        raise ConvergenceError("timestep too small at t=1e-9 s")
    if mode == "crash":
        os._exit(3)
    if mode == "hang":
        grandchild = subprocess.Popen(["sleep", "600"])
        Path(params["pid_dir"], f"{os.getpid()}.pids").write_text(
            f"{os.getpid()} {grandchild.pid}\n", encoding="utf-8"
        )
        time.sleep(600)
    if mode == "text":
        return {"value": "not a number"}
    return {"value": float(np.random.default_rng(seed).uniform())}


@register_job("variants")
def variants_job(params: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Two result rows per job, labelled by text: ``plain`` = x·seed, ``mdm`` = x·seed / 2."""
    value = params["x"] * seed
    return [{"variant": "plain", "err": value}, {"variant": "mdm", "err": value / 2}]


def test_one_cell_crossbar_matches_series_resistance() -> None:
    g, v = np.array([[2e-4]]), np.array([[0.2, 0.1]])
    current = crossbar_column_currents(g, v, r_wire=7.0, r_source=3.0, r_sense=5.0)
    expected = v / (3.0 + 1 / 2e-4 + 5.0)
    np.testing.assert_allclose(current, expected, rtol=1e-12)


def test_crossbar_solver_matches_ngspice_on_fixture() -> None:
    result = run_batch(DATA / "crossbar_2x3.cir", timeout_s=60)
    vectors = result.plots[0].vectors
    spice = np.array([vectors[f"i(vs{j})"][0] for j in range(3)])
    g = 1 / np.array([[1000.0, 500.0, 2000.0], [800.0, 1e4, 400.0]])
    ours = crossbar_column_currents(g, np.array([[0.2], [0.1]]), 5.0, 2.0, 3.0)[:, 0]
    np.testing.assert_allclose(ours, spice, rtol=1e-9)


def test_crossbar_nf_grows_with_wire_resistance_and_vanishes_without_wires() -> None:
    base = {"rows": 12, "cols": 6}
    tiny = {"r_wire": 1e-6, "r_source": 1e-6, "r_sense": 1e-6}
    assert abs(crossbar_ideal_nf({**base, **tiny}, seed=5)["nf"]) < 1e-6
    nfs = [crossbar_ideal_nf({**base, "r_wire": r}, seed=5)["nf"] for r in (0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(nfs, nfs[1:])), nfs
    assert crossbar_ideal_nf({**base, "r_wire": 1.0}, 5) == crossbar_ideal_nf(
        {**base, "r_wire": 1.0}, 5
    )


def test_ngspice_divider_matches_the_divider_formula_and_depends_on_seed() -> None:
    a = ngspice_divider({"vin": 2.0, "spread": 0.5}, seed=1)
    b = ngspice_divider({"vin": 2.0, "spread": 0.5}, seed=2)
    assert a["v_out"] == pytest.approx(2.0 * a["r2"] / (a["r1"] + a["r2"]), rel=1e-9)
    assert a["rel_error"] < 1e-9
    assert a["r1"] != b["r1"]


def test_registry_rejects_a_second_function_under_a_taken_name() -> None:
    with pytest.raises(CosimError, match="already registered"):

        @register_job("sleep")
        def other(params: dict[str, Any], seed: int) -> dict[str, Any]:
            return {}


def test_unknown_kind_lists_the_known_ones() -> None:
    discover_job_kinds()
    with pytest.raises(CosimError, match="crossbar_ideal_nf"):
        get_job_kind("no_such_kind")


def test_results_must_be_scalars_with_free_names() -> None:
    assert normalise_rows({"a": np.float64(1.5), "b": "x"}, {}) == [{"a": 1.5, "b": "x"}]
    with pytest.raises(TypeError, match="'a'"):
        normalise_rows({"a": [1, 2]}, {})
    with pytest.raises(TypeError, match="collides"):
        normalise_rows({"rows": 1.0}, {"rows": 4})
    with pytest.raises(TypeError, match="collides"):
        normalise_rows([{"status": 1.0}], {})
    with pytest.raises(TypeError, match="non-empty"):
        normalise_rows([], {})


def test_execute_job_turns_failures_into_reasons() -> None:
    status, message = execute_job(Job("x", "fail", {"mode": "nonconverge"}, 0), [])
    assert status == "nonconverged" and "timestep too small" in message
    status, message = execute_job(Job("x", "fail", {"mode": "raise"}, 4), [])
    assert status == "error" and message == "ValueError: boom at seed 4"
