"""Training and deployment time per task on this machine (one torch thread).

For each task (digits, GunPoint) with the default model (H = 32, N = 16, 2 layers):

* training: seconds per epoch, float and 4-bit QAT (ratio QAT / float = the cost of building,
  quantizing and powering the crossbar matrices in every step), and the full default run
  extrapolated from it;
* deployment of the test split: seconds per level (float, quantized, devices = programming
  the devices of one seed + the run, devices_wires with the in-circuit matrix probed once), and
  on 32 samples of layer 0 the per-step nodal engine against the probe engine (ratio
  step / probe; probing costs one solve per crossbar input, stepping one per time step).

Timings are min and median over ``--repeats`` runs in this process (machines here are shared
and noisy; compare ratios, not absolute seconds).

    python benchmarks/bench_train.py [--repeats 3] [--tasks digits gunpoint]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, float]:
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        values.append(time.perf_counter() - start)
    return min(values), statistics.median(values)


def bench_task(task: str, repeats: int, folder: Path) -> dict[str, Any]:
    import torch

    from cosim.device.modelfile import load_model
    from cosim.device.programming import ProgramConfig
    from cosim.paths import DEFAULT_MODEL
    from cosim.s4d.circuit import CircuitBackend, Wires
    from cosim.s4d.ideal import ideal_matvec, run_recurrence
    from cosim.s4d.mapping import ConductanceWindow
    from cosim.train.config import load_train_config
    from cosim.train.deploy import _circuit_matvecs, _Hardware, _programmed, effective_matvec, layer_override, layer_setups
    from cosim.train.trainer import evaluate, train_run

    epochs = {"digits": 30, "gunpoint": 60}[task]
    batch = {"digits": 64, "gunpoint": 16}[task]
    out: dict[str, Any] = {"task": task}
    runs = {}
    for bits in (None, 4):
        config = load_train_config(None, task=task, seed=0)
        config = config.model_copy(update={"training": config.training.model_copy(update={"epochs": 1, "batch_size": batch}),
                                           "qat": config.qat.model_copy(update={"bits": bits})})
        label = "float" if bits is None else "qat4"
        holder: dict[str, Any] = {}

        def one_epoch() -> None:
            holder["result"] = train_run(config, folder / f"{task}_{label}", progress=False)

        out[f"epoch_{label}_s"] = timed(one_epoch, repeats)
        runs[label] = holder["result"]
    out["qat_over_float"] = out["epoch_qat4_s"][0] / out["epoch_float_s"][0]
    out["default_run_qat4_s_estimate"] = out["epoch_qat4_s"][1] * epochs
    model = runs["qat4"].model
    data = runs["qat4"].dataset
    torch.set_num_threads(1)
    setups = layer_setups(model, data.X_train[:64], "delta", 4, "block")
    exact = [ideal_matvec] * len(setups)
    X, y = data.X_test, data.y_test
    out["deploy_float_s"] = timed(lambda: evaluate(model, X, y, len(y), layer_override(setups, exact, [s.float_program for s in setups])), repeats)
    device_model = load_model(DEFAULT_MODEL)
    hw = _Hardware(device_model, ConductanceWindow.from_device_model(device_model), ProgramConfig(), Wires())
    holder = {}
    out["programming_one_seed_s"] = timed(lambda: holder.setdefault("mapped", _programmed(setups, hw, 0, {})), 1)
    mapped = holder["mapped"]

    def wires_probe() -> None:
        matvecs, backends = _circuit_matvecs(setups, mapped, hw, "gain", False, probe_seed=0)
        evaluate(model, X, y, len(y), layer_override(setups, matvecs, [s.program for s in setups]))
        for backend in backends:
            backend.close()

    out["deploy_devices_wires_probe_s"] = timed(wires_probe, repeats)
    setup = setups[0]
    u = np.random.default_rng(0).normal(size=(32, setup.program.n_channels, X.shape[-1]))
    with CircuitBackend(mapped[0], Wires(), solver="nodal") as backend:
        step = timed(lambda: run_recurrence(backend, setup.program, u, dac=setup.dac), 1)
        probe = timed(lambda: run_recurrence(effective_matvec(backend), setup.program, u, dac=setup.dac), repeats)
    out["layer0_32_samples_step_s"] = step
    out["layer0_32_samples_probe_s"] = probe
    out["step_over_probe"] = step[0] / probe[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=["digits", "gunpoint"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            result = bench_task(task, args.repeats, Path(tmp))
            print(f"## {task}")
            for key, value in result.items():
                if isinstance(value, tuple):
                    print(f"{key:34s} min {value[0]:8.3f} s  median {value[1]:8.3f} s")
                elif isinstance(value, float):
                    print(f"{key:34s} {value:8.2f}")
            print(flush=True)


if __name__ == "__main__":
    main()
