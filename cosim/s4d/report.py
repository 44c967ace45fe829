"""Report of an S4D circuit study: CSV tables, JSON record, kernels, PNG figures, markdown.

:func:`write_report` writes into one folder (created if needed); every file goes through a
temporary file in the same folder (:mod:`cosim.fileio`), so a failure leaves no partial file.

Files: ``summary.csv`` (one row per variant, case, compensation, seed, backend, channel, with
the ``unstable`` and ``clipped`` flags), ``table.csv`` (per variant, case, compensation,
backend, channel: seeds ``n``, ``n_unstable``, ``clipped``, mean and sd over the stable
seeds), ``mdm.csv`` (before/after MDM per seed and compensation, with the sign of the
effect), ``programming.csv`` (write-verify bias, spread, pulses, failures per programmed
array), ``failures.csv`` (every cell write-verify did not accept, by device id),
``compensation.csv`` (cost and residual of every compensation run), ``study.json`` (resolved
configuration with every seed, mapping descriptions, DAC range use, timings),
``kernels.npz``, ``kernels_<variant>.png`` (kernel overlays), ``errors_<variant>.png``
(kernel error per channel, case and compensation; bars: mean over stable seeds, whiskers:
smallest to largest seed), ``mdm.png`` and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.fileio import (
    atomic_path,
    save_figure_atomic,
    write_frame_atomic,
    write_json_atomic,
    write_text_atomic,
)
from cosim.s4d.study import CASES, StudyResult

CASE_TITLES = {
    "ideal_nowire": "(a) ideal conductances, no wires",
    "ideal_wires": "(b) ideal conductances, wires",
    "devices_model": "programmed devices, software model",
    "devices_wires": "(c) programmed devices, wires",
    "devices_mdm": "(d) programmed devices, wires, MDM",
}
METHOD_TITLES = {
    "none": "raw (no compensation)",
    "gain": "per-output gain calibration",
    "predistort": "pre-distorted targets",
    "insitu": "in-situ write-verify",
}
METRIC_TITLES = {
    "nf": "NF, non-ideality factor (1)",
    "output_error": "differential output error, raw (1)",
    "output_error_net": "output error vs wanted, corrected (1)",
    "kernel_rel_l2": "kernel error ‖K̂ − K‖/‖K‖ (1)",
}


def _figure_to(path: Path, figure: Any) -> Path:
    import matplotlib.pyplot as plt

    try:
        return save_figure_atomic(path, figure, dpi=110)
    finally:
        plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _methods(result: StudyResult) -> list[str]:
    return [m for m in ("none", "gain", "predistort", "insitu") if m in set(result.summary.compensation)]


def plot_kernels(result: StudyResult, variant: str) -> Any:
    """Ideal kernel and each case's K̂ (first device seed, nodal solver, raw and the first
    compensation method) per channel."""
    plt = _pyplot()
    h = result.ideal_kernel.shape[0]
    figure, axes = plt.subplots(h, 1, figsize=(9, 2.2 * h + 1.2), sharex=True, squeeze=False, layout="constrained")
    seeds = sorted({k[3] for k in result.kernels if k[0] == variant and k[3] >= 0})
    first = seeds[0] if seeds else -1
    methods = _methods(result)
    shown = methods[:2] if len(methods) > 1 else methods
    for channel, axis in enumerate(axes[:, 0]):
        axis.plot(result.ideal_kernel[channel], color="black", lw=2.0, label="ideal")
        for method in shown:
            for case in CASES:
                seed = -1 if case.startswith("ideal") else first
                backend = "software" if case == "devices_model" else "nodal"
                kernel = result.kernels.get((variant, case, method, seed, backend))
                if kernel is not None:
                    style = "-" if method == "none" else "--"
                    axis.plot(kernel[channel], style, lw=1.0, label=f"{CASE_TITLES[case]}, {method}")
        scale = np.abs(result.ideal_kernel[channel]).max()
        axis.set_ylim(-2.5 * scale, 2.5 * scale)
        axis.set_ylabel(f"K, channel {channel} (1)")
    axes[-1, 0].set_xlabel("lag l (steps)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=7)
    figure.suptitle(f"S4D kernels, variant {variant} (device seed {first}, nodal solver)")
    return figure


def plot_errors(result: StudyResult, variant: str) -> Any:
    """Kernel relative L2 error per channel and case, one panel per compensation method.

    Bars: mean over the stable device seeds; whiskers: smallest to largest stable seed (never
    below zero on the log axis); a channel with unstable seeds is marked ``n×unstable``."""
    plt = _pyplot()
    summary = result.summary[(result.summary.variant == variant) & result.summary.backend.isin(["nodal", "software"])]
    methods = _methods(result)
    figure, axes = plt.subplots(1, len(methods), figsize=(4.6 * len(methods) + 1, 4.4), squeeze=False,
                                sharey=True, layout="constrained")
    cases = [c for c in CASES if c in set(summary.case)]
    colours = {case: f"C{index}" for index, case in enumerate(cases)}
    width = 0.8 / max(len(cases), 1)
    floor = 1e-12
    channels = sorted(set(summary.channel))
    for axis, method in zip(axes[0], methods):
        part = summary[(summary.compensation == method) | ((summary.compensation == "none")
                                                           & summary.case.isin(["ideal_nowire", "devices_model"]))]
        for index, case in enumerate(cases):
            rows = part[part.case == case]
            if rows.empty:
                continue
            stable = rows[~rows.unstable]
            stats = stable.groupby("channel").kernel_rel_l2.agg(["mean", "min", "max"]).reindex(channels)
            x = np.asarray(channels) + index * width
            mean = np.maximum(stats["mean"].to_numpy(), floor)
            lower = np.clip(mean - np.maximum(stats["min"].to_numpy(), floor), 0, None)
            upper = np.clip(np.maximum(stats["max"].to_numpy(), floor) - mean, 0, None)
            axis.bar(x, mean, width, color=colours[case], label=CASE_TITLES[case])
            axis.errorbar(x, mean, yerr=[np.nan_to_num(lower), np.nan_to_num(upper)], fmt="none",
                          ecolor="black", capsize=2, lw=0.8)
            unstable = rows.groupby("channel").unstable.sum().reindex(channels).fillna(0)
            for xi, count in zip(x, unstable):
                if count:
                    axis.annotate(f"{int(count)}×unstable", (xi, 0.02), xycoords=("data", "axes fraction"),
                                  rotation=90, fontsize=6, ha="center", va="bottom")
        axis.set_xticks(np.asarray(channels) + width * (len(cases) - 1) / 2, [str(c) for c in channels])
        axis.set_yscale("log")
        axis.set_xlabel("channel")
        axis.set_title(METHOD_TITLES.get(method, method), fontsize=9)
    axes[0, 0].set_ylabel("kernel error ‖K̂ − K‖/‖K‖ (1)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    figure.suptitle(f"Kernel error vs the ideal kernel, variant {variant} "
                    "(bars: mean over stable device seeds; whiskers: min to max)", fontsize=10)
    return figure


def plot_mdm(result: StudyResult) -> Any:
    """NF, output errors and kernel error before/after MDM, per variant, compensation and
    device seed (categories, not a continuous axis)."""
    plt = _pyplot()
    table = result.mdm_table()
    metrics = ["nf", "output_error_net", "kernel_rel_l2"]
    figure, axes = plt.subplots(len(metrics), 1, figsize=(max(7.0, 0.75 * len(table) + 3), 3.0 * len(metrics)),
                                layout="constrained")
    labels = [f"{r.variant}, {r.compensation}\nseed {r.seed}" for r in table.itertuples()]
    x = np.arange(len(table))
    for axis, metric in zip(np.atleast_1d(axes), metrics):
        axis.bar(x - 0.2, table[f"{metric}_before"], 0.4, label="before MDM", color="C0")
        axis.bar(x + 0.2, table[f"{metric}_after"], 0.4, label="after MDM", color="C1")
        axis.set_ylabel(METRIC_TITLES[metric], fontsize=8)
        axis.set_xticks(x, labels, fontsize=7)
        if metric == "kernel_rel_l2":
            for xi, effect, top in zip(x, table.mdm_effect, np.fmax(table.kernel_rel_l2_before, table.kernel_rel_l2_after)):
                axis.annotate(effect, (xi, top), ha="center", va="bottom", fontsize=7)
            axis.margins(y=0.15)
    np.atleast_1d(axes)[-1].set_xlabel("variant, compensation, device seed")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle("MDM placement: before and after, per device seed (nodal solver)", fontsize=10)
    return figure


def _markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    if frame.empty:
        return "(none)"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = [f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _dac_lines(result: StudyResult) -> list[str]:
    lines = []
    for variant, record in result.dac.items():
        text = (f"- {variant}: inputs leave {record['unused_bits_before']:.2f} bits of the DAC range unused on "
                f"average without balancing, {record['unused_bits_after']:.2f} with")
        if "effective_bits_before" in record:
            text += (f" (effective bits {record['effective_bits_before']:.2f} → "
                     f"{record['effective_bits_after']:.2f} of {result.config['dac_bits']})")
        lines.append(text + ".")
    return lines


def markdown(result: StudyResult, figures: list[str]) -> str:
    """The report text."""
    cfg = result.config
    table = result.table()
    columns = ["variant", "case", "compensation", "backend", "channel", "n", "n_unstable", "clipped",
               "kernel_rel_l2", "kernel_rel_l2_sd", "kernel_snr_db", "kernel_gain", "output_rel_l2", "mvm_error",
               "eigenvalue_error", "stability_margin", "layer_margin", "nf", "output_error", "output_error_net"]
    shown = table[[c for c in columns if c in table.columns]]
    parts = [
        "# S4D on memristive crossbars: circuit-level kernels vs the ideal model",
        "",
        f"Model `{cfg['model']['kind']}`, L = {cfg['length']}, variants {cfg['variants']}, layout "
        f"`{cfg['layout']}`, scale `{cfg['scale']}`, weight bits {cfg['weight_bits']}, DAC bits "
        f"{cfg['dac_bits']}, ADC bits {cfg['adc_bits']}, DAC balancing {cfg['dac_balance']}; wires "
        f"{cfg['wires']} Ω; conductance window "
        f"{cfg['conductance_window_S'][0]:.4g} … {cfg['conductance_window_S'][1]:.4g} S.",
        f"Seeds: input {cfg['input_seed']}, device seeds {cfg['devices']['seeds']}, step vectors "
        f"{cfg['step_vector_seed']}, probe vectors {cfg['probe_seed']}. Cell model "
        f"`{cfg['devices']['cell_model']}`; write-verify tolerance {cfg['devices']['tolerance']}, "
        f"centred acceptance {cfg['devices']['centred']} (fine step {cfg['devices']['fine_step']} V). "
        f"Compensation methods {cfg['compensation']['methods']}.",
        "",
        "Metrics per channel against the ideal kernel/output: `n` device seeds, `n_unstable` of them with a",
        "negative stability margin (left out of every mean), `clipped` seeds whose run reached a converter's",
        "full scale (their errors are capped by clipping and compare nothing); then means over the stable",
        "seeds (`_sd`: their sd). `nf`: non-ideality factor of the raw tiles (docs/crossbar.md;",
        f"`{cfg['read_inputs']}` inputs); `output_error`: raw differential output error against the",
        "array's own conductances; `output_error_net`: corrected products against the wanted weights;",
        "`layer_margin`: stability margin of the whole layer incl. cross-talk.",
        "",
        _markdown_table(shown),
        "",
    ]
    mdm = result.mdm_table()
    if not mdm.empty:
        parts += [
            "## MDM before/after (nodal solver, per device seed and compensation)", "",
            "`mdm_effect`: sign of MDM's effect on the kernel error (channels stable in both), `helps` below",
            "−2 %, `hurts` above +2 %. Compare rows of one seed: raw (`none`) against compensated.", "",
            _markdown_table(mdm), "",
        ]
    if not result.programming.empty:
        columns = ["variant", "case", "compensation", "seed", "devices", "failures", "rel_error_mean",
                   "rel_error_sd", "rel_error_max_abs", "pulses_mean", "pulses_max"]
        parts += [
            "## Write-verify (per programmed array)", "",
            "`rel_error_mean`: bias, `rel_error_sd`: spread of (G − G_t)/G_t of the devices' own conductance;",
            "`failures`: cells not accepted (listed in `failures.csv` by device id with their final error).", "",
            _markdown_table(result.programming[[c for c in columns if c in result.programming.columns]]), "",
        ]
        if not result.failures.empty:
            parts += [f"{len(result.failures)} cells failed; the first ones:", "",
                      _markdown_table(result.failures.head(10)), ""]
    if not result.compensation.empty:
        parts += ["## Compensation cost", "",
                  "`residual`: ‖W_eff − W‖/‖W‖ of the corrected in-circuit matrix (largest tile); `reads`: input",
                  "vectors read through the arrays; `solver_calls`: factorizations or circuit loads.", "",
                  _markdown_table(result.compensation), ""]
    if result.dac:
        parts += ["## DAC range", ""] + _dac_lines(result) + [""]
    ngspice = result.summary[result.summary.backend == "ngspice"]
    if len(ngspice):
        parts += [
            "## ngspice in-process vs nodal solver",
            "",
            f"Largest relative difference of K̂ over the first {int(ngspice.steps.max())} steps: "
            f"{ngspice.vs_nodal.max():.3g}.",
            "",
        ]
    parts += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    parts += ["## Timings [s]", "", "\n".join(f"- {k}: {v:.2f}" for k, v in result.timings.items()), ""]
    return "\n".join(parts)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        np.savez_compressed(stream, **arrays)
    return path


def write_report(result: StudyResult, directory: Path | str) -> list[Path]:
    """Write every report file into ``directory``; returns the paths written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        write_frame_atomic(folder / "summary.csv", result.summary),
        write_frame_atomic(folder / "table.csv", result.table()),
        write_frame_atomic(folder / "programming.csv", result.programming),
        write_frame_atomic(folder / "failures.csv", result.failures if not result.failures.empty else
                           pd.DataFrame(columns=["variant", "case", "compensation", "seed", "device", "target_S",
                                                 "achieved_S", "rel_error", "pulses", "attempts"])),
        write_frame_atomic(folder / "compensation.csv", result.compensation),
    ]
    mdm = result.mdm_table()
    if not mdm.empty:
        written.append(write_frame_atomic(folder / "mdm.csv", mdm))
    record = {
        "config": result.config,
        "timings_s": result.timings,
        "dac_range": result.dac,
        "mappings": [
            {"variant": v, "case": c, "compensation": m, "seed": s, **d} for (v, c, m, s), d in result.mappings.items()
        ],
    }
    written.append(write_json_atomic(folder / "study.json", record))
    arrays = {"ideal": result.ideal_kernel}
    arrays.update({":".join(map(str, key)): value for key, value in result.kernels.items()})
    written.append(_write_npz(folder / "kernels.npz", arrays))
    figures = []
    for variant in result.config["variants"]:
        for name, plot in ((f"kernels_{variant}.png", plot_kernels), (f"errors_{variant}.png", plot_errors)):
            written.append(_figure_to(folder / name, plot(result, variant)))
            figures.append(name)
    if not mdm.empty:
        written.append(_figure_to(folder / "mdm.png", plot_mdm(result)))
        figures.append("mdm.png")
    written.append(write_text_atomic(folder / "report.md", markdown(result, figures)))
    return written
