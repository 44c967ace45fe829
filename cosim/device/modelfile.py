"""Versioned JSON model file of the generative ReRAM device model (docs/device-model.md).

The file is plain JSON, one object, whose keys mirror the fields of :class:`DeviceModel`
(schema version 1)::

    schema_version   1
    name             free text
    features         ["HRS", "US", "LRS", "UR"]            (order of every 4-vector)
    hrs_log10        true: the HRS feature is modelled in log10(ohm)
    d2d_weights      K mixture weights (sum 1)
    d2d_means        8 x K: column k = mean of [mu(4); sigma(4)] of component k
    d2d_chol         K x 8 x 8 lower-triangular Cholesky factors L_k
    var_lags         p x 4 x 4: var_lags[i] = A_{i+1}; var_lags[0] multiplies x_{n-1}
    var_chol         4 x 4 lower-triangular innovation factor L
    gamma            4 x 5 polynomial coefficients per feature, highest power first
    iv_llrs          6 coefficients of P_LLRS(U) (powers 6..1, no constant), A
    iv_hhrs          5 coefficients of P_HHRS(U) (powers 5..1, no constant), A
    u0               read voltage, V (0.2)
    umax             full-RESET voltage, V (1.46)
    eta              transition curve exponent (3.0567)
    read_temperature_K, read_bandwidth_Hz   read-noise settings
    provenance       object: source, licence, converter, ...

The VAR order ``p`` is ``len(var_lags)``; the lag order is explicit (newest lag first),
unlike the reference JSON which stores ``[L | A_p | ... | A_1]``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosim.fileio import write_json_atomic
from cosim.errors import ModelFileError

SCHEMA_VERSION = 1
FEATURES = ("HRS", "US", "LRS", "UR")
N_FEAT = 4
GAMMA_CHECK_RANGE = (-4.0, 4.0)
#: default order J of the truncated MA form: keeps >= 0.98 of the stationary latent variance
#: of every feature for the default model (LRS is the slowest: 0.988 at J = 50, 0.983 at 45)
DEFAULT_MA_ORDER = 50


@dataclass(eq=False)
class DeviceModel:
    """All parameters of the generative device model. Arrays are float64 numpy arrays."""

    d2d_weights: np.ndarray  # (K,)
    d2d_means: np.ndarray  # (8, K)
    d2d_chol: np.ndarray  # (K, 8, 8)
    var_lags: np.ndarray  # (p, 4, 4), var_lags[i] = A_{i+1}
    var_chol: np.ndarray  # (4, 4)
    gamma: np.ndarray  # (4, 5)
    iv_llrs: np.ndarray  # (6,)
    iv_hhrs: np.ndarray  # (5,)
    u0: float = 0.2
    umax: float = 1.46
    eta: float = 3.0567
    read_temperature_K: float = 300.0
    read_bandwidth_Hz: float = 1e8
    hrs_log10: bool = True
    features: tuple[str, ...] = FEATURES
    name: str = "unnamed"
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name in ("d2d_weights", "d2d_means", "d2d_chol", "var_lags", "var_chol", "gamma",
                     "iv_llrs", "iv_hhrs"):
            setattr(self, name, _as_float_array(name, getattr(self, name)))
        for name in ("u0", "umax", "eta", "read_temperature_K", "read_bandwidth_Hz"):
            setattr(self, name, _as_float(name, getattr(self, name)))
        self.features = tuple(self.features)
        validate(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceModel):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    # ----------------------------------------------------------------- derived
    @property
    def var_order(self) -> int:
        """VAR order p."""
        return int(self.var_lags.shape[0])

    @property
    def n_components(self) -> int:
        """Number K of D2D mixture components."""
        return int(self.d2d_weights.shape[0])

    def companion(self) -> np.ndarray:
        """4p x 4p companion matrix of the VAR (state [x_n; x_{n-1}; ...])."""
        return companion_matrix(self.var_lags)

    def llrs_poly(self) -> np.ndarray:
        """P_LLRS coefficients with the zero constant appended (for np.polyval)."""
        return np.append(self.iv_llrs, 0.0)

    def hhrs_poly(self) -> np.ndarray:
        """P_HHRS coefficients with the zero constant appended (for np.polyval)."""
        return np.append(self.iv_hhrs, 0.0)

    def ma_coefficients(self, order: int) -> np.ndarray:
        """(order+1, 4, 4) array of Ψ_k·L, k = 0..order, of the truncated MA form."""
        return ma_coefficients(self.var_lags, self.var_chol, order)

    def stationary_covariance(self) -> np.ndarray:
        """4 x 4 stationary covariance of the latent VAR process x_n."""
        return stationary_covariance(self.var_lags, self.var_chol)

    # ------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (schema version 1)."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "features": list(self.features),
            "hrs_log10": bool(self.hrs_log10),
            "d2d_weights": self.d2d_weights.tolist(),
            "d2d_means": self.d2d_means.tolist(),
            "d2d_chol": self.d2d_chol.tolist(),
            "var_lags": self.var_lags.tolist(),
            "var_chol": self.var_chol.tolist(),
            "gamma": self.gamma.tolist(),
            "iv_llrs": self.iv_llrs.tolist(),
            "iv_hhrs": self.iv_hhrs.tolist(),
            "u0": self.u0,
            "umax": self.umax,
            "eta": self.eta,
            "read_temperature_K": self.read_temperature_K,
            "read_bandwidth_Hz": self.read_bandwidth_Hz,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model") -> "DeviceModel":
        """Build and validate a model from a parsed JSON object; errors name the field."""
        if not isinstance(data, dict):
            raise ModelFileError(f"{source}: top level must be a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ModelFileError(
                f"{source}: field 'schema_version' is {version!r}; this cosim reads version {SCHEMA_VERSION}")
        required = ["d2d_weights", "d2d_means", "d2d_chol", "var_lags", "var_chol", "gamma",
                    "iv_llrs", "iv_hhrs", "u0", "umax", "eta"]
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelFileError(f"{source}: missing field(s) {', '.join(missing)}")
        known = set(required) | {"schema_version", "name", "features", "hrs_log10",
                                 "read_temperature_K", "read_bandwidth_Hz", "provenance"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFileError(f"{source}: unknown field(s) {', '.join(unknown)}")
        kwargs = {k: data[k] for k in known if k in data and k != "schema_version"}
        if "features" in kwargs:
            kwargs["features"] = tuple(kwargs["features"])
        try:
            return cls(**kwargs)
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None


# ----------------------------------------------------------------- validation
def _as_float_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelFileError(f"field '{name}' is not a numeric array") from None
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"field '{name}' contains non-finite values")
    return arr


def _as_float(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ModelFileError(f"field '{name}' must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise ModelFileError(f"field '{name}' must be finite")
    return out


def _shape(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise ModelFileError(f"field '{name}' has shape {arr.shape}, expected {shape}")


def _lower(name: str, mat: np.ndarray) -> None:
    upper = np.triu(mat, k=1)
    if np.any(upper != 0.0):
        raise ModelFileError(f"field '{name}' must be lower triangular (non-zero above diagonal)")
    if np.any(np.diag(mat) <= 0.0):
        raise ModelFileError(f"field '{name}' must have a positive diagonal (Cholesky factor)")


def companion_matrix(lags: np.ndarray) -> np.ndarray:
    """Companion matrix of x_n = sum_i A_i x_{n-i} with lags[i] = A_{i+1}."""
    p, d, _ = lags.shape
    comp = np.zeros((d * p, d * p))
    comp[:d, :] = np.concatenate(list(lags), axis=1)
    comp[d:, :-d] = np.eye(d * (p - 1))
    return comp


def ma_coefficients(lags: np.ndarray, chol: np.ndarray, order: int) -> np.ndarray:
    """Ψ_k·L for k = 0..order, where Ψ_0 = I and Ψ_k = Σ_{i=1..min(k,p)} A_i Ψ_{k-i}.

    Then ``x_n = Σ_{k=0..min(n, order)} (Ψ_k L) ε_{n-k}``, exact for n <= order.
    """
    if order < 0:
        raise ValueError("MA order must be >= 0")
    p, d, _ = lags.shape
    psi = [np.eye(d)]
    for k in range(1, order + 1):
        acc = np.zeros((d, d))
        for i in range(1, min(k, p) + 1):
            acc += lags[i - 1] @ psi[k - i]
        psi.append(acc)
    return np.stack([ps @ chol for ps in psi])


def stationary_covariance(lags: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Stationary covariance of x_n (discrete Lyapunov equation on the companion form)."""
    from scipy.linalg import solve_discrete_lyapunov

    p, d, _ = lags.shape
    if p == 0:
        return chol @ chol.T
    comp = companion_matrix(lags)
    q = np.zeros_like(comp)
    q[:d, :d] = chol @ chol.T
    return solve_discrete_lyapunov(comp, q)[:d, :d]


def ma_variance_captured(lags: np.ndarray, chol: np.ndarray, order: int) -> np.ndarray:
    """Per-feature fraction of the stationary latent variance kept by the MA(order) form."""
    coeffs = ma_coefficients(lags, chol, order)
    kept = np.einsum("kij,kij->i", coeffs, coeffs)
    return kept / np.diag(stationary_covariance(lags, chol))


def var_spectral_radius(lags: np.ndarray) -> float:
    """Largest eigenvalue modulus of the VAR companion matrix (< 1 means stable)."""
    if lags.shape[0] == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(companion_matrix(lags)))))


def gamma_is_monotone(coeffs: np.ndarray, lo: float = -4.0, hi: float = 4.0) -> bool:
    """True when the polynomial (highest power first) is strictly increasing on [lo, hi]."""
    deriv = np.polyder(coeffs)
    grid = np.linspace(lo, hi, 2001)
    if np.any(np.polyval(deriv, grid) <= 0.0):
        return False
    roots = np.roots(deriv) if deriv.size > 1 else np.array([])
    real = roots[np.abs(roots.imag) < 1e-12].real
    inside = real[(real > lo) & (real < hi)]
    # a real root of the derivative inside the range is only allowed as a touching point of
    # a positive derivative, which the grid check cannot exclude; reject it to be strict
    return inside.size == 0


def validate(model: DeviceModel) -> None:
    """Check shapes, triangular factors, VAR stability, monotone Γ; raise ModelFileError."""
    if tuple(model.features) != FEATURES:
        raise ModelFileError(f"field 'features' must be {list(FEATURES)}, got {list(model.features)}")
    w = model.d2d_weights
    if w.ndim != 1 or w.size < 1:
        raise ModelFileError(f"field 'd2d_weights' must be a non-empty vector, got shape {w.shape}")
    k = w.size
    if np.any(w < 0.0) or abs(w.sum() - 1.0) > 1e-6:
        raise ModelFileError(f"field 'd2d_weights' must be non-negative and sum to 1 (sum {w.sum():.6g})")
    _shape("d2d_means", model.d2d_means, (2 * N_FEAT, k))
    _shape("d2d_chol", model.d2d_chol, (k, 2 * N_FEAT, 2 * N_FEAT))
    for i in range(k):
        _lower(f"d2d_chol[{i}]", model.d2d_chol[i])
    lags = model.var_lags
    if lags.ndim != 3 or lags.shape[1:] != (N_FEAT, N_FEAT):
        raise ModelFileError(f"field 'var_lags' has shape {lags.shape}, expected (p, 4, 4)")
    _shape("var_chol", model.var_chol, (N_FEAT, N_FEAT))
    _lower("var_chol", model.var_chol)
    rho = var_spectral_radius(lags)
    if rho >= 1.0:
        raise ModelFileError(f"field 'var_lags': VAR is not stable (companion spectral radius {rho:.4f} >= 1)")
    _shape("gamma", model.gamma, (N_FEAT, 5))
    for i, name in enumerate(FEATURES):
        if not gamma_is_monotone(model.gamma[i], *GAMMA_CHECK_RANGE):
            raise ModelFileError(f"field 'gamma[{i}]' ({name}) is not increasing on [-4, 4]")
    _shape("iv_llrs", model.iv_llrs, (6,))
    _shape("iv_hhrs", model.iv_hhrs, (5,))
    for name in ("u0", "umax", "eta", "read_temperature_K", "read_bandwidth_Hz"):
        if getattr(model, name) <= 0.0:
            raise ModelFileError(f"field '{name}' must be positive")
    g_l = np.polyval(model.llrs_poly(), model.u0) / model.u0
    g_h = np.polyval(model.hhrs_poly(), model.u0) / model.u0
    if not g_l > g_h:
        raise ModelFileError("fields 'iv_llrs'/'iv_hhrs': need P_LLRS(u0) > P_HHRS(u0)")
    if not isinstance(model.provenance, dict):
        raise ModelFileError("field 'provenance' must be a JSON object")


# ----------------------------------------------------------------- file I/O
def load_model(path: str | os.PathLike[str]) -> DeviceModel:
    """Read and validate a model file; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return DeviceModel.from_dict(data, source=str(path))


def save_model(model: DeviceModel, path: str | os.PathLike[str]) -> None:
    """Validate and write a model file atomically."""
    validate(model)
    write_json_atomic(path, model.to_dict())


# ----------------------------------------------------------------- Synaptogen import
SYNAPTOGEN_KEYS = ("HHRS", "LLRS", "η", "U₀", "Umax", "μDtD", "LDtD", "γ", "wk")


def import_synaptogen(json_path: str | os.PathLike[str], var_order: int = 10) -> DeviceModel:
    """Convert the published Synaptogen parameter JSON into a :class:`DeviceModel`.

    Layout of the source (as loaded row-major): ``μDtD`` 8 x K, ``LDtD`` 8 x 8K with
    ``L_k = LDtD[:, 8k:8k+8]``, ``VAR_00p`` 4 x 4(p+1) = ``[L | A_p | ... | A_1]``,
    ``LLRS``/``HHRS`` highest power first including a zero constant term.
    """
    path = Path(json_path)
    try:
        src = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    missing = [k for k in SYNAPTOGEN_KEYS if k not in src]
    var_key = f"VAR_{var_order:03d}"
    if var_key not in src:
        missing.append(var_key)
    if missing:
        raise ModelFileError(f"{path}: missing Synaptogen field(s) {', '.join(missing)}")

    def arr(key: str) -> np.ndarray:
        try:
            return np.asarray(src[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise ModelFileError(f"{path}: field '{key}' is not numeric") from None

    means = arr("μDtD")
    if means.ndim != 2 or means.shape[0] != 8:
        raise ModelFileError(f"{path}: field 'μDtD' has shape {means.shape}, expected (8, K)")
    k = means.shape[1]
    ldtd = arr("LDtD")
    if ldtd.shape != (8, 8 * k):
        raise ModelFileError(f"{path}: field 'LDtD' has shape {ldtd.shape}, expected (8, {8 * k})")
    chol = np.stack([ldtd[:, 8 * i: 8 * i + 8] for i in range(k)])
    var = arr(var_key)
    if var.shape != (4, 4 * (var_order + 1)):
        raise ModelFileError(f"{path}: field '{var_key}' has shape {var.shape}, expected (4, {4 * (var_order + 1)})")
    blocks = [var[:, 4 * j: 4 * j + 4] for j in range(var_order + 1)]
    var_chol = blocks[0]
    lags = np.stack(blocks[1:][::-1])  # source: A_p ... A_1 -> ours: A_1 ... A_p
    llrs, hhrs = arr("LLRS"), arr("HHRS")
    for key, poly, n in (("LLRS", llrs, 7), ("HHRS", hhrs, 6)):
        if poly.shape != (n,) or poly[-1] != 0.0:
            raise ModelFileError(f"{path}: field '{key}' must have {n} coefficients ending in a zero constant")
    provenance = {
        "source": "Synaptogen default_params.json (T. Hennen et al., 'Synaptogen: a cross-domain "
                  "generative device model for large-scale neuromorphic circuit design', IEEE TED 2024, "
                  "arXiv:2404.06344), repository thennen/Synaptogen",
        "licence": "MIT, Copyright (c) 2024 Tyler Hennen and contributors",
        "converter": "cosim.device.modelfile.import_synaptogen",
        "source_file": path.name,
        "var_key": var_key,
        "note": "VAR lags reordered from [L | A_p ... A_1] to explicit A_1 ... A_p; "
                "I-V polynomials stored without their zero constant term",
    }
    try:
        return DeviceModel(
            d2d_weights=arr("wk"), d2d_means=means, d2d_chol=chol, var_lags=lags, var_chol=var_chol,
            gamma=arr("γ"), iv_llrs=llrs[:-1], iv_hhrs=hhrs[:-1], u0=float(src["U₀"]),
            umax=float(src["Umax"]), eta=float(src["η"]), name="synaptogen-default",
            provenance=provenance)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: converted model invalid: {exc}") from None
