"""Benchmark: cycle updates per second of the device model for 1e6 devices (target >= 1e7/s).

A *cycle update* is one device moving to its next switching cycle: four hash-RNG normals,
the VAR(p) recursion, Γ and Ψ (:class:`cosim.device.model.FeatureEngine`). Timed in the
same process, repeats interleaved so that all paths see the same machine load:

* ``numba step`` — the default path, :meth:`FeatureEngine.step`: one fused compiled kernel
  per cycle over all devices, split over ``--threads`` threads (:mod:`cosim.device._fast`);
* ``numba run`` — :meth:`FeatureEngine.run`: the same numbers, ``--cycles`` cycles per call,
  each block of devices running all of them while its lag history is in cache;
* ``numpy`` — the numpy reference (feature-major buffers, chunks of ``--chunk`` devices
  run by ``--threads`` worker threads; numpy releases the GIL inside its loops);
* ``numpy+PCG64`` — the numpy update with numpy's own Generator normals (PCG64 + ziggurat)
  in place of the hash RNG: what the counter-based hash costs;
* the switching state machine (:class:`cosim.device.model.DeviceArray`: SET level, read,
  RESET level, read per cycle), numba vs numpy.

Prints min and median of ``--repeats`` runs, wall-clock and per CPU-second (process CPU
time of all threads: on a shared machine the wall figure mostly measures the other jobs;
the CPU figure times the machine's cores can deliver is the rate of an idle machine), the
ratios numba / numpy, and the load average. First-call time (JIT compile, or loading the
on-disk cache) is printed separately and not part of the rates.

    .venv/bin/python benchmarks/bench_device.py --devices 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # skinny matmuls: threads only hurt

import numpy as np  # noqa: E402

from cosim.device import _fast  # noqa: E402
from cosim.device.model import DeviceArray, FeatureEngine  # noqa: E402
from cosim.device.modelfile import load_model  # noqa: E402
from cosim.paths import DEFAULT_MODEL  # noqa: E402


class GeneratorNormals:
    """Drop-in for the engine's hash normals: numpy's Generator (PCG64, ziggurat) instead.

    Swapped into a numpy-backend FeatureEngine, it gives the same update with a conventional
    RNG: the baseline the hash RNG is measured against.
    """

    def __init__(self, seed: int) -> None:
        self.gen = np.random.default_rng(seed)

    def fill(self, cycle: int, out: np.ndarray) -> np.ndarray:
        return self.gen.standard_normal(out=out)


def baseline_engine(engine: FeatureEngine, seed: int) -> FeatureEngine:
    """``engine`` (numpy backend) with its normals drawn by :class:`GeneratorNormals`."""
    engine._normals = GeneratorNormals(seed)
    return engine


def timed(work: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - t0, time.process_time() - c0


def chunked(engines: list, cycles: int, pool: ThreadPoolExecutor) -> Callable[[], None]:
    """Work item: advance every engine by ``cycles`` on the pool."""

    def work_one(engine) -> None:
        for _ in range(cycles):
            engine.step()

    return lambda: list(pool.map(work_one, engines))


def stepping(engine: FeatureEngine, cycles: int) -> Callable[[], None]:
    def work() -> None:
        for _ in range(cycles):
            engine.step()

    return work


def switching(dev: DeviceArray, cycles: int) -> Callable[[], None]:
    def work() -> None:
        for _ in range(cycles):
            dev.apply(-2.0)
            dev.read()
            dev.apply(1.5)
            dev.read()

    return work


def report(title: str, count: int, runs: dict[str, list[tuple[float, float]]], ref: str) -> dict:
    """Print min/median rates (wall and per CPU-second) and ratios to ``ref``; return medians."""
    print(f"\n{title}")
    medians = {}
    for kind, col in (("wall", 0), ("per CPU-second", 1)):
        print(f"  {kind}:")
        for name, rr in runs.items():
            rates = [count / r[col] for r in rr]
            medians[(name, kind)] = statistics.median(rates)
            print(f"    {name:14s} min {min(rates):.3e}/s  median {statistics.median(rates):.3e}/s")
        for name, rr in runs.items():
            if name == ref:
                continue
            ratio = [b[col] / a[col] for a, b in zip(rr, runs[ref])]  # same repeat, same load
            print(f"    ratio {name} / {ref}: min {min(ratio):.2f}  median {statistics.median(ratio):.2f}")
    return medians


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--cycles", type=int, default=5, help="cycles per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=32768, help="devices per chunk (numpy paths)")
    ap.add_argument("--threads", type=int, default=_fast.default_threads())
    ap.add_argument("--state-devices", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not _fast.AVAILABLE:
        raise SystemExit("numba is not available (or COSIM_DEVICE_BACKEND=numpy): nothing to compare")

    model = load_model(DEFAULT_MODEL)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs, {args.threads} thread(s)")
    ids = np.arange(args.devices)
    chunks = [ids[i: i + args.chunk] for i in range(0, args.devices, args.chunk)]
    t0 = time.perf_counter()
    fast = FeatureEngine(model, args.seed, ids, backend="numba", threads=args.threads)
    print(f"set-up of {args.devices} devices (D2D draw): {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    fast.step()
    fast.run(1)
    print(f"first numba step and run (JIT compile or cache load): {time.perf_counter() - t0:.2f} s")
    ref = [FeatureEngine(model, args.seed, c, backend="numpy") for c in chunks]
    base = [baseline_engine(FeatureEngine(model, args.seed, c, backend="numpy"), args.seed + i)
            for i, c in enumerate(chunks)]

    runs: dict[str, list[tuple[float, float]]] = {"numba step": [], "numba run": [], "numpy": [],
                                                  "numpy+PCG64": []}
    out = np.empty((args.devices, args.cycles, 4))
    fast.run(args.cycles, out=out)
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        timed(chunked(ref, 1, pool))  # warm-up
        timed(chunked(base, 1, pool))
        work = {"numba step": stepping(fast, args.cycles),
                "numba run": lambda: fast.run(args.cycles, out=out),
                "numpy": chunked(ref, args.cycles, pool),
                "numpy+PCG64": chunked(base, args.cycles, pool)}
        for _ in range(args.repeats):
            for name, w in work.items():
                runs[name].append(timed(w))
    med = report(f"cycle updates per second, {args.devices} devices, {args.cycles} cycles x "
                 f"{args.repeats} repeats, {args.threads} thread(s)", args.devices * args.cycles,
                 runs, "numpy")
    for name in ("numba step", "numba run"):
        wall, cpu = med[(name, "wall")], med[(name, "per CPU-second")]
        print(f"  target 1e7/s, {name}: wall median {'met' if wall >= 1e7 else 'NOT met'} "
              f"({wall:.3e}/s); per CPU-second x {args.threads} core(s) = {cpu * args.threads:.3e}/s "
              f"({'met' if cpu * args.threads >= 1e7 else 'NOT met'} for an otherwise idle machine)")

    n_sm = min(args.state_devices, args.devices)
    devs = {"numba": DeviceArray(model, n_sm, seed=args.seed, backend="numba", threads=args.threads),
            "numpy": DeviceArray(model, n_sm, seed=args.seed, backend="numpy")}
    t0 = time.perf_counter()
    switching(devs["numba"], 1)()
    print(f"\nfirst numba switching cycle (JIT compile or cache load): {time.perf_counter() - t0:.2f} s")
    switching(devs["numpy"], 1)()
    sm_runs: dict[str, list[tuple[float, float]]] = {k: [] for k in devs}
    for _ in range(args.repeats):
        for name, dev in devs.items():
            sm_runs[name].append(timed(switching(dev, args.cycles)))
    report(f"switching state machine (SET, read, RESET, read) device-cycles per second, {n_sm} "
           f"devices (numpy: 1 thread)", n_sm * args.cycles, sm_runs, "numpy")
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
