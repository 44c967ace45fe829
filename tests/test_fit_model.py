"""Fit building blocks (Γ, its inverse, joint VAR, order selection, mixture) and a fit on a
cycle table made by a different process than the shipped model (VAR(3), two D2D components)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.api import VAR

from cosim.device.model import feature_sequences
from cosim.device.modelfile import gamma_is_monotone, load_model, stationary_covariance
from cosim.fit.fit import (FitConfig, fit_gamma, fit_table, fit_var, invert_gamma, lag_rows,
                           select_var_order, var_from_moments)
from cosim.fit.report import autocorrelation, feature_statistics
from cosim.paths import DEFAULT_MODEL


def test_gamma_recovers_a_known_polynomial_and_inverts() -> None:
    true = load_model(DEFAULT_MODEL).gamma[1]  # US: the most skewed Γ of the default model
    x = np.random.default_rng(1).standard_normal(1_000_000)
    fitted = fit_gamma(np.polyval(true, x), degree=4)
    grid = np.linspace(-3, 3, 61)
    # sd of the sample quantile at |x| = 3 (p = 0.00135, 1e6 draws) is ~0.005 in z; the
    # polynomial carries the tail noise of all extreme quantiles: allow 0.02
    assert np.max(np.abs(np.polyval(fitted, grid) - np.polyval(true, grid))) < 0.02
    back = invert_gamma(fitted, np.polyval(fitted, grid))
    np.testing.assert_allclose(back, grid, atol=1e-9)


def test_gamma_is_monotone_even_for_bimodal_data() -> None:
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(-1.5, 0.3, 50_000), rng.normal(1.5, 0.3, 50_000)])
    for degree in (1, 2, 3, 4):
        coeffs = fit_gamma((z - z.mean()) / z.std(), degree=degree)
        assert coeffs.shape == (5,)
        assert np.all(coeffs[: 4 - degree] == 0.0)  # lower degrees are zero-padded
        assert gamma_is_monotone(coeffs, -5.0, 5.0)


def _var_series(lags: list[np.ndarray], chol: np.ndarray, n: int, rng: np.random.Generator,
                burn: int = 200) -> np.ndarray:
    d = chol.shape[0]
    x = np.zeros((n + burn, d))
    eps = rng.standard_normal((n + burn, d)) @ chol.T
    for t in range(n + burn):
        x[t] = eps[t] + sum(a @ x[t - i - 1] for i, a in enumerate(lags) if t - i - 1 >= 0)
    return x[burn:]


def test_var_and_criteria_equal_statsmodels_on_one_device() -> None:
    rng = np.random.default_rng(3)
    lags = [np.array([[0.4, 0.1], [0.0, 0.3]]), np.array([[0.2, 0.0], [0.1, -0.2]])]
    x = _var_series(lags, np.array([[1.0, 0.0], [0.3, 0.8]]), 3000, rng)
    dev = np.zeros(len(x), dtype=np.int64)
    cyc = np.arange(len(x))
    ours, moments = select_var_order(x, dev, cyc, 5)
    theirs = VAR(x).select_order(5, trend="n").ics
    for ic in ("aic", "bic", "hqic"):
        # statsmodels starts at order 1 when there is no trend term
        np.testing.assert_allclose(ours[ic].to_numpy()[1:], theirs[ic], rtol=1e-10, atol=1e-12)
    coefs, sigma, _ = fit_var(x, dev, cyc, 2)
    ref = VAR(x).fit(2, trend="n")
    np.testing.assert_allclose(coefs, ref.coefs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma, ref.sigma_u, rtol=1e-10)
    # the fit from the selection's moments is the same estimator on the selection's rows
    lags5, sigma5, _ = fit_var(x, dev, cyc, 5)
    lags_m, sigma_m, _ = var_from_moments(moments, 5)
    np.testing.assert_allclose(lags_m, lags5, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(sigma_m, sigma5, rtol=1e-10)


def test_lags_never_cross_devices_or_gaps() -> None:
    dev = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    cyc = np.array([0, 1, 2, 3, 0, 1, 3, 4, 5])
    np.testing.assert_array_equal(lag_rows(dev, cyc, 1), [1, 2, 3, 5, 7, 8])
    np.testing.assert_array_equal(lag_rows(dev, cyc, 2), [2, 3, 8])


def test_joint_var_equals_stacked_statsmodels_design() -> None:
    """The joint fit over devices is OLS on the stacked per-device lagged designs."""
    rng = np.random.default_rng(4)
    lags = [np.array([[0.5, 0.0], [0.2, 0.3]])]
    series = [_var_series(lags, np.eye(2), 400, rng) + 0.0 for _ in range(3)]
    x = np.vstack(series)
    dev = np.repeat(np.arange(3), 400)
    cyc = np.tile(np.arange(400), 3)
    coefs, _, rows = fit_var(x, dev, cyc, 1)
    assert rows == 3 * 399
    ys = np.vstack([s[1:] for s in series])
    xs = np.vstack([s[:-1] for s in series])
    beta, *_ = np.linalg.lstsq(xs, ys, rcond=None)
    np.testing.assert_allclose(coefs[0], beta.T, rtol=1e-9)


# ---------------------------------------------------------------- a different process
def _other_process(n_dev: int, n_cyc: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """VAR(3) latents (strong lag-3 memory), Γ = identity, two well-separated D2D clusters."""
    rng = np.random.default_rng(seed)
    a1 = np.diag([0.25, 0.15, 0.3, 0.2])
    a1[2, 3] = 0.1
    a2 = np.diag([0.0, 0.0, 0.1, 0.0])
    a3 = np.diag([0.35, 0.3, 0.25, 0.4])
    corr = np.array([[1, -0.4, 0, 0], [-0.4, 1, 0, 0], [0, 0, 1, 0.3], [0, 0, 0.3, 1.0]])
    lags = np.stack([a1, a2, a3])
    chol0 = np.linalg.cholesky(corr)
    # scale the innovations so that the stationary latent variance is 1 per feature
    scale = 1.0 / np.sqrt(np.diag(stationary_covariance(lags, chol0)))
    chol = np.linalg.cholesky(np.diag(scale) @ corr @ np.diag(scale))
    scale2 = 1.0 / np.sqrt(np.diag(stationary_covariance(lags, chol)))
    chol = np.diag(scale2) @ chol
    comp = (rng.random(n_dev) < 0.3).astype(int)  # 30 % in cluster 1
    centre = np.array([[5.3, -1.0, 2500.0, 1.0, 0.12, 0.05, 120.0, 0.03],
                       [4.6, -0.5, 6000.0, 0.6, 0.25, 0.09, 300.0, 0.05]])
    spread = np.array([0.05, 0.03, 150.0, 0.03, 0.01, 0.005, 15.0, 0.003])
    vec = centre[comp] + spread * rng.standard_normal((n_dev, 8))
    x = np.stack([_var_series(list(lags), chol, n_cyc, rng) for _ in range(n_dev)])
    y = vec[:, None, :4] + vec[:, None, 4:] * x
    table = pd.DataFrame({
        "device": np.repeat(np.arange(n_dev), n_cyc).astype(str),
        "cycle": np.tile(np.arange(n_cyc), n_dev),
        "HRS_ohm": 10 ** y[..., 0].ravel(), "US_V": y[..., 1].ravel(),
        "LRS_ohm": y[..., 2].ravel(), "UR_V": y[..., 3].ravel()})
    table["line"] = np.arange(len(table)) + 2
    return table, {"lags": lags, "chol": chol, "weights": np.bincount(comp, minlength=2) / n_dev}


@pytest.mark.slow
def test_fit_recovers_a_different_process() -> None:
    table, truth = _other_process(n_dev=160, n_cyc=800, seed=7)
    result = fit_table(table, FitConfig(max_var_order=8, ic="bic", hrs_read="before_set",
                                        seed=1))
    model = result.model
    # order: BIC picks exactly the generating order 3 (lag 3 carries ~0.3 of memory)
    assert model.var_order == 3
    np.testing.assert_allclose(model.var_lags, truth["lags"], atol=0.03)
    np.testing.assert_allclose(model.var_chol @ model.var_chol.T,
                               truth["chol"] @ truth["chol"].T, atol=0.03)
    # two D2D clusters found with the right weights
    assert model.n_components == 2
    np.testing.assert_allclose(np.sort(model.d2d_weights), np.sort(truth["weights"]), atol=0.02)
    # statistics of the fitted model's data match the process (same devices × cycles)
    y = feature_sequences(model, 11, np.arange(160), 800)
    sim = pd.DataFrame({"device": np.repeat(np.arange(160), 800).astype(str),
                        "cycle": np.tile(np.arange(800), 160),
                        "HRS_ohm": 10 ** y[..., 0].ravel(), "US_V": y[..., 1].ravel(),
                        "LRS_ohm": y[..., 2].ravel(), "UR_V": y[..., 3].ravel()})
    data_stats = feature_statistics(table, lags=(1, 3, 10))
    model_stats = feature_statistics(sim, lags=(1, 3, 10))
    # means: device-to-device sampling error of two independent sets of 160 devices, 4 sd
    # of the difference of the cluster mixture means
    sd_means = data_stats["sd_device_means"]
    assert np.all(np.abs(data_stats["mean"] - model_stats["mean"]) < 4 * np.sqrt(2 / 160) * sd_means)
    np.testing.assert_allclose(model_stats["within_sd"], data_stats["within_sd"], rtol=0.15)
    np.testing.assert_allclose(model_stats["sd_device_means"], sd_means, rtol=0.25)
    for col in ("acf1", "acf3", "acf10"):
        np.testing.assert_allclose(model_stats[col], data_stats[col], atol=0.04)
    codes = table["device"].astype(int).to_numpy()
    acf3 = autocorrelation(np.log10(table[["HRS_ohm"]].to_numpy()), codes,
                           table["cycle"].to_numpy(), [3])
    assert acf3[0, 0] > 0.3  # the lag-3 memory the order selection had to find is real


def test_degenerate_data_gives_a_clear_error() -> None:
    """Four features that are one and the same series: the VAR design is singular."""
    from cosim.errors import DataFileError

    rng = np.random.default_rng(0)
    n, d = 40, 4
    x = rng.normal(size=n * d)
    table = pd.DataFrame({"device": np.repeat(np.arange(d), n).astype(str),
                          "cycle": np.tile(np.arange(n), d), "HRS_ohm": 10 ** (4.9 + 0.2 * x),
                          "US_V": -0.7 + 0.06 * x, "LRS_ohm": 4500 + 180 * x,
                          "UR_V": 0.74 + 0.04 * x, "line": np.arange(n * d) + 2})
    with pytest.raises(DataFileError, match="numerical failure|numerically singular"):
        fit_table(table, FitConfig(max_var_order=2))
