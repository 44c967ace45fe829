"""Batch results that went bad on disk: zero-byte, corrupt or foreign part files are reported,
moved aside and their jobs rerun, never duplicated; `cosim report` reads around them; a sweep
that expands to too many jobs is refused unless ``max_jobs`` allows it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from cosim.batch.config import SweepConfigError, load_sweep, parse_sweep
from cosim.batch.report import build_report
from cosim.batch.runner import run_sweep
from cosim.paths import PROJECT_ROOT
from test_batch_kinds import SLEEP_SWEEP


def _sweep_text(tmp_path: Path) -> str:
    return SLEEP_SWEEP.format(name="parts", ks=[0, 1, 2, 3, 4], seconds=0.0, log=tmp_path / "runs.log")


def _run(tmp_path: Path, **options: object) -> tuple[dict, Path]:
    sweep = parse_sweep(_sweep_text(tmp_path), tmp_path / "s.toml")
    out = tmp_path / "out"
    return run_sweep(sweep, out, workers=1, **options), out


def _ids_by_k(out: Path) -> dict[int, str]:
    frame = pd.read_parquet(out / "results.parquet")
    return dict(zip(frame["k"], frame["job_id"]))


def _damage(out: Path) -> dict[int, str]:
    """Zero-byte part for k=0, garbage for k=1, k=2's file holding k=3's result."""
    ids = _ids_by_k(out)
    parts = out / "parts"
    (parts / f"{ids[0]}.parquet").write_bytes(b"")
    (parts / f"{ids[1]}.parquet").write_bytes(b"PAR1 this is not parquet")
    shutil.copyfile(parts / f"{ids[3]}.parquet", parts / f"{ids[2]}.parquet")
    return ids


def _started(tmp_path: Path, skip: int) -> list[int]:
    lines = (tmp_path / "runs.log").read_text().splitlines()[skip:]
    return sorted(int(line.split()[1]) for line in lines if line.startswith("start"))


@pytest.mark.parametrize("retry_failed", [False, True])
def test_bad_part_files_are_reported_moved_aside_and_rerun(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, retry_failed: bool
) -> None:
    _run(tmp_path)
    ids = _damage(tmp_path / "out")
    before = len((tmp_path / "runs.log").read_text().splitlines())
    counts, out = _run(tmp_path, retry_failed=retry_failed)
    assert counts["ok"] == 5 and counts["missing"] == 0
    assert _started(tmp_path, before) == [0, 1, 2]  # only the damaged jobs ran again
    frame = pd.read_parquet(out / "results.parquet")
    assert sorted(frame["k"]) == [0, 1, 2, 3, 4] and frame["job_id"].is_unique
    assert dict(zip(frame["k"], frame["job_id"])) == ids
    moved = sorted(p.name for p in (out / "corrupt").rglob("*.parquet"))
    assert moved == sorted(f"{ids[k]}.parquet" for k in (0, 1, 2))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert ids[0] in messages and "empty" in messages
    assert ids[1] in messages and ids[2] in messages and ids[3] in messages


def test_cli_reports_bad_parts_without_a_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    sweep = tmp_path / "s.toml"
    sweep.write_text(_sweep_text(tmp_path))
    out = tmp_path / "out"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                      env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "cosim.cli", "batch", str(sweep), "-o", str(out), "-j", "1",
            "--no-progress"]
    assert subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode == 0
    _damage(out)
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr and "corrupt" in rerun.stderr


def test_report_reads_around_bad_parts_and_a_bad_results_file(tmp_path: Path) -> None:
    _, out = _run(tmp_path)
    ids = _damage(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["status"] = "incomplete"  # as after a killed run: parts are read
    (out / "manifest.json").write_text(json.dumps(manifest))
    rep = build_report(out)
    status = dict(zip(rep.status["status"], rep.status["jobs"]))
    assert status["ok"] == 2 and status["missing"] == 3  # k = 3, 4 only; k=3 not twice
    manifest["status"] = "complete"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "results.parquet").write_bytes(b"")
    rep = build_report(out)
    assert dict(zip(rep.status["status"], rep.status["jobs"]))["ok"] == 2
    assert ids  # the ids were used to damage the folder


def test_too_many_jobs_are_refused_before_expansion(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "data" / "sweeps" / "example.toml").read_text()
    text = text.replace("count = 4", "count = 100000")
    path = tmp_path / "big.toml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(SweepConfigError, match=r"1,200,000 jobs.*max_jobs"):
        load_sweep(path)
    assert time.perf_counter() - start < 30  # refused from the counts, not by expanding


def test_max_jobs_is_an_explicit_override_outside_the_fingerprint(tmp_path: Path) -> None:
    base = _sweep_text(tmp_path)
    with pytest.raises(SweepConfigError, match=r"5 jobs.*limit of 4"):
        parse_sweep("max_jobs = 4\n" + base, tmp_path / "s.toml")
    allowed = parse_sweep("max_jobs = 5\n" + base, tmp_path / "s.toml")
    assert len(allowed.jobs) == 5
    assert allowed.fingerprint() == parse_sweep(base, tmp_path / "s.toml").fingerprint()
