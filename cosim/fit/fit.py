"""Fit the generative device model (docs/device-model.md) to measured cycle tables or I–V loops.

Steps (each a function below, so that tests can check them one by one):

1. features per cycle ``y = [log10 HRS, US, LRS, UR]``; per-device location μ_d and scale σ_d
   (sample mean and sd, the D2D 8-vector of the device);
2. Γ per feature: a monotone polynomial (degree selectable, default 4) mapping N(0, 1)
   quantiles onto the quantiles of the pooled standardized data ``z = (y − μ_d)/σ_d``
   (least squares under the linear constraint Γ' ≥ δ on [−5, 5]);
3. latents ``x = Γ⁻¹(z)`` (vectorized: interpolation on a dense monotone grid, then Newton);
4. the latent VAR(p), fitted jointly on all devices by OLS on the stacked lagged design
   (rows whose lags cross a device boundary, a dropped or an excluded cycle are not used),
   the order chosen by an information criterion (AIC/BIC/HQIC as in statsmodels'
   ``VAR.select_order``, all orders compared on the same rows), the innovation covariance
   and its Cholesky factor L;
5. the D2D Gaussian mixture over the 8-vectors (μ_d, σ_d), K chosen by BIC over seeded
   restarts (:class:`sklearn.mixture.GaussianMixture`); an uncertain K (a BIC margin below
   10, or a best fit that only one restart found) is reported as a QC note;
6. from I–V loops also the I–V basis polynomials (P_LLRS degree 6, P_HHRS degree 5, no
   constant term) and the transition-curve parameters η and Umax (docs/device-model.md); from
   a cycle table these are taken from a base model (default: the shipped default model).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize
import scipy.stats

from cosim.errors import DataFileError, ModelFileError
from cosim.fit.extract import ExtractConfig, Segments, clean_samples, extract_features
from cosim.fit.qc import QCConfig, QCReport, check_cycle_table
from cosim.fit.readers import CYCLE_FEATURES, Format, Measurement, read_measurements

FEATURE_NAMES = ("HRS", "US", "LRS", "UR")
GAMMA_RANGE = 5.0
"""Γ is constrained monotone, and inverted, on [−GAMMA_RANGE, GAMMA_RANGE]."""


HrsRead = Literal["after_reset", "before_set"]


class FitError(DataFileError):
    """The data could not be fitted; ``qc`` holds the quality-control findings so far."""

    def __init__(self, message: str, qc: QCReport) -> None:
        super().__init__(message)
        self.qc = qc


@dataclass
class FitConfig:
    """Settings of the fit (all recorded in the model's provenance)."""

    gamma_degree: int = 4
    """Degree of Γ (1..4; the model file stores degree 4, lower degrees are zero-padded)."""
    max_var_order: int = 10
    ic: Literal["aic", "bic", "hqic"] = "aic"
    """Information criterion that picks the VAR order."""
    var_order: int | None = None
    """Force this VAR order instead of selecting one."""
    max_components: int = 4
    """Largest number K of D2D mixture components tried."""
    min_devices: int = 2
    seed: int = 0
    """Seed of the mixture fit (k-means initialisation) and of any subsampling."""
    gamma_quantiles: int = 2000
    hrs_read: HrsRead = "after_reset"
    """Which HRS a cycle-table row holds: ``after_reset`` (the read after the row's RESET,
    as testers and ``cosim synth`` write it; the model's vector n then takes the HRS of row
    n−1) or ``before_set`` (already the HRS the row's SET starts from)."""
    qc: QCConfig = field(default_factory=QCConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)


@dataclass
class FitResult:
    """The fitted model with everything needed to judge it."""

    model: Any  # cosim.device.modelfile.DeviceModel
    qc: QCReport
    kind: str
    table: pd.DataFrame
    """Rows that passed QC, as in the file: device, cycle, HRS_ohm, US_V, LRS_ohm, UR_V, line."""
    vectors: pd.DataFrame
    """The model's feature vectors built from ``table`` (HRS aligned, see align_vectors)."""
    features: np.ndarray
    """(rows, 4) y = [log10 HRS, US, LRS, UR] of ``vectors``."""
    latents: np.ndarray
    """(rows, 4) latents x = Γ⁻¹(z)."""
    device_stats: pd.DataFrame
    """Per device: mu_*, sigma_* (the D2D 8-vector)."""
    order_table: pd.DataFrame
    """Information criteria per VAR order."""
    mixture_table: pd.DataFrame
    """BIC per number of mixture components."""
    iv_fitted: bool
    segments: Segments | None = None
    iv_frame: pd.DataFrame | None = None


# --------------------------------------------------------------------------- features
def feature_matrix(table: pd.DataFrame) -> np.ndarray:
    """(rows, 4) features [log10 HRS (log10 Ω), US (V), LRS (Ω), UR (V)]."""
    y = table[list(CYCLE_FEATURES)].to_numpy(dtype=float).copy()
    y[:, 0] = np.log10(y[:, 0])
    return y


def device_codes(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(codes per row, unique device names in first-appearance order)."""
    codes, uniques = pd.factorize(table["device"], sort=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=str)


def location_scale(y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-device sample mean and sd (ddof = 1) of each feature: two (devices, 4) arrays."""
    frame = pd.DataFrame(y).groupby(codes, sort=True)
    return frame.mean().to_numpy(), frame.std(ddof=1).to_numpy()


def align_vectors(kept: pd.DataFrame, hrs_read: HrsRead, report: QCReport) -> pd.DataFrame:
    """Model feature vectors (order of docs/device-model.md) from QC-passed cycle-table rows.

    The model's vector n holds the HRS that cycle n starts from, then US_n, LRS_n, UR_n.
    With ``after_reset`` rows, that HRS is in row n−1 of the same device: the first cycle of
    each device and every cycle after a gap lack it and are left out (reported).
    """
    if hrs_read == "before_set":
        return kept
    dev = pd.factorize(kept["device"], sort=False)[0]
    cyc = kept["cycle"].to_numpy()
    has_prev = np.zeros(len(kept), dtype=bool)
    has_prev[1:] = (dev[1:] == dev[:-1]) & (cyc[1:] - cyc[:-1] == 1)
    vectors = kept.copy()
    hrs = kept["HRS_ohm"].to_numpy()
    shifted = np.full(len(kept), np.nan)
    shifted[1:] = hrs[:-1]
    vectors["HRS_ohm"] = shifted
    first = np.zeros(len(kept), dtype=bool)
    first[0] = len(kept) > 0
    first[1:] = dev[1:] != dev[:-1]
    n_first = int(first.sum())
    if n_first:
        report.add("info", None, None, f"the first usable cycle of each of {n_first} device(s) "
                   "has no HRS before its SET (HRS is read after each RESET): its US, LRS, UR "
                   "are not used", "excluded")
    for i in np.flatnonzero(~has_prev & ~first):
        report.add("info", kept["device"].iat[i], cyc[i], "the previous cycle is missing or "
                   "excluded, so the HRS this cycle starts from is unknown", "excluded",
                   line=kept["line"].iat[i] if "line" in kept else None)
    return vectors.loc[has_prev].reset_index(drop=True)


# --------------------------------------------------------------------------- Γ
def fit_gamma(z: np.ndarray, degree: int = 4, n_quantiles: int = 2000,
              delta: float = 1e-3) -> np.ndarray:
    """Monotone polynomial Γ (5 coefficients, highest power first) with Γ(Φ⁻¹(p)) ≈ Q_z(p).

    Quantile matching at ``n_quantiles`` probabilities; least squares subject to
    Γ'(x) ≥ ``delta`` on a grid over [−GAMMA_RANGE, GAMMA_RANGE] (SLSQP).
    """
    if not 1 <= degree <= 4:
        raise ValueError("Γ degree must be 1..4 (the model file stores degree 4)")
    z = z[np.isfinite(z)]
    m = int(min(n_quantiles, max(z.size, 2)))
    p = (np.arange(m) + 0.5) / m
    x = scipy.stats.norm.ppf(p)
    q = np.quantile(z, p)
    design = np.vander(x, degree + 1)  # highest power first
    grid = np.linspace(-GAMMA_RANGE, GAMMA_RANGE, 401)
    powers = np.arange(degree, 0, -1)
    deriv = np.column_stack([k * grid ** (k - 1) for k in powers] + [np.zeros_like(grid)])
    start, *_ = np.linalg.lstsq(design, q, rcond=None)
    if np.all(deriv @ start >= delta):
        coeffs = start
    else:
        solution = scipy.optimize.minimize(
            lambda c: np.sum((design @ c - q) ** 2), x0=np.eye(degree + 1)[-2],
            jac=lambda c: 2.0 * design.T @ (design @ c - q), method="SLSQP",
            constraints=[{"type": "ineq", "fun": lambda c: deriv @ c - delta,
                          "jac": lambda c: deriv}], options={"maxiter": 500, "ftol": 1e-12})
        coeffs = solution.x
    return np.concatenate([np.zeros(4 - degree), coeffs])


def invert_gamma(coeffs: np.ndarray, z: np.ndarray, newton_steps: int = 1) -> np.ndarray:
    """x with Γ(x) = z, vectorized; values beyond Γ(±GAMMA_RANGE) map to ±GAMMA_RANGE.

    Linear interpolation on a 20001-point grid (error ~h²·Γ''/8 < 1e-7), then Newton steps.
    """
    grid = np.linspace(-GAMMA_RANGE, GAMMA_RANGE, 20001)
    values = np.polyval(coeffs, grid)
    x = np.interp(z, values, grid)  # monotone on the grid by construction
    deriv = np.polyder(coeffs)
    inside = (z > values[0]) & (z < values[-1])
    for _ in range(newton_steps):
        step = (np.polyval(coeffs, x) - z) / np.polyval(deriv, x)
        x = np.where(inside, np.clip(x - step, -GAMMA_RANGE, GAMMA_RANGE), x)
    return x


# --------------------------------------------------------------------------- VAR
def lag_rows(devices: np.ndarray, cycles: np.ndarray, order: int) -> np.ndarray:
    """Row indices whose lags 1..order are the same device's cycles n−1..n−order."""
    n = devices.size
    ok = np.ones(n, dtype=bool)
    for k in range(1, order + 1):
        good = np.zeros(n, dtype=bool)
        good[k:] = (devices[k:] == devices[:-k]) & (cycles[k:] - cycles[:-k] == k)
        ok &= good
    return np.flatnonzero(ok)


def _moments(x: np.ndarray, rows: np.ndarray, order: int,
             chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X'X, X'Y, Y'Y of the stacked lagged design [x_{n−1} … x_{n−order}] → x_n."""
    d = x.shape[1]
    xtx = np.zeros((d * order, d * order))
    xty = np.zeros((d * order, d))
    yty = np.zeros((d, d))
    for start in range(0, rows.size, chunk):
        r = rows[start:start + chunk]
        design = np.concatenate([x[r - k] for k in range(1, order + 1)], axis=1)
        target = x[r]
        xtx += design.T @ design
        xty += design.T @ target
        yty += target.T @ target
    return xtx, xty, yty


def _ols(xtx: np.ndarray, xty: np.ndarray, yty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients B (X'X B = X'Y) and the residual sum of squares matrix."""
    if xtx.size == 0:
        return np.zeros((0, yty.shape[0])), yty
    beta = scipy.linalg.solve(xtx, xty, assume_a="pos")
    rss = yty - xty.T @ beta
    return beta, 0.5 * (rss + rss.T)


def select_var_order(x: np.ndarray, devices: np.ndarray, cycles: np.ndarray,
                     max_order: int) -> tuple[pd.DataFrame, tuple]:
    """AIC, BIC, HQIC of VAR(0..max_order) without intercept, all on the same rows.

    Same definitions as statsmodels ``VAR.select_order`` (``trend="n"``): with the ML residual
    covariance Σ̂ over T rows and k equations, AIC = ln|Σ̂| + 2pk²/T,
    BIC = ln|Σ̂| + ln(T)·pk²/T, HQIC = ln|Σ̂| + 2 ln(ln T)·pk²/T (Lütkepohl 2005, §4.3).

    Returns the table and the moments (X'X, X'Y, Y'Y, rows) of the VAR(max_order) design,
    from which :func:`var_from_moments` fits any order up to max_order on the same rows.
    """
    d = x.shape[1]
    rows = lag_rows(devices, cycles, max_order)
    if rows.size <= d * max_order + d:
        raise DataFileError(f"too few consecutive cycles for a VAR({max_order}) "
                            f"({rows.size} usable rows); lower --max-order")
    xtx, xty, yty = _moments(x, rows, max_order)
    t = rows.size
    moments = (xtx, xty, yty, t)
    records = []
    for p in range(max_order + 1):
        k = d * p
        _, rss = _ols(xtx[:k, :k], xty[:k], yty)
        _, logdet = np.linalg.slogdet(rss / t)
        free = p * d * d
        records.append({"order": p, "aic": logdet + 2.0 * free / t,
                        "bic": logdet + np.log(t) * free / t,
                        "hqic": logdet + 2.0 * np.log(np.log(t)) * free / t, "rows": t})
    return pd.DataFrame(records), moments


def var_from_moments(moments: tuple, order: int) -> tuple[np.ndarray, np.ndarray, int]:
    """VAR(order) from the moments of a larger design (the rows of the order selection).

    Same estimator as :func:`fit_var` on those rows: (lags, Σ_u with dof correction, rows).
    """
    xtx, xty, yty, t = moments
    d = yty.shape[0]
    k = d * order
    beta, rss = _ols(xtx[:k, :k], xty[:k], yty)
    sigma = rss / (t - k)
    lags = np.stack([beta[d * i:d * (i + 1)].T for i in range(order)]) if order \
        else np.zeros((0, d, d))
    return lags, sigma, int(t)


def fit_var(x: np.ndarray, devices: np.ndarray, cycles: np.ndarray,
            order: int) -> tuple[np.ndarray, np.ndarray, int]:
    """OLS VAR(order) on all rows with complete lags: (lags (p,4,4), Σ_u (4,4), rows).

    ``lags[i]`` multiplies x_{n−i−1}; Σ_u is the residual covariance with the degrees-of-
    freedom correction of statsmodels (divide by T − k·p).
    """
    d = x.shape[1]
    rows = lag_rows(devices, cycles, order)
    if rows.size <= d * order + d:
        raise DataFileError(f"too few consecutive cycles for a VAR({order})")
    xtx, xty, yty = _moments(x, rows, order)
    beta, rss = _ols(xtx, xty, yty)
    sigma = rss / (rows.size - d * order)
    lags = np.stack([beta[d * i:d * (i + 1)].T for i in range(order)]) if order \
        else np.zeros((0, d, d))
    return lags, sigma, int(rows.size)


# --------------------------------------------------------------------------- D2D
MIXTURE_RESTARTS = 5
"""Seeded restarts (seeds seed, seed+1, ...) of the mixture fit for every K; each restart
keeps the best of MIXTURE_INITS k-means++ starts, as one fit would."""
MIXTURE_INITS = 2
MIXTURE_SAME_OPTIMUM_BIC = 2.0
"""Restarts whose BIC is within this of the best one found the same optimum."""
MIXTURE_STRONG_BIC_MARGIN = 10.0
"""A BIC difference above this is 'very strong' evidence (Kass & Raftery 1995): a smaller
margin between the best and the next K is reported as a QC note."""


@dataclass
class MixtureChoice:
    """How the number K of D2D mixture components was chosen."""

    components: int
    """The chosen K (smallest BIC over all restarts)."""
    bic_margin: float
    """BIC of the next-best K minus BIC of the chosen K (inf when only one K was tried)."""
    k_by_restart: list[int]
    """The K each restart alone would have chosen (a single seeded fit, as fits used to be:
    local optima of EM make it vary with the seed even for clear clusters)."""
    restarts_at_best: int
    """Restarts that reached the chosen fit (BIC within MIXTURE_SAME_OPTIMUM_BIC of it)."""

    @property
    def stable(self) -> bool:
        """K is well determined: a strong BIC margin, and its best fit found by >= 2 restarts
        (so another set of seeds finds it too)."""
        return self.bic_margin >= MIXTURE_STRONG_BIC_MARGIN and self.restarts_at_best >= 2

    def note(self) -> str | None:
        """A QC note when K is uncertain (weak BIC margin, or the best fit found only once)."""
        problems = []
        if self.restarts_at_best < 2:
            problems.append("its best fit was found by only one of the seeded restarts, so "
                            "other seeds may choose another K (single restarts chose " + ", ".join(
                                f"K={k} {self.k_by_restart.count(k)}×"
                                for k in sorted(set(self.k_by_restart))) + ")")
        if self.bic_margin < MIXTURE_STRONG_BIC_MARGIN:
            problems.append(f"the BIC margin to the next K is only {self.bic_margin:.3g} "
                            f"(< {MIXTURE_STRONG_BIC_MARGIN:g})")
        if not problems:
            return None
        return (f"D2D mixture K = {self.components} is uncertain: " + "; ".join(problems)
                + "; the number of components is not well determined by these devices")


def fit_mixture(vectors: np.ndarray, max_components: int, seed: int,
                restarts: int = MIXTURE_RESTARTS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Gaussian mixture over the per-device 8-vectors, K by BIC over seeded restarts.

    Every K = 1..K_max is fitted ``restarts`` times (each the best of :data:`MIXTURE_INITS`
    k-means++ starts, seeds ``seed``, ``seed + 1``, ...); K is the one with the smallest BIC
    over all restarts, and the model is that best fit. The BIC table has, per K, the best and worst BIC over the restarts and
    how many restarts alone chose that K (``chosen_by``); :func:`mixture_choice` summarises
    it. The vectors are standardized before sklearn's fit (its ``reg_covar`` is absolute) and
    the means / covariances transformed back. Returns (weights (K,), means (8, K), Cholesky
    factors (K, 8, 8), BIC table).
    """
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # tiny matrices: threads only cost (shared machines)
        return _fit_mixture(GaussianMixture, vectors, max_components, seed, restarts)


def _fit_mixture(GaussianMixture: Any, vectors: np.ndarray, max_components: int, seed: int,
                 restarts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    n = vectors.shape[0]
    centre = vectors.mean(axis=0)
    scale = vectors.std(axis=0)
    scale = np.where(scale > 0, scale, np.maximum(np.abs(centre) * 1e-6, 1e-12))
    data = (vectors - centre) / scale
    k_max = int(max(1, min(max_components, n // 10)))
    bics = np.empty((k_max, restarts))
    fits: list[Any] = []
    for k in range(1, k_max + 1):
        best = None
        for r in range(restarts):
            gmm = GaussianMixture(n_components=k, covariance_type="full", n_init=MIXTURE_INITS,
                                  init_params="k-means++", random_state=seed + r,
                                  reg_covar=1e-4, max_iter=500)
            gmm.fit(data)
            bics[k - 1, r] = float(gmm.bic(data))
            if best is None or bics[k - 1, r] < best[0]:
                best = (bics[k - 1, r], gmm)
        fits.append(best[1])
    best_k = int(np.argmin(bics.min(axis=1))) + 1
    gmm = fits[best_k - 1]
    order = np.argsort(-gmm.weights_)
    weights = gmm.weights_[order] / gmm.weights_[order].sum()
    means = (gmm.means_[order] * scale + centre).T
    covs = gmm.covariances_[order] * np.outer(scale, scale)
    chols = np.stack([np.linalg.cholesky(c) for c in covs])
    chosen = np.argmin(bics, axis=0) + 1
    table = pd.DataFrame({
        "components": np.arange(1, k_max + 1),
        "bic": bics.min(axis=1),
        "bic_worst_restart": bics.max(axis=1),
        "chosen_by": [int(np.sum(chosen == k)) for k in range(1, k_max + 1)],
        "restarts_at_best": (bics <= bics.min(axis=1, keepdims=True)
                             + MIXTURE_SAME_OPTIMUM_BIC).sum(axis=1),
        "converged": [bool(f.converged_) for f in fits],
    })
    table["selected"] = table["components"] == best_k
    return weights, means, chols, table


def mixture_choice(table: pd.DataFrame) -> MixtureChoice:
    """Summary of a BIC table from :func:`fit_mixture`: chosen K, BIC margin, K per restart."""
    ordered = table.sort_values("bic")
    best = int(ordered["components"].iloc[0])
    margin = (float(ordered["bic"].iloc[1] - ordered["bic"].iloc[0]) if len(ordered) > 1
              else float("inf"))
    by_restart = [int(k) for k, n in zip(table["components"], table["chosen_by"])
                  for _ in range(int(n))]
    hits = int(ordered["restarts_at_best"].iloc[0])
    return MixtureChoice(best, margin, by_restart, hits)


# --------------------------------------------------------------------------- I–V
def fit_iv_basis(segments: Segments, u0: float, g_llrs: float | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """I–V basis polynomials from constant-state samples.

    Model: I(U; g) = C(U) + g·D(U), g = 1/R the state's static conductance at U0, with C, D
    polynomials of degree 6 without constant, C(U0) = 0 and D(U0) = U0 (so R = U0/I(U0)
    holds exactly). This is gauge-free; P_HHRS is the member with no U⁶ term
    (g_H = −c₆/d₆, degree 5 as the model file requires) and P_LLRS the member at
    ``g_llrs`` (default: the lowest observed LRS). Relative least squares.
    Returns (iv_llrs (6,), iv_hhrs (5,), info).
    """
    v, i, r = segments.constant_state()
    keep = np.isfinite(v) & np.isfinite(i) & np.isfinite(r) & (r > 0)
    v, i, g = v[keep], i[keep], 1.0 / r[keep]
    if v.size < 20:
        raise DataFileError("too few constant-state I–V samples to fit the I–V basis")
    weight = 1.0 / np.maximum(np.abs(i), 1e-3 * np.median(np.abs(i)))

    def solve(max_power: int) -> tuple[np.ndarray, np.ndarray]:
        powers = np.arange(2, max_power + 1)
        phi = np.column_stack([v ** k - u0 ** (k - 1) * v for k in powers])
        design = np.hstack([phi, g[:, None] * phi]) * weight[:, None]
        target = (i - g * v) * weight
        sol, *_ = np.linalg.lstsq(design, target, rcond=None)
        c_hi, d_hi = sol[:powers.size], sol[powers.size:]
        # full ascending coefficient vectors for powers 1..6
        c = np.zeros(6)
        dd = np.zeros(6)
        c[powers - 1], dd[powers - 1] = c_hi, d_hi
        c[0] = -np.sum(c_hi * u0 ** (powers - 1))
        dd[0] = 1.0 - np.sum(d_hi * u0 ** (powers - 1))
        return c, dd

    g_low = float(g_llrs) if g_llrs is not None else float(g.max())
    c, d = solve(6)
    g_high = -c[5] / d[5] if d[5] != 0 else np.inf
    degree6 = bool(np.isfinite(g_high) and -g_low < g_high < g_low and abs(g_high) < g_low)
    if not degree6:  # no usable U⁶ structure: both bases degree 5, HHRS at the highest HRS
        c, d = solve(5)
        g_high = float(g.min())
    llrs = c + g_low * d
    hhrs = c + g_high * d
    powers = np.vstack([v ** k for k in range(1, 7)])  # (6, samples), ascending powers
    residual = (c @ powers + g * (d @ powers) - i) * weight
    info = {"g_llrs_S": g_low, "g_hhrs_S": float(g_high), "samples": int(v.size),
            "degree6_identified": degree6, "rel_rms": float(np.sqrt(np.mean(residual ** 2)))}
    return llrs[::-1].copy(), hhrs[:5][::-1].copy(), info


def _basis_current(llrs: np.ndarray, hhrs: np.ndarray, u0: float, u: np.ndarray,
                   resistance: np.ndarray) -> np.ndarray:
    """I(U; r(R)) of the model with basis polynomials (highest power first, no constant)."""
    pl = np.polyval(np.append(llrs, 0.0), u)
    ph = np.polyval(np.append(hhrs, 0.0), u)
    g_l = np.polyval(np.append(llrs, 0.0), u0) / u0
    g_h = np.polyval(np.append(hhrs, 0.0), u0) / u0
    r = (g_l - 1.0 / resistance) / (g_l - g_h)
    return (1.0 - r) * pl + r * ph


def fit_transition(segments: Segments, llrs: np.ndarray, hhrs: np.ndarray, u0: float,
                   eta0: float = 3.0, seed: int = 0,
                   max_samples: int = 50_000) -> tuple[float, float, dict[str, float]]:
    """η and Umax of the partial-RESET transition curve (docs/device-model.md) by least squares.

    For UR < U < Umax the model current is I_tr(U) = c + (I_LRS(UR) − c)·((Umax−U)/(Umax−UR))^η
    with c = I(HRS_next, Umax); for U ≥ Umax it is I(HRS_next, U). Relative residuals.
    """
    t = segments.transition()
    ok = np.isfinite(t["V"]) & np.isfinite(t["I"]) & (t["V"] > t["UR"])
    data = {k: v[ok] for k, v in t.items()}
    if data["V"].size < 10:
        raise DataFileError("too few transition samples (RESET branch) to fit η and Umax")
    if data["V"].size > max_samples:
        pick = np.random.default_rng(seed).choice(data["V"].size, max_samples, replace=False)
        data = {k: v[pick] for k, v in data.items()}
    v_top = float(np.max(segments.v_max))
    i_peak = _basis_current(llrs, hhrs, u0, data["UR"], data["LRS"])
    i_after = _basis_current(llrs, hhrs, u0, data["V"], data["HRS"])
    scale = np.maximum(np.abs(data["I"]), 1e-9)

    def residual(params: np.ndarray) -> np.ndarray:
        umax, eta = params
        c = _basis_current(llrs, hhrs, u0, np.full_like(data["V"], umax), data["HRS"])
        frac = np.clip((umax - data["V"]) / np.maximum(umax - data["UR"], 1e-6), 0.0, None)
        pred = np.where(data["V"] < umax, c + (i_peak - c) * frac ** eta, i_after)
        return (pred - data["I"]) / scale

    lo_u = float(np.quantile(data["UR"], 0.99)) + 1e-3
    hi_u = max(v_top, lo_u + 1e-3)
    best = None
    for start_u in np.linspace(lo_u, hi_u, 6)[1:]:
        sol = scipy.optimize.least_squares(residual, x0=[start_u, eta0],
                                           bounds=([lo_u, 0.3], [hi_u, 12.0]))
        if best is None or sol.cost < best.cost:
            best = sol
    umax, eta = (float(v) for v in best.x)
    rms = float(np.sqrt(np.mean(best.fun ** 2)))
    return umax, eta, {"samples": int(data["V"].size), "rel_rms": rms,
                       "umax_at_bound": bool(np.isclose(umax, hi_u) or np.isclose(umax, lo_u))}


# --------------------------------------------------------------------------- driver
def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fit_table(table: pd.DataFrame, config: FitConfig | None = None,
              report: QCReport | None = None, segments: Segments | None = None,
              base_model: Any = None, kind: str = "cycles",
              provenance: dict[str, Any] | None = None) -> FitResult:
    """Fit the model to a canonical cycle table (QC is run here).

    BLAS and OpenMP run single-threaded during the fit: the matrices are small, and on a
    shared machine multi-threaded pools made the mixture fit ten times slower.
    """
    from threadpoolctl import threadpool_limits

    report = report if report is not None else QCReport()
    with threadpool_limits(limits=1):
        try:
            return _fit_table(table, config, report, segments, base_model, kind, provenance)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as exc:
            raise FitError(f"numerical failure while fitting ({exc}); the data may be "
                           "degenerate (see the QC entries)", report) from None
        except FitError:
            raise
        except DataFileError as exc:
            raise FitError(str(exc), report) from None
        except ModelFileError as exc:
            raise FitError(f"the fitted model is not valid: {exc}", report) from None


def _fit_table(table: pd.DataFrame, config: FitConfig | None, report: QCReport | None,
               segments: Segments | None, base_model: Any, kind: str,
               provenance: dict[str, Any] | None) -> FitResult:
    from cosim.device.modelfile import DeviceModel, load_model
    from cosim.paths import DEFAULT_MODEL

    config = config or FitConfig()
    rows, report = check_cycle_table(table, config.qc, report)
    if rows.empty:
        raise FitError("no usable rows after quality control "
                            f"({len(report)} QC entries; first: "
                       f"{report.entries[0].detail if report.entries else 'none'})", report)
    kept = align_vectors(rows, config.hrs_read, report)
    codes, names = device_codes(kept)
    if names.size < config.min_devices:
        raise FitError(
            f"{names.size} usable device(s) after quality control; the device-to-device "
            f"statistics need at least {config.min_devices} (see the QC entries)", report)
    y = feature_matrix(kept)
    mu, sigma = location_scale(y, codes)
    z = (y - mu[codes]) / sigma[codes]
    gamma = np.stack([fit_gamma(z[:, j], config.gamma_degree, config.gamma_quantiles)
                      for j in range(4)])
    x = np.column_stack([invert_gamma(gamma[j], z[:, j]) for j in range(4)])
    cycles = kept["cycle"].to_numpy()
    max_order = config.max_var_order if config.var_order is None else config.var_order
    orders, moments = select_var_order(x, codes, cycles, max_order)
    order = (int(orders.loc[orders[config.ic].idxmin(), "order"]) if config.var_order is None
             else config.var_order)
    if order == 0:
        report.add("info", None, None, f"{config.ic.upper()} found no cycle-to-cycle memory "
                   "(order 0); a VAR(1) is fitted because the model needs p >= 1", "kept")
    order = max(order, 1)
    # all orders were compared on the rows with max_order lags; the chosen one is fitted on
    # the same rows (statsmodels refits on p more rows per series: a negligible difference)
    lags, sigma_u, var_rows = var_from_moments(moments, order)
    orders["selected"] = orders["order"] == order
    var_chol = np.linalg.cholesky(sigma_u)
    weights, means, chols, mixtures = fit_mixture(np.hstack([mu, sigma]),
                                                  config.max_components, config.seed)
    choice = mixture_choice(mixtures)
    note = choice.note()
    if note is not None:
        report.add("info", None, None, note, "kept")
    base = base_model if base_model is not None else load_model(DEFAULT_MODEL)
    iv_info: dict[str, Any] = {"source": "base model (cycle-table input has no I–V data)",
                               "base_model": base.name}
    llrs, hhrs, umax, eta = base.iv_llrs, base.iv_hhrs, base.umax, base.eta
    iv_fitted = False
    if segments is not None:
        llrs, hhrs, basis_info = fit_iv_basis(segments, config.extract.u0)
        umax, eta, trans_info = fit_transition(segments, llrs, hhrs, config.extract.u0,
                                               seed=config.seed)
        iv_info = {"source": "fitted to the I–V loops", "basis": basis_info,
                   "transition": trans_info}
        iv_fitted = True
    stats = pd.DataFrame(np.hstack([mu, sigma]),
                         columns=[f"mu_{f}" for f in FEATURE_NAMES]
                         + [f"sigma_{f}" for f in FEATURE_NAMES])
    stats.insert(0, "device", names)
    prov = {
        "source": "cosim fit",
        "fitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in asdict(config).items()},
        "seed": config.seed,
        "input_kind": kind,
        "devices": int(names.size),
        "rows_used": int(len(rows)),
        "vectors_used": int(len(kept)),
        "hrs_read": config.hrs_read,
        "var_order": order,
        "var_order_criterion": config.ic if config.var_order is None else "fixed",
        "var_rows": var_rows,
        "mixture_components": int(weights.size),
        "mixture_restarts": len(choice.k_by_restart),
        "mixture_bic_margin": (round(choice.bic_margin, 3) if np.isfinite(choice.bic_margin)
                               else None),
        "mixture_k_by_restart": choice.k_by_restart,
        "mixture_restarts_at_best": choice.restarts_at_best,
        "iv": iv_info,
        "qc_counts": {f"{r.kind}/{r.action}": int(r.entries)
                      for r in report.counts().itertuples(index=False)},
    }
    prov.update(provenance or {})
    model = DeviceModel(
        d2d_weights=weights, d2d_means=means, d2d_chol=chols, var_lags=lags, var_chol=var_chol,
        gamma=gamma, iv_llrs=llrs, iv_hhrs=hhrs, u0=config.extract.u0, umax=umax, eta=eta,
        read_temperature_K=base.read_temperature_K, read_bandwidth_Hz=base.read_bandwidth_Hz,
        name=str(prov.get("name", "fitted")), provenance=_jsonable(prov))
    return FitResult(model=model, qc=report, kind=kind, table=rows, vectors=kept,
                     features=y, latents=x,
                     device_stats=stats, order_table=orders, mixture_table=mixtures,
                     iv_fitted=iv_fitted, segments=segments)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def fit_measurement(measurement: Measurement, config: FitConfig | None = None,
                    base_model: Any = None) -> FitResult:
    """Fit a model to a file already read by :func:`read_measurements`."""
    config = config or FitConfig()
    provenance = {"input_file": measurement.path.name,
                  "ignored_columns": list(measurement.ignored_columns),
                  "input_sha256": (_file_digest(measurement.path)
                                   if measurement.path.is_file() else None),
                  "columns": {c.header: f"{c.canonical} (×{c.factor:g})"
                              for c in measurement.columns},
                  "name": f"fitted:{measurement.path.stem}"}
    if measurement.kind == "cycles":
        return fit_table(measurement.frame, config, base_model=base_model, kind="cycles",
                         provenance=provenance)
    table, segments, report = extract_features(measurement.frame, config.extract,
                                               glitch_factor=config.qc.glitch_v_factor)
    result = fit_table(table, config, report=report, segments=segments,
                       base_model=base_model, kind="iv", provenance=provenance)
    result.iv_frame = clean_samples(measurement.frame, config.qc.glitch_v_factor)
    return result


def fit_file(path: str | Path, fmt: Format = "auto", config: FitConfig | None = None,
             base_model: Any = None) -> FitResult:
    """Read ``path`` and fit; raises :class:`DataFileError` for unusable files."""
    return fit_measurement(read_measurements(path, fmt), config, base_model)
