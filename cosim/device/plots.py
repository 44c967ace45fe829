"""Figures of device data for people: I–V loops, R vs cycle, feature histograms vs the model.

Uses :class:`matplotlib.figure.Figure` directly (Agg canvas, no GUI, no pyplot state).
Inputs are the tidy frames of :mod:`cosim.device.synth` (or measured data in that layout).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from cosim.device.model import feature_sequences, hrs_ohm
from cosim.device.modelfile import DeviceModel

#: Unit of each histogram's x axis (the density axis is per this unit).
FEATURE_UNITS = {"HRS_ohm": "log10 Ω", "US_V": "V", "LRS_ohm": "Ω", "UR_V": "V"}

FEATURE_LABELS = {
    "HRS_ohm": "log10 HRS [log10 Ω]",
    "US_V": "U_S [V]",
    "LRS_ohm": "LRS [Ω]",
    "UR_V": "U_R [V]",
}


def plot_iv_loops(iv: pd.DataFrame, devices: Optional[Sequence[int]] = None,
                  cycles: Optional[Sequence[int]] = None, max_loops: int = 20) -> Figure:
    """|I| (A, log scale) against V for the chosen devices and cycles of an ``iv`` frame."""
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    sel = iv
    n = 0
    if devices is not None:
        sel = sel[sel["device"].isin(devices)]
    if cycles is not None:
        sel = sel[sel["cycle"].isin(cycles)]
    for n, ((dev, cyc), loop) in enumerate(sel.groupby(["device", "cycle"], sort=True)):
        if n >= max_loops:
            break
        ax.plot(loop["V"], np.abs(loop["I"]), lw=0.8, alpha=0.7, label=f"device {dev}, cycle {cyc}")
    ax.set_yscale("log")
    ax.set_xlabel("V [V]")
    ax.set_ylabel("|I| [A]")
    ax.set_title("I–V loops")
    if 0 < n < 10:
        ax.legend(fontsize=7)
    return fig


def plot_resistance_vs_cycle(cycles: pd.DataFrame, devices: Optional[Sequence[int]] = None) -> Figure:
    """HRS and LRS (Ω, log scale) against cycle number, one trace per device."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    sel = cycles if devices is None else cycles[cycles["device"].isin(devices)]
    for dev, d in sel.groupby("device", sort=True):
        ax.plot(d["cycle"], d["HRS_ohm"], ".", ms=2, color="tab:red", alpha=0.5)
        ax.plot(d["cycle"], d["LRS_ohm"], ".", ms=2, color="tab:blue", alpha=0.5)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cycle (count)")
    ax.set_ylabel("R at U0 [Ω]")
    ax.set_title("HRS and LRS per cycle, one dot per device and cycle")
    ax.legend(handles=[Line2D([], [], ls="none", marker=".", color="tab:red", label="HRS"),
                       Line2D([], [], ls="none", marker=".", color="tab:blue", label="LRS")],
              fontsize=7)
    return fig


def model_marginals(model: DeviceModel, seed: int = 0, n_devices: int = 2000,
                    n_cycles: int = 200) -> dict[str, np.ndarray]:
    """Samples of the model's marginal distribution of each feature (column names of a cycle
    table; HRS as log10 Ω)."""
    y = feature_sequences(model, seed, np.arange(n_devices), n_cycles)
    return {
        "HRS_ohm": np.log10(hrs_ohm(model, y[..., 0])).ravel(),
        "US_V": y[..., 1].ravel(),
        "LRS_ohm": y[..., 2].ravel(),
        "UR_V": y[..., 3].ravel(),
    }


def plot_feature_histograms(cycles: pd.DataFrame, model: Optional[DeviceModel] = None,
                            seed: int = 0, bins: int = 60) -> Figure:
    """Histograms (density) of the four features, with the model's marginals as lines."""
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    marg = model_marginals(model, seed=seed) if model is not None else None
    for ax, (col, label) in zip(axes, FEATURE_LABELS.items()):
        data = cycles[col].to_numpy(dtype=float)
        data = data[np.isfinite(data)]
        if col == "HRS_ohm":
            data = np.log10(data[data > 0])
        edges = np.histogram_bin_edges(data, bins=bins)
        ax.hist(data, bins=edges, density=True, color="0.7", label="data")
        if marg is not None:
            dens, e = np.histogram(marg[col], bins=edges, density=True)
            ax.step(e[:-1], dens, where="post", color="tab:red", lw=1.2, label="model")
        ax.set_xlabel(label)
        ax.set_ylabel(f"probability density [1/{FEATURE_UNITS[col]}]")
        ax.legend(fontsize=7)
    fig.suptitle("Feature distributions")
    return fig
