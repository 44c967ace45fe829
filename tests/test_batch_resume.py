"""Resume: kill -9 of a running `cosim batch`, rerun, nothing finished is rerun, nothing is
lost, the parquet files read back; a changed config is refused unless --force; the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cosim.batch.config import load_sweep
from cosim.batch.results import ResultDirError, ResultStore
from cosim.batch.report import build_report
from cosim.batch.runner import run_sweep
from cosim.cli import app
from test_batch_kinds import SLEEP_SWEEP

TESTS = Path(__file__).parent


def _sweep_file(tmp_path: Path, ks: list[int], seconds: float, name: str = "s.toml") -> Path:
    path = tmp_path / name
    text = SLEEP_SWEEP.format(name="resume", ks=ks, seconds=seconds, log=tmp_path / "runs.log")
    path.write_text(text, encoding="utf-8")
    return path


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def _part_ks(parts: Path) -> dict[str, int]:
    return {p.name: pq.read_table(p).column("k")[0].as_py() for p in parts.glob("*.parquet")}


@pytest.mark.slow
def test_kill_minus_9_then_rerun_loses_nothing_and_reruns_nothing(tmp_path: Path) -> None:
    sweep = _sweep_file(tmp_path, list(range(24)), seconds=0.4)
    out, parts = tmp_path / "out", tmp_path / "out" / "parts"
    argv = [sys.executable, "-m", "cosim.cli", "batch", str(sweep), "-o", str(out)]
    argv += ["--workers", "2", "--no-progress"]
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(
            argv, env=_cli_env(), stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while len(list(parts.glob("*.parquet"))) < 4:
        assert proc.poll() is None, (tmp_path / "first.log").read_text()
        assert time.monotonic() < deadline, "no part files appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner, its pool workers and running jobs
    proc.wait()

    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    finished_ks = set(_part_ks(parts).values())
    assert 4 <= len(before) < 24
    assert not (out / "results.parquet").exists()
    log_lines_at_kill = len((tmp_path / "runs.log").read_text().splitlines())

    rerun = subprocess.run(argv, env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert len(after) == 24
    assert all(after[name] == mtime for name, mtime in before.items())  # parts untouched
    new_lines = (tmp_path / "runs.log").read_text().splitlines()[log_lines_at_kill:]
    started = {int(line.split()[1]) for line in new_lines if line.startswith("start")}
    assert not started & finished_ks  # no finished job ran again
    assert started | finished_ks == set(range(24))  # every other job did

    frame = pd.read_parquet(out / "results.parquet")
    assert sorted(frame["k"]) == list(range(24)) and (frame["status"] == "ok").all()
    noise = np.random.default_rng(7).standard_normal()
    np.testing.assert_allclose(frame["value"], frame["k"] + noise, rtol=0, atol=1e-15)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["runs"]) == 2
    assert manifest["runs"][1]["executed"] == 24 - len(before)
    assert manifest["seeds"] == [7] and manifest["tools"]["ngspice"].startswith("ngspice-")
    assert not list(out.rglob(".tmp-*"))


def test_changed_config_is_refused_unless_forced(tmp_path: Path) -> None:
    first = load_sweep(_sweep_file(tmp_path, [0, 1, 2], seconds=0.0, name="a.toml"))
    out = tmp_path / "out"
    assert run_sweep(first, out, workers=2)["ok"] == 3
    kept = {k: name for name, k in _part_ks(out / "parts").items()}
    mtimes = {k: (out / "parts" / kept[k]).stat().st_mtime_ns for k in (1, 2)}

    second = load_sweep(_sweep_file(tmp_path, [1, 2, 3], seconds=0.0, name="b.toml"))
    with pytest.raises(ResultDirError, match=r"different sweep config \(changed: grid\).*--force"):
        run_sweep(second, out, workers=2)
    result = CliRunner().invoke(app, ["batch", str(tmp_path / "b.toml"), "-o", str(out)])
    assert result.exit_code == 2 and "--force" in result.output
    assert "Traceback" not in result.output

    counts = run_sweep(second, out, workers=2, force=True)
    assert counts["ok"] == 3
    assert sorted(_part_ks(out / "parts").values()) == [1, 2, 3]
    assert all((out / "parts" / kept[k]).stat().st_mtime_ns == mtimes[k] for k in (1, 2))
    stale = list((out / "stale").rglob("*.parquet"))
    assert [p.name for p in stale] == [kept[0]]  # moved aside, not deleted
    assert sorted(pd.read_parquet(out / "results.parquet")["k"]) == [1, 2, 3]


def test_retry_failed_reruns_only_failed_jobs(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(
        'name = "f"\nkind = "fail"\nmodules = ["test_batch_kinds"]\nretries = 0\n'
        'seeds = [1]\n[grid]\nmode = ["ok", "raise"]\n',
        encoding="utf-8",
    )
    sweep, out = load_sweep(path), tmp_path / "out"
    run_sweep(sweep, out, workers=1)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    run_sweep(sweep, out, workers=1)  # nothing to do: failed jobs count as finished
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    run_sweep(sweep, out, workers=1, retry_failed=True)
    frame = pd.read_parquet(out / "results.parquet").set_index("mode")
    changed = [
        n for n, t in mtimes.items() if (out / "parts" / n).stat().st_mtime_ns != t
    ]
    assert changed == [f"{frame.loc['raise', 'job_id']}.parquet"]


def test_cli_report_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep(load_sweep(_sweep_file(tmp_path, [0, 1, 2], seconds=0.0)), out, workers=1)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(out), "--metric", "value", "--x", "k"])
    assert result.exit_code == 0, result.output
    assert (out / "report" / "value_vs_k.png").is_file() and (out / "report.md").is_file()
    bad = runner.invoke(app, ["report", str(out), "--metric", "nope"])
    assert bad.exit_code == 2 and "'nope' is not one of: value, k_squared" in bad.output
    empty = runner.invoke(app, ["report", str(tmp_path)])
    assert empty.exit_code == 2 and "no manifest.json" in empty.output
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\nkind = "sleep"\ntimeout_s = -1\n', encoding="utf-8")
    result = runner.invoke(app, ["batch", str(broken), "-o", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "broken.toml: field 'timeout_s'" in result.output
    assert not (tmp_path / "o2").exists()


def test_second_runner_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    sweep = load_sweep(_sweep_file(tmp_path, [0, 1], seconds=0.0))
    holder = ResultStore(tmp_path / "out")
    holder.lock()
    try:
        with pytest.raises(ResultDirError, match="another `cosim batch`"):
            run_sweep(sweep, tmp_path / "out", workers=1)
    finally:
        holder.release()
    assert run_sweep(sweep, tmp_path / "out", workers=1)["ok"] == 2


def test_conflicting_result_types_are_reported_and_parts_kept(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'name = "t"\nkind = "fail"\nmodules = ["test_batch_kinds"]\nseeds = [1]\n'
        '[grid]\nmode = ["ok", "text"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ResultDirError, match="conflicting types.*part files are kept"):
        run_sweep(load_sweep(path), tmp_path / "out", workers=1)
    assert len(list((tmp_path / "out" / "parts").glob("*.parquet"))) == 2


def test_report_groups_multi_row_results_by_their_text_labels(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text(
        'name = "v"\nkind = "variants"\nmodules = ["test_batch_kinds"]\nseeds = [1, 2, 6]\n'
        "[grid]\nx = [1.0, 10.0]\n",
        encoding="utf-8",
    )
    run_sweep(load_sweep(path), tmp_path / "out", workers=2)
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(frame) == 12 and sorted(frame["row"].unique()) == [0, 1]
    report = build_report(tmp_path / "out", metric="err", x="x")
    table = report.aggregate.set_index(["x", "variant"])
    assert table.loc[(10.0, "plain"), "err_mean"] == pytest.approx(10.0 * 3)
    assert table.loc[(10.0, "mdm"), "err_mean"] == pytest.approx(10.0 * 3 / 2)
    assert table.loc[(1.0, "mdm"), "err_std"] == pytest.approx(np.std([0.5, 1.0, 3.0], ddof=1))
    assert table.loc[(1.0, "mdm"), "err_count"] == 3


def test_changed_dependency_file_is_refused_unless_forced(tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    model.write_text('{"r": 1}', encoding="utf-8")
    path = _sweep_file(tmp_path, [0, 1], seconds=0.0)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("seeds = [7]", 'seeds = [7]\nfiles = ["model.json"]'), "utf-8")
    out = tmp_path / "out"
    assert run_sweep(load_sweep(path), out, workers=1)["ok"] == 2
    model.write_text('{"r": 2}', encoding="utf-8")
    with pytest.raises(ResultDirError, match=r"files the jobs depend on changed.*model.json"):
        run_sweep(load_sweep(path), out, workers=1)
    assert run_sweep(load_sweep(path), out, workers=1, force=True)["ok"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert manifest["files"] == {str(model.resolve()): digest}
