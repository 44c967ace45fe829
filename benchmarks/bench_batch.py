"""Batch runner overhead: the local pool against calling the job functions directly.

Not a test (timings on shared machines are noisy, see docs/performance.md): prints, per workload, the wall
time per job of direct calls in this process and of ``run_sweep`` on a local pool (every job
in a forked process of its own, results written to parquet as each job finishes), their
difference (the runner's overhead per job) and ratio, as the minimum and median of several
repeats measured in this one process.

Workloads (same jobs, same seeds in every mode):

1. ``crossbar_ideal_nf`` 8×4: a job of a few milliseconds, so the time is almost all overhead.
2. ``crossbar_nf`` size 32, block matrix, programmed devices: a realistic sweep job.

The pools above fork their workers from this process, which has already run every job kind
once, so the workers start warm whatever the kind declares. The ``cold parent`` modes run the
same sweep from a fresh interpreter (timed there around ``run_sweep`` only), as
``cosim batch`` does, with the kind's worker warm-up on and switched off: their difference is
what the warm-up saves (without it each job process loads the device model's compiled kernels
and estimates the conductance window itself).

Usage: python benchmarks/bench_batch.py [--jobs 16] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim.batch import jobs as job_registry
from cosim.batch.config import Sweep, parse_sweep
from cosim.batch.jobs import discover_job_kinds, get_job_kind
from cosim.batch.runner import run_sweep

WORKLOADS = {
    "crossbar_ideal_nf 8x4": ('kind = "crossbar_ideal_nf"', "rows = [8]", "cols = 4"),
    "crossbar_nf 32 programmed": (
        'kind = "crossbar_nf"',
        "size = [32]",
        'matrix = "block"\ndevices = "programmed"\nr_wire = 1.0',
    ),
}


def sweep_text(kind_line: str, grid_line: str, fixed: str, jobs: int) -> str:
    """Sweep file of ``jobs`` jobs (one grid point, ``jobs`` seeds) for one workload."""
    return (
        f'name = "bench"\n{kind_line}\ntimeout_s = 300\nretries = 0\n'
        f"seeds = {{ count = {jobs}, base = 100 }}\n[grid]\n{grid_line}\n[fixed]\n{fixed}\n"
    )


def make_sweep(kind_line: str, grid_line: str, fixed: str, jobs: int) -> Sweep:
    return parse_sweep(sweep_text(kind_line, grid_line, fixed, jobs), Path("bench.toml"))


def time_direct(sweep: Sweep) -> float:
    """Seconds to call the job function for every job, in this process."""
    function = get_job_kind(sweep.config.kind).function
    start = time.perf_counter()
    for job in sweep.jobs:
        function(dict(job.params), job.seed)
    return time.perf_counter() - start


def time_pool(sweep: Sweep, workers: int) -> float:
    """Seconds for ``run_sweep`` on a fresh local pool into a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        start = time.perf_counter()
        counts = run_sweep(sweep, Path(folder) / "out", workers=workers)
        elapsed = time.perf_counter() - start
    if counts["ok"] != len(sweep.jobs):
        raise SystemExit(f"benchmark sweep failed: {counts}")
    return elapsed


def time_cold_pool(text: str, workers: int, warmup: bool) -> float:
    """Seconds of ``run_sweep`` of sweep file ``text`` in a fresh interpreter (module doc)."""
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        config = Path(folder) / "sweep.json"
        config.write_text(json.dumps({"text": text, "workers": workers, "warmup": warmup}))
        output = subprocess.run(
            [sys.executable, __file__, "--cold-run", str(config)], check=True, capture_output=True, text=True
        ).stdout
    return float(output.strip().splitlines()[-1])


def cold_run(config_path: Path) -> None:
    """Body of one cold-parent run: print the seconds ``run_sweep`` took."""
    config = json.loads(config_path.read_text())
    discover_job_kinds()
    sweep = parse_sweep(config["text"], Path("bench.toml"))
    if not config["warmup"]:
        without_warmup(sweep.config.kind)
    print(time_pool(sweep, config["workers"]))


def without_warmup(kind: str) -> Callable[[], None]:
    """Switch the warm-up of ``kind`` off (workers fork from this process and inherit the
    registry); returns the function that switches it back on."""
    original = job_registry._REGISTRY[kind]
    job_registry._REGISTRY[kind] = dataclasses.replace(original, warmup=None)

    def restore() -> None:
        job_registry._REGISTRY[kind] = original

    return restore


def summarise(values: list[float], jobs: int) -> dict[str, float]:
    per_job = [v / jobs for v in values]
    return {"min_s": min(per_job), "median_s": statistics.median(per_job)}


def bench_workload(name: str, jobs: int, repeats: int) -> dict[str, dict[str, float]]:
    sweep = make_sweep(*WORKLOADS[name], jobs=jobs)
    kind = get_job_kind(sweep.config.kind)
    if kind.warmup is not None:
        kind.warmup()
    time_direct(make_sweep(*WORKLOADS[name], jobs=1))  # imports and caches, not timed
    modes: dict[str, list[float]] = {"direct": [], "pool 1 worker": [], "pool 2 workers": []}
    cold = {"cold parent, 1 worker": True}
    if kind.warmup is not None:
        cold["cold parent, 1 worker, no warm-up"] = False
    modes.update({mode: [] for mode in cold})
    for _ in range(repeats):
        modes["direct"].append(time_direct(sweep))
        modes["pool 1 worker"].append(time_pool(sweep, 1))
        modes["pool 2 workers"].append(time_pool(sweep, 2))
        for mode, warmup in cold.items():
            modes[mode].append(time_cold_pool(sweep_text(*WORKLOADS[name], jobs=jobs), 1, warmup))
    return {mode: summarise(values, jobs) for mode, values in modes.items()}


def report(name: str, result: dict[str, dict[str, float]]) -> None:
    direct = result["direct"]
    print(f"\n{name}: wall seconds per job (min / median of repeats)")
    for mode, stats in result.items():
        line = f"  {mode:<35} {stats['min_s']:8.4f} / {stats['median_s']:8.4f}"
        if mode != "direct":
            overhead = (stats["min_s"] - direct["min_s"], stats["median_s"] - direct["median_s"])
            ratio = (stats["min_s"] / direct["min_s"], stats["median_s"] / direct["median_s"])
            line += f"   overhead {overhead[0]:+.4f} / {overhead[1]:+.4f} s   ratio {ratio[0]:.2f} / {ratio[1]:.2f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16, help="jobs per sweep (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per mode (default 3)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), action="append", help="default: all")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--cold-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_run:
        cold_run(args.cold_run)
        return
    discover_job_kinds()
    results = {}
    for name in args.workload or list(WORKLOADS):
        results[name] = bench_workload(name, args.jobs, args.repeats)
        report(name, results[name])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
