"""Benchmark: switching, reads and write-verify of the device model (compiled vs numpy paths).

All figures come from one process, repeats interleaved so that every path sees the same
machine load, and are printed as min and median of ``--repeats`` runs, wall-clock and per
CPU-second (process CPU time of all threads; on a shared machine the wall figure mostly
measures the other jobs). Ratios are taken repeat by repeat (same load) against the
project's numpy path and, when its source is given, against the original Synaptogen NumPy
port (thennen/Synaptogen, ``Synaptogen.py``; not part of this repository).

* switching: a *device-cycle* is a full SET (−2 V) then RESET (+1.5 V) level on every device,
  no reads (:meth:`cosim.device.model.DeviceArray.apply`): the compiled path with one thread
  and with ``--threads`` threads, float64 and ``precision="float32"``, the numpy path, and
  the original port (``applyVoltage`` twice), for each of ``--sizes`` devices;
* reads: :meth:`DeviceArray.read` at U0 with read noise (the original's ``Iread``), on the
  same paths (float64 and float32, one and ``--threads`` threads, numpy, the original
  port); ``--reads-only`` leaves out the switching benchmark;
* write-verify: :func:`cosim.device.programming.program` of ``--wv-devices`` devices to
  ``--levels`` conductance levels, pulses (SET + RESET) per second, ``--wv-repeats``
  repeats: the default path (pulses and reads on the devices still ramping only) against
  the whole-array path (a verify-read hook: every step over every device) and numpy;
* ``--engine``: the feature engine alone (:class:`cosim.device.model.FeatureEngine`, cycle
  updates without switching).

First calls (JIT compile or on-disk cache load) are made before timing and not counted.

    .venv/bin/python benchmarks/bench_device.py
    .venv/bin/python benchmarks/bench_device.py --synaptogen PATH/Synaptogen/Synaptogen.py/src

``--synaptogen`` (or the environment variable ``COSIM_SYNAPTOGEN``) is the folder that holds
the original port's ``synaptogen`` package.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from types import ModuleType
from typing import Callable, Optional

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core per path unless threads say so

import numpy as np  # noqa: E402

from cosim.device import _fast  # noqa: E402
from cosim.device import programming as pg  # noqa: E402
from cosim.device.model import DeviceArray, FeatureEngine  # noqa: E402
from cosim.device.modelfile import DeviceModel, load_model  # noqa: E402
from cosim.paths import DEFAULT_MODEL  # noqa: E402

Runs = dict[str, list[tuple[float, float]]]


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - t0, time.process_time() - c0


def load_original(path: Optional[str]) -> Optional[ModuleType]:
    """The original port's ``synaptogen`` module from folder ``path`` (None: not measured)."""
    if not path:
        return None
    sys.path.insert(0, os.path.abspath(path))
    try:
        return importlib.import_module("synaptogen")
    except ImportError as exc:
        raise SystemExit(f"error: cannot import 'synaptogen' from {path}: {exc}") from None


def report(title: str, count: float, unit: str, runs: Runs, refs: list[str]) -> None:
    """Print min/median rates (wall and per CPU-second) and per-repeat ratios to ``refs``."""
    print(f"\n{title}")
    for kind, col in (("wall", 0), ("per CPU-second", 1)):
        print(f"  {kind}:")
        for name, rr in runs.items():
            rates = [count / r[col] for r in rr]
            print(f"    {name:24s} min {min(rates):.3e}  median {statistics.median(rates):.3e} {unit}")
        for ref in refs:
            if ref not in runs:
                continue
            for name, rr in runs.items():
                if name == ref:
                    continue
                ratio = [b[col] / a[col] for a, b in zip(rr, runs[ref])]
                print(f"    ratio {name} / {ref}: min {min(ratio):.2f}  median "
                      f"{statistics.median(ratio):.2f}")


def interleaved(work: dict[str, Callable[[], object]], repeats: int) -> Runs:
    """Warm every path once, then ``repeats`` rounds of one call per path."""
    for w in work.values():
        w()
    runs: Runs = {k: [] for k in work}
    for _ in range(repeats):
        for name, w in work.items():
            runs[name].append(timed(w))
    return runs


def compiled_arrays(model: DeviceModel, n: int, args: argparse.Namespace) -> dict[str, DeviceArray]:
    """The compiled paths by label: float64 and float32, one and ``--threads`` threads."""
    arrays = {}
    for tag, precision in (("compiled", "float64"), ("compiled f32", "float32")):
        for threads in (1, args.threads):
            label = f"{tag}, {threads} thread{'s' if threads > 1 else ''}"
            arrays[label] = DeviceArray(model, n, seed=args.seed, backend="numba",
                                        threads=threads, precision=precision)
    return arrays


def bench_switching(model: DeviceModel, n: int, args: argparse.Namespace,
                    orig: Optional[ModuleType]) -> None:
    cycles = args.cycles

    def cycling(dev: DeviceArray) -> Callable[[], None]:
        def work() -> None:
            for _ in range(cycles):
                dev.apply(-2.0)
                dev.apply(1.5)
        return work

    work: dict[str, Callable[[], object]] = {
        label: cycling(dev) for label, dev in compiled_arrays(model, n, args).items()}
    if not args.skip_numpy:
        work["numpy"] = cycling(DeviceArray(model, n, seed=args.seed, backend="numpy"))
    if orig is not None:
        cells = orig.CellArrayCPU(n)

        def orig_work() -> None:
            for _ in range(cycles):
                orig.applyVoltage(cells, -2.0)
                orig.applyVoltage(cells, 1.5)
        work["original port"] = orig_work
    runs = interleaved(work, args.repeats)
    report(f"switching (SET -2 V, RESET +1.5 V), device-cycles/s, {n} devices, {cycles} cycles x "
           f"{args.repeats} repeats", n * cycles, "/s", runs, ["numpy", "original port"])


def bench_reads(model: DeviceModel, n: int, args: argparse.Namespace,
                orig: Optional[ModuleType]) -> None:
    reads = args.cycles
    work: dict[str, Callable[[], object]] = {
        label: (lambda d: lambda: [d.read(noise=True) for _ in range(reads)])(dev)
        for label, dev in compiled_arrays(model, n, args).items()}
    if not args.skip_numpy:
        dev = DeviceArray(model, n, seed=args.seed, backend="numpy")
        work["numpy"] = lambda: [dev.read(noise=True) for _ in range(reads)]
    if orig is not None:
        cells = orig.CellArrayCPU(n)
        work["original port"] = lambda: [orig.Iread(cells) for _ in range(reads)]
    runs = interleaved(work, args.repeats)
    report(f"reads with read noise at U0, reads/s, {n} devices, {reads} reads x {args.repeats} "
           f"repeats", n * reads, "/s", runs, ["numpy", "original port"])


def bench_write_verify(model: DeviceModel, args: argparse.Namespace) -> None:
    """Write-verify pulses/s: the default path (each ramp step over the devices still
    ramping), with 1 and ``--threads`` threads, against the whole-array path (a verify-read
    hook, as in-situ write-verify uses it: every step over all devices, the path before the
    active-set version) and the numpy backend; fresh devices every repeat, same seed."""
    n = args.wv_devices
    levels = pg.achievable_levels(model, args.levels, seed=0)
    target = np.resize(levels, n)
    whole_array = lambda d: d.conductance()  # noqa: E731 - a hook forces the whole-array path
    paths = {"compiled, 1 thread": ("numba", 1, None),
             f"compiled, {args.threads} threads": ("numba", args.threads, None),
             "whole array, 1 thread": ("numba", 1, whole_array)}
    if not args.skip_numpy:
        paths["numpy"] = ("numpy", None, None)
    print(f"\nwrite-verify (cosim.device.programming.program), {n} devices to {args.levels} "
          f"levels, default settings, {args.wv_repeats} repeats")
    pg.program(DeviceArray(model, 64, seed=0), levels[:1])  # warm the kernels
    runs: Runs = {k: [] for k in paths}
    pulses: dict[str, int] = {}
    for _ in range(args.wv_repeats):
        for label, (backend, threads, hook) in paths.items():
            dev = DeviceArray(model, n, seed=args.seed, backend=backend, threads=threads)
            out: list[pg.ProgramResult] = []
            runs[label].append(timed(lambda: out.append(pg.program(dev, target, verify_read=hook))))
            pulses[label] = int(out[0].pulses.sum())
    count = pulses["compiled, 1 thread"]
    same = all(p == count for p in pulses.values())
    report(f"write-verify pulses/s ({count} pulses, {count / n:.1f} per device; "
           f"{'same pulses on every path' if same else f'PULSES DIFFER: {pulses}'})",
           count, "pulses/s", runs, ["numpy", "whole array, 1 thread"])


def bench_engine(model: DeviceModel, args: argparse.Namespace) -> None:
    n = args.sizes[-1]
    ids = np.arange(n)
    fast = FeatureEngine(model, args.seed, ids, backend="numba", threads=args.threads)
    ref = FeatureEngine(model, args.seed, ids, backend="numpy")
    out = np.empty((n, args.cycles, 4))
    work = {"compiled run": lambda: fast.run(args.cycles, out=out),
            "compiled step": lambda: [fast.step() for _ in range(args.cycles)],
            "numpy": lambda: [ref.step() for _ in range(args.cycles)]}
    runs = interleaved(work, args.repeats)
    report(f"feature engine, cycle updates/s, {n} devices, {args.threads} thread(s)",
           n * args.cycles, "/s", runs, ["numpy"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2**16, 2**20],
                    help="device counts of the switching and read benchmarks")
    ap.add_argument("--cycles", type=int, default=3, help="device-cycles (reads) per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=_fast.default_threads())
    ap.add_argument("--wv-devices", type=int, default=1_000_000)
    ap.add_argument("--levels", type=int, default=8)
    ap.add_argument("--wv-repeats", type=int, default=3, help="repeats of the write-verify runs")
    ap.add_argument("--skip-switching", action="store_true",
                    help="leave out the switching and read benchmarks")
    ap.add_argument("--reads-only", action="store_true",
                    help="of the switching and read benchmarks, run the reads only")
    ap.add_argument("--skip-numpy", action="store_true", help="leave out the numpy path")
    ap.add_argument("--skip-write-verify", action="store_true")
    ap.add_argument("--engine", action="store_true", help="also time the feature engine")
    ap.add_argument("--synaptogen", default=os.environ.get("COSIM_SYNAPTOGEN"),
                    help="folder holding the original port's 'synaptogen' package")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not _fast.AVAILABLE:
        raise SystemExit("numba is not available (or COSIM_DEVICE_BACKEND=numpy): nothing to compare")
    orig = load_original(args.synaptogen)
    model = load_model(DEFAULT_MODEL)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs, "
          f"{args.threads} thread(s); original port: {'measured' if orig else 'not given'}")
    t0 = time.perf_counter()
    warm = DeviceArray(model, 2 * _fast.SWITCH_BLOCK, seed=0)
    warm.apply(-2.0)
    warm.apply(1.5)
    warm.read(noise=True)
    DeviceArray(model, 8, seed=0, precision="float32").apply(1.5)
    print(f"first compiled calls (JIT compile or cache load): {time.perf_counter() - t0:.2f} s")
    for n in [] if args.skip_switching else args.sizes:
        if not args.reads_only:
            bench_switching(model, n, args, orig)
        bench_reads(model, n, args, orig)
    if not args.skip_write_verify:
        bench_write_verify(model, args)
    if args.engine:
        bench_engine(model, args)
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
