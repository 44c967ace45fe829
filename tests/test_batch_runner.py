"""The runner: identical numbers on one worker, a local pool and a Dask LocalCluster; every
job isolated in its own process; hangs, exceptions, non-convergence and crashes fail alone."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dask
import pandas as pd
import psutil
import pytest
from distributed import LocalCluster

from cosim.batch.batch_jobs import crossbar_ideal_nf, crossbar_nf
from cosim.batch.config import load_sweep
from cosim.batch.report import build_report
from cosim.batch.runner import _run_attempt_subprocess, run_sweep
from cosim.paths import PROJECT_ROOT

RESULT_COLUMNS = ["nf", "nf_max", "diff_error", "unknowns"]

CROSSBAR_SWEEP = """
name = "equivalence"
kind = "crossbar_ideal_nf"
timeout_s = 120
retries = 0
seeds = { count = 4, base = 11 }
[grid]
rows = [4, 8]
r_wire = [0.5, 1.0, 2.0]
[fixed]
cols = 4
n_inputs = 4
"""

FAIL_SWEEP = """
name = "isolation"
kind = "fail"
modules = ["test_batch_kinds"]
timeout_s = 2
retries = 1
seeds = [1, 2]
[grid]
mode = ["ok", "raise", "nonconverge", "crash", "hang"]
[fixed]
pid_dir = "{pid_dir}"
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _results(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "results.parquet").set_index("job_id").sort_index()


@pytest.mark.slow
def test_local_pool_one_worker_and_dask_cluster_give_identical_numbers(tmp_path: Path) -> None:
    sweep = load_sweep(_write(tmp_path / "sweep.toml", CROSSBAR_SWEEP))
    assert len(sweep.jobs) == 24
    run_sweep(sweep, tmp_path / "one", workers=1)
    run_sweep(sweep, tmp_path / "pool", workers=2)
    # Non-daemonic workers may fork the job processes (see docs/batch.md).
    with dask.config.set({"distributed.worker.daemon": False}):
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            counts = run_sweep(sweep, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert counts["ok"] == 24 and counts["missing"] == 0
    one, pool, on_dask = (_results(tmp_path / name) for name in ("one", "pool", "dask"))
    assert list(one.index) == sorted(job.id for job in sweep.jobs)
    for other in (pool, on_dask):
        assert list(other.index) == list(one.index)
        # other processes (possibly other machines for dask): equal to rounding, not bit for bit
        pd.testing.assert_frame_equal(other[RESULT_COLUMNS], one[RESULT_COLUMNS], check_exact=False,
                                      rtol=1e-12, atol=0.0)
        assert (other["status"] == "ok").all()
    # the numbers are the job function's own, computed here in-process
    job = sweep.jobs[5]
    direct = crossbar_ideal_nf(job.params, job.seed)
    assert one.loc[job.id, "nf"] == direct["nf"]
    # every job ran in a process of its own
    for frame in (one, pool, on_dask):
        assert frame["pid"].nunique() == 24 and os.getpid() not in set(frame["pid"])

    report = build_report(tmp_path / "dask", metric="nf", x="r_wire")
    by_point = report.aggregate.set_index(["rows", "r_wire"])
    for rows, r_wire in [(4, 0.5), (8, 2.0)]:
        nfs = [
            crossbar_ideal_nf({**sweep.jobs[0].params, "rows": rows, "r_wire": r_wire}, s)["nf"]
            for s in range(11, 15)
        ]
        assert by_point.loc[(rows, r_wire), "nf_mean"] == pytest.approx(pd.Series(nfs).mean())
        assert by_point.loc[(rows, r_wire), "nf_std"] == pytest.approx(pd.Series(nfs).std())
        assert by_point.loc[(rows, r_wire), "nf_count"] == 4
    assert report.figure_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.markdown_path.read_text(encoding="utf-8")
    assert "| ok | 24 |" in text and "report/nf_vs_r_wire.png" in text


def test_failing_and_hanging_jobs_fail_alone_with_their_reason(tmp_path: Path) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    path = _write(tmp_path / "fail.toml", FAIL_SWEEP.format(pid_dir=pid_dir))
    counts = run_sweep(load_sweep(path), tmp_path / "out", workers=2)
    assert counts == {
        "ok": 2, "error": 2, "nonconverged": 2, "timeout": 2, "crashed": 2, "missing": 0
    }
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index(["mode", "seed"])
    ok = frame.loc["ok"]
    assert ok["error"].isna().all() and (ok["attempt"] == 1).all() and ok["value"].notna().all()
    assert frame.loc[("raise", 2), "error"] == "ValueError: boom at seed 2"
    assert "ConvergenceError: timestep too small" in frame.loc[("nonconverge", 1), "error"]
    assert "exit code 3" in frame.loc[("crash", 1), "error"]
    assert frame.loc[("hang", 1), "error"] == "timeout: killed after 2 s"
    failed = frame[frame["status"] != "ok"]
    assert (failed["attempt"] == 2).all()  # one retry, then the reason is recorded
    assert failed["value"].isna().all()
    # the hanging job process and the `sleep` it started were killed, not abandoned
    pid_files = list(pid_dir.glob("*.pids"))
    assert len(pid_files) == 4  # 2 seeds × 2 attempts
    for pid_file in pid_files:
        for pid in map(int, pid_file.read_text().split()):
            if psutil.pid_exists(pid):
                assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    report = build_report(tmp_path / "out")
    assert set(report.failures["status"]) == {"error", "nonconverged", "timeout", "crashed"}
    assert "boom at seed" in report.markdown_path.read_text(encoding="utf-8")


def test_fresh_interpreter_path_gives_the_same_numbers(tmp_path: Path) -> None:
    sweep = load_sweep(_write(tmp_path / "sweep.toml", CROSSBAR_SWEEP))
    job = sweep.jobs[3]
    status, rows, _, pid = _run_attempt_subprocess(job, 120.0, [])
    assert status == "ok" and pid != os.getpid()
    assert rows == [crossbar_ideal_nf(job.params, job.seed)]


def test_ngspice_jobs_run_isolated_and_the_manifest_hashes_their_template(tmp_path: Path) -> None:
    text = 'name = "d"\nkind = "ngspice_divider"\nseeds = { count = 6 }\n[grid]\nvin = [1.0, 2.5]\n'
    sweep = load_sweep(_write(tmp_path / "div.toml", text))
    counts = run_sweep(sweep, tmp_path / "out", workers=2)
    assert counts["ok"] == 12
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    expected = frame["vin"] * frame["r2"] / (frame["r1"] + frame["r2"])
    assert (abs(frame["v_out"] - expected) <= 1e-9 * abs(expected)).all()
    assert frame["pid"].nunique() == 12 and os.getpid() not in set(frame["pid"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    template = (PROJECT_ROOT / "templates" / "batch_divider.cir.j2").resolve()
    digest = hashlib.sha256(template.read_bytes()).hexdigest()
    assert manifest["files"] == {str(template): digest}
    assert manifest["tools"]["ngspice"].startswith("ngspice-")


def test_job_processes_inherit_the_workers_warm_up_and_a_failing_one_is_harmless(tmp_path: Path) -> None:
    text = 'name = "w"\nkind = "{kind}"\nmodules = ["test_batch_kinds"]\nseeds = {{ count = 6 }}\n'
    run_sweep(load_sweep(_write(tmp_path / "w.toml", text.format(kind="warmed"))), tmp_path / "w", workers=2)
    frame = pd.read_parquet(tmp_path / "w" / "results.parquet")
    assert (frame["status"] == "ok").all() and len(frame) == 6
    assert (frame["warm_pid"] > 0).all()  # warmed before the job process was forked ...
    assert (frame["warm_pid"] != frame["job_pid"]).all()  # ... by its worker, not by itself
    assert frame["warm_pid"].nunique() <= 2  # once per worker
    assert os.getpid() not in set(frame["warm_pid"])
    counts = run_sweep(load_sweep(_write(tmp_path / "f.toml", text.format(kind="warm_fails"))), tmp_path / "f", workers=2)
    assert counts["ok"] == 6


def test_crossbar_nf_sweep_on_the_pool_equals_direct_calls(tmp_path: Path) -> None:
    """Warmed pool workers (cached device window, loaded kernels) give the numbers a cold
    direct call gives; MDM pairs share devices."""
    text = (
        'name = "nf"\nkind = "crossbar_nf"\nretries = 0\nseeds = [7, 8]\n[grid]\nmdm = [false, true]\n'
        'bits = [0, 4]\n[fixed]\nsize = 16\nmatrix = "block"\ndevices = "programmed"\n'
    )
    sweep = load_sweep(_write(tmp_path / "nf.toml", text))
    assert run_sweep(sweep, tmp_path / "out", workers=2)["ok"] == 8
    frame = _results(tmp_path / "out")
    numbers = ["nf", "output_error", "total_error", "prog_error", "prog_success", "ideal_unchanged"]
    for job in sweep.jobs:
        direct = crossbar_nf(job.params, job.seed)
        assert {k: frame.loc[job.id, k] for k in numbers} == {k: direct[k] for k in numbers}
    pairs = frame.groupby(["seed", "bits"])["prog_error"].nunique()
    assert (pairs == 1).all()
