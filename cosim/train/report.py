"""Files of ``cosim deploy``: ``accuracy.csv``, ``deploy.json``, ``accuracy.png``, ``report.md``.

Every file is written through a temporary file in the output folder (:mod:`cosim.fileio`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.fileio import save_figure_atomic, write_frame_atomic, write_json_atomic, write_text_atomic

LEVEL_ORDER = ["float", "quantized", "devices", "devices_wires"]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd, min and max accuracy over device seeds per (level, variant, bits,
    compensation, mdm)."""
    keys = ["level", "variant", "bits", "compensation", "mdm"]
    grouped = table.groupby(keys, sort=False)["accuracy"]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.rename(columns={"count": "seeds"})


def case_label(row: Any) -> str:
    """Short x-axis label of a summary row."""
    label = row.level
    if row.level == "devices_wires":
        label += f"\n{row.compensation}" + ("\nMDM" if row.mdm else "")
    return label


def plot_accuracy(summary: pd.DataFrame, reference: float | None = None) -> Any:
    """Bar chart: test accuracy [%] per case (mean over device seeds, error bar = min..max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(summary.variant))
    figure, axes = plt.subplots(1, len(variants), figsize=(max(5.0, 1.3 * len(summary) / len(variants) + 2) * len(variants), 4.2),
                                squeeze=False)
    for axis, variant in zip(axes[0], variants):
        rows = summary[summary.variant == variant]
        x = np.arange(len(rows))
        mean = 100 * rows["mean"].to_numpy()
        low = np.clip(mean - 100 * rows["min"].to_numpy(), 0.0, None)  # rounding: never negative
        high = np.clip(100 * rows["max"].to_numpy() - mean, 0.0, None)
        axis.bar(x, mean, color="tab:blue", alpha=0.8, yerr=[low, high], capsize=4)
        for xi, value in zip(x, mean):
            axis.text(xi, value + 0.5, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
        if reference is not None:
            axis.axhline(100 * reference, color="black", ls="--", lw=1, label="software test accuracy")
            axis.legend(loc="lower left", fontsize=8)
        axis.set_xticks(x)
        axis.set_xticklabels([case_label(r) for r in rows.itertuples()], fontsize=8)
        axis.set_ylabel("test accuracy [%]")
        axis.set_ylim(0, 105)
        axis.set_title(f"variant {variant} (bars: mean over device seeds, whiskers: min..max)", fontsize=9)
    figure.tight_layout()
    return figure


def _markdown(summary: pd.DataFrame, record: dict[str, Any]) -> str:
    lines = ["# Deployment of a trained S4D classifier on simulated crossbars", ""]
    trained = record["trained"]
    lines += [f"- run: `{record['run']}` (trained variant {trained['variant']}, bits {trained['bits'] or 'float'}, "
              f"software test accuracy {trained['test_accuracy_software']})",
              f"- deployed bits: {record['bits']} (scales per '{record['scheme']}' group), variants: {', '.join(record['variants'])}",
              f"- crossbars: {record['layout']}; conductance window {record['window_S'][0]:.3e} .. {record['window_S'][1]:.3e} S; "
              f"read {record['v_read_V']} V; wires {record['config']['wires']} Ω",
              f"- device seeds: {record['config']['device_seeds']}; compensation: {', '.join(record['compensation'])}",
              f"- S4D crossbar memory: {record['memory_bits']['quantized']} bits at {record['bits']} bits "
              f"({record['memory_bits']['float']} bits as float32)", ""]
    lines += ["## Test accuracy", "", "| level | variant | bits | compensation | MDM | mean | sd | min | max | seeds |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.level} | {r.variant} | {r.bits} | {r.compensation} | {'yes' if r.mdm else 'no'} | "
                     f"{100 * r.mean:.2f} % | {100 * r.std:.2f} | {100 * r.min:.2f} | {100 * r.max:.2f} | {r.seeds} |")
    lines += ["", "![test accuracy per level](accuracy.png)", ""]
    spot = record.get("spot_check")
    if spot:
        lines += ["## ngspice spot check", "",
                  f"Layer 0, {spot['channels']} crossbars (variant {spot['variant']}, device seed {spot['device_seed']}), "
                  f"{spot['samples']} test samples, {spot['steps']} time steps: largest difference between ngspice and "
                  f"the nodal solver {spot['max_abs_difference']:.3e} (relative to the largest output "
                  f"{spot['max_relative_difference']:.3e}).", ""]
    lines += ["Per-seed results: `accuracy.csv`; settings, seeds, programming statistics and timings: `deploy.json`.", ""]
    return "\n".join(lines)


def write_deploy_report(table: pd.DataFrame, record: dict[str, Any], output: Path) -> list[Path]:
    """Write every deployment file into ``output`` (created if needed)."""
    import matplotlib.pyplot as plt

    summary = summarize(table)
    text = _markdown(summary, record)
    figure = plot_accuracy(summary, record["trained"].get("test_accuracy_software"))  # before any file
    try:
        output.mkdir(parents=True, exist_ok=True)
        files = [write_frame_atomic(output / "accuracy.csv", table),
                 write_frame_atomic(output / "summary.csv", summary),
                 write_json_atomic(output / "deploy.json", record),
                 save_figure_atomic(output / "accuracy.png", figure, dpi=110)]
    finally:
        plt.close(figure)
    files.append(write_text_atomic(output / "report.md", text))
    return files
