"""Compensation benchmark: the cost of each method beside the error it removes.

Not a test (timings on shared machines are noisy): everything is measured in one run; seconds
are the minimum and median of ``--repeats`` runs of the compensation step, and each method's
cost is shown next to the raw ("none") case of the same array.

1. The deterministic test layer (H = 4, N = 16, L = 256), one 17×34 crossbar per channel,
   1 Ω wires, ideal conductances: kernel relative L2 per channel for none / gain / predistort,
   full and delta variants, with reads, solver calls, iterations and seconds.
2. Same layer, default-model devices programmed by write-verify (device seeds 0, 1, 2): mean
   kernel error over channels and seeds for every method (delta and full), unstable
   channel-seeds counted and left out of the mean, pulses per device.
3. Write-verify of 2000 devices to 8 levels: bias, spread, failures, pulses per device, with
   centred acceptance and with the first-in-band stop.
4. ``predistort`` convergence: S4D-Lin and S4D-Inv layers (init seeds 0–2), wires 0.5–3 Ω,
   channel and layer layouts: iterations and final residual; and one small case with ngspice
   as the solver.

Usage: python benchmarks/bench_compensation.py [--repeats 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim.compensation import CompensationOptions, Devices, compensate_layer  # noqa: E402
from cosim.device.modelfile import load_model  # noqa: E402
from cosim.device.programming import ProgramConfig, achievable_levels, program  # noqa: E402
from cosim.device.model import DeviceArray  # noqa: E402
from cosim.paths import DEFAULT_MODEL  # noqa: E402
from cosim.s4d import (  # noqa: E402
    ConductanceWindow,
    S4DLayer,
    Wires,
    init_s4d_inv,
    init_s4d_lin,
    map_program,
    program_layer,
    test_model,
)

LENGTH = 256


def kernel_error(layer: S4DLayer, variant: str, compensated: Any, wires: Wires, v_read: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel kernel relative L2 and stability margin of the corrected in-circuit matrices."""
    return (compensated.kernel_error(layer, variant, wires, v_read, length=LENGTH),
            compensated.stability_margin(layer, variant))


def timed(function: Any, repeats: int) -> tuple[Any, dict[str, float]]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, {"min_s": min(times), "median_s": statistics.median(times)}


def part_ideal(model: Any, window: ConductanceWindow, repeats: int) -> list[dict[str, Any]]:
    layer, wires, rows = test_model(), Wires(), []
    for variant in ("full", "delta"):
        mapped = map_program(layer.crossbar_program(variant), window, layout="channel")
        for method in ("none", "gain", "predistort"):
            result, seconds = timed(lambda: compensate_layer(mapped, method, wires, v_read=float(model.u0)), repeats)
            error, margin = kernel_error(layer, variant, result, wires, float(model.u0))
            rows.append({"variant": variant, "method": method, "kernel_rel_l2": error.tolist(),
                         "max_kernel_rel_l2": float(error.max()), "residual": result.residual,
                         **result.cost.as_dict(), **seconds})
    return rows


def part_devices(model: Any, window: ConductanceWindow, seeds: list[int], methods: list[str]) -> list[dict[str, Any]]:
    layer, wires, rows = test_model(), Wires(), []
    config = ProgramConfig()
    for variant in ("delta", "full"):
        mapped = map_program(layer.crossbar_program(variant), window, layout="channel")
        for method in methods:
            errors, margins, costs = [], [], []
            for seed in seeds:
                programmed = program_layer(mapped, model, seed, config)
                source = programmed if method in ("none", "gain") else mapped
                start = time.perf_counter()
                result = compensate_layer(source, method, wires, devices=Devices(model, seed, config),
                                          v_read=float(model.u0))
                seconds = time.perf_counter() - start
                error, margin = kernel_error(layer, variant, result, wires, float(model.u0))
                errors.append(error)
                margins.append(margin)
                pulses = result.cost.pulses_per_device or programmed.programming["pulses_mean"]
                costs.append({**result.cost.as_dict(), "pulses_per_device": pulses, "seconds": seconds})
            error, margin = np.array(errors), np.array(margins)
            stable = margin >= 0
            rows.append({
                "variant": variant, "method": method, "seeds": seeds,
                "mean_kernel_rel_l2_stable": float(error[stable].mean()) if stable.any() else float("nan"),
                "n_unstable": int((~stable).sum()), "channel_seeds": int(error.size),
                "kernel_rel_l2": error.tolist(), "stability_margin": margin.tolist(),
                **{k: float(np.mean([c[k] for c in costs])) for k in costs[0]},
            })
    return rows


def part_write_verify(model: Any, repeats: int) -> list[dict[str, Any]]:
    levels = achievable_levels(model, 8, seed=0)
    target = np.resize(levels, 2000)
    rows = []
    for label, config in (("centred, fine step 0.0025 V", ProgramConfig()),
                          ("first in band, step 0.01 V", ProgramConfig(centred=False))):
        result, seconds = timed(lambda: program(DeviceArray(model, 2000, seed=3), target, config), repeats)
        rows.append({"policy": label, **result.summary(), **seconds})
    return rows


def part_convergence(model: Any, window: ConductanceWindow, quick: bool) -> list[dict[str, Any]]:
    rows = []
    resistances = [0.5, 1.0, 3.0] if quick else [0.5, 1.0, 2.0, 3.0]
    init_seeds = [0] if quick else [0, 1, 2]
    options = CompensationOptions(max_iterations=20, tolerance=1e-9)
    for kind, init in (("lin", init_s4d_lin), ("inv", init_s4d_inv)):
        for init_seed in init_seeds:
            layer = S4DLayer(init(4, 16, dt_min=1e-3, dt_max=1e-1, seed=init_seed))
            for layout in ("channel", "layer"):
                mapped = map_program(layer.crossbar_program("delta"), window, layout=layout)
                for ohm in resistances:
                    wires = Wires(ohm, ohm, ohm, ohm)
                    result = compensate_layer(mapped, "predistort", wires, options=options, v_read=float(model.u0))
                    history = [t.history for t in result.tiles]
                    rows.append({"kind": kind, "init_seed": init_seed, "layout": layout, "ohm": ohm,
                                 "iterations": int(max(len(h) for h in history)),
                                 "first_residual": float(max(h[0] for h in history)),
                                 "residual": result.residual,
                                 "residual_after_3": float(max(h[min(2, len(h) - 1)] for h in history))})
    layer = S4DLayer(init_s4d_lin(1, 4, seed=0))
    mapped = map_program(layer.crossbar_program("delta"), window, layout="channel")
    for solver in ("nodal", "ngspice"):
        start = time.perf_counter()
        result = compensate_layer(mapped, "predistort", Wires(3.0, 3.0, 3.0, 3.0),
                                  options=CompensationOptions(solver=solver, max_iterations=10, tolerance=1e-9),
                                  v_read=float(model.u0))
        rows.append({"kind": "lin 1×4", "init_seed": 0, "layout": f"channel, {solver}", "ohm": 3.0,
                     "iterations": result.cost.iterations, "first_residual": result.tiles[0].history[0],
                     "residual": result.residual, "residual_after_3": result.tiles[0].history[min(2, len(result.tiles[0].history) - 1)],
                     "seconds": time.perf_counter() - start})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer seeds and cases")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_model(DEFAULT_MODEL)
    window = ConductanceWindow.from_device_model(model)
    report: dict[str, Any] = {}

    print("1. Test layer, L = 256, channel layout, 1 Ω wires, ideal conductances")
    report["ideal"] = part_ideal(model, window, args.repeats)
    for r in report["ideal"]:
        errors = " / ".join(f"{e:.3g}" for e in r["kernel_rel_l2"])
        print(f"  {r['variant']:5s} {r['method']:10s} kernel err {errors} (max {r['max_kernel_rel_l2']:.3g})"
              f"  residual {r['residual']:.2e}  reads {r['reads']}  solver calls {r['solver_calls']}"
              f"  iterations {r['iterations']}  s min {r['min_s']:.3f} median {r['median_s']:.3f}")

    seeds = [0] if args.quick else [0, 1, 2]
    methods = ["none", "gain", "predistort"] if args.quick else ["none", "gain", "predistort", "insitu"]
    print(f"2. Same layer, programmed default-model devices (seeds {seeds}), 1 Ω wires")
    report["devices"] = part_devices(model, window, seeds, methods)
    for r in report["devices"]:
        print(f"  {r['variant']:5s} {r['method']:10s} mean kernel err {r['mean_kernel_rel_l2_stable']:.4f}"
              f" (unstable {r['n_unstable']}/{r['channel_seeds']} channel-seeds, left out)"
              f"  reads {r['reads']:.0f}  solver calls {r['solver_calls']:.0f}  pulses/device {r['pulses_per_device']:.1f}"
              f"  s {r['seconds']:.2f}")

    print("3. Write-verify, 2000 devices, 8 levels")
    report["write_verify"] = part_write_verify(model, args.repeats)
    for r in report["write_verify"]:
        print(f"  {r['policy']:28s} bias {100 * r['rel_error_mean']:+.3f} %  spread {100 * r['rel_error_sd']:.3f} %"
              f"  failures {r['failures']:.0f}  pulses/device {r['pulses_mean']:.1f} (max {r['pulses_max']:.0f})"
              f"  s min {r['min_s']:.3f} median {r['median_s']:.3f}")

    print("4. predistort convergence (delta variant, H = 4, N = 16)")
    report["convergence"] = part_convergence(model, window, args.quick)
    for r in report["convergence"]:
        print(f"  {r['kind']:8s} init {r['init_seed']} {r['layout']:16s} {r['ohm']:.1f} Ω: iterations {r['iterations']:2d}"
              f"  residual {r['first_residual']:.3g} → {r['residual_after_3']:.2e} (3 it.) → {r['residual']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
