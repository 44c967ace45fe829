"""Report of an S4D circuit study: CSV tables, JSON record, kernels, PNG figures, markdown.

:func:`write_report` writes into one folder (created if needed); every file goes through a
temporary file in the same folder (:mod:`cosim.fileio`), so a failure leaves no partial file.

Files: ``summary.csv`` (one row per variant, case, seed, backend, channel), ``table.csv``
(mean and sd over device seeds), ``mdm.csv`` (before/after MDM per seed), ``study.json``
(resolved configuration with every seed, mapping descriptions, timings), ``kernels.npz``,
``kernels_<variant>.png`` (kernel overlays), ``errors_<variant>.png`` (kernel error per
channel with error bars across device seeds), ``mdm.png`` and ``report.md``.
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


def _figure_to(path: Path, figure: Any) -> Path:
    import matplotlib.pyplot as plt

    try:
        return save_figure_atomic(path, figure, dpi=110)
    finally:
        plt.close(figure)


def plot_kernels(result: StudyResult, variant: str) -> Any:
    """Ideal kernel and each case's K̂ (first device seed, nodal solver) per channel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result.ideal_kernel.shape[0]
    figure, axes = plt.subplots(h, 1, figsize=(9, 2.2 * h), sharex=True, squeeze=False)
    seeds = sorted({k[2] for k in result.kernels if k[0] == variant and k[2] >= 0})
    first = seeds[0] if seeds else -1
    for channel, axis in enumerate(axes[:, 0]):
        axis.plot(result.ideal_kernel[channel], color="black", lw=2.0, label="ideal")
        for case in CASES:
            seed = -1 if case.startswith("ideal") else first
            backend = "software" if case == "devices_model" else "nodal"
            kernel = result.kernels.get((variant, case, seed, backend))
            if kernel is not None:
                axis.plot(kernel[channel], lw=1.0, label=CASE_TITLES[case])
        scale = np.abs(result.ideal_kernel[channel]).max()
        axis.set_ylim(-2.5 * scale, 2.5 * scale)
        axis.set_ylabel(f"K, channel {channel}")
    axes[-1, 0].set_xlabel("lag l")
    axes[0, 0].legend(fontsize=7, ncol=2, loc="upper right")
    axes[0, 0].set_title(f"S4D kernels, variant {variant} (device seed {first})")
    return figure


def plot_errors(result: StudyResult, variant: str) -> Any:
    """Kernel relative L2 error per channel and case; bars: mean, whiskers: sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result.table()
    rows = table[(table.variant == variant) & table.backend.isin(["nodal", "software"])]
    cases = [c for c in CASES if c in set(rows.case)]
    figure, axis = plt.subplots(figsize=(9, 3.5))
    width = 0.8 / max(len(cases), 1)
    for index, case in enumerate(cases):
        part = rows[rows.case == case]
        axis.bar(part.channel + index * width, part.kernel_rel_l2, width, yerr=part.kernel_rel_l2_sd,
                 capsize=3, label=CASE_TITLES[case])
    channels = sorted(set(rows.channel))
    axis.set_xticks(np.asarray(channels) + width * (len(cases) - 1) / 2, [str(c) for c in channels])
    axis.set_yscale("log")
    axis.set_xlabel("channel")
    axis.set_ylabel("kernel relative L2 error")
    axis.set_title(f"Kernel error vs ideal, variant {variant} (error bars: sd over device seeds)")
    axis.legend(fontsize=7)
    return figure


def plot_mdm(result: StudyResult) -> Any:
    """NF, differential output error and kernel error before/after MDM, per device seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result.mdm_table()
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for axis, metric in zip(axes, ["nf", "output_error", "kernel_rel_l2"]):
        for variant, part in table.groupby("variant"):
            axis.plot(part.seed, part[f"{metric}_before"], "o-", label=f"{variant} before")
            axis.plot(part.seed, part[f"{metric}_after"], "s--", label=f"{variant} after MDM")
        axis.set_xlabel("device seed")
        axis.set_title(metric)
    axes[0].legend(fontsize=7)
    return figure


def _markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = [f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: StudyResult, figures: list[str]) -> str:
    """The report text."""
    cfg = result.config
    table = result.table()
    columns = ["variant", "case", "backend", "channel", "kernel_rel_l2", "kernel_rel_l2_sd", "kernel_snr_db",
               "kernel_cosine", "kernel_gain", "output_rel_l2", "mvm_error", "eigenvalue_error",
               "stability_margin", "layer_margin", "nf", "output_error"]
    shown = table[[c for c in columns if c in table.columns]]
    parts = [
        "# S4D on memristive crossbars: circuit-level kernels vs the ideal model",
        "",
        f"Model `{cfg['model']['kind']}`, L = {cfg['length']}, variants {cfg['variants']}, layout "
        f"`{cfg['layout']}`, scale `{cfg['scale']}`, weight bits {cfg['weight_bits']}, DAC bits "
        f"{cfg['dac_bits']}, ADC bits {cfg['adc_bits']}; wires {cfg['wires']} Ω; conductance window "
        f"{cfg['conductance_window_S'][0]:.4g} … {cfg['conductance_window_S'][1]:.4g} S.",
        f"Seeds: input {cfg['input_seed']}, device seeds {cfg['devices']['seeds']}, step vectors "
        f"{cfg['step_vector_seed']}. Cell model `{cfg['devices']['cell_model']}`, write-verify tolerance "
        f"{cfg['devices']['tolerance']}.",
        "",
        "Metrics per channel against the ideal kernel/output (mean over device seeds; `_sd`: their sd).",
        "NF: docs/crossbar.md, random inputs in [0, v_read]; output_error: differential output error of",
        "the S4D step voltages; layer_margin: stability margin of the whole layer incl. cross-talk.",
        "",
        _markdown_table(shown),
        "",
    ]
    if "devices_mdm" in set(result.summary.case):
        parts += ["## MDM before/after (nodal solver, per device seed)", "", _markdown_table(result.mdm_table()), ""]
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
    ]
    if "devices_mdm" in set(result.summary.case):
        written.append(write_frame_atomic(folder / "mdm.csv", result.mdm_table()))
    record = {
        "config": result.config,
        "timings_s": result.timings,
        "mappings": [
            {"variant": v, "case": c, "seed": s, **d} for (v, c, s), d in result.mappings.items()
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
    if "devices_mdm" in set(result.summary.case):
        written.append(_figure_to(folder / "mdm.png", plot_mdm(result)))
        figures.append("mdm.png")
    written.append(write_text_atomic(folder / "report.md", markdown(result, figures)))
    return written
