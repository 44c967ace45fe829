"""Regenerate the results of docs/train.md: trained S4D classifiers at the software, device
and circuit levels (digits, GunPoint), QAT against post-training quantization, the precision ×
size table with pruning, and the same-seed check.

Usage (minutes to an hour on one core; every part is seeded)::

    python scripts/train_study.py -o study [--part tasks|grid|stored|all] [--device-seeds 0 1 2]

Writes ``study/<part>/…`` run and deployment folders, ``study/results.json`` (every number),
``study/tables.md`` (the tables of docs/train.md) and ``study/figures/train_tasks.png`` and
``train_grid.png`` (the figures of docs/train.md, kept in docs/figures/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from cosim.train.config import DeployConfig, load_train_config
from cosim.train.data import PUBLISHED_1NN_ED_ERROR, load_dataset
from cosim.train.deploy import deploy_run
from cosim.train.trainer import train_run

TASKS = {
    "digits": {"training": {"epochs": 30, "batch_size": 64}},
    "gunpoint": {"training": {"epochs": 60, "batch_size": 16}},
}
GRID_SIZES = [(32, 16), (16, 8), (8, 4)]  # (channels H, state size N)
GRID_BITS: list[Any] = [None, 8, 4, 3, 2, "ternary"]
PRUNE = [(32, 16, 4, 2, 16), (32, 16, 4, 4, 8)]  # (H, N, bits, keep_modes, keep_channels)
WARM = [(32, 16, "ternary", 10), (32, 16, 2, 10)]  # (H, N, bits, float warm-up epochs before QAT)


def train(out: Path, task: str, seed: int = 0, channels: int = 32, state_size: int = 16, bits: Any = None,
          noise: bool = False, prune: tuple[int, int] | None = None, warmup: int = 0,
          stored_margin: float | None = None) -> dict[str, Any]:
    """Train one model (cached: an existing run folder is reused)."""
    if (out / "metrics.json").exists():
        return json.loads((out / "metrics.json").read_text())
    config = load_train_config(None, task=task, seed=seed)
    updates = TASKS[task]
    config = config.model_copy(update={
        "training": config.training.model_copy(update=updates["training"]),
        "model": config.model.model_copy(update={"channels": channels, "state_size": state_size}),
        "qat": config.qat.model_copy(update={"bits": bits, "start_epoch": warmup}),
        "noise": config.noise.model_copy(update={"programming": noise, "gain_sigma": 0.01 if noise else 0.0}),
        "stability": config.stability.model_copy(update={} if stored_margin is None else
                                                 {"stored_floor": True, "stored_margin": stored_margin}),
        "prune": config.prune.model_copy(update={} if prune is None else
                                         {"keep_modes": prune[0], "keep_channels": prune[1], "finetune_epochs": 10}),
    })
    result = train_run(config, out, progress=False)
    return result.metrics


def deploy(run: Path, out: Path, seeds: list[int], levels: list[str], bits: Any = None,
           compensation: list[str] | None = None) -> list[dict[str, Any]]:
    """Deploy one run (cached)."""
    if not (out / "accuracy.csv").exists():
        config = DeployConfig(levels=levels, device_seeds=seeds, bits=bits, compensation=compensation)
        config.spot_check.enabled = "devices_wires" in levels
        deploy_run(run, out, config, progress=False)
    import pandas as pd

    return pd.read_csv(out / "accuracy.csv", keep_default_na=False).to_dict("records")


def mean_accuracy(rows: list[dict[str, Any]], level: str, compensation: str = "none") -> float:
    values = [r["accuracy"] for r in rows if r["level"] == level and r["compensation"] == compensation and not r["mdm"]]
    return float(np.mean(values)) if values else float("nan")


def one_nn_euclidean(task: str) -> float:
    """Test accuracy of 1-NN with Euclidean distance on the task's own split."""
    data = load_dataset(task)
    train = data.X_train.reshape(len(data.X_train), -1).astype(float)
    test = data.X_test.reshape(len(data.X_test), -1).astype(float)
    distance = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    return float(np.mean(data.y_train[distance.argmin(1)] == data.y_test))


STUDY_COMPENSATION = ["none", "gain"]
"""Compensation methods of the study (predistort and insitu reprogram every device: slower)."""


def part_tasks(root: Path, seeds: list[int], results: dict[str, Any]) -> None:
    methods = STUDY_COMPENSATION
    for task in TASKS:
        folder = root / "tasks" / task
        started = time.perf_counter()
        float_metrics = train(folder / "float", task)
        qat = train(folder / "qat4", task, bits=4)
        qat_noise = train(folder / "qat4_noise", task, bits=4, noise=True)
        again = train(folder / "qat4_again", task, bits=4)
        qat8 = train(folder / "qat8", task, bits=8)
        levels = ["float", "quantized", "devices", "devices_wires"]
        rows_qat = deploy(folder / "qat4", folder / "deploy_qat4", seeds, levels, compensation=methods)
        rows_noise = deploy(folder / "qat4_noise", folder / "deploy_qat4_noise", seeds, levels, compensation=methods)
        rows_ptq = deploy(folder / "float", folder / "deploy_ptq4", seeds, levels, bits=4, compensation=methods)
        rows_qat8 = deploy(folder / "qat8", folder / "deploy_qat8", seeds, levels, compensation=methods)
        rows_ptq8 = deploy(folder / "float", folder / "deploy_ptq8", seeds, levels, bits=8, compensation=methods)
        best = methods[-1]
        predistorted = {name: deploy(folder / name, folder / f"deploy_{name}_predistort", seeds, ["devices_wires"],
                                     compensation=["predistort"]) for name in ("qat4", "qat8")}
        entry = {
            "float_software": float_metrics["test_accuracy"],
            "qat4_software": qat["test_accuracy"],
            "qat4_same_seed_again": again["test_accuracy"],
            "qat4_noise_software": qat_noise["test_accuracy"],
            "qat8_software": qat8["test_accuracy"],
            "n_test": qat["n_test"],
            "best_compensation": best,
            "qat4": {lvl: mean_accuracy(rows_qat, lvl) for lvl in ("quantized", "devices", "devices_wires")},
            "qat4_noise": {lvl: mean_accuracy(rows_noise, lvl) for lvl in ("quantized", "devices", "devices_wires")},
            "ptq4": {lvl: mean_accuracy(rows_ptq, lvl) for lvl in ("quantized", "devices", "devices_wires")},
            "qat8": {lvl: mean_accuracy(rows_qat8, lvl) for lvl in ("quantized", "devices", "devices_wires")},
            "ptq8": {lvl: mean_accuracy(rows_ptq8, lvl) for lvl in ("quantized", "devices", "devices_wires")},
            "seconds": time.perf_counter() - started,
        }
        for name, rows in (("qat4", rows_qat), ("qat4_noise", rows_noise), ("ptq4", rows_ptq), ("qat8", rows_qat8),
                           ("ptq8", rows_ptq8)):
            entry[name]["devices_wires_" + best] = mean_accuracy(rows, "devices_wires", best)
            entry[name]["devices_wires_" + best + "_per_seed"] = [
                r["accuracy"] for r in rows if r["level"] == "devices_wires" and r["compensation"] == best and not r["mdm"]]
        for name, rows in predistorted.items():
            entry[name]["devices_wires_predistort"] = mean_accuracy(rows, "devices_wires", "predistort")
            entry[name]["devices_wires_predistort_per_seed"] = [r["accuracy"] for r in rows if not r["mdm"]]
        if task in PUBLISHED_1NN_ED_ERROR:
            entry["one_nn_euclidean_measured"] = one_nn_euclidean(task)
            entry["one_nn_euclidean_published"] = 1 - PUBLISHED_1NN_ED_ERROR[task]
        results["tasks"][task] = entry
        print(task, json.dumps(entry, indent=1), flush=True)


STORED_MARGINS: list[float | None] = [None, 0.003, 0.01]
"""Stored stability floor of the digits 4-bit QAT model (None: off)."""


def part_stored(root: Path, seeds: list[int], results: dict[str, Any]) -> None:
    """digits, 4-bit QAT with and without the stored stability floor, at devices_wires."""
    methods = STUDY_COMPENSATION
    rows = []
    for margin in STORED_MARGINS:
        folder = root / "stored" / ("off" if margin is None else f"margin{margin}")
        metrics = train(folder / "run", "digits", bits=4, stored_margin=margin)
        deployed = deploy(folder / "run", folder / "deploy", seeds, ["quantized", "devices_wires"], compensation=methods)
        stability = json.loads((folder / "run" / "train.json").read_text())["stored_stability"]
        row = {"margin": margin, "software": metrics["test_accuracy"],
               "max_stored_abs_lambda": stability["max_stored_abs_lambda"],
               "projected_modes": stability["projected_modes"]}
        for method in methods:
            row["devices_wires_" + method] = mean_accuracy(deployed, "devices_wires", method)
            row["devices_wires_" + method + "_per_seed"] = [
                r["accuracy"] for r in deployed
                if r["level"] == "devices_wires" and r["compensation"] == method and not r["mdm"]]
        rows.append(row)
        print(row, flush=True)
    results["stored"] = rows


def part_grid(root: Path, seeds: list[int], results: dict[str, Any]) -> None:
    methods = STUDY_COMPENSATION
    best = methods[-1]
    rows = []
    configs = ([(h, n, b, None, 0) for h, n in GRID_SIZES for b in GRID_BITS]
               + [(h, n, b, (m, c), 0) for h, n, b, m, c in PRUNE] + [(h, n, b, None, w) for h, n, b, w in WARM])
    for h, n, bits, prune, warmup in configs:
        name = (f"H{h}_N{n}_{bits or 'float'}" + (f"_prune{prune[0]}x{prune[1]}" if prune else "")
                + (f"_warm{warmup}" if warmup else ""))
        folder = root / "grid" / name
        metrics = train(folder / "run", "digits", channels=h, state_size=n, bits=bits, prune=prune, warmup=warmup)
        row = {"name": name, "channels": h, "state_size": n, "bits": str(bits or "float"), "warmup_epochs": warmup,
               "kept_modes": prune[0] if prune else n // 2, "kept_channels": prune[1] if prune else h,
               "software": metrics["test_accuracy"], "memory_bits": metrics["crossbar_memory_bits"]}
        if bits is not None:
            deployed = deploy(folder / "run", folder / "deploy", seeds, ["quantized", "devices_wires"], compensation=[best])
            row["devices_wires"] = mean_accuracy(deployed, "devices_wires", best)
        rows.append(row)
        print(row, flush=True)
    results["grid"] = {"compensation": best, "rows": rows}


def tables(results: dict[str, Any]) -> str:
    lines = []
    if results.get("tasks"):
        lines += ["| task | model | software | devices (raw) | devices_wires, none | devices_wires, gain (per seed) | "
                  "devices_wires, predistort (per seed) |", "|---|---|---|---|---|---|---|"]
        names = {"qat4": "4-bit QAT", "qat4_noise": "4-bit QAT + device noise", "ptq4": "4-bit PTQ",
                 "qat8": "8-bit QAT", "ptq8": "8-bit PTQ"}
        for task, e in results["tasks"].items():
            best = e["best_compensation"]
            lines.append(f"| {task} | float | {100 * e['float_software']:.2f} % | | | | |")
            for key, label in names.items():
                if key not in e:
                    continue
                r = e[key]
                seeds = ", ".join(f"{100 * a:.1f}" for a in r["devices_wires_" + best + "_per_seed"])
                pre = "–"
                if "devices_wires_predistort" in r:
                    pre_seeds = ", ".join(f"{100 * a:.1f}" for a in r["devices_wires_predistort_per_seed"])
                    pre = f"{100 * r['devices_wires_predistort']:.2f} % ({pre_seeds})"
                lines.append(f"| {task} | {label} | {100 * r['quantized']:.2f} % | {100 * r['devices']:.2f} % | "
                             f"{100 * r['devices_wires']:.2f} % | {100 * r['devices_wires_' + best]:.2f} % ({seeds}) | {pre} |")
            if "one_nn_euclidean_published" in e:
                lines.append(f"| {task} | 1-NN Euclidean, published | {100 * e['one_nn_euclidean_published']:.1f} % "
                             f"(recomputed {100 * e['one_nn_euclidean_measured']:.1f} %) | | | | |")
        lines.append("")
    if results.get("grid"):
        rows = results["grid"]["rows"]
        reference = next(r for r in rows if r["bits"] == "float" and r["channels"] == 32 and r["state_size"] == 16)
        lines += ["| H | N (kept modes × 2) | channels kept | bits | memory [bit] | software | devices_wires |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            wires = f"{100 * r['devices_wires']:.2f} %" if "devices_wires" in r else "–"
            bits = r["bits"] + (f" (after {r['warmup_epochs']} float epochs)" if r.get("warmup_epochs") else "")
            lines.append(f"| {r['channels']} | {2 * r['kept_modes']} | {r['kept_channels']} | {bits} | "
                         f"{r['memory_bits']} | {100 * r['software']:.2f} % | {wires} |")
        within = [r for r in rows if r["software"] >= reference["software"] - 0.01]
        smallest = min(within, key=lambda r: r["memory_bits"])
        lines += ["", f"Smallest model within 1 point of the float H=32, N=16 model ({100 * reference['software']:.2f} %): "
                      f"{smallest['name']} with {100 * smallest['software']:.2f} %, {smallest['memory_bits']} bits, "
                      f"{reference['memory_bits'] / smallest['memory_bits']:.0f}× less crossbar memory.", ""]
        results["grid"]["smallest_within_1_point"] = {**smallest, "ratio": reference["memory_bits"] / smallest["memory_bits"]}
    return "\n".join(lines)


def figures(results: dict[str, Any], folder: Path) -> list[Path]:
    """``train_tasks.png`` (accuracy per level and task) and ``train_grid.png`` (accuracy
    against crossbar memory per precision)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if results.get("tasks"):
        labels = ["float\nsoftware", "4-bit QAT\nsoftware", "4-bit QAT\ndevices", "4-bit QAT\nwires, none",
                  "4-bit QAT\nwires, gain", "4-bit QAT\nwires, predist.", "4-bit PTQ\nwires, gain",
                  "8-bit QAT\nwires, gain", "8-bit PTQ\nwires, gain"]
        figure, axis = plt.subplots(figsize=(9, 4))
        tasks = list(results["tasks"])
        width = 0.8 / len(tasks)
        lowest = 100.0
        for k, task in enumerate(tasks):
            e = results["tasks"][task]
            best = e["best_compensation"]
            values = [e["float_software"], e["qat4_software"], e["qat4"]["devices"], e["qat4"]["devices_wires"],
                      e["qat4"]["devices_wires_" + best], e["qat4"].get("devices_wires_predistort", np.nan),
                      e["ptq4"]["devices_wires_" + best],
                      e.get("qat8", {}).get("devices_wires_" + best, np.nan),
                      e.get("ptq8", {}).get("devices_wires_" + best, np.nan)]
            x = np.arange(len(values)) + (k - (len(tasks) - 1) / 2) * width
            axis.bar(x, 100 * np.asarray(values), width, label=task)
            lowest = min(lowest, float(np.nanmin(100 * np.asarray(values))))
            if "one_nn_euclidean_published" in e:
                axis.axhline(100 * e["one_nn_euclidean_published"], ls="--", lw=1, color=f"C{k}",
                             label=f"{task}: 1-NN Euclidean (published)")
        axis.set_xticks(np.arange(len(labels)))
        axis.set_xticklabels(labels, fontsize=8)
        axis.set_ylabel("test accuracy [%]")
        axis.set_ylim(max(0.0, min(40.0, lowest - 10)), 101)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)  # below the bars
        axis.set_title("S4D classifiers on simulated crossbars (devices_wires: mean of 3 device seeds)", fontsize=9)
        figure.tight_layout()
        written.append(folder / "train_tasks.png")
        figure.savefig(written[-1], dpi=100, bbox_inches="tight")
        plt.close(figure)
    if results.get("grid"):
        rows = results["grid"]["rows"]
        figure, axis = plt.subplots(figsize=(7, 4.2))
        for k, bits in enumerate(dict.fromkeys(r["bits"] for r in rows)):
            mine = [r for r in rows if r["bits"] == bits]
            memory = [r["memory_bits"] for r in mine]
            axis.plot(memory, [100 * r["software"] for r in mine], "o", color=f"C{k}", label=f"{bits}, software")
            wired = [r for r in mine if "devices_wires" in r]
            if wired:
                axis.plot([r["memory_bits"] for r in wired], [100 * r["devices_wires"] for r in wired], "x",
                          color=f"C{k}", ms=8, label=f"{bits}, devices + wires")
        axis.set_xscale("log")
        axis.set_xlabel("S4D crossbar memory [bit]")
        axis.set_ylabel("digits test accuracy [%]")
        axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the points
        axis.set_title("precision × size (H, N, pruning); one training run per point", fontsize=9)
        figure.tight_layout()
        written.append(folder / "train_grid.png")
        figure.savefig(written[-1], dpi=100, bbox_inches="tight")
        plt.close(figure)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--part", choices=["tasks", "grid", "stored", "all"], default="all")
    parser.add_argument("--device-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--grid-device-seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    store = args.output / "results.json"
    results: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    results.setdefault("tasks", {})
    if args.part in ("tasks", "all"):
        part_tasks(args.output, args.device_seeds, results)
    if args.part in ("grid", "all"):
        part_grid(args.output, args.grid_device_seeds, results)
    if args.part in ("stored", "all"):
        part_stored(args.output, args.device_seeds, results)
    text = tables(results)
    store.write_text(json.dumps(results, indent=1))
    (args.output / "tables.md").write_text(text)
    figures(results, args.output / "figures")
    print(text)


if __name__ == "__main__":
    main()
