"""Processes of `cosim batch` and `cosim run`: nothing outlives the run that started it.

kill -9 or SIGTERM of the `cosim batch` runner takes its pool workers and job processes with it
(and frees the folder's lock); descendants that leave the job's process tree (setsid, double
fork) are killed at the job's end or timeout; SIGTERM to `cosim run --backend batch` kills
ngspice and removes its temporary folder; nonsense time limits are refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cosim.batch.config import parse_sweep
from cosim.batch.results import LOCK, ResultDirError, ResultStore
from cosim.batch.runner import run_sweep

TESTS = Path(__file__).parent
HANG = TESTS / "data" / "pyspice" / "hang.cir"

SLEEP_SWEEP = """
name = "procs"
kind = "sleep"
modules = ["test_batch_kinds"]
timeout_s = 120
retries = 0
[grid]
k = [0, 1, 2, 3, 4, 5]
[fixed]
seconds = 60
log = "{log}"
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def _start_batch(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, list[psutil.Process]]:
    """Start `cosim batch` with 2 workers; return it once both workers run a job."""
    sweep = tmp_path / "s.toml"
    log = tmp_path / "runs.log"
    sweep.write_text(SLEEP_SWEEP.format(log=log))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "cosim.cli", "batch", str(sweep), "-o", str(out),
            "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "stderr.txt", "wb"))
    deadline = time.monotonic() + 120
    while not log.is_file() or len(log.read_text().splitlines()) < 2:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        assert time.monotonic() < deadline, "jobs did not start"
        time.sleep(0.05)
    descendants = psutil.Process(proc.pid).children(recursive=True)
    assert len(descendants) >= 4  # two workers, two job processes
    return proc, out, descendants


def _assert_gone(processes: list[psutil.Process], within_s: float = 30.0) -> None:
    _, alive = psutil.wait_procs(processes, timeout=within_s)
    assert not alive, [p.pid for p in alive]


def _assert_lock_free(out: Path) -> None:
    store = ResultStore(out)
    store.lock()
    store.release()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_runner_takes_workers_and_jobs_with_it(tmp_path: Path, sig: int) -> None:
    proc, out, descendants = _start_batch(tmp_path)
    proc.send_signal(sig)  # the runner only, not its process group
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"runner still alive 90 s after signal {sig}: "
                    f"{(tmp_path / 'stderr.txt').read_text()}")
    _assert_gone(descendants)
    _assert_lock_free(out)
    if sig == signal.SIGTERM:
        stderr = (tmp_path / "stderr.txt").read_text()
        assert proc.returncode != 0
        assert "Traceback" not in stderr and "error: " in stderr, stderr


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


def _assert_dead(pids: list[int], within_s: float = 5.0) -> None:
    """Each pid has exited (a SIGKILLed orphan may take a moment to be reaped by init)."""
    deadline = time.monotonic() + within_s
    for pid in pids:
        while psutil.pid_exists(pid):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            assert time.monotonic() < deadline, f"process {pid} survived"
            time.sleep(0.02)


@pytest.mark.parametrize("mode", ["hang", "ok"])
def test_descendants_that_leave_the_job_tree_do_not_survive_it(tmp_path: Path, mode: str) -> None:
    pid_file = tmp_path / "pids"
    text = (f'name = "escape"\nkind = "escape"\nmodules = ["test_batch_kinds"]\ntimeout_s = 3\n'
            f'retries = 0\n[fixed]\nmode = "{mode}"\npid_file = "{pid_file}"\n')
    sweep = parse_sweep(text, tmp_path / "escape.toml")
    counts = run_sweep(sweep, tmp_path / "out", workers=1)
    assert counts["timeout" if mode == "hang" else "ok"] == 1
    escaped = _pids(pid_file)
    assert len(escaped) == 2
    _assert_dead(escaped)


def test_stale_lock_names_its_holders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(f"{dead.pid}\n")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(out / LOCK)!r}, 'a')\n"
        "fcntl.flock(h, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultDirError, match=rf"{dead.pid}.*no longer running.*{holder.pid}"):
            ResultStore(out).lock()
    finally:
        holder.kill()
        holder.wait()
    _assert_lock_free(out)
    assert (out / LOCK).read_text().strip() == ""  # released: no owner recorded


def test_live_lock_names_the_running_batch(tmp_path: Path) -> None:
    first = ResultStore(tmp_path)
    first.lock()
    try:
        assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(ResultDirError, match=rf"pid {os.getpid()}"):
            ResultStore(tmp_path).lock()
    finally:
        first.release()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_cosim_run_takes_ngspice_with_it(tmp_path: Path, sig: int) -> None:
    """SIGTERM: ngspice killed, its folder removed, an error line. kill -9: ngspice still dies
    (PR_SET_PDEATHSIG); the temporary folder of such a run stays."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(_env(), TMPDIR=str(tmp))
    argv = [sys.executable, "-m", "cosim.cli", "run", str(HANG), "-o", str(tmp_path / "o.parquet"),
            "--backend", "batch", "--timeout", "300"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    ngspice: list[psutil.Process] = []
    while not ngspice:
        assert proc.poll() is None and time.monotonic() < deadline
        ngspice = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "ngspice" in p.name()]
        time.sleep(0.05)
    assert list(tmp.iterdir())  # its run folder exists
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=90)
    _assert_gone(ngspice)
    assert proc.returncode != 0
    assert not (tmp_path / "o.parquet").exists()
    if sig == signal.SIGTERM:
        assert b"Traceback" not in stderr and b"error: " in stderr
        assert list(tmp.iterdir()) == []


def test_escaped_ngspice_descendants_die_with_a_timed_out_run(tmp_path: Path) -> None:
    from cosim.errors import SimulationTimeout
    from cosim.spice.batch import run_batch

    pid_file = tmp_path / "pids"
    script = tmp_path / "escape.sh"
    script.write_text(f"setsid sleep 600 >/dev/null 2>&1 &\necho $! > {pid_file}\n")
    netlist = HANG.read_text().replace(".control\n", f".control\nshell sh {script}\n")
    with pytest.raises(SimulationTimeout):
        run_batch(netlist, timeout_s=3)
    _assert_dead(_pids(pid_file))


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf", "-inf"])
def test_nonsense_timeouts_are_refused(tmp_path: Path, value: str) -> None:
    from typer.testing import CliRunner

    from cosim.cli import app

    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(app, ["run", str(HANG), "-o", str(out), "--timeout", value])
    assert result.exit_code == 2
    assert "error: --timeout" in result.output and "Traceback" not in result.output
    assert not out.exists()
