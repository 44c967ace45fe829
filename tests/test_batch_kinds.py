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

from cosim.batch.batch_jobs import (
    CrossbarNfParams,
    crossbar_ideal_nf,
    crossbar_nf,
    ideal_nf_case,
    nf_case,
    ngspice_divider,
    s4d_kernel,
    wired_crossbar,
)
from cosim.batch.config import Job
from cosim.batch.jobs import discover_job_kinds, get_job_kind, register_job
from cosim.batch.runner import execute_job, normalise_rows
from cosim.crossbar.mdm import random_inputs, study
from cosim.crossbar.metrics import evaluate, ideal_currents
from cosim.crossbar.netlist import ACCURATE_OPTIONS, read_netlist
from cosim.crossbar.solver import NodalSolver
from cosim.crossbar.spec import Crossbar
from cosim.errors import ConvergenceError, CosimError
from cosim.spice.batch import run_batch

DATA = Path(__file__).parent / "data" / "batch"

SLEEP_SWEEP = """
name = "{name}"
kind = "sleep"
modules = ["test_batch_kinds"]
timeout_s = 60
retries = 0
seeds = [7]
[grid]
k = {ks}
[fixed]
seconds = {seconds}
log = "{log}"
"""
"""A sweep of the test-only ``sleep`` kind (format with name, ks, seconds, log); used by the
runner, resume and result-store tests."""


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


@register_job("escape")
def escape_job(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Start descendants that leave the job's process tree: one in a new session (setsid) and
    one double-forked (its shell parent exits, so it is re-parented). Their pids go to
    ``pid_file``. ``mode`` "hang" then sleeps past any timeout, "ok" returns at once."""
    setsid = subprocess.Popen(["sleep", "600"], start_new_session=True)
    fork = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
                          capture_output=True, text=True, check=True)
    Path(params["pid_file"]).write_text(f"{setsid.pid} {fork.stdout.strip()}\n")
    if params["mode"] == "hang":
        time.sleep(600)
    return {"value": 1.0}


@register_job("variants")
def variants_job(params: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Two result rows per job, labelled by text: ``plain`` = x·seed, ``mdm`` = x·seed / 2."""
    value = params["x"] * seed
    return [{"variant": "plain", "err": value}, {"variant": "mdm", "err": value / 2}]


_WARMED: dict[str, int] = {}


def _warm_up() -> None:
    _WARMED["pid"] = os.getpid()


@register_job("warmed", warmup=_warm_up)
def warmed_job(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Reports which process ran the warm-up this job process inherited (-1: none)."""
    return {"warm_pid": _WARMED.get("pid", -1), "job_pid": os.getpid()}


def _failing_warm_up() -> None:
    raise RuntimeError("warm-up broke")


@register_job("warm_fails", warmup=_failing_warm_up)
def warm_fails_job(params: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"value": float(seed)}


def test_one_cell_crossbar_matches_series_resistance() -> None:
    crossbar = wired_crossbar(np.array([[2e-4]]), r_wire=7.0, r_source=3.0, r_sense=5.0, differential=False)
    v = np.array([[0.2], [0.1]])  # two input vectors (K, M)
    current = NodalSolver(crossbar).solve_many(v)
    np.testing.assert_allclose(current, v / (3.0 + 1 / 2e-4 + 5.0), rtol=1e-12)


def test_wired_crossbar_matches_ngspice_on_fixture() -> None:
    """The hand-written fixture fixes the conventions: r_wire on rows and columns, sources
    at column 0, sensing at the last row."""
    result = run_batch(DATA / "crossbar_2x3.cir", timeout_s=60)
    vectors = result.plots[0].vectors
    spice = np.array([vectors[f"i(vs{j})"][0] for j in range(3)])
    g = 1 / np.array([[1000.0, 500.0, 2000.0], [800.0, 1e4, 400.0]])
    crossbar = wired_crossbar(g, r_wire=5.0, r_source=2.0, r_sense=3.0, differential=False)
    ours = NodalSolver(crossbar).solve_many(np.array([[0.2, 0.1]]))[0]
    np.testing.assert_allclose(ours, spice, rtol=1e-9)


def _ngspice_currents(crossbar: Crossbar, inputs: np.ndarray) -> np.ndarray:
    rows = []
    for vector in inputs:
        vectors = run_batch(read_netlist(crossbar, inputs=vector, spice_options=ACCURATE_OPTIONS)).plots[0].vectors
        rows.append([vectors[f"i(vsns{j})"][0] for j in range(crossbar.cols)])
    return np.array(rows)


def test_crossbar_ideal_nf_equals_nf_of_ngspice_currents() -> None:
    params, seed = {"rows": 5, "cols": 3, "r_wire": 3.0, "n_inputs": 2}, 9
    crossbar, inputs = ideal_nf_case(params, seed)
    reference = evaluate(crossbar, inputs, _ngspice_currents(crossbar, inputs))
    ours = crossbar_ideal_nf(params, seed)
    assert reference.tile_nf > 1e-3  # the wires matter at 3 Ω
    assert ours["nf"] == pytest.approx(reference.tile_nf, rel=1e-6)
    assert ours["diff_error"] == pytest.approx(reference.output_error, rel=1e-6)


def test_crossbar_nf_grows_with_wire_resistance_and_vanishes_without_wires() -> None:
    base = {"rows": 12, "cols": 6}
    tiny = {"r_wire": 1e-6, "r_source": 1e-6, "r_sense": 1e-6}
    assert abs(crossbar_ideal_nf({**base, **tiny}, seed=5)["nf"]) < 1e-6
    nfs = [crossbar_ideal_nf({**base, "r_wire": r}, seed=5)["nf"] for r in (0.5, 1.0, 2.0, 4.0)]
    assert all(np.diff(nfs) > 0), nfs
    assert crossbar_ideal_nf({**base, "r_wire": 1.0}, 5) == crossbar_ideal_nf(
        {**base, "r_wire": 1.0}, 5
    )


# -- crossbar_nf ------------------------------------------------------------------------------


def _nf(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Result of crossbar_nf without its timings."""
    return {k: v for k, v in crossbar_nf(params, seed).items() if not k.endswith("_s")}


COSIM_MDM_WINDOW = {"g_min": 1 / 75e3, "g_max": 1 / 4.5e3}


@pytest.mark.parametrize("matrix", ["dense", "block"])
def test_crossbar_nf_reproduces_the_mdm_study_of_cosim_mdm(matrix: str) -> None:
    """Ideal devices, analog weights: the pair (mdm off, on) equals cosim.crossbar.mdm.study
    on the matrix and inputs `cosim mdm --seed 4` draws."""
    from cosim.crossbar.mdm import random_weights

    params = {"rows": 24, "cols": 12, "matrix": matrix, "n_inputs": 8, **COSIM_MDM_WINDOW}
    weights = random_weights(24, 12, 4 if matrix == "block" else 0, 4)
    crossbar = Crossbar.from_weights(weights, r_row=1.0, r_col=1.0, **COSIM_MDM_WINDOW)
    reference = study(crossbar, random_inputs(24, 8, 0.2, 5))
    off, on = _nf(params, 4), _nf({**params, "mdm": True}, 4)
    assert off["nf"] == pytest.approx(reference.before.tile_nf, rel=1e-9)
    assert on["nf"] == pytest.approx(reference.after.tile_nf, rel=1e-9)
    assert off["output_error"] == pytest.approx(reference.before.output_error, rel=1e-9)
    assert on["output_error"] == pytest.approx(reference.after.output_error, rel=1e-9)
    assert off["total_error"] == off["output_error"]  # nothing but wires
    assert off["prog_error"] == 0.0


@pytest.mark.parametrize("devices", ["ideal", "programmed"])
def test_mdm_never_changes_the_wire_free_output(devices: str) -> None:
    for seed, matrix, bits in [(0, "block", 0), (1, "dense", 4), (2, "block", 3)]:
        params = {"rows": 16, "cols": 8, "matrix": matrix, "bits": bits, "devices": devices, "mdm": True}
        case = nf_case(params, seed)
        assert not np.array_equal(case.remap.row_order, np.arange(16))  # MDM did move rows
        placed = case.remap.apply(case.stored)
        physical = ideal_currents(placed, case.remap.inputs_to_physical(case.inputs))
        np.testing.assert_array_equal(case.remap.outputs_to_logical(physical), ideal_currents(case.stored, case.inputs))
        assert crossbar_nf(params, seed)["ideal_unchanged"] is True
        # with negligible wires the placed array reads the same outputs as the unplaced one
        tiny = {**params, "r_wire": 1e-9, "r_source": 1e-9, "r_sense": 1e-9}
        on, off = _nf(tiny, seed), _nf({**tiny, "mdm": False}, seed)
        assert abs(on["nf"]) < 1e-7 and abs(off["nf"]) < 1e-7
        assert on["total_error"] == pytest.approx(off["total_error"], abs=1e-7)


def test_mdm_lowers_nf_of_block_matrices_with_wires_on_average_over_seeds() -> None:
    seeds = range(6)
    base = {"size": 32, "matrix": "block", "r_wire": 2.0, "devices": "programmed"}
    off = [_nf(base, s) for s in seeds]
    on = [_nf({**base, "mdm": True}, s) for s in seeds]
    assert np.mean([r["nf"] for r in on]) < np.mean([r["nf"] for r in off])
    assert np.mean([r["output_error"] for r in on]) < np.mean([r["output_error"] for r in off])
    for a, b in zip(off, on):  # the same devices in both runs of a pair
        assert (a["prog_error"], a["prog_success"]) == (b["prog_error"], b["prog_success"])
    pair = [nf_case({**base, "mdm": mdm}, 0) for mdm in (False, True)]
    np.testing.assert_array_equal(pair[0].stored.conductances(), pair[1].stored.conductances())
    np.testing.assert_array_equal(pair[0].inputs, pair[1].inputs)


def test_same_seed_gives_identical_numbers_and_seeds_differ() -> None:
    params = {"size": 16, "matrix": "dense", "bits": 4, "devices": "programmed", "mdm": True}
    first, second = _nf(params, 11), _nf(params, 11)
    assert first == second
    other = _nf(params, 12)
    assert other["nf"] != first["nf"] and other["prog_error"] != first["prog_error"]


def test_programmed_conductances_lie_in_the_device_window() -> None:
    params = {"size": 32, "matrix": "dense", "devices": "programmed", "tolerance": 0.05}
    case = nf_case(params, 3)
    g_min, g_max = case.window
    target, stored = case.target.conductances(), case.stored.conductances()
    assert target.min() == pytest.approx(g_min) and target.max() == pytest.approx(g_max)
    relative = np.abs(stored - target) / target
    assert np.mean(relative <= 0.05 + 1e-12) >= 0.98  # write-verify reached its band
    assert (stored >= g_min * (1 - 0.05) - 1e-15).all() and (stored <= g_max * (1 + 0.05) + 1e-15).all()
    assert not np.array_equal(stored, target)  # real devices, not a copy of the targets
    result = crossbar_nf(params, 3)
    assert result["prog_error"] == pytest.approx(float(np.mean(relative)))
    assert 0 < result["prog_error"] <= 0.05


def test_quantization_changes_targets_not_the_analog_reference() -> None:
    analog = nf_case({"size": 16}, 5)
    coarse = nf_case({"size": 16, "bits": 2}, 5)
    np.testing.assert_array_equal(analog.analog.conductances(), coarse.analog.conductances())
    levels = np.unique(np.round(coarse.target.conductances() / analog.window[1], 12))
    assert len(levels) <= 3  # 2 bits: −1, 0, +1 → g_min or g_max per cell (3 with rounding)
    tiny = {"size": 16, "r_wire": 1e-9, "r_source": 1e-9, "r_sense": 1e-9}
    assert _nf({**tiny, "bits": 2}, 5)["total_error"] > 10 * _nf({**tiny, "bits": 8}, 5)["total_error"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"size": 16, "rows": 4}, "either size or rows"),
        ({"rows": 4}, "both rows and cols"),
        ({"size": 15}, "even"),
        ({"size": 16, "bits": 1}, "bits"),
        ({"size": 16, "g_min": 1e-5}, "both g_min and g_max"),
        ({"size": 16, "matrix": "sparse"}, "matrix"),
    ],
)
def test_crossbar_nf_parameters_are_checked(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CrossbarNfParams.model_validate(params)


# -- s4d_kernel ------------------------------------------------------------------------------

SMALL_S4D = {"model": "lin", "channels": 2, "state_size": 4, "length": 48, "variant": "delta"}


def test_s4d_kernel_with_negligible_wires_equals_the_devices_software_model() -> None:
    tiny = {**SMALL_S4D, "r_wire": 1e-9, "r_source": 1e-9, "r_sense": 1e-9}
    plain, placed = s4d_kernel(tiny, 2), s4d_kernel({**tiny, "mdm": True}, 2)
    for result in (plain, placed):
        assert result["kernel_rel_l2"] == pytest.approx(result["devices_only_rel_l2"], rel=1e-5)
        assert abs(result["nf"]) < 1e-6
    assert plain["devices_only_rel_l2"] == placed["devices_only_rel_l2"]  # same devices
    wired = s4d_kernel({**SMALL_S4D, "r_wire": 2.0}, 2)
    assert wired["nf"] > 1e-3 and wired["wires_only_rel_l2"] > 1e-3
    assert wired["devices_only_rel_l2"] == plain["devices_only_rel_l2"]  # wires do not touch devices
    assert s4d_kernel({**SMALL_S4D, "r_wire": 2.0}, 2) == wired


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
