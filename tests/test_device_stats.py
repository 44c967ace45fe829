"""Validation (docs/device-model.md): 512 devices × 3000 cycles of −2 V then +1.5 V with the default model.

Tolerances come from sampling error, estimated from this run with the device as the unit of
resampling (cycles of one device are correlated, devices are independent):

* standard error SE of every statistic over the 512 devices (formulas below);
* the table itself is an estimate from an independent run of the same size, so the difference
  of two estimates has standard error √2·SE;
* accepted: |ours − table| ≤ 4·√2·SE + half a unit of the table's last printed digit (its
  rounding). With ~50 comparisons, a 4-SE bound keeps the chance of a false alarm below 1 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.device.model import DeviceArray
from cosim.device.modelfile import load_model
from cosim.paths import DEFAULT_MODEL

N_DEV, N_CYC, SEED = 512, 3000, 2024

# feature: (mean, within-device sd, sd of device means, q01, q99, acf1, acf10, acf50), digits
TABLE = {
    "HRS": ((4.882, 0.190, 0.073, 4.40, 5.42, 0.133, 0.098, 0.00), (3, 3, 3, 2, 2, 3, 3, 2)),
    "US": ((-0.682, 0.065, 0.043, -0.938, -0.546, 0.172, 0.131, 0.00), (3, 3, 3, 3, 3, 3, 3, 2)),
    "LRS": ((4551, 183, 185, 4024, 5309, 0.491, 0.366, 0.070), (0, 0, 0, 0, 0, 3, 3, 3)),
    "UR": ((0.736, 0.037, 0.033, 0.635, 0.892, 0.320, 0.276, 0.046), (3, 3, 3, 3, 3, 3, 3, 3)),
}
STATS = ("mean", "within_sd", "sd_of_means", "q01", "q99", "acf1", "acf10", "acf50")


@pytest.fixture(scope="module")
def run() -> dict[str, np.ndarray]:
    model = load_model(DEFAULT_MODEL)
    d = DeviceArray(model, N_DEV, seed=SEED)
    out = {k: np.empty((N_DEV, N_CYC)) for k in ("HRS", "US", "LRS", "UR", "I_LRS", "I_HRS")}
    for c in range(N_CYC):
        out["US"][:, c] = d.us  # threshold that the −2 V level crosses in this cycle
        d.apply(-2.0)
        out["I_LRS"][:, c] = d.read()
        out["UR"][:, c] = d.ur_thr
        d.apply(1.5)
        out["I_HRS"][:, c] = d.read()
    out["LRS"] = model.u0 / out["I_LRS"]
    out["HRS"] = np.log10(model.u0 / out["I_HRS"])
    return out


def _acf_per_device(a: np.ndarray, lag: int) -> np.ndarray:
    c = a - a.mean(axis=1, keepdims=True)
    return (c[:, lag:] * c[:, :-lag]).sum(axis=1) / (c * c).sum(axis=1)


def _quantile_and_se(a: np.ndarray, q: float) -> tuple[float, float]:
    """Pooled quantile; SE = SE(F̂(x_q)) / f(x_q), F̂ clustered by device, f by a difference."""
    xq = float(np.quantile(a, q))
    frac_below = (a <= xq).mean(axis=1)
    se_f = frac_below.std(ddof=1) / math.sqrt(a.shape[0])
    lo, hi = np.quantile(a, [max(q - 0.005, 0.0), min(q + 0.005, 1.0)])
    density = 0.01 / (hi - lo)
    return xq, se_f / density


def _stats_with_se(a: np.ndarray) -> dict[str, tuple[float, float]]:
    n = a.shape[0]
    dev_means = a.mean(axis=1)
    dev_sds = a.std(axis=1, ddof=1)
    gen = np.random.default_rng(0)  # bootstrap of device means for the sd of device means
    boot = [dev_means[gen.integers(0, n, n)].std(ddof=1) for _ in range(400)]
    res = {
        "mean": (a.mean(), dev_means.std(ddof=1) / math.sqrt(n)),
        "within_sd": (dev_sds.mean(), dev_sds.std(ddof=1) / math.sqrt(n)),
        "sd_of_means": (dev_means.std(ddof=1), float(np.std(boot, ddof=1))),
        "q01": _quantile_and_se(a, 0.01),
        "q99": _quantile_and_se(a, 0.99),
    }
    for lag in (1, 10, 50):
        per = _acf_per_device(a, lag)
        res[f"acf{lag}"] = (per.mean(), per.std(ddof=1) / math.sqrt(n))
    return res


@pytest.mark.slow
@pytest.mark.parametrize("feature", list(TABLE))
def test_design_table(run: dict[str, np.ndarray], feature: str) -> None:
    targets, digits = TABLE[feature]
    got = _stats_with_se(run[feature])
    failures = []
    for name, target, nd in zip(STATS, targets, digits):
        value, se = got[name]
        tol = 4.0 * math.sqrt(2.0) * se + 0.5 * 10.0 ** (-nd)
        if not abs(value - target) <= tol:
            failures.append(f"{feature} {name}: {value:.5g} vs {target} (tol {tol:.3g}, SE {se:.3g})")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("key, target", [("I_LRS", 44.2e-6), ("I_HRS", 2.66e-6)])
def test_median_read_currents(run: dict[str, np.ndarray], key: str, target: float) -> None:
    median, se = _quantile_and_se(run[key], 0.5)
    assert abs(median - target) <= 4.0 * math.sqrt(2.0) * se + 0.05e-6


@pytest.mark.slow
def test_latent_lag0_correlations(run: dict[str, np.ndarray]) -> None:
    """Within-device lag-0 correlation of HRS/US and LRS/UR has the sign and size of the
validation table in docs/device-model.md
    (−0.23, +0.19 in the latent; Γ is near-linear so the features keep them)."""

    def within_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ca, cb = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return (ca * cb).sum(1) / np.sqrt((ca * ca).sum(1) * (cb * cb).sum(1))

    # column c holds US_c, LRS_c, UR_c of cycle c and the HRS reached by its reset, HRS_{c+1}
    pairs = (((run["HRS"][:, :-1], run["US"][:, 1:]), -0.23), ((run["LRS"], run["UR"]), 0.19))
    for (a, b), target in pairs:
        per = within_corr(a, b)
        se = per.std(ddof=1) / math.sqrt(per.size)
        assert abs(per.mean() - target) <= 4 * math.sqrt(2) * se + 0.03  # + Γ nonlinearity
