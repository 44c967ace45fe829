"""Rendering of the generative ReRAM Verilog-A model (no simulator needed)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from cosim.device import rng
from cosim.device.model import draw_d2d
from cosim.device.modelfile import DEFAULT_MA_ORDER, load_model, ma_variance_captured
from cosim.errors import CosimError, NetlistError
from cosim.paths import DEFAULT_MODEL, PROJECT_ROOT
from cosim.spice.render import format_number
from golden import assert_same_text_and_numbers
from cosim.veriloga import (DEFAULT_VA, RenderOptions, instance_line_params, instance_params,
                            render_reram, template_context)

MODEL = load_model(DEFAULT_MODEL)


def test_committed_rendering_is_current():
    """veriloga/reram_default.va is what the template makes of the default model (numbers
    compared with a tolerance: their last printed digit may differ on another CPU)."""
    assert_same_text_and_numbers(render_reram(MODEL), DEFAULT_VA.read_text(encoding="utf-8"),
                                 DEFAULT_VA.name)


def test_default_order_captures_98_percent_of_variance():
    captured = ma_variance_captured(MODEL.var_lags, MODEL.var_chol, DEFAULT_MA_ORDER)
    assert captured.min() >= 0.98
    assert RenderOptions().order == DEFAULT_MA_ORDER


def test_integer_literals_fit_in_31_bits():
    text = render_reram(MODEL)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    # integer literals: digit runs not part of a real literal (no '.', 'e' next to them)
    ints = [int(m.group(0)) for m in re.finditer(r"(?<![\w.])\d+(?![\w.])", code)]
    assert ints and max(ints) <= 2147483647


def test_ma_constants_are_the_models_coefficients():
    """Every Ψ_k·L entry of the model appears in the text, and the number of lag blocks is J+1."""
    order = 7
    text = render_reram(MODEL, RenderOptions(order=order))
    coeffs = MODEL.ma_coefficients(order)
    for k in range(order + 1):
        for f in range(4):
            for j in range(4):
                if coeffs[k, f, j] != 0.0:
                    assert f"({format_number(float(coeffs[k, f, j]))})*e{j}" in text
    # two latent blocks (a-side and b-side), each with J+1 lag blocks
    assert len(re.findall(r"if \(na >= \d+\)", text)) == order + 1
    assert len(re.findall(r"if \(nb >= \d+\)", text)) == order + 1


def test_rng_limbs_reproduce_the_multiplier():
    ctx = template_context(MODEL)
    for limbs, const in ((ctx["rng"]["C1"], rng.MIX_C1), (ctx["rng"]["C2"], rng.MIX_C2)):
        c0, c1, c2 = limbs
        assert c0 + (c1 << 15) + (c2 << 30) == const
        # the limb product in the template equals x*c mod 2^31
        for x in (0, 1, 12345, 2**31 - 1, 987654321):
            assert rng.mul31_limbs(x, const) == (x * const) % 2**31


def test_latch_switch_changes_nodes():
    with_latch = render_reram(MODEL, RenderOptions(order=2, latch=True))
    without = render_reram(MODEL, RenderOptions(order=2, latch=False))
    assert "electrical ia, ib, fur, flrs, fus, fhrs;" in with_latch
    assert "electrical ia" not in without and "V(fhrs)" not in without


@pytest.mark.parametrize("bad", [
    RenderOptions(module="bad name"), RenderOptions(order=-1), RenderOptions(tau=0.0),
    RenderOptions(dgate=float("nan")),
])
def test_bad_options_refused(bad):
    with pytest.raises((CosimError, NetlistError)):
        render_reram(MODEL, bad)


def test_instance_params_share_the_python_d2d_draw():
    ids = np.arange(12).reshape(3, 4) + 100
    params = instance_params(MODEL, 5, ids, lrs0=1)
    ref = draw_d2d(MODEL, 5, ids.ravel())
    assert params["mu_lrs"].shape == (3, 4)
    np.testing.assert_array_equal(params["mu_hrs"].ravel(), ref.mu[:, 0])
    np.testing.assert_array_equal(params["sg_ur"].ravel(), ref.sigma[:, 3])
    np.testing.assert_array_equal(params["devid"], ids)
    assert (params["lrs0"] == 1).all() and (params["cycle0"] == 0).all()
    line = instance_line_params(params, (1, 2))
    assert line["devid"] == 106 and isinstance(line["seed"], int) and isinstance(line["mu_us"], float)


@pytest.mark.parametrize("kwargs", [dict(device_ids=np.array([-1])), dict(device_ids=np.array([2**31])),
                                    dict(device_ids=np.array([1]), lrs0=2),
                                    dict(device_ids=np.array([], dtype=int))])
def test_instance_params_refuse_bad_input(kwargs):
    with pytest.raises(CosimError):
        instance_params(MODEL, 0, **kwargs)


def test_cli_writes_file_and_reports_errors(tmp_path):
    out = tmp_path / "m.va"
    cmd = [sys.executable, "-m", "cosim.cli", "va", "-J", "3", "--module", "myreram", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert_same_text_and_numbers(out.read_text(), render_reram(MODEL, RenderOptions(order=3, module="myreram")),
                                 "subprocess rendering")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1}')
    target = tmp_path / "never.va"
    done = subprocess.run([sys.executable, "-m", "cosim.cli", "va", "--model", str(bad), "-o", str(target)],
                          capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 2
    assert "missing field" in done.stderr and "Traceback" not in done.stderr
    assert not target.exists() and list(tmp_path.glob(".never*")) == []
