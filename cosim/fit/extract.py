"""Feature extraction from raw I–V loops (one loop = one device cycle).

Per loop, in time order (docs/device-model.md conventions, U0 = read voltage, default 0.2 V):

* the **negative sweep** (start of the first sample below −``v_floor`` up to the most negative
  sample) holds the SET: the largest jump of the conductance |I/V| between neighbouring samples
  (compared over a few samples each side, so single noisy points do not win). ``US`` is the
  midpoint of the two samples around the jump; a jump smaller than ``set_ratio`` means no
  clean SET (QC entry, features NaN).
* the **rising positive branch** (after the negative sweep, up to the largest V) holds the LRS
  read — ``LRS = U0 / I(U0)`` interpolated on the branch below the reset — and the RESET:
  ``UR`` is where the current stops growing (its maximum on the branch), midpoint of the peak
  sample and the next one.
* the **falling positive branch** (after the largest V) holds the HRS read after the reset.
  As in a tester's cycle table (and ``cosim synth``), row n of the extracted table holds that
  HRS, i.e. the state the reset of cycle n reached; :mod:`cosim.fit.fit` aligns it with the
  model's feature vectors.

Loops without a clean switch give a QC entry (action ``excluded``) instead of an exception.
Besides the features, :func:`extract_features` returns thinned samples of the constant-state
segments and of the transition branch, used by :mod:`cosim.fit.fit` for the I–V basis
polynomials and for η, Umax.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cosim.fit.qc import QCConfig, QCReport, fmt, overflow_mask, sort_key, sort_rows

FEATURE_COLUMNS = ["HRS_ohm", "US_V", "LRS_ohm", "UR_V"]


@dataclass
class ExtractConfig:
    """Settings of the I–V feature extraction."""

    u0: float = 0.2
    """Read voltage, V."""
    v_floor: float = 0.02
    """|V| below this counts as 0 V (no conductance computed), V."""
    set_ratio: float = 1.5
    """Minimum conductance ratio across the SET jump."""
    reset_ratio: float = 1.3
    """Minimum HRS/LRS ratio after the reset."""
    window: int = 3
    """Samples each side compared by the SET detector (medians)."""
    keep_per_segment: int = 24
    """Samples kept per constant-state segment for the I–V basis fit."""


@dataclass
class Segments:
    """Thinned samples for the I–V basis and transition fits (SI units)."""

    V: list[np.ndarray] = field(default_factory=list)
    I: list[np.ndarray] = field(default_factory=list)
    R: list[np.ndarray] = field(default_factory=list)
    """Static resistance (Ω) of the state the sample was measured in."""
    trans_V: list[np.ndarray] = field(default_factory=list)
    trans_I: list[np.ndarray] = field(default_factory=list)
    trans_UR: list[np.ndarray] = field(default_factory=list)
    trans_LRS: list[np.ndarray] = field(default_factory=list)
    trans_HRS: list[np.ndarray] = field(default_factory=list)
    v_max: list[float] = field(default_factory=list)

    def constant_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(V, I, R) of all constant-state samples."""
        cat = (lambda xs: np.concatenate(xs) if xs else np.empty(0))
        return cat(self.V), cat(self.I), cat(self.R)

    def transition(self) -> dict[str, np.ndarray]:
        """Samples of rising branches beyond UR with their loop's UR, LRS and next HRS."""
        cat = (lambda xs: np.concatenate(xs) if xs else np.empty(0))
        return {"V": cat(self.trans_V), "I": cat(self.trans_I), "UR": cat(self.trans_UR),
                "LRS": cat(self.trans_LRS), "HRS": cat(self.trans_HRS)}


@dataclass
class LoopFeatures:
    """Features of one loop; NaN where not extractable."""

    us: float = np.nan
    lrs: float = np.nan
    ur: float = np.nan
    hrs_post: float = np.nan
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(column, text) of each extraction failure."""


def _thin(x: np.ndarray, n: int) -> np.ndarray:
    if x.size <= n:
        return x
    return x[np.linspace(0, x.size - 1, n).round().astype(int)]


def _read_at(v: np.ndarray, i: np.ndarray, u0: float) -> float:
    """Current at V = u0 by linear interpolation over a branch (NaN if u0 is not bracketed)."""
    finite = np.isfinite(v) & np.isfinite(i)
    v, i = v[finite], i[finite]
    if v.size == 0 or v.min() > u0 or v.max() < u0:
        return np.nan
    order = np.argsort(v, kind="stable")
    return float(np.interp(u0, v[order], i[order]))


def _detect_set(v: np.ndarray, i: np.ndarray, cfg: ExtractConfig) -> tuple[int, int, float]:
    """SET jump on a branch: (last pre-SET index, first post-SET index, log-conductance jump).

    Only samples with |V| >= v_floor and I/V > 0 are used. The jump is the largest difference
    between the median log-conductance of the ``window`` samples after and before a point;
    the exact step is the largest single-sample increase near it. (-1, -1, 0) if none.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = i / v
    idx = np.flatnonzero((np.abs(v) >= cfg.v_floor) & (ratio > 0) & np.isfinite(ratio))
    m = idx.size
    if m < 2:
        return -1, -1, 0.0
    logg = np.log(ratio[idx])
    w = max(1, min(cfg.window, m // 2))
    med = np.median(np.lib.stride_tricks.sliding_window_view(logg, w), axis=1)
    # split after position j (j = w-1 .. m-w-1): before = med[j-w+1], after = med[j+1]
    j_all = np.arange(w - 1, m - w)
    score = med[j_all + 1] - med[j_all - w + 1]
    j0 = int(j_all[np.argmax(score)])
    near = np.arange(max(j0 - w + 1, 0), min(j0 + w, m - 1))
    j = int(near[np.argmax(logg[near + 1] - logg[near])])
    return int(idx[j]), int(idx[j + 1]), float(score.max())


def _reset_onset(v: np.ndarray, i: np.ndarray, rise: np.ndarray, p: int) -> float:
    """RESET threshold near the current maximum ``rise[p]`` of the rising branch, V.

    The current is continuous at the onset (the transition curve starts on the LRS curve),
    so the sample of largest current may be either side of it. The onset is taken where the
    LRS line through ``rise[p-2], rise[p-1]`` meets the transition line through
    ``rise[p+1], rise[p+2]``, limited to [V(rise[p-1]), V(rise[p+1])]; the midpoint of the
    peak and the next sample when there are too few samples.
    """
    if p < 2 or p + 2 >= rise.size:
        return 0.5 * (v[rise[p]] + v[rise[min(p + 1, rise.size - 1)]])
    a, b, c, d = rise[p - 2], rise[p - 1], rise[p + 1], rise[p + 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_l = (i[b] - i[a]) / (v[b] - v[a])
        slope_t = (i[d] - i[c]) / (v[d] - v[c])
        cross = (i[c] - i[b] + slope_l * v[b] - slope_t * v[c]) / (slope_l - slope_t)
    if not np.isfinite(cross):
        return 0.5 * (v[rise[p]] + v[c])
    return float(np.clip(cross, v[b], v[c]))


def extract_loop(t_order_v: np.ndarray, t_order_i: np.ndarray, cfg: ExtractConfig,
                 segments: Segments | None = None) -> LoopFeatures:
    """Extract the features of one loop given its samples in time order (V in V, I in A)."""
    v, i = t_order_v, t_order_i
    out = LoopFeatures()
    good = np.isfinite(v) & np.isfinite(i)
    v, i = v[good], i[good]
    negative = np.flatnonzero(v < -cfg.v_floor)
    if negative.size == 0:
        out.problems.append(("US_V", "no negative (SET) sweep in the loop"))
        return out
    start = int(negative[0])
    k_min = start + int(np.argmin(v[start:]))
    after_min = np.arange(k_min, v.size)
    positive_after = after_min[v[after_min] > cfg.v_floor]
    if positive_after.size == 0:
        out.problems.append(("UR_V", "no positive (RESET) sweep after the SET sweep"))
    # SET on the way down to the most negative sample
    down = np.arange(start, k_min + 1)
    j, j_next, jump = _detect_set(v[down], i[down], cfg)
    if j < 0 or jump < np.log(cfg.set_ratio):
        ratio = float(np.exp(jump)) if j >= 0 else float("nan")
        out.problems.append(("US_V", f"no clean SET: largest conductance jump ×{ratio:.3g} "
                                     f"< ×{cfg.set_ratio:g}"))
        set_index = None
    else:
        set_index = start + j
        out.us = 0.5 * (v[set_index] + v[start + j_next])
    if positive_after.size == 0:
        return out
    first_pos = int(positive_after[0])
    k_max = first_pos + int(np.argmax(v[first_pos:]))
    rise = np.arange(first_pos, k_max + 1)
    rise = rise[v[rise] > 0]
    fall = np.arange(k_max, v.size)
    fall = fall[v[fall] > 0]
    peak = int(rise[np.argmax(i[rise])])
    if peak >= k_max:
        out.problems.append(("UR_V", "no RESET: the current still grows at the largest voltage"))
    else:
        out.ur = _reset_onset(v, i, rise, int(np.argmax(i[rise])))
    before_reset = rise[rise <= peak]
    i_lrs = _read_at(v[before_reset], i[before_reset], cfg.u0)
    out.lrs = cfg.u0 / i_lrs if i_lrs > 0 else np.nan
    if not np.isfinite(out.lrs):
        out.problems.append(("LRS_ohm", f"no LRS read: the rising branch below the reset does "
                                        f"not pass U0 = {cfg.u0:g} V with I > 0"))
    i_hrs = _read_at(v[fall], i[fall], cfg.u0) if fall.size > 1 else np.nan
    out.hrs_post = cfg.u0 / i_hrs if i_hrs > 0 else np.nan
    if not np.isfinite(out.hrs_post):
        out.problems.append(("HRS_ohm", f"no HRS read: the falling branch after the reset does "
                                        f"not pass U0 = {cfg.u0:g} V with I > 0"))
    if np.isfinite(out.hrs_post) and np.isfinite(out.lrs) and out.hrs_post < cfg.reset_ratio * out.lrs:
        out.problems.append(("HRS_ohm", f"no clean RESET: HRS after reset {out.hrs_post:.4g} Ω "
                                        f"< {cfg.reset_ratio:g} × LRS {out.lrs:.4g} Ω"))
        out.ur = np.nan
        out.hrs_post = np.nan
    if segments is not None and set_index is not None and np.isfinite(out.lrs) \
            and np.isfinite(out.ur) and np.isfinite(out.hrs_post):
        _collect(v, i, set_index, k_min, before_reset, rise, peak, fall, out, cfg, segments)
    return out


def _collect(v: np.ndarray, i: np.ndarray, set_index: int, k_min: int, before_reset: np.ndarray,
             rise: np.ndarray, peak: int, fall: np.ndarray, out: LoopFeatures,
             cfg: ExtractConfig, seg: Segments) -> None:
    """Keep thinned constant-state samples (LRS after SET, HRS after RESET) and transitions."""
    lrs_idx = np.concatenate([np.arange(set_index + 1, k_min + 1), before_reset])
    lrs_idx = lrs_idx[np.abs(v[lrs_idx]) >= cfg.v_floor]
    hrs_idx = fall[np.abs(v[fall]) >= cfg.v_floor]
    for idx, r in ((lrs_idx, out.lrs), (hrs_idx, out.hrs_post)):
        idx = _thin(idx, cfg.keep_per_segment)
        seg.V.append(v[idx])
        seg.I.append(i[idx])
        seg.R.append(np.full(idx.size, r))
    trans = _thin(rise[rise > peak], cfg.keep_per_segment)
    seg.trans_V.append(v[trans])
    seg.trans_I.append(i[trans])
    for store, value in ((seg.trans_UR, out.ur), (seg.trans_LRS, out.lrs),
                         (seg.trans_HRS, out.hrs_post)):
        store.append(np.full(trans.size, value))
    seg.v_max.append(float(v[rise[-1]]))


def _report_loops(frame: pd.DataFrame, mask: np.ndarray, kind: str, what: str,
                  report: QCReport, column: str | None = None) -> None:
    """One QC entry per loop with samples in ``mask``: 'N sample(s) WHAT (first line L)'."""
    for (dev, cyc), grp in frame.loc[mask].groupby(["device", "cycle"], sort=False,
                                                   observed=True):
        report.add(kind, dev, cyc, f"{len(grp)} sample(s) {what} (first line "
                   f"{int(grp['line'].iloc[0])})", "excluded", column=column,
                   line=int(grp["line"].iloc[0]))


def _drop_bad_samples(frame: pd.DataFrame, report: QCReport) -> pd.DataFrame:
    """Exclude samples with an instrument overflow code in V, I or t_s, or an empty t_s."""
    bad = np.zeros(len(frame), dtype=bool)
    for column in [c for c in ("V", "I", "t_s") if c in frame.columns]:
        values = frame[column].to_numpy(dtype=float)
        codes = overflow_mask(values) & ~bad
        if codes.any():
            example = fmt(values[np.flatnonzero(codes)[0]])
            _report_loops(frame, codes, "glitch", f"with the instrument overflow code "
                          f"{example} in {column}", report, column)
            bad |= codes
    if "t_s" in frame.columns:
        empty = ~np.isfinite(frame["t_s"].to_numpy(dtype=float)) & ~bad
        if empty.any():
            _report_loops(frame, empty, "missing", "with an empty or non-finite t_s (their "
                          "place in the loop is unknown)", report, "t_s")
            bad |= empty
    return frame.loc[~bad].reset_index(drop=True) if bad.any() else frame


def _drop_voltage_glitches(frame: pd.DataFrame, factor: float, report: QCReport) -> pd.DataFrame:
    """Exclude voltage spikes: samples (in time order) whose |V| exceeds ``factor`` times both
    their loop's 90th percentile of |V| and the median |V| of their four nearest neighbours
    in the loop (so a sweep after a long train of reads at U0 is not a spike)."""
    if frame.empty:
        return frame
    loop = pd.factorize(pd.MultiIndex.from_arrays([sort_key(frame["device"]),
                                                   frame["cycle"].to_numpy()]))[0]
    size = np.abs(frame["V"].to_numpy(dtype=float))
    scale = pd.Series(size).groupby(loop).quantile(0.9).to_numpy()[loop]
    n = size.size
    neighbours = np.full((4, n), np.nan)
    for row, shift in enumerate((-2, -1, 1, 2)):
        index = np.arange(n) + shift
        ok = (index >= 0) & (index < n)
        ok[ok] &= loop[index[ok]] == loop[ok]
        neighbours[row, ok] = size[index[ok]]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a loop of one sample: no neighbours
        local = np.nanmedian(neighbours, axis=0)
    spikes = size > factor * np.fmax(scale, local)
    if not spikes.any():
        return frame
    _report_loops(frame, spikes, "glitch", f"with |V| above {factor:g} × both the loop's 90th "
                  f"percentile of |V| and its neighbours' (largest {fmt(size[spikes].max())} V)",
                  report, "V")
    return frame.loc[~spikes].reset_index(drop=True)


def clean_samples(frame: pd.DataFrame, glitch_factor: float = QCConfig.glitch_v_factor
                  ) -> pd.DataFrame:
    """The I–V samples without overflow codes, empty time stamps and voltage glitches (what
    :func:`extract_features` excludes as ``glitch``/``missing``), e.g. for plots."""
    scratch = QCReport()
    frame = _drop_bad_samples(frame, scratch)
    finite = np.isfinite(frame["V"].to_numpy(dtype=float)) & np.isfinite(frame["I"].to_numpy(dtype=float))
    return _drop_voltage_glitches(frame.loc[finite].reset_index(drop=True), glitch_factor, scratch)


def extract_features(frame: pd.DataFrame, cfg: ExtractConfig | None = None,
                     report: QCReport | None = None,
                     glitch_factor: float = QCConfig.glitch_v_factor
                     ) -> tuple[pd.DataFrame, Segments, QCReport]:
    """Turn canonical I–V samples (device, cycle, [t_s], V, I, line) into a cycle table.

    Returns (cycle table with columns device, cycle, HRS_ohm, US_V, LRS_ohm, UR_V, line;
    NaN where a feature could not be extracted), the thinned samples for the I–V fits, and
    the QC report (non-finite samples, duplicates, unsorted rows, extraction failures).
    """
    cfg = cfg or ExtractConfig()
    report = report if report is not None else QCReport()
    frame = _drop_bad_samples(frame, report)
    keys = ["device", "cycle"] + (["t_s"] if "t_s" in frame.columns else [])
    if "t_s" in frame.columns:
        frame = sort_rows(frame, keys, report)
        dup = frame.duplicated(["device", "cycle", "t_s"], keep="first").to_numpy()
        if dup.any():
            dups = frame.loc[dup]
            for (dev, cyc), grp in dups.groupby(["device", "cycle"], sort=False):
                report.add("duplicate", dev, cyc, f"{len(grp)} sample(s) with a repeated time "
                           f"stamp (first line {int(grp['line'].iloc[0])})", "excluded")
            frame = frame.loc[~dup].reset_index(drop=True)
    else:
        frame = sort_rows(frame, ["device", "cycle", "line"], report)
    bad = ~(np.isfinite(frame["V"].to_numpy()) & np.isfinite(frame["I"].to_numpy()))
    if bad.any():
        for (dev, cyc), grp in frame.loc[bad].groupby(["device", "cycle"], sort=False):
            report.add("missing", dev, cyc, f"{len(grp)} sample(s) with NaN/non-finite V or I "
                       f"(first line {int(grp['line'].iloc[0])})", "excluded")
        frame = frame.loc[~bad].reset_index(drop=True)
    frame = _drop_voltage_glitches(frame, glitch_factor, report)

    segments = Segments()
    rows: list[dict[str, object]] = []
    dev = frame["device"].to_numpy()
    dev_code = sort_key(frame["device"])
    cyc = frame["cycle"].to_numpy()
    vol = frame["V"].to_numpy(dtype=float)
    cur = frame["I"].to_numpy(dtype=float)
    line = frame["line"].to_numpy()
    boundaries = np.flatnonzero((dev_code[1:] != dev_code[:-1]) | (cyc[1:] != cyc[:-1])) + 1
    starts = np.concatenate([[0], boundaries]) if len(frame) else np.empty(0, dtype=int)
    ends = np.concatenate([boundaries, [len(frame)]]) if len(frame) else np.empty(0, dtype=int)
    for a, b in zip(starts, ends):
        feats = extract_loop(vol[a:b], cur[a:b], cfg, segments)
        device, cycle = dev[a], int(cyc[a])
        for column, text in feats.problems:
            report.add("extraction", device, cycle, text, "excluded", column=column,
                       line=line[a])
        rows.append({"device": device, "cycle": cycle, "HRS_ohm": feats.hrs_post,
                     "US_V": feats.us, "LRS_ohm": feats.lrs, "UR_V": feats.ur,
                     "line": int(line[a])})
    table = pd.DataFrame(rows, columns=["device", "cycle", *FEATURE_COLUMNS, "line"])
    table["cycle"] = table["cycle"].astype(np.int64)
    return table, segments, report
