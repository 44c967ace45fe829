"""Benchmark of `cosim fit` on a cycle table (issue 5 target: 512 × 6000 in ≤ 60 s).

Synthesizes the table once from the shipped default model (``cosim synth`` code, seeded),
writes it as CSV, then times, per repeat, in this process:

* baseline: ``pandas.read_csv`` of the same file (the I/O floor every fit pays);
* read: :func:`cosim.fit.readers.read_measurements` (aliases, units, validation);
* fit: :func:`cosim.fit.fit.fit_measurement` (QC, Γ, latents, VAR order + fit, mixture);

and prints min and median of each and the ratios fit/baseline and (read + fit)/target.

    .venv/bin/python benchmarks/bench_fit.py [--devices 512] [--cycles 6000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=512)
    parser.add_argument("--cycles", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from cosim.device.modelfile import load_model
    from cosim.device.synth import synth_cycles
    from cosim.fit.fit import FitConfig, fit_measurement
    from cosim.fit.readers import read_measurements
    from cosim.paths import DEFAULT_MODEL

    model = load_model(DEFAULT_MODEL)
    t0 = time.perf_counter()
    table = synth_cycles(model, args.devices, args.cycles, args.seed)
    print(f"synthesized {args.devices} x {args.cycles} in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cycles.csv"
        table.to_csv(path, index=False, float_format="%.9g")
        del table
        size_mb = path.stat().st_size / 1e6
        times: dict[str, list[float]] = {"baseline read_csv": [], "read": [], "fit": [],
                                         "read+fit": []}
        for rep in range(args.repeats):
            t0 = time.perf_counter()
            pd.read_csv(path)
            times["baseline read_csv"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            measurement = read_measurements(path)
            t_read = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            result = fit_measurement(measurement, FitConfig(seed=args.seed))
            t_fit = time.perf_counter() - t0
            cpu_fit = time.process_time() - c0
            times["read"].append(t_read)
            times["fit"].append(t_fit)
            times["read+fit"].append(t_read + t_fit)
            print(f"repeat {rep + 1}: read {t_read:.1f} s, fit {t_fit:.1f} s "
                  f"(CPU {cpu_fit:.1f} s) "
                  f"(VAR({result.model.var_order}), K={result.model.n_components})")
    print(f"\nfile: {size_mb:.0f} MB, {args.devices * args.cycles} rows")
    print(f"{'step':<20}{'min [s]':>10}{'median [s]':>12}")
    for name, values in times.items():
        print(f"{name:<20}{min(values):>10.2f}{statistics.median(values):>12.2f}")
    base = statistics.median(times["baseline read_csv"])
    total = statistics.median(times["read+fit"])
    print(f"\nratio fit / baseline read_csv (median): {statistics.median(times['fit']) / base:.1f}")
    print(f"ratio (read + fit) / target {TARGET_S:.0f} s (median): {total / TARGET_S:.2f}"
          f"  -> {'meets' if total <= TARGET_S else 'MISSES'} the target")


if __name__ == "__main__":
    main()
