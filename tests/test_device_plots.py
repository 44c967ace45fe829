"""Device figures are drawn from tidy frames and saved as real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from cosim.cli import app
from cosim.fileio import save_figure_atomic
from cosim.device import plots
from cosim.device.modelfile import load_model
from cosim.device.synth import synth_cycles, synth_iv
from cosim.paths import DEFAULT_MODEL


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


def test_iv_loop_figure_has_log_current_axis(model, tmp_path: Path) -> None:
    iv = synth_iv(model, 1, 2, seed=0)
    fig = plots.plot_iv_loops(iv)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.abs(iv[iv.cycle == 0]["I"]))
    path = save_figure_atomic(tmp_path / "iv.png", fig)
    img = imread(path)
    assert img.shape[0] > 100 and img.std() > 0


def test_histograms_overlay_model_marginals(model) -> None:
    table = synth_cycles(model, 8, 50, seed=1)
    fig = plots.plot_feature_histograms(table, model)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert len(ax.patches) > 10  # data histogram bars
        assert len(ax.lines) == 1  # model marginal
    marg = plots.model_marginals(model, n_devices=200, n_cycles=50)
    assert abs(np.mean(marg["HRS_ohm"]) - 4.88) < 0.05


def test_resistance_vs_cycle(model) -> None:
    table = synth_cycles(model, 3, 20, seed=2)
    fig = plots.plot_resistance_vs_cycle(table)
    assert fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].lines) == 6


def test_cli_plots(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["model", "plots", "--devices", "2", "--cycles", "2", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["feature_histograms.png", "iv_loops.png", "resistance_vs_cycle.png"]
