"""The S4D study with compensation: honest tables (compensation column, unstable and clipped
flags, means over stable seeds), write-verify settings from the study file, DAC balancing,
trajectory reads, figures that fit their canvas, and `cosim s4d`'s progress and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.errors import CosimError
from cosim.s4d import ADC, DAC, calibrate_converters, ideal_matvec, init_s4d_lin, run_recurrence
from cosim.s4d.config import load_study_config, parse_study_config
from cosim.s4d.ideal import S4DLayer, balance_states, dac_range_bits
from cosim.s4d.metrics import effective_eigenvalues
from cosim.s4d.report import plot_errors, plot_kernels, plot_mdm, write_report
from cosim.s4d.study import ClipMonitor, run_s4d_study, study_work_units

SMALL = {"length": 24, "variants": ["full", "delta"], "layout": "channel", "seed": 3,
         "model": {"kind": "lin", "channels": 2, "state_size": 4}, "devices": {"count": 2},
         "compensation": {"methods": ["none", "gain", "predistort"]}}


@pytest.fixture(scope="module")
def study():
    labels: list[str] = []
    result = run_s4d_study(parse_study_config(SMALL), labels.append)
    return result, labels


def test_compensation_rows_side_by_side(study):
    result, labels = study
    summary = result.summary
    assert list(summary.columns[:8]) == ["variant", "case", "compensation", "seed", "backend", "channel",
                                         "unstable", "clipped"]
    by_case = summary.groupby("case").compensation.unique().to_dict()
    assert set(by_case["ideal_nowire"]) == {"none"} and set(by_case["devices_model"]) == {"none"}
    for case in ("ideal_wires", "devices_wires", "devices_mdm"):
        assert set(by_case[case]) == {"none", "gain", "predistort"}
    table = result.table()
    assert {"compensation", "n", "n_unstable", "clipped"} <= set(table.columns)
    # compensation removes the wire error of exact conductances
    wires = table[(table.case == "ideal_wires")].set_index(["variant", "compensation", "channel"]).sort_index()
    for variant in ("full", "delta"):
        raw = wires.loc[(variant, "none")].output_error_net
        assert (wires.loc[(variant, "gain")].output_error_net < raw).all()
        assert (wires.loc[(variant, "predistort")].output_error_net < 1e-4 * raw).all()
    assert len(labels) == study_work_units(parse_study_config(SMALL))
    # write-verify figures of every programmed array, with bias, spread and pulses
    programming = result.programming
    assert set(programming.compensation) == {"none", "predistort"}
    assert {"rel_error_mean", "rel_error_sd", "pulses_mean", "failures"} <= set(programming.columns)
    assert (programming.rel_error_mean.abs() < 0.005).all()
    costs = result.compensation
    assert set(costs.compensation) == {"gain", "predistort"} and (costs.reads > 0).all()


def test_unstable_rows_are_counted_and_left_out_of_means(study):
    result, _ = study
    summary = result.summary.copy()
    rows = summary.index[(summary.case == "devices_wires") & (summary.compensation == "none") & (summary.channel == 0)]
    summary.loc[rows[0], ["unstable", "kernel_rel_l2"]] = [True, 1e6]  # one diverging seed
    honest = type(result)(result.config, summary, result.kernels, result.ideal_kernel)
    table = honest.table()
    row = table[(table.case == "devices_wires") & (table.compensation == "none") & (table.channel == 0)
                & (table.variant == summary.loc[rows[0], "variant"])].iloc[0]
    assert row.n == 2 and row.n_unstable == 1
    assert row.kernel_rel_l2 == pytest.approx(summary.loc[rows[1], "kernel_rel_l2"])  # the stable seed only
    # flags agree with the margins in every row
    real = result.summary[result.summary.backend != "ngspice"]
    np.testing.assert_array_equal(real.unstable, real.stability_margin < 0)


def test_full_variant_test_layer_every_channel_stable_or_flagged():
    """Test model, full variant, programmed devices, 1 Ω wires, channel layout: a channel whose
    margin is negative is flagged, and the mean of its kernel error ignores it. (The biased
    first-in-band write-verify makes slow full-variant channels diverge.)"""
    config = parse_study_config({"length": 64, "variants": ["full"], "layout": "channel", "mdm": False,
                                 "devices": {"seeds": [0], "centred": False}, "compensation": {"methods": ["none"]}})
    result = run_s4d_study(config)
    rows = result.summary[result.summary.case == "devices_model"]
    assert rows.unstable.any()
    real = result.summary[result.summary.backend != "ngspice"]
    assert (real.unstable == (real.stability_margin < 0)).all()
    table = result.table()
    flagged = table[(table.case == "devices_model") & (table.n_unstable == table.n)]
    assert flagged.kernel_rel_l2.isna().all()


def test_clip_monitor_flags_dac_and_adc_full_scale():
    dac = DAC(full_scale=np.array([1.0, 1.0]), v_read=0.2)
    adc = ADC(bits=8, full_scale=0.1)
    monitor = ClipMonitor(ideal_matvec, dac, adc, 2)
    matrices = np.stack([np.eye(3) * 0.1, np.eye(3) * 0.1])
    monitor(matrices, dac.to_volts(np.array([[0.5, 0.0, 0.0], [0.2, 0.1, 0.0]])))
    assert not monitor.flags.any()
    monitor(matrices, dac.to_volts(np.array([[0.5, 0.0, 0.0], [3.0, 0.0, 0.0]])))  # channel 1 clips
    assert list(monitor.flags) == [False, True]
    big = ClipMonitor(lambda m, v: 10 * v, DAC(), adc, 2)
    big(matrices, np.full((2, 3), 0.05))
    assert big.flags.all()  # ADC full scale reached


def test_balance_states_keeps_kernel_and_uses_the_range():
    layer = S4DLayer(init_s4d_lin(2, 8, dt_min=1e-3, dt_max=1e-2, seed=0))
    u = np.random.default_rng(0).standard_normal((2, 128))
    for variant in ("full", "delta"):
        program = layer.crossbar_program(variant)
        balanced, scales = balance_states(program, u)
        assert np.all(scales >= 1.0 - 1e-12)
        np.testing.assert_allclose(run_recurrence(ideal_matvec, balanced, u), run_recurrence(ideal_matvec, program, u),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.abs(effective_eigenvalues(balanced)), np.abs(effective_eigenvalues(program)), rtol=1e-9)
        before = dac_range_bits(program, u, calibrate_converters(program, u)[0])
        after = dac_range_bits(balanced, u, calibrate_converters(balanced, u)[0])
        assert np.nanmean(after) < np.nanmean(before) - 1.0  # states use more of the range
        # one scale per complex mode: the larger component of every mode spans the channel's range
        pairs = np.nanmin(after[:, :-1].reshape(after.shape[0], -1, 2), axis=-1)
        assert np.nanmax(pairs) <= np.log2(1.1) + 1e-9


def test_study_file_sets_every_write_verify_field_and_reports_dac_range():
    data = {**SMALL, "variants": ["delta"], "dac_bits": 8, "dac_balance": True, "read_inputs": "trajectory",
            "devices": {"count": 1, "tolerance": 0.04, "set_voltage": -1.9, "reset_start": 0.45, "reset_step": 0.02,
                        "fine_step": 0.004, "centred": False, "max_pulses": 200, "max_attempts": 4, "read_noise": True},
            "compensation": {"methods": ["none"]}, "mdm": False}
    config = parse_study_config(data)
    pc = config.program_config()
    assert (pc.tolerance, pc.set_voltage, pc.reset_start, pc.reset_step, pc.fine_step, pc.centred, pc.max_pulses,
            pc.max_attempts, pc.read_noise) == (0.04, -1.9, 0.45, 0.02, 0.004, False, 200, 4, True)
    result = run_s4d_study(config)
    dac = result.dac["delta"]
    assert dac["unused_bits_after"] < dac["unused_bits_before"]
    assert dac["effective_bits_after"] > dac["effective_bits_before"]
    uniform = run_s4d_study(parse_study_config({**data, "read_inputs": "uniform"}))
    nf_t = result.summary[result.summary.case == "ideal_wires"].nf.iloc[0]
    nf_u = uniform.summary[uniform.summary.case == "ideal_wires"].nf.iloc[0]
    assert nf_t != pytest.approx(nf_u, rel=1e-3)  # trajectory inputs load the array differently


def _inside_canvas(figure) -> bool:
    figure.canvas.draw()
    box = figure.get_tightbbox(figure.canvas.get_renderer())
    width, height = figure.get_size_inches()
    return box.x0 >= -0.01 and box.y0 >= -0.01 and box.x1 <= width + 0.01 and box.y1 <= height + 0.01


def test_figures_fit_their_canvas_and_label_units(study, tmp_path):
    import matplotlib.pyplot as plt

    result, _ = study
    for figure in (plot_errors(result, "delta"), plot_kernels(result, "full"), plot_mdm(result)):
        assert _inside_canvas(figure)
        for axis in figure.axes:
            if axis.get_ylabel():
                assert "(" in axis.get_ylabel()  # a unit, "(1)" for ratios
        plt.close(figure)
    errors = plot_errors(result, "delta")
    assert all(axis.get_yscale() == "log" for axis in errors.axes)
    assert errors.legends and not any(axis.get_legend() for axis in errors.axes)  # legend outside the bars
    plt.close(errors)
    mdm = plot_mdm(result)
    labels = [t.get_text() for t in mdm.axes[0].get_xticklabels()]
    assert all("seed" in label for label in labels)  # seeds are categories, not a numeric axis
    assert not any(line.get_linestyle() != "None" and len(line.get_xdata()) > 1 for line in mdm.axes[0].lines)
    plt.close(mdm)
    written = {p.name for p in write_report(result, tmp_path / "r")}
    assert {"programming.csv", "failures.csv", "compensation.csv", "mdm.csv"} <= written
    mdm_csv = pd.read_csv(tmp_path / "r" / "mdm.csv")
    assert {"compensation", "mdm_effect", "kernel_change"} <= set(mdm_csv.columns)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Write-verify" in report and "## Compensation cost" in report


def test_cli_shows_progress_and_missing_model_file_is_one_line(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text('length = 8\nvariants = ["delta"]\nlayout = "channel"\nmdm = false\n'
                      '[model]\nkind = "lin"\nchannels = 1\nstate_size = 2\n[devices]\ncount = 1\n')
    result = CliRunner().invoke(app, ["s4d", "--config", str(config), "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "s4d done" in result.output and "wrote" in result.output
    config.write_text('[devices]\nmodel_file = "nowhere/model.json"\n')
    bad = CliRunner().invoke(app, ["s4d", "--config", str(config), "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    line = [t for t in bad.output.splitlines() if t.startswith("error:")][0]
    assert "devices.model_file" in line and str(tmp_path / "nowhere" / "model.json") in line
    assert "study file's folder" in line
    with pytest.raises(CosimError, match="compensation.methods"):
        load_study_config(None) and parse_study_config({"compensation": {"methods": ["none", "none"]}})
