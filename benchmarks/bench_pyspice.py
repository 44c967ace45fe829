"""Per-step cost of re-solving an NxN resistor crossbar (default 16x16) after altering its inputs.

Compared in one process, on the same netlist and inputs (ratios against the first line):

* ``batch``            — a fresh ``ngspice -b -r`` subprocess per step (netlist re-rendered);
* ``run_pyspice``      — one-shot shared-mode run per step (load, solve, unload);
* ``op_values``        — :class:`InProcessCircuit`: alter + ``op`` per step, one pipe round trip;
* ``sweep``            — :class:`InProcessCircuit`: all steps in one request (open-loop inputs);
* ``engine (no IPC)``  — the same alter + ``op`` with libngspice loaded into this process,
  which isolates the cost of the worker pipe.

Prints min and median over repeats (milliseconds per step). Usage:
``.venv/bin/python benchmarks/bench_pyspice.py [--size 16] [--steps 200] [--repeats 5]``
(``--size 2`` shows the fixed per-step overheads, pipe included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from cosim.spice.batch import run_batch
from cosim.spice.pyspice_backend import (
    InProcessCircuit,
    change_triples,
    find_libngspice,
    prepare_netlist,
    run_pyspice,
)
from cosim.spice.render import environment

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "pyspice"
def crossbar(g: np.ndarray, v_in: np.ndarray) -> str:
    return environment(str(FIXTURES)).get_template("crossbar.cir.j2").render(
        g=g.tolist(), v_in=v_in.tolist(), r_wire=1.0, r_source=1.0, r_sense=1.0)


def time_per_step(step_loop: Callable[[], None], steps: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step_loop()
        times.append((time.perf_counter() - start) / steps * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=16, help="rows = columns")
    args = parser.parse_args()
    size = args.size
    rng = np.random.default_rng(args.seed)
    g = rng.uniform(1e-5, 1e-4, (size, size))
    inputs = rng.uniform(0.0, 0.2, (args.steps, size))
    names = [f"i(vs{j})" for j in range(size)]
    sets = [{f"vin{i}": float(v) for i, v in enumerate(row)} for row in inputs]
    base = crossbar(g, np.zeros(size))
    few = max(1, args.steps // 10)  # the one-shot paths are slow: time fewer steps

    results: dict[str, list[float]] = {}
    results["batch"] = time_per_step(
        lambda: [run_batch(crossbar(g, inputs[k]), timeout_s=60) for k in range(few)],
        few, args.repeats)
    results["run_pyspice"] = time_per_step(
        lambda: [run_pyspice(crossbar(g, inputs[k]), timeout_s=60) for k in range(few)],
        few, args.repeats)
    with InProcessCircuit(base, timeout_s=60) as circuit:

        def stepped() -> None:
            for change in sets:
                circuit.alter_many(change)
                circuit.op_values(names)

        results["op_values"] = time_per_step(stepped, args.steps, args.repeats)
        results["sweep"] = time_per_step(lambda: circuit.sweep(sets, names), args.steps,
                                         args.repeats)
    results["engine (no IPC)"] = engine_in_this_process(base, sets, names, args)

    reference = statistics.median(results["batch"])
    print(f"{size}x{size} resistor crossbar, {args.steps} steps, {args.repeats} repeats (ms per step)")
    print(f"{'path':<18}{'min':>9}{'median':>9}{'batch/this':>12}")
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:<18}{min(times):9.3f}{median:9.3f}{reference / median:12.1f}")


def engine_in_this_process(netlist: str, sets: list[dict[str, float]], names: list[str],
                           args: argparse.Namespace) -> list[float]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cosim" / "spice"))
    from worker import NgSpiceEngine  # the worker's engine, loaded here without a pipe

    prepared = prepare_netlist(netlist)
    engine = NgSpiceEngine(str(find_libngspice()))
    engine.load(prepared.circuit, prepared.osdi_files, prepared.commands)
    triples = [change_triples(s) for s in sets]

    def stepped() -> None:
        for change in triples:
            engine.op(names, change)
            engine.take_log()

    try:
        return time_per_step(stepped, args.steps, args.repeats)
    finally:
        engine.unload()


if __name__ == "__main__":
    main()
