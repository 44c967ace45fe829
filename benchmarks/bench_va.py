"""Benchmark of the generative Verilog-A model (not a test; prints timings and ratios).

32×32 crossbar write transient (V/2 scheme, one SET pulse, ngspice batch, KLU, one thread):

* generative model (committed default: J = 50, latched features) vs the deterministic
  threshold/ion-drift baseline ``veriloga/baseline_drift.va`` on the same bench;
* cost of the MA order J (latched) and of latching (J = 50 and J = 10 without latching).

Every variant runs ``--repeats`` times in this process; min and median seconds of the
ngspice run (wall time of the subprocess) are printed with the ratio to the baseline.
Compilation happens once per variant before timing (cached by cosim.compile).

Usage: .venv/bin/python benchmarks/bench_va.py [--size 32] [--repeats 3] [--orders 10,20,50,100]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from cosim.compile import compile_va
from cosim.crossbar import Crossbar, VerilogACells
from cosim.crossbar.netlist import WritePulse, write_netlist
from cosim.device.modelfile import load_model
from cosim.paths import DEFAULT_MODEL
from cosim.spice.batch import run_batch
from cosim.veriloga import (BASELINE_VA, DEFAULT_MODULE, DEFAULT_VA, RenderOptions, compile_reram,
                            instance_params)

MODEL = load_model(DEFAULT_MODEL)
SEED = 1


def crossbar_netlist(size: int, osdi: Path, module: str, params: dict) -> str:
    cells = VerilogACells(shape_=(size, size), model="dev", module=module, params=params, osdi_file=osdi)
    pulse = WritePulse(row=size // 3, col=size // 2, v_write=-1.3, scheme="v2", width=1e-6, tstep=1e-8)
    return write_netlist(Crossbar(cells=cells), pulse)


def time_runs(netlist: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_batch(netlist, timeout_s=600)
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float], base: float | None) -> float:
    best, med = min(times), statistics.median(times)
    ratio = f"  ratio(min) {best / base:6.2f}" if base else ""
    print(f"{label:<44s} min {best:8.3f} s  median {med:8.3f} s{ratio}", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--orders", default="10,20,50,100")
    parser.add_argument("--cycle0", type=int, default=200, help="initial cycle of every generative device")
    args = parser.parse_args()
    size = args.size
    ids = np.arange(size * size).reshape(size, size)
    # start beyond every J: at cycle n the MA sum has min(n, J) + 1 terms, so devices at
    # cycle 0 would hide the cost of J (and of not latching)
    gen_params = instance_params(MODEL, SEED, ids, cycle0=args.cycle0)

    print(f"# {size}x{size} V/2 SET write transient (1 us pulse), ngspice batch, {args.repeats} repeats, "
          f"generative devices start in HRS of cycle {args.cycle0}")
    base_net = crossbar_netlist(size, compile_va(BASELINE_VA), "cosim_drift", {"w0": 0.0})
    base = report("baseline drift model", time_runs(base_net, args.repeats), None)
    gen_net = crossbar_netlist(size, compile_va(DEFAULT_VA), DEFAULT_MODULE, gen_params)
    report("generative, default (J=50, latched)", time_runs(gen_net, args.repeats), base)

    variants = [(int(j), True) for j in args.orders.split(",")] + [(10, False), (50, False)]
    for order, latch in variants:
        osdi = compile_reram(MODEL, RenderOptions(order=order, latch=latch))
        net = crossbar_netlist(size, osdi, DEFAULT_MODULE, gen_params)
        report(f"generative J={order} {'latched' if latch else 'unlatched'}", time_runs(net, args.repeats), base)


if __name__ == "__main__":
    main()
