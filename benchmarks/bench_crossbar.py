"""Crossbar read benchmark: the nodal solver against ngspice, and its scaling.

Not a test (timings on shared machines are noisy, see docs/performance.md): prints ratios measured in one
run on the same input, with the minimum and median of several repeats.

1. 128×128 nonlinear read (device polynomial I–V cells, 1 Ω wires): ngspice batch
   (`ngspice -b -r`, KLU, one thread) against the nodal solver (assembly + ordering +
   factorization + Newton), plus their agreement.
2. Factorization choice on a 256² linear system: SuperLU with the nested-dissection
   numbering (the solver's choice), SuperLU's own MMD_AT_PLUS_A and COLAMD orderings, and
   CHOLMOD when scikit-sparse is importable.
3. Scaling 256², 512², 1024² (nonlinear read, 1 then 4 input vectors): each size in its own
   subprocess so that its peak resident memory can be read; wall and CPU seconds.

Usage: python benchmarks/bench_crossbar.py [--sizes 256 512 1024] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim.crossbar import Crossbar, LinearCells, PolynomialCells  # noqa: E402
from cosim.crossbar.netlist import read_netlist  # noqa: E402
from cosim.crossbar.solver import NodalSolver, build_system, cholmod_available, factorize  # noqa: E402


def device_crossbar(size: int, seed: int = 0) -> Crossbar:
    """size×size crossbar of default-model device cells, log-uniform 4.5k..75k Ω."""
    from cosim.device.modelfile import load_model
    from cosim.paths import DEFAULT_MODEL

    rng = np.random.default_rng(seed)
    resistance = np.exp(rng.uniform(np.log(4.5e3), np.log(75e3), size=(size, size)))
    return Crossbar(PolynomialCells.from_device_model(load_model(DEFAULT_MODEL), resistance))


def summary(times: list[float]) -> dict[str, float]:
    return {"min_s": min(times), "median_s": statistics.median(times)}


def bench_vs_ngspice(size: int, repeats: int) -> dict[str, object]:
    from cosim.spice.batch import run_batch

    crossbar = device_crossbar(size)
    inputs = np.random.default_rng(1).uniform(0, 0.2, size)
    start = time.perf_counter()
    text = read_netlist(crossbar, inputs=inputs)
    render_s = time.perf_counter() - start
    spice_times, nodal_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run_batch(text, timeout_s=600)
        spice_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        nodal = NodalSolver(crossbar).solve_many(inputs[None])[0]
        nodal_times.append(time.perf_counter() - start)
    spice = np.array([float(result[f"i(vsns{j})"][0]) for j in range(size)])
    spice_s, nodal_s = summary(spice_times), summary(nodal_times)
    return {
        "size": size,
        "render_s": render_s,
        "ngspice": spice_s,
        "nodal": nodal_s,
        "speedup_median": spice_s["median_s"] / nodal_s["median_s"],
        "speedup_min": spice_s["min_s"] / nodal_s["min_s"],
        "max_rel_diff_default_ngspice_tolerances": float(np.max(np.abs(nodal - spice) / np.abs(spice))),
    }


def bench_factorizations(size: int, repeats: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    crossbar = Crossbar(LinearCells(rng.uniform(1 / 75e3, 1 / 4.5e3, (size, size))))
    system = build_system(crossbar)
    matrix = system.matrix(crossbar.conductances())
    # the same matrix in plain row-major interleaved numbering, for SuperLU's own orderings
    plain = np.empty(matrix.shape[0], dtype=np.int64)
    plain[0::2], plain[1::2] = system.row_nodes, system.col_nodes
    natural_matrix = matrix[plain][:, plain].tocsc()
    methods = {
        "splu+nested-dissection (chosen)": lambda: factorize(matrix, "splu"),
        "splu MMD_AT_PLUS_A": lambda: spla.splu(natural_matrix, permc_spec="MMD_AT_PLUS_A",
                                                diag_pivot_thresh=0.0, options={"SymmetricMode": True}),
        "splu COLAMD": lambda: spla.splu(natural_matrix, permc_spec="COLAMD"),
    }
    if cholmod_available():
        methods["cholmod (sksparse)"] = lambda: factorize(matrix, "cholmod")
    figures = {}
    for name, make in methods.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            make()
            times.append(time.perf_counter() - start)
        figures[name] = summary(times)
    return figures


def scaling_worker(size: int, vectors: int) -> dict[str, float]:
    """One size, in this process: timings and peak memory (run via --worker)."""
    wall, cpu = time.perf_counter(), time.process_time()
    crossbar = device_crossbar(size)
    inputs = np.random.default_rng(2).uniform(0, 0.2, (vectors, size))
    solver = NodalSolver(crossbar)
    build_s = time.perf_counter() - wall
    solver.solve_many(inputs[:1])
    first_s = time.perf_counter() - wall
    first_cpu_s = time.process_time() - cpu
    before = time.perf_counter()
    solver.solve_many(inputs)
    batch_s = time.perf_counter() - before
    return {
        "size": size,
        "unknowns": 2 * size * size,
        "build_s": build_s,
        "first_vector_s": first_s,
        "first_vector_cpu_s": first_cpu_s,
        f"batch_{vectors}_vectors_s": batch_s,
        "factorizations": solver.stats.factorizations,
        "factor_s": solver.stats.factor_s,
        "newton_iterations": solver.stats.iterations,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def bench_scaling(sizes: list[int], vectors: int) -> list[dict[str, float]]:
    rows = []
    for size in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", str(size), "--vectors", str(vectors)],
            capture_output=True, text=True, check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {json.dumps(rows[-1])}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vectors", type=int, default=4)
    parser.add_argument("--compare-size", type=int, default=128)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(scaling_worker(args.worker, args.vectors)))
        return
    report: dict[str, object] = {}
    print(f"{args.compare_size}x{args.compare_size} nonlinear read, ngspice batch vs nodal solver:", flush=True)
    report["vs_ngspice"] = bench_vs_ngspice(args.compare_size, args.repeats)
    print(f"  {json.dumps(report['vs_ngspice'])}", flush=True)
    print("factorization of a 256x256 crossbar (131072 unknowns):", flush=True)
    report["factorizations"] = bench_factorizations(256, args.repeats)
    print(f"  {json.dumps(report['factorizations'])}", flush=True)
    print(f"scaling, nonlinear read, {args.vectors} input vectors:", flush=True)
    report["scaling"] = bench_scaling(args.sizes, args.vectors)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
