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

Types are strict: numbers must be JSON numbers (``"0.2"`` is refused), ``hrs_log10`` a JSON
boolean (``"false"`` is refused), ``name`` a string. Besides shapes, validation refuses

* a VAR whose truncated MA(J) form, at the default J = :data:`DEFAULT_MA_ORDER`, keeps less
  than :data:`MIN_MA_VARIANCE_CAPTURED` of any feature's stationary latent variance (spectral
  radius too close to 1: the Verilog-A model would lose the cycle-to-cycle variation);
* a D2D mixture that draws σ ≤ 0 (any feature), or an LRS that can reach 0 Ω
  (:func:`d2d_invalid`), for more than :data:`MAX_INVALID_D2D` of the devices (the rarer
  draws are redrawn, see :func:`cosim.device.model.draw_d2d`).
"""

from __future__ import annotations

import json
import os
import warnings
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
#: a model file is refused when the MA(DEFAULT_MA_ORDER) form keeps less than this fraction of
#: the stationary latent variance of some feature (the default model keeps 0.988)
MIN_MA_VARIANCE_CAPTURED = 0.9
#: a model file is refused when more than this fraction of D2D draws (mixture-weighted) is
#: invalid (σ <= 0 or an LRS reaching 0 Ω, see d2d_invalid; published Synaptogen: about 1e-4)
MAX_INVALID_D2D = 0.01
#: the LRS of a valid device stays positive for latents x >= -D2D_LATENT_RANGE (in sd)
D2D_LATENT_RANGE = 5.0
#: deepest JSON nesting read from a model file (the schema needs 3)
MAX_JSON_DEPTH = 32


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
        if not isinstance(self.name, str):
            raise ModelFileError(f"field 'name' must be a string, got {_json_type(self.name)}")
        if not isinstance(self.hrs_log10, (bool, np.bool_)):
            raise ModelFileError("field 'hrs_log10' must be true or false (a JSON boolean), "
                                 f"got {_json_type(self.hrs_log10)}")
        self.hrs_log10 = bool(self.hrs_log10)
        if isinstance(self.features, str) or not all(isinstance(f, str) for f in self.features):
            raise ModelFileError(f"field 'features' must be a list of strings, got {self.features!r}")
        if isinstance(self.schema_version, bool) or not isinstance(self.schema_version, int):
            raise ModelFileError(f"field 'schema_version' must be an integer, got "
                                 f"{_json_type(self.schema_version)}")
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
        if isinstance(version, bool) or version != SCHEMA_VERSION:
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
        if "features" in kwargs and not isinstance(kwargs["features"], list):
            raise ModelFileError(f"{source}: field 'features' must be a list of strings")
        try:
            return cls(**kwargs)
        except ModelFileError as exc:
            raise ModelFileError(f"{source}: {exc}") from None


# ----------------------------------------------------------------- validation
def _json_type(value: Any) -> str:
    """How a value reads in JSON terms, for messages (``null``, ``string "0.2"`` ...)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return f"boolean {str(bool(value)).lower()}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _as_float_array(name: str, value: Any) -> np.ndarray:
    """Strict: nested lists of numbers (or a numeric array); no strings, booleans or null."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):  # ragged nesting
        raise ModelFileError(f"field '{name}' is not a numeric array (ragged nesting)") from None
    if raw.dtype.kind == "O":
        bad = [v for v in raw.ravel() if isinstance(v, (str, bool)) or v is None]
        if bad or not all(isinstance(v, (int, float)) for v in raw.ravel()):
            shown = _json_type(bad[0]) if bad else "a ragged array"
            raise ModelFileError(f"field '{name}' is not a numeric array (contains {shown})")
        try:
            raw = raw.astype(np.float64)
        except OverflowError:
            raise ModelFileError(f"field '{name}' holds a number too large for a double") from None
    if raw.dtype.kind not in "iuf":
        what = {"U": "strings", "S": "strings", "b": "booleans"}.get(raw.dtype.kind, raw.dtype.name)
        raise ModelFileError(f"field '{name}' is not a numeric array (contains {what})")
    arr = raw.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"field '{name}' contains non-finite values")
    return arr


def _as_float(name: str, value: Any) -> float:
    """Strict: a number (not a string, boolean or null), finite."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                       np.floating)):
        raise ModelFileError(f"field '{name}' must be a number, got {_json_type(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise ModelFileError(f"field '{name}' is too large for a double") from None
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


def d2d_invalid(model: DeviceModel, vectors: np.ndarray) -> np.ndarray:
    """Which D2D vectors ``[μ; σ]`` (rows of an (N, 8) array) a device must not have.

    Invalid: some σ ≤ 0 (it flips or freezes the feature's cycle-to-cycle variation), or an
    LRS that reaches 0 Ω within the latent range the model covers, μ_LRS + σ_LRS·Γ_LRS(x) ≤ 0
    for some x ≥ −:data:`D2D_LATENT_RANGE` (a negative resistance).
    """
    sigma = vectors[:, 4:]
    lowest_gamma = min(float(np.polyval(model.gamma[2], -D2D_LATENT_RANGE)), 0.0)
    lowest_lrs = vectors[:, 2] + np.maximum(sigma[:, 2], 0.0) * lowest_gamma
    return np.any(sigma <= 0.0, axis=1) | (lowest_lrs <= 0.0)


def d2d_invalid_fraction(model: DeviceModel, samples: int = 4096) -> np.ndarray:
    """Per mixture component, the fraction of D2D draws that :func:`d2d_invalid` refuses.

    Estimated from ``samples`` fixed normal draws (seed 0), so the answer is reproducible;
    its sampling error is below 0.002 at the 1 % threshold.
    """
    z = np.random.default_rng(0).standard_normal((samples, 2 * N_FEAT))
    return np.array([d2d_invalid(model, model.d2d_means[:, k] + z @ model.d2d_chol[k].T).mean()
                     for k in range(model.n_components)])


def _check_d2d_draws(model: DeviceModel) -> None:
    frac = d2d_invalid_fraction(model)
    total = float(frac @ (model.d2d_weights / model.d2d_weights.sum()))
    if total > MAX_INVALID_D2D:
        k = int(np.argmax(frac))
        raise ModelFileError(
            f"fields 'd2d_means'/'d2d_chol': {total:.3g} of the D2D draws would have σ <= 0 "
            f"or an LRS reaching 0 Ω (component {k}: {frac[k]:.3g}); at most "
            f"{MAX_INVALID_D2D} is accepted")


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
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an ill-conditioned Lyapunov solve is judged below
        kept = ma_variance_captured(lags, model.var_chol, DEFAULT_MA_ORDER)
    if not np.all((kept > -1e-6) & (kept < 1 + 1e-6)):  # a fraction: else round-off dominates
        raise ModelFileError("fields 'var_lags'/'var_chol': the stationary covariance of the VAR "
                             "is numerically singular (innovations nearly collinear)")
    if not np.all(kept >= MIN_MA_VARIANCE_CAPTURED):  # NaN (near-singular) is refused too
        worst = int(np.argmin(np.nan_to_num(kept, nan=-1.0)))
        raise ModelFileError(
            f"field 'var_lags': companion spectral radius {rho:.7g} is too close to 1: the "
            f"MA({DEFAULT_MA_ORDER}) form keeps {kept[worst]:.3g} of the {FEATURES[worst]} "
            f"variance (need >= {MIN_MA_VARIANCE_CAPTURED})")
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
    _check_d2d_draws(model)  # last: it evaluates Γ_LRS, checked above


# ----------------------------------------------------------------- file I/O
def load_model(path: str | os.PathLike[str]) -> DeviceModel:
    """Read and validate a model file; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return DeviceModel.from_dict(parse_json(text, str(path)), source=str(path))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, source: str) -> Any:
    """Strict JSON: no NaN/Infinity, no integer beyond a double, nesting <= MAX_JSON_DEPTH."""
    depth = max_depth = 0
    in_string = escaped = False
    for ch in text:  # cheap bracket scan: refuse deep nesting before the recursive parser
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            max_depth = max(max_depth, depth)
            if depth > MAX_JSON_DEPTH:
                raise ModelFileError(f"{source}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{source}: invalid JSON: {exc}") from None


def _parse_int(text: str) -> int | float:
    if len(text.lstrip("-")) > 300:  # beyond any double (1.8e308)
        raise ValueError(f"integer literal of {len(text)} digits is too large")
    return int(text)


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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    src = parse_json(text, str(path))
    if not isinstance(src, dict):
        raise ModelFileError(f"{path}: top level must be a JSON object")
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
