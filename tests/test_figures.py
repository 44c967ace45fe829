"""Every figure cosim draws keeps its text inside the canvas and labels every axis with a unit.

Unit convention (docs/figures.md): a numeric axis label names its unit in brackets
(``V [V]``, ``R at U0 [Ω]``); dimensionless quantities say ``(unitless)`` or ``(1)`` (the unit
one), time steps ``(steps)``, counts ``(count``
(``cycle (count)``, ``weight bits (count, 0 = analog)``), positions in an array ``(index``
(``row i (index, last row = sense end)``). An axis whose ticks are words (feature
names or labelled categories such as channel numbers) needs a label but no unit; a panel that
repeats the tick labels of a labelled panel (stacked panels sharing categories) needs none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.category import StrCategoryFormatter
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter

from cosim.device.modelfile import load_model
from cosim.paths import DEFAULT_MODEL

UNIT = re.compile(r"\[[^\]]+\]|\(unitless|\(1\)|\(count|\(index|\(steps")
NUMBER = re.compile(r"[-+\d.,e{}^×\s]*\d[-+\d.,e{}^×\s]*")


def _plain(label: str) -> str:
    return label.replace("\\mathdefault", "").replace("$", "").replace("−", "-").strip()


def categorical(axis: Any) -> bool:
    """An axis whose ticks name categories (strings, or fixed positions given their own labels
    with ``set_xticks(positions, labels)``), not values."""
    formatter, locator = axis.get_major_formatter(), axis.get_major_locator()
    if isinstance(formatter, (FixedFormatter, StrCategoryFormatter)):
        return True
    return isinstance(formatter, FuncFormatter) and isinstance(locator, FixedLocator)


def figure_problems(fig: Figure) -> list[str]:
    """Text outside the canvas, unlabelled axes, numeric axes whose label has no unit."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    problems = []
    drawn: dict[int, list[str]] = {}  # id(axis) -> labels of the ticks matplotlib draws
    hidden: set[int] = set()  # tick labels outside the view limits (created, never drawn)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            shown = axis._update_ticks()  # the ticks inside the view interval
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if tick not in shown:
                    hidden.update(id(label) for label in (tick.label1, tick.label2))
            drawn[id(axis)] = [label.get_text() for tick in shown for label in (tick.label1, tick.label2)
                               if label.get_visible() and label.get_text().strip()]
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip() or id(text) in hidden:
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            problems.append(f"text {text.get_text()!r} leaves the canvas ({box.x0:.0f}, {box.y0:.0f}, "
                            f"{box.x1:.0f}, {box.y1:.0f}) of ({width:.0f}, {height:.0f})")
    tight = fig.get_tightbbox(renderer)
    inches = fig.bbox_inches
    if tight.x0 < -0.02 or tight.y0 < -0.02 or tight.x1 > inches.x1 + 0.02 or tight.y1 > inches.y1 + 0.02:
        problems.append(f"tight bounding box {tight.bounds} exceeds the figure {inches.bounds}")
    def label_of(axis: Any) -> str:
        return axis.get_label().get_text().strip() if axis.get_label().get_visible() else ""

    # panels that repeat the tick labels of a labelled axis (shared x of stacked panels)
    labelled = {(name, tuple(drawn[id(axis)])) for ax in fig.axes
                for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)) if label_of(axis)}
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            ticks = drawn[id(axis)]
            if not ticks:
                continue
            label = label_of(axis)
            where = f"axes {ax.get_title() or ax.get_label() or id(ax)!r}, {name} axis"
            if not label and (name, tuple(ticks)) in labelled:
                continue
            if not label:
                problems.append(f"{where}: no label")
            elif categorical(axis):
                continue
            elif all(NUMBER.fullmatch(_plain(t)) for t in ticks) and not UNIT.search(label):
                problems.append(f"{where}: label {label!r} has no unit")
    return problems


# --- the check itself ------------------------------------------------------------------------


def test_check_finds_missing_units_and_cut_text() -> None:
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("voltage")
    fig.text(0.9, 0.5, "a long text that runs off the right edge")
    problems = figure_problems(fig)
    assert any("no unit" in p and "x axis" in p for p in problems)
    assert any("no label" in p and "y axis" in p for p in problems)
    assert any("leaves the canvas" in p for p in problems)
    good = Figure(figsize=(4, 3), layout="constrained")
    ax = good.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="V [V]", ylabel="ratio (unitless)")
    assert figure_problems(good) == []


# --- the project's figures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def fit_figures(model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Figure]:
    from cosim.device.synth import synth_iv
    from cosim.fit.fit import FitConfig, fit_file
    from cosim.fit.report import compare, report_figures

    path = tmp_path_factory.mktemp("fit") / "loops.csv"
    synth_iv(model, 12, 25, seed=9, dv=0.04).to_csv(path, index=False)
    result = fit_file(path, "iv", FitConfig(max_var_order=2))
    return report_figures(result, compare(result, seed=0))


@pytest.mark.parametrize("name", ["marginals.png", "autocorrelation.png", "correlation.png", "d2d.png", "iv.png"])
def test_fit_report_figures(fit_figures: dict[str, Figure], name: str) -> None:
    assert figure_problems(fit_figures[name]) == []


def test_fit_iv_draws_each_state_only_where_the_device_is_in_it(model) -> None:
    from cosim.device.model import r_from_resistance
    from cosim.fit.report import loop_state_segments

    r = [float(r_from_resistance(model, res)) for res in (80e3, 4.5e3, 60e3)]
    segments = loop_state_segments(model, -0.7, 0.75, -2.0, 1.5, *r)
    spans = [(state, float(u.min()), float(u.max())) for state, u, _ in segments]
    assert spans == [("HRS", -0.7, 0.0), ("LRS", -2.0, -0.7), ("LRS", 0.0, 0.75),
                     ("RESET", 0.75, model.umax), ("HRS", 0.0, 1.5)]
    reset = segments[3][2]
    lrs_at_ur = segments[2][2][-1]
    # the transition curve starts on the LRS curve and falls monotonically towards the new HRS
    assert reset[0] == pytest.approx(lrs_at_ur, rel=1e-12)
    assert np.all(np.diff(reset) < 0)


def test_device_plots(model) -> None:
    from cosim.device.plots import plot_feature_histograms, plot_iv_loops, plot_resistance_vs_cycle
    from cosim.device.synth import synth_cycles, synth_iv

    cycles = synth_cycles(model, 4, 6, seed=1)
    iv = synth_iv(model, 2, 2, seed=1, dv=0.05)
    figures = {"iv": plot_iv_loops(iv), "resistance": plot_resistance_vs_cycle(cycles),
               "histograms": plot_feature_histograms(cycles, model)}
    for name, fig in figures.items():
        assert figure_problems(fig) == [], name
    # cycles are whole numbers: no tick at 2.5 cycles
    ticks = figures["resistance"].axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_batch_report_figure() -> None:
    from cosim.batch.report import metric_figure

    table = pd.DataFrame({
        "r_wire": [0.5, 1.0, 2.0] * 2, "size": [32] * 3 + [64] * 3,
        "nf_mean": [0.01, 0.02, 0.04, 0.03, 0.06, 0.11], "nf_std": [0.001] * 6, "nf_count": [4] * 6,
    })
    fig = metric_figure(table, ["r_wire", "size"], "nf", "r_wire")
    assert figure_problems(fig) == []
    assert fig.axes[0].get_xlabel().endswith("[Ω]")


def test_demo_cycling_figure() -> None:
    from cosim.demo import plot_cycling

    n = np.arange(6)
    table = pd.DataFrame({"cycle": n})
    for f, base in (("HRS", 8e4), ("LRS", 4.5e3), ("US", -0.7), ("UR", 0.75)):
        table[f"{f}_python"] = base * (1 + 0.01 * n)
        table[f"{f}_spice"] = base * (1 + 0.01 * n)
    t = np.linspace(0, 6e-6, 600)
    v = 1.5 * np.sin(2 * np.pi * t / 1e-6)
    vec = {"time": t, "v(te)": v, "i(vsrc)": -v / 5e3}
    fig = plot_cycling(table, vec, [(k * 1e-6, (k + 1) * 1e-6) for k in range(6)])
    try:
        assert figure_problems(fig) == []
        for ax in fig.axes[:3]:
            ticks = ax.get_xticks()
            assert np.allclose(ticks, np.round(ticks)), ax.get_title()
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _saved_figure(monkeypatch: pytest.MonkeyPatch, draw: Any) -> Figure:
    """Run ``draw()`` (a function that saves a figure to a file) and return the figure it saved."""
    saved: list[Figure] = []
    original = Figure.savefig

    def record(self: Figure, *args: Any, **kwargs: Any) -> Any:
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    draw()
    assert len(saved) == 1
    return saved[0]


def test_ir_drop_figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cosim.crossbar import Crossbar, LinearCells
    from cosim.crossbar.probes import CellArrays, ir_drop_figure
    from cosim.crossbar.solver import simulate

    g = np.random.default_rng(4).uniform(1 / 75e3, 1 / 4.5e3, size=(8, 6))
    crossbar = Crossbar(LinearCells(g), r_row=2.0, r_col=3.0)
    cells = CellArrays.from_result(simulate(crossbar, save_nodes=True), crossbar)
    fig = _saved_figure(monkeypatch, lambda: ir_drop_figure(cells, tmp_path / "ir.png", title="8x6"))
    assert figure_problems(fig) == []


def test_library_iv_figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cosim.library import iv_figure

    fig = _saved_figure(monkeypatch, lambda: iv_figure("vteam", tmp_path / "iv.png", leg=2e-6))
    assert figure_problems(fig) == []


def test_s4d_figures() -> None:
    from cosim.s4d import parse_study_config, run_s4d_study
    from cosim.s4d.report import plot_errors, plot_kernels, plot_mdm

    result = run_s4d_study(parse_study_config({
        "length": 32, "layout": "channel", "variants": ["delta"], "devices": {"seeds": [0, 1]},
        "model": {"kind": "lin", "channels": 2, "state_size": 4},
    }))
    import matplotlib.pyplot as plt

    for name, fig in (("kernels", plot_kernels(result, "delta")), ("errors", plot_errors(result, "delta")),
                      ("mdm", plot_mdm(result))):
        try:
            assert figure_problems(fig) == [], name
        finally:
            plt.close(fig)
