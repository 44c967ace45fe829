"""Run a sweep's jobs: a local process pool, or a Dask distributed cluster.

Every attempt of every job runs in a child process of its own: forked from the worker when the
worker is single-threaded (the local pool), from a fork server otherwise (a Dask worker), or a
fresh interpreter where the worker may not have children (a daemonic Dask worker). A job that
hangs is killed with all its descendants (ngspice included) when ``timeout_s`` runs out, and a
job that crashes cannot take the worker with it. A failed attempt is retried up to
``retries`` times; the last attempt's outcome is recorded. Results are stored by the main
process as each job finishes (:mod:`cosim.batch.results`), so a killed sweep resumes where it
stopped.

Nothing outlives the run that started it: every job process carries a mark in its environment
(:data:`JOB_MARK_ENV`, inherited by all its descendants) and after each attempt every process
still carrying the attempt's mark is killed, also those that left the process tree with
``setsid`` or a double fork. Pool workers and job processes get SIGKILL from the kernel when
their parent dies (``PR_SET_PDEATHSIG``), so ``kill -9`` of the runner leaves no worker behind;
Ctrl-C kills the pool at once, and so does SIGTERM (``cosim batch`` calls
:func:`kill_local_pools` from its signal handler and exits).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.spawn
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from cosim.batch.config import RESERVED_COLUMNS, Job, Sweep
from cosim.batch.jobs import discover_job_kinds, get_job_kind
from cosim.errors import ConvergenceError, CosimError
from cosim.spice._process import die_with_parent, kill_marked, new_mark

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_NONCONVERGED = "nonconverged"
STATUS_TIMEOUT = "timeout"
STATUS_CRASHED = "crashed"
FAILED_STATUSES = (STATUS_ERROR, STATUS_NONCONVERGED, STATUS_TIMEOUT, STATUS_CRASHED)

_PRELOAD = ["cosim.batch.runner", "cosim.batch._preload"]
MAIN_PATH_ENV = "COSIM_BATCH_MAIN_PATH"
_KILL_GRACE_S = 5.0
JOB_MARK_ENV = "COSIM_JOB_MARK"
"""Environment variable whose value marks the processes of one job attempt."""


@dataclass
class JobOutcome:
    """What became of one job (its last attempt)."""

    job: Job
    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    attempt: int = 1
    elapsed_s: float = 0.0
    """Wall time of the last attempt, seconds."""
    pid: int | None = None
    """Process id of the job process of the last attempt."""


def _job_context() -> multiprocessing.context.BaseContext:
    """``fork`` from a single-threaded process (fast: imports are inherited), else a fork
    server (forking a multi-threaded process such as a Dask worker is unsafe)."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    # Each forked child re-imports the parent's main script unless the server already did;
    # Python 3.11's forkserver ignores its "__main__" preload, so cosim.batch._preload does it.
    main_path = multiprocessing.spawn.get_preparation_data("job").get("init_main_from_path")
    if main_path:
        os.environ[MAIN_PATH_ENV] = main_path
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _to_scalar(name: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"result field {name!r} is a {type(value).__name__}, not a scalar")


def normalise_rows(result: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Check a job's return value (dict or list of dicts of scalars) and return it as rows."""
    rows = [result] if isinstance(result, dict) else result
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise TypeError("a job must return a dict or a non-empty list of dicts")
    clean = []
    for row in rows:
        for key in row:
            if not isinstance(key, str) or not key.isidentifier():
                raise TypeError(f"result field {key!r} is not an identifier")
            if key in RESERVED_COLUMNS or key in params:
                raise TypeError(f"result field {key!r} collides with a parameter or column")
        clean.append({k: _to_scalar(k, v) for k, v in row.items()})
    return clean


def execute_job(job: Job, modules: list[str]) -> tuple[str, Any]:
    """Run ``job`` in this process; return (status, rows) or (failed status, message)."""
    try:
        discover_job_kinds(modules)
        kind = get_job_kind(job.kind)
        rows = normalise_rows(kind.function(dict(job.params), job.seed), job.params)
        return STATUS_OK, rows
    except ConvergenceError as exc:
        return STATUS_NONCONVERGED, f"{type(exc).__name__}: {exc}"
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, none escapes
        return STATUS_ERROR, f"{type(exc).__name__}: {exc}"


def _job_child(job: Job, modules: list[str], conn: Any, mark: str) -> None:
    """Body of a forked job process: run the job and send (status, payload) to the parent."""
    die_with_parent()
    os.environ[JOB_MARK_ENV] = mark
    conn.send(execute_job(job, modules))
    conn.close()


def _kill_tree(pid: int) -> None:
    """SIGKILL process ``pid`` and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=_KILL_GRACE_S)


def _died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"job process died (killed by signal {-exitcode})"
    return f"job process died (exit code {exitcode})"


def _timeout_message(timeout_s: float) -> str:
    return f"timeout: killed after {timeout_s:g} s"


def _run_attempt_forked(
    job: Job, timeout_s: float, modules: list[str]
) -> tuple[str, Any, float, int]:
    ctx = _job_context()
    receiver, sender = ctx.Pipe(duplex=False)
    mark = new_mark()
    process = ctx.Process(target=_job_child, args=(job, modules, sender, mark), daemon=False)
    start = time.perf_counter()
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            _kill_tree(process.pid)
            process.join(_KILL_GRACE_S)
            return STATUS_TIMEOUT, _timeout_message(timeout_s), timeout_s, process.pid
        try:
            status, payload = receiver.recv()
        except EOFError:
            process.join(_KILL_GRACE_S)
            return STATUS_CRASHED, _died(process.exitcode), _since(start), process.pid
        process.join(_KILL_GRACE_S)
        if process.is_alive():  # sent its rows but does not exit (a stray non-daemon thread)
            _kill_tree(process.pid)
            process.join(_KILL_GRACE_S)
        return status, payload, _since(start), process.pid
    finally:
        receiver.close()
        kill_marked(JOB_MARK_ENV, mark)  # descendants that left the job's process tree


def _run_attempt_subprocess(
    job: Job, timeout_s: float, modules: list[str]
) -> tuple[str, Any, float, int]:
    """Same as the forked attempt, in a fresh interpreter (``python -m cosim.batch.child``);
    used where this process may not fork children (a daemonic Dask worker)."""
    with tempfile.TemporaryDirectory(prefix="cosim-job-") as tmp:
        request, reply, log = Path(tmp, "job.pkl"), Path(tmp, "result.pkl"), Path(tmp, "log")
        request.write_bytes(pickle.dumps((job, modules)))
        argv = [sys.executable, "-m", "cosim.batch.child", str(request), str(reply)]
        mark = new_mark()
        start = time.perf_counter()
        with open(log, "wb") as log_handle:
            process = subprocess.Popen(
                argv, stdout=log_handle, stderr=subprocess.STDOUT,
                env={**os.environ, JOB_MARK_ENV: mark}, preexec_fn=die_with_parent,
            )
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(process.pid)
            process.wait()
            return STATUS_TIMEOUT, _timeout_message(timeout_s), timeout_s, process.pid
        finally:
            if process.poll() is None:  # interrupted
                _kill_tree(process.pid)
            kill_marked(JOB_MARK_ENV, mark)
        if not reply.is_file():
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            message = f"{_died(process.returncode)}: {tail}"
            return STATUS_CRASHED, message, _since(start), process.pid
        status, payload = pickle.loads(reply.read_bytes())
        return status, payload, _since(start), process.pid


def _run_attempt(job: Job, timeout_s: float, modules: list[str]) -> tuple[str, Any, float, int]:
    """One attempt in a child process: (status, rows or message, elapsed s, child pid)."""
    if multiprocessing.current_process().daemon:
        return _run_attempt_subprocess(job, timeout_s, modules)
    return _run_attempt_forked(job, timeout_s, modules)


def _since(start: float) -> float:
    return time.perf_counter() - start


def run_job_isolated(job: Job, timeout_s: float, retries: int, modules: list[str]) -> JobOutcome:
    """Run ``job`` in a fresh child process, retrying up to ``retries`` times after a failure."""
    outcome = JobOutcome(job, STATUS_CRASHED)
    for attempt in range(1, retries + 2):
        status, payload, elapsed, pid = _run_attempt(job, timeout_s, modules)
        ok = status == STATUS_OK
        outcome = JobOutcome(
            job,
            status,
            rows=payload if ok else [],
            error=None if ok else payload,
            attempt=attempt,
            elapsed_s=elapsed,
            pid=pid,
        )
        if ok:
            break
    return outcome


@dataclass
class Counts:
    """Progress counters."""

    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    slots: int = 1

    @property
    def finished(self) -> int:
        return self.skipped + self.ok + self.failed

    @property
    def running(self) -> int:
        return min(self.slots, self.total - self.finished)


def _outcome_from_future(job: Job, future: Any) -> JobOutcome:
    try:
        return future.result()
    except BaseException as exc:  # noqa: BLE001 - runner-level failure of this job only
        return JobOutcome(job, STATUS_CRASHED, error=f"runner: {type(exc).__name__}: {exc}")


def _init_worker(modules: list[str], kind_name: str) -> None:
    """Pool worker start: die with the runner, import the job kinds and run the sweep kind's
    warm-up, if any, so that the job processes forked from this worker inherit its result. A
    failing warm-up is ignored: the jobs then do the work themselves and report any error as
    theirs."""
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the runner's SIGTERM handler
    discover_job_kinds(modules)
    warmup = get_job_kind(kind_name).warmup
    if warmup is not None:
        with contextlib.suppress(Exception):  # the jobs record the failure with their reason
            warmup()


_LOCAL_POOLS: set[ProcessPoolExecutor] = set()
"""Pools of this process whose jobs are running (for :func:`kill_local_pools`)."""


def kill_local_pools() -> None:
    """SIGKILL the workers of every running local pool, their job processes and whatever
    those started (also outside the process tree, by the workers' job marks).

    Safe to call from a signal handler: it takes no lock the interrupted code may hold.
    """
    for pool in list(_LOCAL_POOLS):
        for pid in list(getattr(pool, "_processes", None) or {}):
            _kill_tree(pid)
            kill_marked(JOB_MARK_ENV, f"{pid}-", prefix=True)


def _local_outcomes(jobs: list[Job], sweep: Sweep, workers: int) -> Iterator[JobOutcome]:
    """Submit every job to a new process pool now; the iterator yields their outcomes."""
    cfg = sweep.config
    # Chosen and used (the first submit starts the workers) before the progress bar's thread
    # exists, so that a single-threaded caller forks its workers directly.
    ctx = _job_context()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg.modules, cfg.kind)
    )
    futures: dict[Future, Job] = {
        pool.submit(run_job_isolated, job, cfg.timeout_s, cfg.retries, cfg.modules): job
        for job in jobs
    }
    _LOCAL_POOLS.add(pool)

    def outcomes() -> Iterator[JobOutcome]:
        complete = False
        try:
            for future in as_completed(futures):
                yield _outcome_from_future(futures[future], future)
            complete = True
        finally:
            if not complete:  # interrupted (Ctrl-C, an error storing a result)
                kill_local_pools()
            _LOCAL_POOLS.discard(pool)
            pool.shutdown(wait=True, cancel_futures=True)

    return outcomes()


def _dask_outcomes(jobs: list[Job], sweep: Sweep, client: Any) -> Iterator[JobOutcome]:
    from distributed import as_completed as dask_as_completed

    cfg = sweep.config
    futures = {}
    for job in jobs:
        future = client.submit(
            run_job_isolated, job, cfg.timeout_s, cfg.retries, cfg.modules, pure=False
        )
        futures[future.key] = (job, future)
    try:
        for future in dask_as_completed([f for _, f in futures.values()]):
            yield _outcome_from_future(futures[future.key][0], future)
    finally:
        client.cancel([f for _, f in futures.values()])


def connect_dask(address: str, timeout_s: float = 30.0) -> Any:
    """A Dask client connected to the scheduler at ``address`` (``tcp://HOST:PORT``)."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise CosimError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def iter_outcomes(
    jobs: list[Job], sweep: Sweep, workers: int | None, client: Any | None
) -> Iterator[JobOutcome]:
    """Outcomes of ``jobs`` in completion order, on ``client`` if given, else a local pool."""
    if not jobs:
        return iter(())
    if client is not None:
        return _dask_outcomes(jobs, sweep, client)
    return _local_outcomes(jobs, sweep, workers or default_workers())


def default_workers() -> int:
    """Local workers when none are asked for: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def dask_slots(client: Any) -> int:
    """Total worker threads of a Dask cluster (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def drive(
    outcomes: Iterable[JobOutcome],
    counts: Counts,
    on_outcome: Callable[[JobOutcome], None],
    show_progress: bool,
    title: str,
) -> None:
    """Consume outcomes, store each with ``on_outcome`` and show a rich progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.progress import TimeElapsedColumn

    def status_text() -> str:
        return (
            f"[green]done {counts.ok}[/] [red]failed {counts.failed}[/] "
            f"[yellow]running {counts.running}[/] skipped {counts.skipped}"
        )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        task = progress.add_task(
            title, total=counts.total, completed=counts.skipped, status=status_text()
        )
        for outcome in outcomes:
            on_outcome(outcome)
            if outcome.status == STATUS_OK:
                counts.ok += 1
            else:
                counts.failed += 1
            progress.update(task, completed=counts.finished, status=status_text())


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    retry_failed: bool = False,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Run the jobs of ``sweep`` not yet finished in ``out_dir``; return the status counts.

    ``workers``: local processes (default: the usable CPUs). ``scheduler``: a Dask scheduler
    address; when given, jobs run on that cluster instead. ``force``: accept an ``out_dir``
    holding results of a different config. ``retry_failed``: rerun jobs that failed before.
    """
    from cosim.batch.results import ResultStore

    if workers is not None and workers < 1:
        raise CosimError(f"--workers must be at least 1, got {workers}")
    if workers is not None and scheduler:
        raise CosimError("--workers is for the local pool; drop it when giving --scheduler")
    store = ResultStore(Path(out_dir))
    client = connect_dask(scheduler) if scheduler else None
    try:
        slots = dask_slots(client) if client is not None else workers or default_workers()
        runner = {"mode": "dask" if client else "local", "scheduler": scheduler, "slots": slots}
        store.begin(sweep, force=force, runner=runner)
        finished = store.finished_ids(failed_count_as_finished=not retry_failed)
        pending = [job for job in sweep.jobs if job.id not in finished]
        counts = Counts(total=len(sweep.jobs), skipped=len(sweep.jobs) - len(pending), slots=slots)
        outcomes = iter_outcomes(pending, sweep, workers, client)
        drive(outcomes, counts, store.write_part, show_progress, sweep.config.name)
        return store.finish(sweep, executed=counts.ok + counts.failed)
    finally:
        store.release()
        if client is not None:
            client.close()

