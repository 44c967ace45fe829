"""Benchmark of the generative Verilog-A model (not a test; prints timings, ratios and solver counts).

32×32 crossbar write transient (one −1.3 V SET pulse, ngspice batch, KLU, one thread), in the
V/2 scheme (half-selected cells at −0.65 V: about a third of the generative devices' SET
thresholds lie above that, so ~22 of 62 half-selected cells SET too, against none in the
baseline) and in the V/3 scheme (unselected cells at ±0.43 V: only the selected cell
switches in either model, so both do the same switching work):

* generative model (committed default: J = 50, latched features) vs the deterministic
  threshold/ion-drift baseline ``veriloga/baseline_drift.va`` on the same bench (same netlist
  apart from the device lines, same ``.tran`` step and tolerances, same solver options);
* cost of the MA order J (latched) and of latching (J = 10 and J = 50 without latching);
* generative model vs each compact model of the library (``veriloga/library/``, :mod:`cosim.library`:
  VTEAM, Stanford-PKU) on the same bench: same array, wires, pulse timing, ``.tran`` step and
  solver options; the pulse has each model's SET polarity and an amplitude that SETs it
  (−1.3 V for VTEAM, +1.6 V for Stanford-PKU, whose SET needs ~1.4 V).

Every variant runs ``--repeats`` times in this process; min and median of the wall seconds and
of the CPU seconds (user + system of the ngspice process) are printed with their ratios to the
baseline. ``.options acct`` makes ngspice report its counters, printed once per variant:
circuit equations (unknowns), matrix non-zeros after fill-in, accepted / rejected time
points, Newton iterations (operating point and transient), and ngspice's own split of the
analysis time (operating point, load = device evaluation + stamping, factor, solve,
truncation-error control). ``--callgrind N`` also counts instructions of baseline and default
on an N×N array under valgrind (deterministic, unaffected by machine load).

Usage: .venv/bin/python benchmarks/bench_va.py [--size 32] [--repeats 3] [--orders 10,20,50,100]
       [--no-unlatched] [--schemes v2,v3] [--library vteam,stanford_pku] [--callgrind 8]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosim.compile import compile_va
from cosim.crossbar import Crossbar, VerilogACells
from cosim.crossbar.netlist import WritePulse, write_netlist
from cosim.device.modelfile import load_model
from cosim.library import get_model
from cosim.paths import DEFAULT_MODEL
from cosim.spice.batch import run_batch
from cosim.veriloga import (BASELINE_VA, DEFAULT_MODULE, DEFAULT_VA, RenderOptions, compile_reram,
                            instance_params)

MODEL = load_model(DEFAULT_MODEL)
SEED = 1
LIBRARY_SET_AMPLITUDE = {"vteam": 1.3, "stanford_pku": 1.6}
"""SET pulse amplitude [V] per library model (sign: the model's SET polarity)."""
COUNTERS = {  # label: ngspice acct line
    "unknowns": "Circuit Equations",
    "nonzeros": "Circuit total non-zeroes",
    "accepted": "Accepted timepoints",
    "rejected": "Rejected timepoints",
    "iter_total": "Total iterations",
    "iter_tran": "Transient iterations",
    "t_analysis": "Total analysis time (seconds)",
    "t_tran": "Transient analysis time",
    "t_load": "Matrix load time",
    "t_factor": "Matrix factor time",
    "t_solve": "Matrix solve time",
    "t_trunc": "Transient trunc time",
}


@dataclass
class Runs:
    """Wall and CPU seconds of repeated runs and the ngspice counters of the last one."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)


def crossbar_netlist(size: int, osdi: Path, module: str, params: dict, scheme: str = "v2",
                     v_write: float = -1.3) -> str:
    """Write-transient netlist (SET pulse, −1.3 V by default, on one cell) with ``.options acct``."""
    cells = VerilogACells(shape_=(size, size), model="dev", module=module, params=params, osdi_file=osdi)
    pulse = WritePulse(row=size // 3, col=size // 2, v_write=v_write, scheme=scheme, width=1e-6, tstep=1e-8)
    text = write_netlist(Crossbar(cells=cells), pulse)
    return text.replace("\n.tran ", "\n.options acct\n.tran ", 1)


def parse_counters(log: str) -> dict[str, float]:
    """ngspice ``acct`` figures from a run log (missing lines are left out)."""
    found = {}
    for key, label in COUNTERS.items():
        match = re.search(rf"^{re.escape(label)}\s*=\s*([-+0-9.eE]+)", log, flags=re.MULTILINE)
        if match:
            found[key] = float(match.group(1))
    return found


def time_runs(netlist: str, repeats: int) -> Runs:
    runs = Runs()
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = run_batch(netlist, timeout_s=600)
        runs.wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        runs.counters = parse_counters(result.log)
    return runs


def report(label: str, runs: Runs, base: Runs | None) -> None:
    def figures(values: list[float], ref: list[float] | None) -> str:
        best, med = min(values), statistics.median(values)
        ratio = f" ({best / min(ref):4.2f}x / {med / statistics.median(ref):4.2f}x)" if ref else ""
        return f"min {best:7.3f} med {med:7.3f}{ratio}"

    print(f"{label:<36s} wall s {figures(runs.wall, base.wall if base else None)}   "
          f"cpu s {figures(runs.cpu, base.cpu if base else None)}", flush=True)
    c = runs.counters
    if c:
        op = c.get("t_analysis", 0.0) - c.get("t_tran", 0.0)
        print(f"{'':<36s} unknowns {c.get('unknowns', 0):.0f}, non-zeros {c.get('nonzeros', 0):.0f}, "
              f"time points {c.get('accepted', 0):.0f} accepted / {c.get('rejected', 0):.0f} rejected, "
              f"Newton iterations {c.get('iter_tran', 0):.0f} tran + {c.get('iter_total', 0) - c.get('iter_tran', 0):.0f} op; "
              f"ngspice s: op {op:.3f} load {c.get('t_load', 0):.3f} factor {c.get('t_factor', 0):.3f} "
              f"solve {c.get('t_solve', 0):.3f} trunc {c.get('t_trunc', 0):.3f}", flush=True)


def callgrind_instructions(netlist: str) -> int:
    """Instructions of one ngspice batch run under callgrind (needs valgrind)."""
    with tempfile.TemporaryDirectory(prefix="bench_va_") as folder:
        cir = Path(folder) / "in.cir"
        cir.write_text(netlist, encoding="utf-8")
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.out",
                               "ngspice", "-b", "-r", f"{folder}/out.raw", str(cir)],
                              capture_output=True, text=True, timeout=3600, check=True)
    match = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if not match:
        raise RuntimeError("callgrind printed no instruction count")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--orders", default="10,20,50,100", help="latched MA orders to time ('' for none)")
    parser.add_argument("--no-unlatched", action="store_true", help="skip the unlatched variants (slow)")
    parser.add_argument("--schemes", default="v2,v3", help="write schemes to time (v2, v3)")
    parser.add_argument("--cycle0", type=int, default=200, help="initial cycle of every generative device")
    parser.add_argument("--library", default="vteam,stanford_pku",
                        help="library models to time against the generative model ('' for none)")
    parser.add_argument("--callgrind", type=int, default=0, metavar="N",
                        help="also count instructions (valgrind) of baseline and default on an NxN array")
    args = parser.parse_args()
    size = args.size

    def params_for(n: int) -> dict:
        # start beyond every J: at cycle n the MA sum has min(n, J) + 1 terms, so devices at
        # cycle 0 would hide the cost of J (and of not latching)
        return instance_params(MODEL, SEED, np.arange(n * n).reshape(n, n), cycle0=args.cycle0)

    base_osdi, gen_osdi = compile_va(BASELINE_VA), compile_va(DEFAULT_VA)
    gen_params = params_for(size)
    variants = [(int(j), True) for j in args.orders.split(",") if j.strip()]
    if not args.no_unlatched:
        variants += [(10, False), (50, False)]
    for scheme in [s.strip() for s in args.schemes.split(",") if s.strip()]:
        print(f"# {size}x{size} {scheme.upper()} SET write transient (1 us pulse), ngspice batch, KLU, "
              f"{args.repeats} repeats, generative devices start in HRS of cycle {args.cycle0}; "
              "ratios to the baseline: min / median")
        base = time_runs(crossbar_netlist(size, base_osdi, "cosim_drift", {"w0": 0.0}, scheme), args.repeats)
        report("baseline drift model", base, None)
        generative = time_runs(crossbar_netlist(size, gen_osdi, DEFAULT_MODULE, gen_params, scheme), args.repeats)
        report("generative default (J=50, latched)", generative, base)
        for name in [n.strip() for n in args.library.split(",") if n.strip()]:
            entry = get_model(name)
            amplitude = LIBRARY_SET_AMPLITUDE[name] * entry.set_sign
            runs = time_runs(crossbar_netlist(size, entry.compile(), entry.module, {}, scheme, amplitude),
                             args.repeats)
            report(f"library {name} ({amplitude:+.1f} V)", runs, base)
            report(f"  generative vs {name} (ratio to {name})", generative, runs)
        for order, latch in variants:
            osdi = compile_reram(MODEL, RenderOptions(order=order, latch=latch))
            runs = time_runs(crossbar_netlist(size, osdi, DEFAULT_MODULE, gen_params, scheme), args.repeats)
            report(f"generative J={order} {'latched' if latch else 'unlatched'}", runs, base)

    if args.callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("--callgrind needs valgrind on PATH")
        n = args.callgrind
        for scheme in [s.strip() for s in args.schemes.split(",") if s.strip()]:
            base_ir = callgrind_instructions(crossbar_netlist(n, base_osdi, "cosim_drift", {"w0": 0.0}, scheme))
            gen_ir = callgrind_instructions(crossbar_netlist(n, gen_osdi, DEFAULT_MODULE, params_for(n), scheme))
            print(f"# callgrind {n}x{n} {scheme.upper()}: baseline {base_ir / 1e6:.0f} M instructions, "
                  f"generative default {gen_ir / 1e6:.0f} M ({gen_ir / base_ir:.2f}x)")


if __name__ == "__main__":
    main()
