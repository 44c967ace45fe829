"""Benchmark: cycle updates per second of the device model for 1e6 devices.

A *cycle update* is one device moving to its next switching cycle: four hash-RNG normals,
the VAR(p) recursion, Γ and Ψ (:class:`cosim.device.model.FeatureEngine`). Also timed:

* baseline (same process, same work) — the identical update with numpy's own Generator
  (PCG64 + ziggurat) in place of the counter-based hash RNG, to show what the hash costs;
* the full switching state machine (:class:`cosim.device.model.DeviceArray`: SET level,
  read, RESET level, read per cycle) on fewer devices.

Devices are processed in chunks (cache-sized) by ``--threads`` worker threads (numpy
releases the GIL inside its loops). Prints min and median of ``--repeats`` runs and the
ratio to the baseline (DESIGN §7: machines are shared; compare within one run).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_device.py --devices 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # skinny matmuls: threads only hurt

import numpy as np  # noqa: E402

from cosim.device.model import DeviceArray, FeatureEngine, draw_d2d  # noqa: E402
from cosim.device.modelfile import load_model  # noqa: E402
from cosim.paths import DEFAULT_MODEL  # noqa: E402


class BaselineEngine:
    """Same update as FeatureEngine with numpy's Generator normals (the baseline)."""

    def __init__(self, engine: FeatureEngine, seed: int) -> None:
        self.e = engine
        self.gen = np.random.default_rng(seed)

    def step(self) -> np.ndarray:
        e = self.e
        self.gen.standard_normal(out=e._eps)
        n, p = e.cycle, e._p
        x = np.matmul(e.model.var_chol, e._eps, out=e._x)
        k = n % p
        x += e._big[k] @ e._hist
        e._hist[4 * k: 4 * k + 4] = x
        y = e._y
        y[:] = e._gamma[0]
        for g in e._gamma[1:]:
            y *= x
            y += g
        y *= e._sigma
        y += e._mu
        e.cycle += 1
        return y.T


def run_chunks(engines: list, cycles: int, pool: ThreadPoolExecutor) -> tuple[float, float]:
    """Advance every engine by ``cycles``; return (wall seconds, process CPU seconds)."""

    def work(engine) -> None:
        for _ in range(cycles):
            engine.step()

    t0, c0 = time.perf_counter(), time.process_time()
    list(pool.map(work, engines))
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--cycles", type=int, default=5, help="cycles per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=32768)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--state-devices", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    model = load_model(DEFAULT_MODEL)
    ids = np.arange(args.devices)
    chunks = [ids[i: i + args.chunk] for i in range(0, args.devices, args.chunk)]
    t0 = time.perf_counter()
    engines = [FeatureEngine(model, args.seed, c) for c in chunks]
    print(f"set-up of {args.devices} devices (D2D draw): {time.perf_counter() - t0:.2f} s")
    base_params = [draw_d2d(model, args.seed, c) for c in chunks[:1]]  # warm-up of the D2D path
    del base_params
    baselines = [BaselineEngine(FeatureEngine(model, args.seed, c), args.seed + i)
                 for i, c in enumerate(chunks)]

    rates: dict[str, list[float]] = {"hash RNG (cosim)": [], "numpy Generator (baseline)": []}
    cpu_rates: dict[str, list[float]] = {k: [] for k in rates}
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        run_chunks(engines, 1, pool)  # warm-up
        run_chunks(baselines, 1, pool)
        for _ in range(args.repeats):
            for name, group in (("hash RNG (cosim)", engines), ("numpy Generator (baseline)", baselines)):
                secs, cpu = run_chunks(group, args.cycles, pool)
                rates[name].append(args.devices * args.cycles / secs)
                cpu_rates[name].append(args.devices * args.cycles / cpu)

    print(f"\ncycle updates per second, {args.devices} devices, {args.cycles} cycles x "
          f"{args.repeats} repeats, {args.threads} thread(s), chunk {args.chunk}")
    for name, r in rates.items():
        print(f"  {name:28s} min {min(r):.3e}/s  median {statistics.median(r):.3e}/s")
    print("  per CPU-second (all threads; less sensitive to other load on a shared machine):")
    for name, r in cpu_rates.items():
        print(f"  {name:28s} min {min(r):.3e}/s  median {statistics.median(r):.3e}/s")
    ratio = [a / b for a, b in zip(rates["hash RNG (cosim)"], rates["numpy Generator (baseline)"])]
    print(f"  ratio cosim / baseline       min {min(ratio):.2f}  median {statistics.median(ratio):.2f}")
    print(f"  target 1e7/s: {'met' if statistics.median(rates['hash RNG (cosim)']) >= 1e7 else 'NOT met'}")

    n_sm = min(args.state_devices, args.devices)
    dev = DeviceArray(model, n_sm, seed=args.seed)
    sm_rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.cycles):
            dev.apply(-2.0)
            dev.read()
            dev.apply(1.5)
            dev.read()
        sm_rates.append(n_sm * args.cycles / (time.perf_counter() - t0))
    print(f"\nswitching state machine (SET, read, RESET, read), {n_sm} devices, 1 thread: "
          f"min {min(sm_rates):.3e}/s  median {statistics.median(sm_rates):.3e}/s")
    print(f"load average during the run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
