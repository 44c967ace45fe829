"""Built-in job kinds.

* ``crossbar_ideal_nf``: nonideality factor of seeded Gaussian weights on a linear-resistor
  crossbar with wire resistance (docs/crossbar.md), solved by :class:`cosim.crossbar.solver.NodalSolver`.
* ``crossbar_nf``: the sweep users run: array size × wire resistance × device seed × weight
  bits × MDM on/off, dense or block-diagonal weights, ideal or write-verify programmed devices.
* ``s4d_kernel``: the S4D circuit study (:func:`cosim.s4d.study.run_s4d_study`) for one
  variant, weight precision, wire resistance, device seed and MDM setting.
* ``ngspice_divider``: a resistor divider simulated by ``ngspice -b -r out.raw in.cir`` in a
  subprocess (:func:`cosim.spice.batch.run_batch`); it shows that every job runs isolated in its
  own process tree.

Heavy imports (device model, S4D) happen inside the job functions, so that discovering the
kinds stays cheap.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosim.batch.jobs import register_job
from cosim.crossbar.cells import LinearCells
from cosim.crossbar.mdm import Remap, identity_remap, mdm_remap, random_inputs
from cosim.crossbar.metrics import evaluate, ideal_currents
from cosim.crossbar.solver import NodalSolver
from cosim.crossbar.spec import Crossbar
from cosim.paths import DEFAULT_MODEL, TEMPLATES_DIR
from cosim.spice.batch import run_batch
from cosim.spice.render import render_netlist

DIVIDER_TEMPLATE = TEMPLATES_DIR / "batch_divider.cir.j2"


def wired_crossbar(
    g: np.ndarray, r_wire: float, r_source: float, r_sense: float, differential: bool = True, v_read: float = 0.2
) -> Crossbar:
    """Linear-resistor crossbar of conductances ``g`` (M, N) [S] whose row and column wire
    segments are all ``r_wire`` Ω (conventions: docs/crossbar.md, :mod:`cosim.crossbar.spec`)."""
    return Crossbar(
        LinearCells(g), r_row=r_wire, r_col=r_wire, r_source=r_source, r_sense=r_sense,
        differential=differential, v_read=v_read,
    )


# -- crossbar_ideal_nf ------------------------------------------------------------------------
class CrossbarIdealParams(BaseModel):
    """Parameters of ``crossbar_ideal_nf`` (resistances in Ω, conductances in S, volts in V)."""

    model_config = ConfigDict(extra="forbid")
    rows: int = Field(ge=1, le=512)
    cols: int = Field(ge=1, le=256, description="logical (signed) columns; 2·cols physical")
    r_wire: float = Field(default=1.0, gt=0, description="row and column segment resistance")
    r_source: float = Field(default=1.0, gt=0)
    r_sense: float = Field(default=1.0, gt=0)
    v_read: float = Field(default=0.2, gt=0)
    n_inputs: int = Field(default=8, ge=1, le=1024)
    g_min: float = Field(default=1e-5, gt=0)
    g_max: float = Field(default=2.2e-4, gt=0)
    weight_clip: float = Field(default=3.0, gt=0, description="|w| mapped to g_max, in σ")


def ideal_nf_case(params: dict[str, Any], seed: int) -> tuple[Crossbar, np.ndarray]:
    """The crossbar and input vectors (K, M) [V] of one ``crossbar_ideal_nf`` job.

    Weights w ~ N(0, 1) (rows × cols) map to differential column pairs (G⁺ in column 2j, G⁻ in
    2j+1): G± = g_min + (g_max − g_min)·clip(±w / weight_clip, 0, 1). Inputs are uniform in
    [0, v_read]. Both come from ``seed``.
    """
    p = CrossbarIdealParams.model_validate(params)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((p.rows, p.cols))
    inputs = rng.uniform(0.0, p.v_read, size=(p.rows, p.n_inputs)).T
    span = p.g_max - p.g_min
    g = np.empty((p.rows, 2 * p.cols))
    g[:, 0::2] = p.g_min + span * np.clip(weights / p.weight_clip, 0.0, 1.0)
    g[:, 1::2] = p.g_min + span * np.clip(-weights / p.weight_clip, 0.0, 1.0)
    return wired_crossbar(g, p.r_wire, p.r_source, p.r_sense, v_read=p.v_read), inputs


@register_job("crossbar_ideal_nf", params=CrossbarIdealParams)
def crossbar_ideal_nf(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """NF (docs/crossbar.md) and differential output error of :func:`ideal_nf_case`, solved exactly
    by the nodal solver."""
    crossbar, inputs = ideal_nf_case(params, seed)
    report = evaluate(crossbar, inputs, NodalSolver(crossbar).solve_many(inputs))
    return {
        "nf": report.tile_nf,
        "nf_max": float(np.nanmax(report.nf)),
        "diff_error": report.output_error,
        "unknowns": int(2 * crossbar.rows * crossbar.cols),
    }


# -- crossbar_nf --------------------------------------------------------------------------------
class CrossbarNfParams(BaseModel):
    """Parameters of ``crossbar_nf`` (resistances in Ω, conductances in S, volts in V).

    Give ``size`` (a size × size physical array: ``size`` rows, ``size/2`` differential column
    pairs) or ``rows`` and ``cols`` (logical signed columns; 2·cols physical columns).
    """

    model_config = ConfigDict(extra="forbid")
    size: int | None = Field(default=None, ge=2, le=1024)
    rows: int | None = Field(default=None, ge=1, le=1024)
    cols: int | None = Field(default=None, ge=1, le=512)
    r_wire: float = Field(default=1.0, gt=0, description="row and column segment resistance")
    r_source: float = Field(default=1.0, gt=0)
    r_sense: float = Field(default=1.0, gt=0)
    bits: int = Field(default=0, ge=0, le=16, description="signed weight bits; 0 = analog")
    mdm: bool = False
    matrix: Literal["dense", "block"] = "dense"
    block: int = Field(default=4, ge=1, le=1024, description="block size of matrix = 'block'")
    devices: Literal["ideal", "programmed"] = "ideal"
    tolerance: float = Field(default=0.05, gt=0, lt=1, description="write-verify relative band")
    n_inputs: int = Field(default=16, ge=1, le=1024)
    v_read: float = Field(default=0.2, gt=0)
    g_min: float | None = Field(default=None, gt=0, description="default: device window")
    g_max: float | None = Field(default=None, gt=0, description="default: device window")
    model_file: str | None = Field(default=None, description="device model JSON; default packaged")

    @model_validator(mode="after")
    def _shape_and_window(self) -> CrossbarNfParams:
        if self.size is not None:
            if self.rows is not None or self.cols is not None:
                raise ValueError("give either size or rows and cols, not both")
            if self.size % 2:
                raise ValueError("size must be even (size/2 differential column pairs)")
        elif self.rows is None or self.cols is None:
            raise ValueError("give size, or both rows and cols")
        if self.bits == 1:
            raise ValueError("bits must be 0 (analog) or at least 2 (sign and magnitude)")
        if (self.g_min is None) != (self.g_max is None):
            raise ValueError("give both g_min and g_max, or neither")
        if self.g_min is not None and self.g_max is not None and self.g_min >= self.g_max:
            raise ValueError("need g_min < g_max")
        return self

    @property
    def shape(self) -> tuple[int, int]:
        """Logical (rows, signed columns)."""
        if self.size is not None:
            return self.size, self.size // 2
        assert self.rows is not None and self.cols is not None
        return self.rows, self.cols

    @property
    def model_path(self) -> Path:
        return Path(self.model_file) if self.model_file else DEFAULT_MODEL


WINDOW_SEED = 0
"""Seed of the device-window estimate: the window is a property of the model, not of a job."""


@functools.lru_cache(maxsize=4)
def device_model_and_window(path: str) -> tuple[Any, tuple[float, float]]:
    """The device model in ``path`` and its (G_min, G_max) [S] reachable in 99 % of cycles,
    estimated from 500 devices × 20 cycles (:func:`cosim.device.programming.conductance_window`,
    seed :data:`WINDOW_SEED`). Cached per process: pool workers compute it once in
    :func:`warm_device_kernels` and their job processes inherit it."""
    from cosim.device.modelfile import load_model
    from cosim.device.programming import conductance_window

    model = load_model(path)
    return model, conductance_window(model, seed=WINDOW_SEED, n_devices=500, n_cycles=20)


def warm_device_kernels() -> None:
    """Warm-up of ``crossbar_nf`` workers: the default model, its window, and one write-verify
    run of a few devices, which loads the compiled device kernels (a few seconds per process
    otherwise). Too few devices to start threads."""
    from cosim.device.model import DeviceArray
    from cosim.device.programming import program

    model, (g_min, g_max) = device_model_and_window(str(DEFAULT_MODEL))
    program(DeviceArray(model, 8, seed=0), np.linspace(g_min, g_max, 8))


def quantize_weights(weights: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric uniform quantization to ±(2^(bits−1) − 1) levels of max|w|; 0 bits: unchanged."""
    if bits == 0:
        return weights
    levels = 2 ** (bits - 1) - 1
    peak = float(np.abs(weights).max()) or 1.0
    return np.round(weights / peak * levels) / levels * peak


@dataclass(frozen=True)
class NfCase:
    """One ``crossbar_nf`` job before solving: everything it compares."""

    target: Crossbar
    """Logical array at the target conductances of the (quantized) weights."""
    stored: Crossbar
    """Logical array at the conductances the devices hold (= target for ideal devices)."""
    analog: Crossbar
    """Logical array at the conductances of the unquantized weights (reference output)."""
    inputs: np.ndarray
    """Input vectors (K, M) [V]."""
    remap: Remap
    """Placement of the logical array (identity without MDM)."""
    programming: dict[str, float]
    window: tuple[float, float]


def _program_devices(target: np.ndarray, p: CrossbarNfParams, model: Any, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """Write-verify program one device per logical cell (device id = i·N + j) to ``target``
    (M, N) [S]; return the conductances reached and the programming figures."""
    from cosim.device.model import DeviceArray
    from cosim.device.programming import ProgramConfig, program

    devices = DeviceArray(model, target.size, seed=seed)
    result = program(devices, target.ravel(), ProgramConfig(tolerance=p.tolerance))
    summary = {
        "prog_error": float(np.mean(np.abs(result.relative_error))),
        "prog_success": float(result.success.mean()),
    }
    return result.achieved.reshape(target.shape), summary


def nf_case(params: dict[str, Any], seed: int) -> NfCase:
    """Build one ``crossbar_nf`` job, independently of ``mdm``: weights (standard normal, or
    block-diagonal Gaussian blocks) from ``seed``, inputs uniform in [0, v_read] from
    ``seed + 1`` (as ``cosim mdm`` draws them), devices from ``seed``. With MDM the same
    programmed devices are placed elsewhere, so an MDM on/off pair differs in placement only."""
    from cosim.crossbar.mdm import random_weights

    p = CrossbarNfParams.model_validate(params)
    rows, cols = p.shape
    # the conventions of `cosim mdm`: weights from seed, inputs from seed + 1
    weights = random_weights(rows, cols, p.block if p.matrix == "block" else 0, seed)
    inputs = random_inputs(rows, p.n_inputs, p.v_read, seed + 1)
    model, window = None, (p.g_min, p.g_max)
    if p.devices == "programmed" or p.g_min is None:
        model, model_window = device_model_and_window(str(p.model_path.resolve()))
        window = model_window if p.g_min is None else window

    def array(g: np.ndarray) -> Crossbar:
        return wired_crossbar(g, p.r_wire, p.r_source, p.r_sense, v_read=p.v_read)

    # the quantized weights keep the analog scale (max|w| maps to g_max in both)
    g_min, g_max = float(window[0]), float(window[1])  # type: ignore[arg-type]
    analog = Crossbar.from_weights(weights, g_min, g_max)
    target = Crossbar.from_weights(quantize_weights(weights, p.bits), g_min, g_max)
    g_target = target.conductances()
    g_stored, programming = g_target, {"prog_error": 0.0, "prog_success": 1.0}
    if p.devices == "programmed":
        g_stored, programming = _program_devices(g_target, p, model, seed)
    stored = array(g_stored)
    remap = mdm_remap(stored, np.mean(np.abs(inputs), axis=0)) if p.mdm else identity_remap(stored)
    return NfCase(array(g_target), stored, array(analog.conductances()), inputs, remap, programming, (g_min, g_max))


@register_job(
    "crossbar_nf",
    params=CrossbarNfParams,
    files=lambda params: [CrossbarNfParams.model_validate(params).model_path],
    warmup=warm_device_kernels,
)
def crossbar_nf(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """NF and output errors of one crossbar read (see :func:`nf_case`).

    Results: ``nf`` (tile NF, docs/crossbar.md, against the array's own conductances: the wires'
    effect), ``output_error`` (differential output error, same reference), ``total_error``
    (differential error against the exact product of the unquantized weights: quantization,
    programming and wires together), ``prog_error`` (mean |G − G_target|/G_target),
    ``prog_success`` (fraction of devices within tolerance), ``ideal_unchanged`` (the
    wire-free output of the placed array, back in logical order, equals the unplaced one bit
    for bit) and ``solve_s`` (nodal solve, seconds).
    """
    case = nf_case(params, seed)
    placed = case.remap.apply(case.stored)
    physical_inputs = case.remap.inputs_to_physical(case.inputs)
    tick = time.perf_counter()
    real = case.remap.outputs_to_logical(NodalSolver(placed).solve_many(physical_inputs))
    solve_s = time.perf_counter() - tick
    report = evaluate(case.stored, case.inputs, real)
    total = evaluate(case.analog, case.inputs, real)
    ideal = ideal_currents(case.stored, case.inputs)
    ideal_placed = case.remap.outputs_to_logical(ideal_currents(placed, physical_inputs))
    return {
        "nf": report.tile_nf,
        "output_error": report.output_error,
        "total_error": total.output_error,
        **case.programming,
        "ideal_unchanged": bool(np.array_equal(ideal, ideal_placed)),
        "solve_s": solve_s,
    }


# -- s4d_kernel ---------------------------------------------------------------------------------
class S4dKernelParams(BaseModel):
    """Parameters of ``s4d_kernel`` (Ω for wires). The job's seed is the device seed."""

    model_config = ConfigDict(extra="forbid")
    variant: Literal["full", "delta"] = "delta"
    bits: int = Field(default=0, ge=0, le=24, description="weight bits (device levels); 0 = analog")
    r_wire: float = Field(default=1.0, gt=0, description="row and column segment resistance")
    r_source: float = Field(default=1.0, gt=0)
    r_sense: float = Field(default=1.0, gt=0)
    mdm: bool = False
    length: int = Field(default=128, ge=2, le=100_000, description="kernel length L")
    input_seed: int = Field(default=0, ge=0, le=2**31 - 1, description="input, window and NF seed")
    model: Literal["test", "lin", "inv"] = "test"
    channels: int = Field(default=4, ge=1, le=64, description="H, for model lin/inv")
    state_size: int = Field(default=16, ge=2, le=256, description="N, for model lin/inv")
    dac_bits: int = Field(default=0, ge=0, le=24, description="0 = ideal converter")
    adc_bits: int = Field(default=0, ge=0, le=24, description="0 = ideal converter")

    @model_validator(mode="after")
    def _bits(self) -> S4dKernelParams:
        for name in ("bits", "dac_bits", "adc_bits"):
            if getattr(self, name) == 1:
                raise ValueError(f"{name} must be 0 (analog / ideal) or at least 2")
        return self


def s4d_study_config(p: S4dKernelParams, seed: int) -> dict[str, Any]:
    """The :func:`cosim.s4d.study.run_s4d_study` settings of one ``s4d_kernel`` job."""
    model: dict[str, Any] = {"kind": p.model}
    if p.model != "test":
        model.update(channels=p.channels, state_size=p.state_size)
    return {
        "seed": p.input_seed,
        "variants": [p.variant],
        "length": p.length,
        "weight_bits": p.bits or None,
        "dac_bits": p.dac_bits or None,
        "adc_bits": p.adc_bits or None,
        "mdm": p.mdm,
        "model": model,
        "wires": {"r_row": p.r_wire, "r_col": p.r_wire, "r_source": p.r_source, "r_sense": p.r_sense},
        "devices": {"seeds": [seed]},
        "backends": {"nodal": True, "ngspice": False},
        "compensation": {"methods": ["none"]},  # the raw circuit (see docs/compensation.md)
    }


@register_job("s4d_kernel", params=S4dKernelParams, warmup=warm_device_kernels)
def s4d_kernel(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Kernel error and NF of programmed devices (seed ``seed``) in the circuit with wires,
    placed by MDM when ``mdm``; one S4D study case (see :mod:`cosim.s4d.study`).

    Results: ``kernel_rel_l2`` (mean over channels of ‖K̂ − K‖/‖K‖), ``kernel_rel_l2_max``
    (worst channel), ``kernel_snr_db`` (mean), ``nf`` and ``output_error`` (mean over tiles),
    and for reference the mean kernel error of the same targets without devices
    (``wires_only_rel_l2``) and of the devices without wires (``devices_only_rel_l2``).
    """
    from cosim.s4d.study import run_s4d_study

    p = S4dKernelParams.model_validate(params)
    summary = run_s4d_study(s4d_study_config(p, seed)).summary
    case = summary[summary.case == ("devices_mdm" if p.mdm else "devices_wires")]
    if case.empty:
        raise RuntimeError("the S4D study returned no row for the requested case")

    def mean_of(name: str, column: str = "kernel_rel_l2") -> float:
        return float(summary.loc[summary.case == name, column].mean())

    return {
        "kernel_rel_l2": float(case.kernel_rel_l2.mean()),
        "kernel_rel_l2_max": float(case.kernel_rel_l2.max()),
        "kernel_snr_db": float(case.kernel_snr_db.mean()),
        "nf": float(case.nf.mean()),
        "output_error": float(case.output_error.mean()),
        "wires_only_rel_l2": mean_of("ideal_wires"),
        "devices_only_rel_l2": mean_of("devices_model"),
    }


# -- ngspice_divider ----------------------------------------------------------------------------
class DividerParams(BaseModel):
    """Parameters of ``ngspice_divider``: source volts, nominal resistance (Ω), log-spread."""

    model_config = ConfigDict(extra="forbid")
    vin: float = Field(default=1.0, gt=-1e3, lt=1e3)
    r_nominal: float = Field(default=1e3, gt=0, lt=1e12)
    spread: float = Field(default=0.2, ge=0, le=2)
    ngspice_timeout_s: float = Field(default=60.0, gt=0)


@register_job("ngspice_divider", params=DividerParams, files=lambda params: [DIVIDER_TEMPLATE])
def ngspice_divider(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Divider with seeded lognormal resistors R = r_nominal·exp(spread·z), run by ngspice -b."""
    p = DividerParams.model_validate(params)
    rng = np.random.default_rng(seed)
    r1, r2 = p.r_nominal * np.exp(p.spread * rng.standard_normal(2))
    netlist = render_netlist(
        DIVIDER_TEMPLATE.name, title="cosim batch divider", osdi_files=[], vin=p.vin, r1=r1, r2=r2
    )
    result = run_batch(netlist, timeout_s=p.ngspice_timeout_s)
    v_out = float(result.plots[0].vectors["v(out)"][0])
    v_expected = float(p.vin * r2 / (r1 + r2))
    return {
        "r1": float(r1),
        "r2": float(r2),
        "v_out": v_out,
        "v_expected": float(v_expected),
        "rel_error": abs(v_out - v_expected) / max(abs(v_expected), 1e-300),
    }
