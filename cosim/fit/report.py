"""Validation report of a fit: the data and the fitted model side by side.

:func:`feature_statistics` computes the statistics of docs/device-model.md (mean, within-device sd,
sd of device means, 1 %/99 % quantiles, within-device autocorrelation at given lags) and
:func:`correlation_matrix` the lag-0 correlation of the within-device standardized features.
:func:`write_report` draws the fitted model's own data (same devices × cycles, seeded), and
writes ``report.md`` with PNG figures (matplotlib, Agg backend), ``statistics.csv``,
``qc.csv``, ``device_stats.csv`` and the information-criterion tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.fit.fit import FEATURE_NAMES, FitResult, device_codes, feature_matrix
from cosim.fileio import save_figure_atomic, write_text_atomic
from cosim.fit.qc import QCReport
from cosim.fit.readers import write_table

FEATURE_LABELS = ("log10 HRS [log10 Ω]", "US [V]", "LRS [Ω]", "UR [V]")
DEFAULT_LAGS = (1, 10, 50)


# --------------------------------------------------------------------------- statistics
def _sorted_arrays(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, _ = device_codes(table)
    cycles = table["cycle"].to_numpy()
    order = np.lexsort((cycles, codes))
    return feature_matrix(table)[order], codes[order], cycles[order]


def autocorrelation(y: np.ndarray, codes: np.ndarray, cycles: np.ndarray,
                    lags: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Within-device autocorrelation (len(lags), 4), pooled over devices.

    Deviations from each device's mean; at lag k the mean product over all pairs of the same
    device that are exactly k cycles apart, divided by the pooled within-device variance.
    Rows must be sorted by (device, cycle).
    """
    means = pd.DataFrame(y).groupby(codes).transform("mean").to_numpy()
    dev = y - means
    var = np.mean(dev ** 2, axis=0)
    out = np.full((len(lags), y.shape[1]), np.nan)
    for i, k in enumerate(lags):
        n = y.shape[0]
        if k >= n:
            continue
        ok = (codes[k:] == codes[:-k]) & (cycles[k:] - cycles[:-k] == k)
        if ok.any():
            out[i] = np.mean(dev[k:][ok] * dev[:-k][ok], axis=0) / var
    return out


def feature_statistics(table: pd.DataFrame,
                       lags: tuple[int, ...] = DEFAULT_LAGS) -> pd.DataFrame:
    """Statistics (docs/device-model.md) per feature (HRS in log10 Ω, LRS in Ω, US/UR in V)."""
    y, codes, cycles = _sorted_arrays(table)
    frame = pd.DataFrame(y).groupby(codes)
    dev_mean = frame.mean().to_numpy()
    dev_var = frame.var(ddof=1).to_numpy()
    acf = autocorrelation(y, codes, cycles, lags)
    records = []
    for j, name in enumerate(FEATURE_NAMES):
        rec = {"feature": name, "mean": float(np.mean(y[:, j])),
               "within_sd": float(np.sqrt(np.nanmean(dev_var[:, j]))),
               "sd_device_means": float(np.std(dev_mean[:, j], ddof=1))
               if dev_mean.shape[0] > 1 else np.nan,
               "q01": float(np.quantile(y[:, j], 0.01)),
               "q99": float(np.quantile(y[:, j], 0.99))}
        for i, k in enumerate(lags):
            rec[f"acf{k}"] = float(acf[i, j])
        records.append(rec)
    return pd.DataFrame(records).set_index("feature")


def correlation_matrix(table: pd.DataFrame) -> np.ndarray:
    """Lag-0 correlation (4×4) of the within-device standardized features."""
    y, codes, _ = _sorted_arrays(table)
    grouped = pd.DataFrame(y).groupby(codes)
    z = (y - grouped.transform("mean").to_numpy()) / grouped.transform("std").to_numpy()
    z = z[np.all(np.isfinite(z), axis=1)]
    return np.corrcoef(z, rowvar=False)


def read_currents(table: pd.DataFrame, u0: float = 0.2) -> dict[str, float]:
    """Median read current I(U0) = U0/R in the LRS and the HRS, A."""
    return {"I_LRS_median_A": float(np.median(u0 / table["LRS_ohm"].to_numpy())),
            "I_HRS_median_A": float(np.median(u0 / table["HRS_ohm"].to_numpy()))}


# --------------------------------------------------------------------------- model data
def simulate_cycles(model: Any, n_devices: int, n_cycles: int, seed: int = 0) -> pd.DataFrame:
    """Cycle table drawn from ``model`` by ``cosim synth`` (same layout as a measurement:
    row n holds US_n, LRS_n, UR_n and the HRS read after the RESET of cycle n)."""
    from cosim.device.synth import synth_cycles

    table = synth_cycles(model, n_devices, n_cycles, seed)
    table["device"] = table["device"].astype(str)
    return table


def sweep_waveform(v_set: float = -2.0, v_reset: float = 1.5, step: float = 0.01,
                   u0: float = 0.2) -> np.ndarray:
    """One loop: read at U0, 0 → v_set → 0 → v_reset → 0 in steps of ``step`` V."""
    def ramp(a: float, b: float) -> np.ndarray:
        n = int(round(abs(b - a) / step))
        return np.linspace(a, b, n + 1)[1:]
    return np.concatenate([[u0, 0.0], ramp(0.0, v_set), ramp(v_set, 0.0), ramp(0.0, v_reset),
                           ramp(v_reset, 0.0)])


def simulate_iv_loops(model: Any, n_devices: int, n_cycles: int, seed: int = 0,
                      step: float = 0.01, v_set: float = -2.0, v_reset: float = 1.5,
                      noise: bool = False) -> pd.DataFrame:
    """Raw I–V loops of ``model`` (tidy: device, cycle, t_s, V, I) from the reference model.

    Each loop is :func:`sweep_waveform` (one sample per voltage level, 1 µs apart); with
    ``noise`` the model's read noise is added to every sample.
    """
    from cosim.device.model import DeviceArray

    wave = sweep_waveform(v_set, v_reset, step, model.u0)
    array = DeviceArray(model, n_devices=n_devices, seed=seed)
    currents = np.empty((n_cycles, wave.size, n_devices))
    for c in range(n_cycles):
        for s, u in enumerate(wave):
            array.apply(u)
            currents[c, s] = array.read(u, noise=noise) if noise else array.current(u)
    samples = wave.size
    per_device = n_cycles * samples
    return pd.DataFrame({
        "device": np.repeat(np.arange(n_devices), per_device).astype(str),
        "cycle": np.tile(np.repeat(np.arange(n_cycles, dtype=np.int64), samples), n_devices),
        "t_s": np.tile(np.arange(per_device) * 1e-6, n_devices),
        "V": np.tile(wave, n_cycles * n_devices),
        "I": currents.transpose(2, 0, 1).reshape(-1)})


# --------------------------------------------------------------------------- comparison
@dataclass
class Comparison:
    """Statistics of data and model (same devices × cycles as the fit data, capped)."""

    data_stats: pd.DataFrame
    model_stats: pd.DataFrame
    data_corr: np.ndarray
    model_corr: np.ndarray
    data_currents: dict[str, float]
    model_currents: dict[str, float]
    model_table: pd.DataFrame


def compare(result: FitResult, seed: int = 0, max_devices: int = 512,
            max_cycles: int = 3000) -> Comparison:
    """Draw data from the fitted model and compute the statistics of both."""
    counts = result.table.groupby("device", observed=True).size()
    n_dev = int(min(max_devices, counts.size))
    n_cyc = int(min(max_cycles, counts.median()))
    model_table = simulate_cycles(result.model, n_dev, max(n_cyc, 2), seed)
    return Comparison(
        data_stats=feature_statistics(result.table), model_stats=feature_statistics(model_table),
        data_corr=correlation_matrix(result.table), model_corr=correlation_matrix(model_table),
        data_currents=read_currents(result.table, result.model.u0),
        model_currents=read_currents(model_table, result.model.u0), model_table=model_table)


# --------------------------------------------------------------------------- figures
#: Units of the feature axes (HRS is drawn as log10 of the resistance in Ω).
FEATURE_UNITS = ("log10 Ω", "V", "Ω", "V")


def _new_figure(size: tuple[float, float]) -> Any:
    """A pyplot-free figure (Agg canvas) with constrained layout; size in inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _plot_marginals(fig: Any, data: np.ndarray, model: np.ndarray) -> None:
    for j in range(4):
        ax = fig.add_subplot(2, 4, j + 1)
        lo, hi = np.quantile(np.concatenate([data[:, j], model[:, j]]), [0.001, 0.999])
        bins = np.linspace(lo, hi, 60)
        ax.hist(data[:, j], bins=bins, density=True, alpha=0.5, label="data")
        ax.hist(model[:, j], bins=bins, density=True, histtype="step", lw=1.5, label="model")
        ax.set_xlabel(FEATURE_LABELS[j])
        ax.set_ylabel(f"probability density [1/{FEATURE_UNITS[j]}]")
        if j == 0:
            ax.legend(fontsize=7)
        ax = fig.add_subplot(2, 4, j + 5)
        p = np.linspace(0.001, 0.999, 199)
        qd, qm = np.quantile(data[:, j], p), np.quantile(model[:, j], p)
        ax.plot(qm, qd, ".", ms=3)
        ax.plot([qd.min(), qd.max()], [qd.min(), qd.max()], "k-", lw=0.8)
        ax.set_xlabel(f"model quantile, {FEATURE_LABELS[j]}")
        ax.set_ylabel(f"data quantile, {FEATURE_LABELS[j]}")


def _plot_acf(fig: Any, result: FitResult, comp: Comparison) -> None:
    lags = np.arange(1, 51)
    yd, cd, nd = _sorted_arrays(result.table)
    ym, cm, nm = _sorted_arrays(comp.model_table)
    acf_d = autocorrelation(yd, cd, nd, lags)
    acf_m = autocorrelation(ym, cm, nm, lags)
    for j in range(4):
        ax = fig.add_subplot(1, 4, j + 1)
        ax.plot(lags, acf_d[:, j], "o", ms=3, label="data")
        ax.plot(lags, acf_m[:, j], "-", label="model")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("lag [cycles]")
        ax.set_title(FEATURE_NAMES[j])
        ax.set_ylabel("within-device autocorrelation (unitless)")
        if j == 0:
            ax.legend(fontsize=7)


def _plot_corr(fig: Any, comp: Comparison) -> None:
    for k, (title, mat) in enumerate((("data", comp.data_corr), ("model", comp.model_corr))):
        ax = fig.add_subplot(1, 2, k + 1)
        im = ax.imshow(mat, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(4), FEATURE_NAMES)
        ax.set_yticks(range(4), FEATURE_NAMES)
        ax.set_xlabel("feature")
        ax.set_ylabel("feature")
        for i in range(4):
            for j in range(4):
                # white text on the saturated cells (the diagonal is +1: dark red)
                colour = "white" if abs(mat[i, j]) > 0.6 else "black"
                ax.text(j, i, f"{mat[i, j]:+.2f}", ha="center", va="center", fontsize=9,
                        color=colour)
        ax.set_title(f"lag-0 correlation, {title}")
    bar = fig.colorbar(im, ax=fig.axes, shrink=0.8)
    bar.set_label("correlation coefficient (unitless)")


def _plot_d2d(fig: Any, result: FitResult, comp: Comparison) -> None:
    def device_vectors(table: pd.DataFrame) -> np.ndarray:
        y, codes, _ = _sorted_arrays(table)
        g = pd.DataFrame(y).groupby(codes)
        return np.hstack([g.mean().to_numpy(), g.std().to_numpy()])
    vd, vm = device_vectors(result.table), device_vectors(comp.model_table)
    mean = [f"device mean of {label}" for label in FEATURE_LABELS]
    sd = [f"within-device sd of {label}" for label in FEATURE_LABELS]
    pairs = [(0, 2, mean[0], mean[2]), (1, 3, mean[1], mean[3]),
             (0, 4, mean[0], sd[0]), (2, 6, mean[2], sd[2])]
    for k, (a, b, la, lb) in enumerate(pairs):
        ax = fig.add_subplot(1, 4, k + 1)
        ax.plot(vd[:, a], vd[:, b], "o", ms=3, alpha=0.6, label="data")
        ax.plot(vm[:, a], vm[:, b], "x", ms=3, alpha=0.6, label="model")
        ax.set_xlabel(la)
        ax.set_ylabel(lb)
        if k == 0:
            ax.legend(fontsize=7)
    fig.suptitle("Device-to-device spread: one point per device")


def loop_state_segments(model: Any, u_set: float, u_reset: float, v_min: float, v_max: float,
                        r_hrs_start: float, r_lrs: float, r_hrs_end: float,
                        points: int = 120) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The fitted I(U; r) [A] of one loop, each state only where the device is in it [V].

    Negative sweep 0 → v_min → 0: the starting HRS from 0 down to the SET threshold
    ``u_set``, then the LRS over the rest of the negative branch. Positive sweep 0 → v_max → 0:
    the LRS up to the RESET threshold ``u_reset``, the RESET transition curve
    ``I_tr(U) = a·|Umax − U|^η + c`` from ``u_reset`` to the peak (or Umax), and the HRS left
    after the RESET on the way back. ``r_*`` are the model's state variables r.
    Returns (state, U, I) triples; states are "HRS", "LRS" and "RESET".
    """
    from cosim.device.model import current

    def span(a: float, b: float) -> np.ndarray:
        return np.linspace(a, b, points)

    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    if v_min < 0:
        u_set = min(max(u_set, v_min), 0.0)
        out.append(("HRS", span(u_set, 0.0), current(model, span(u_set, 0.0), r_hrs_start)))
        out.append(("LRS", span(v_min, u_set), current(model, span(v_min, u_set), r_lrs)))
    if v_max > 0:
        u_reset = min(max(u_reset, 0.0), v_max)
        out.append(("LRS", span(0.0, u_reset), current(model, span(0.0, u_reset), r_lrs)))
        top = min(v_max, model.umax)
        if top > u_reset:
            i_start = float(current(model, u_reset, r_lrs))
            i_end = float(current(model, model.umax, r_hrs_end))
            a = (i_start - i_end) / abs(model.umax - u_reset) ** model.eta
            u = span(u_reset, top)
            out.append(("RESET", u, a * np.abs(model.umax - u) ** model.eta + i_end))
        out.append(("HRS", span(0.0, v_max), current(model, span(0.0, v_max), r_hrs_end)))
    return out


STATE_STYLES = {"HRS": "-", "LRS": "--", "RESET": ":"}


def _plot_iv(fig: Any, result: FitResult, loops: int = 4) -> None:
    """Measured loops (dots) with the fitted I(U; r) at the loop's extracted states (lines),
    each state drawn only over the part of the loop where the device is in it."""
    from matplotlib.lines import Line2D

    from cosim.device.model import r_from_resistance

    frame = result.iv_frame
    model = result.model
    rows = result.table.set_index(["device", "cycle"])
    vectors = result.vectors.set_index(["device", "cycle"])
    keys = list(vectors.index[:: max(1, len(vectors) // loops)][:loops])
    ax = fig.add_subplot(1, 1, 1)
    handles = []
    floor = np.inf
    for n, (dev, cyc) in enumerate(keys):
        loop = frame[(frame["device"] == dev) & (frame["cycle"] == cyc)]
        v = loop["V"].to_numpy(dtype=float)
        ax.semilogy(v, np.abs(loop["I"]), ".", ms=2, color=f"C{n}")
        away = np.abs(loop["I"].to_numpy(dtype=float))[np.abs(v) >= 0.05]
        floor = min(floor, float(away[away > 0].min())) if np.any(away > 0) else floor
        vec = vectors.loc[(dev, cyc)]
        segments = loop_state_segments(
            model, float(vec["US_V"]), float(vec["UR_V"]), float(v.min()), float(v.max()),
            float(r_from_resistance(model, vec["HRS_ohm"])),
            float(r_from_resistance(model, vec["LRS_ohm"])),
            float(r_from_resistance(model, rows.loc[(dev, cyc), "HRS_ohm"])))
        for state, u, i in segments:
            ax.semilogy(u, np.abs(i), STATE_STYLES[state], lw=1.0, color=f"C{n}")
        handles.append(Line2D([], [], color=f"C{n}", marker=".", ls="none",
                              label=f"device {dev}, cycle {cyc}"))
    handles += [Line2D([], [], color="0.3", ls=STATE_STYLES["HRS"], label="fitted model, HRS"),
                Line2D([], [], color="0.3", ls=STATE_STYLES["LRS"], label="fitted model, LRS"),
                Line2D([], [], color="0.3", ls=STATE_STYLES["RESET"],
                       label="fitted model, RESET transition")]
    if np.isfinite(floor):  # |I| → 0 at 0 V: show the loops, not the log scale's dive to 0
        ax.set_ylim(bottom=0.3 * floor)
    ax.set_xlabel("V [V]")
    ax.set_ylabel("|I| [A]")
    ax.set_title("measured loops (dots) and the fitted I(U; r) in each state (lines)")
    ax.legend(handles=handles, fontsize=7)


def report_figures(result: FitResult, comp: Comparison) -> dict[str, Any]:
    """The report's figures (matplotlib ``Figure`` objects) by file name."""
    y_data = feature_matrix(result.table)
    y_model = feature_matrix(comp.model_table)
    draws = {
        "marginals.png": (lambda fig: _plot_marginals(fig, y_data, y_model), (14, 6)),
        "autocorrelation.png": (lambda fig: _plot_acf(fig, result, comp), (14, 3.5)),
        "correlation.png": (lambda fig: _plot_corr(fig, comp), (10, 4.5)),
        "d2d.png": (lambda fig: _plot_d2d(fig, result, comp), (15, 4)),
    }
    if result.iv_frame is not None:
        draws["iv.png"] = (lambda fig: _plot_iv(fig, result), (8, 5))
    figures = {}
    for name, (draw, size) in draws.items():
        fig = _new_figure(size)
        draw(fig)
        figures[name] = fig
    return figures


# --------------------------------------------------------------------------- markdown
def _stats_table(comp: Comparison) -> str:
    cols = list(comp.data_stats.columns)
    head = "| feature | source | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for name in FEATURE_NAMES:
        for source, stats in (("data", comp.data_stats), ("model", comp.model_stats)):
            cells = [f"{stats.loc[name, c]:.4g}" for c in cols]
            lines.append(f"| {name} | {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _matrix_md(mat: np.ndarray) -> str:
    lines = ["| | " + " | ".join(FEATURE_NAMES) + " |", "|---" * 5 + "|"]
    for i, name in enumerate(FEATURE_NAMES):
        lines.append(f"| {name} | " + " | ".join(f"{v:+.3f}" for v in mat[i]) + " |")
    return "\n".join(lines)


def render_markdown(result: FitResult, comp: Comparison, figures: list[str],
                    model_path: str | None) -> str:
    """The report text (markdown)."""
    m = result.model
    prov = m.provenance
    n_dev = result.device_stats.shape[0]
    parts = [
        "# Device-model fit report", "",
        f"Input: `{prov.get('input_file', '?')}` ({result.kind}); devices used: {n_dev}; "
        f"cycles used: {len(result.table)}; seed: {prov.get('seed')}."
        + (f" Model file: `{model_path}`." if model_path else ""), "",
        "## Fitted model", "",
        f"* VAR order p = {m.var_order} (criterion: {prov.get('var_order_criterion')}); "
        f"spectral radius of the companion matrix "
        f"{np.max(np.abs(np.linalg.eigvals(m.companion()))):.4f}.",
        "* Stationary latent variance: "
        + ", ".join(f"{n} {v:.3f}" for n, v in zip(FEATURE_NAMES,
                                                     np.diag(m.stationary_covariance()))),
        "* Latent lag-0 correlation of the fitted VAR: (HRS, US) "
        f"{_latent_corr(m)[0, 1]:+.3f}, (LRS, UR) {_latent_corr(m)[2, 3]:+.3f} "
        "(the shipped default model: −0.23, +0.19).",
        f"* D2D mixture: K = {m.n_components}, weights "
        + ", ".join(f"{w:.3f}" for w in m.d2d_weights) + f"; chosen by BIC over "
        f"{prov.get('mixture_restarts', '?')} seeded restarts per K, BIC margin to the next K "
        f"{prov.get('mixture_bic_margin')}, K chosen by each restart "
        f"{prov.get('mixture_k_by_restart')}.",
        f"* I–V basis, η = {m.eta:.4g}, Umax = {m.umax:.4g} V: {prov.get('iv', {}).get('source')}.",
        "", "Information criteria per VAR order (same rows for every order):", "",
        _frame_md(result.order_table), "",
        "BIC per number of mixture components:", "",
        _frame_md(result.mixture_table), "",
        "## Statistics of data and model (docs/device-model.md, Validation)", "",
        "The model columns come from data drawn from the fitted model with the same number of "
        "devices and cycles (seeded). HRS in log10 Ω, LRS in Ω, US/UR in V; `acfK` is the "
        "within-device autocorrelation at lag K.", "",
        _stats_table(comp), "",
        f"Median read current at U0: data LRS {comp.data_currents['I_LRS_median_A'] * 1e6:.3g} µA, "
        f"HRS {comp.data_currents['I_HRS_median_A'] * 1e6:.3g} µA; model LRS "
        f"{comp.model_currents['I_LRS_median_A'] * 1e6:.3g} µA, HRS "
        f"{comp.model_currents['I_HRS_median_A'] * 1e6:.3g} µA.", "",
        "Lag-0 correlation of the within-device standardized features, data:", "",
        _matrix_md(comp.data_corr), "", "model:", "", _matrix_md(comp.model_corr), "",
        "## Figures", "",
    ]
    parts += [f"![{f}]({f})" for f in figures]
    parts += ["", "## Quality control", "", result.qc.to_markdown()]
    return "\n".join(parts) + "\n"


def _latent_corr(model: Any) -> np.ndarray:
    cov = model.stationary_covariance()
    scale = np.sqrt(np.diag(cov))
    return cov / np.outer(scale, scale)


def _frame_md(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table (floats with 6 significant digits)."""
    def cell(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return f"{value:.6g}"
        return str(value)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def write_report(result: FitResult, folder: str | Path, seed: int = 0,
                 model_path: str | None = None) -> Path:
    """Write the report into ``folder``; returns the path of ``report.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    comp = compare(result, seed=seed)
    figures = report_figures(result, comp)
    for name, fig in figures.items():
        save_figure_atomic(folder / name, fig, dpi=90)
    stats = pd.concat({"data": comp.data_stats, "model": comp.model_stats}, names=["source"])
    write_table(stats.reset_index(), folder / "statistics.csv")
    write_table(result.qc.to_frame(), folder / "qc.csv")
    write_table(result.device_stats, folder / "device_stats.csv")
    write_table(result.order_table, folder / "var_order.csv")
    write_table(result.mixture_table, folder / "mixture.csv")
    report = folder / "report.md"
    write_text_atomic(report, render_markdown(result, comp, list(figures), model_path))
    return report


def write_failed_report(qc: QCReport, folder: str | Path, error: str,
                        input_path: str | None = None) -> Path:
    """Report of a fit that stopped: ``qc.csv`` and a ``report.md`` with the reason and the
    quality-control entries that led to it. Returns the path of ``report.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_table(qc.to_frame(), folder / "qc.csv")
    parts = ["# Fit report: no model", ""]
    if input_path:
        parts += [f"Input: `{input_path}`", ""]
    parts += [f"The fit stopped: {error}", "", "## Quality control", "", qc.to_markdown()]
    report = folder / "report.md"
    write_text_atomic(report, "\n".join(parts))
    return report
