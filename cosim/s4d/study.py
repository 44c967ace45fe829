"""The S4D circuit study: ideal S4D vs crossbar circuits, raw and compensated, with and without MDM.

:func:`run_s4d_study` maps the layer (per variant) to conductances, programs stochastic
devices (per device seed), runs the step recurrence through the circuit backends and compares
every case against the ideal model, for every compensation method of the study
(:mod:`cosim.compensation`; ``compensation`` column: ``none`` = raw). Cases:

==================  ==========================================================================
``ideal_nowire``    exact target conductances (quantized to device levels if ``weight_bits``),
                    wires of 1 nΩ (:meth:`Wires.negligible`); raw only
``ideal_wires``     the same conductances with the configured wires (every method but
                    ``insitu``, which needs devices)
``devices_model``   programmed devices, their software model: the stored weights
                    ``(G⁺ − G⁻)/s`` in an exact product (no circuit), per seed; raw only
``devices_wires``   programmed devices in the circuit with wires, per seed and method
``devices_mdm``     the same devices placed by MDM, with wires, per seed and method
==================  ==========================================================================

Per case, method, channel and backend the summary holds: kernel metrics against the ideal
kernel (relative L2, SNR dB, cosine, gain), the output error for a random input, the
single-step MVM error, the effective eigenvalues' error and stability margin (diagonal blocks
of the probed layer matrix, digital correction included), the layer's stability margin
including cross-talk, the cross-talk ratio, per tile the NF and the differential output error
of the raw array (``read_inputs``: uniform random or trajectory inputs), the output error of
the corrected products against the wanted ones (``output_error_net``), and the flags
``unstable`` (stability margin < 0) and ``clipped`` (a DAC input or ADC output reached full
scale in the kernel or output run). Every seed is recorded.

Compensation per case: ``gain`` probes the array as it is (exact or programmed);
``predistort`` iterates the targets on the exact mapping (MDM placement included) and, with
devices, programs them anew from the same device seed; ``insitu`` programs the devices with
verify reads through the array. The write-verify figures of every programmed array
(bias, spread, pulses per device, failures) and every failed cell are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from cosim.errors import CosimError
from cosim.s4d.circuit import CircuitBackend, Wires, dense_layer_matvec
from cosim.s4d.config import S4DStudyConfig, parse_study_config
from cosim.s4d.ideal import (
    ADC,
    DAC,
    CrossbarProgram,
    MatVec,
    S4DLayer,
    balance_states,
    calibrate_converters,
    dac_range_bits,
    init_s4d_inv,
    init_s4d_lin,
    run_recurrence,
    test_model,
    trajectory_inputs,
)
from cosim.s4d.mapping import ConductanceWindow, MappedLayer, map_program, program_layer, with_mdm
from cosim.s4d.metrics import (
    _backend_product,
    compare_kernels,
    effective_eigenvalues,
    eigenvalue_error,
    single_step_mvm_error,
    stability_margin,
)

READ_VECTORS = 16
"""Input vectors per single-step MVM error, NF and output-error estimate."""

CASES = ("ideal_nowire", "ideal_wires", "devices_model", "devices_wires", "devices_mdm")
KEYS = ["variant", "case", "compensation", "seed", "backend", "channel"]
"""Columns that identify a summary row."""
FLAGS = ["unstable", "clipped"]

Progress = Callable[[str], None]
"""``progress(label)``: called after each unit of work (see :func:`study_work_units`)."""


@dataclass
class StudyResult:
    """Everything a study produced.

    ``summary``: one row per (variant, case, compensation, seed, backend, channel) with every
    metric and the ``unstable`` / ``clipped`` flags; ``kernels``: (variant, case,
    compensation, seed, backend) → K̂ (H, L) (seed −1 for seed-free cases); ``ideal_kernel``:
    K (H, L); ``mappings``: (variant, case, compensation, seed) → mapping description;
    ``programming``: write-verify figures per programmed array; ``failures``: the cells
    write-verify did not accept; ``compensation``: cost and residual of every method run;
    ``dac``: DAC range use per variant; ``config``: resolved settings incl. every seed;
    ``timings``: seconds per stage.
    """

    config: dict[str, Any]
    summary: pd.DataFrame
    kernels: dict[tuple[str, str, str, int, str], np.ndarray]
    ideal_kernel: np.ndarray
    mappings: dict[tuple[str, str, str, int], dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    programming: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    compensation: pd.DataFrame = field(default_factory=pd.DataFrame)
    dac: dict[str, dict[str, float]] = field(default_factory=dict)

    def metric_columns(self) -> list[str]:
        return [c for c in self.summary.columns if c not in KEYS and c not in FLAGS]

    def table(self) -> pd.DataFrame:
        """Per (variant, case, compensation, backend, channel): ``n`` seeds, ``n_unstable``
        (stability margin < 0), ``clipped`` (seeds whose run reached a converter's full
        scale), then the mean and sd (``_sd``) of every metric over the *stable* seeds (NaN
        when none is stable)."""
        keys = [k for k in KEYS if k != "seed"]
        summary = self.summary
        metrics = self.metric_columns()
        counts = summary.groupby(keys, sort=False).agg(
            n=("seed", "size"), n_unstable=("unstable", "sum"), clipped=("clipped", "sum")
        )
        stable = summary[~summary.unstable].groupby(keys, sort=False)[metrics]
        mean = stable.mean().reindex(counts.index)
        std = stable.std(ddof=1).reindex(counts.index)
        single = ((counts.n - counts.n_unstable) == 1).to_numpy()
        std = std.mask(np.repeat(single[:, None], std.shape[1], axis=1), 0.0)
        return counts.join(mean).join(std.add_suffix("_sd")).reset_index()

    def mdm_table(self) -> pd.DataFrame:
        """Per variant, compensation and device seed: NF, output errors and kernel error
        before/after MDM (nodal solver; kernel error averaged over the channels stable in both),
        unstable channel counts, the relative change of the kernel error and its sign
        (``mdm_effect``: ``helps`` below −2 %, ``hurts`` above +2 %, else ``neutral``)."""
        rows = self.summary[(self.summary.backend == "nodal") & self.summary.case.isin(["devices_wires", "devices_mdm"])]
        if rows.empty:
            return pd.DataFrame()
        records = []
        for (variant, method, seed), part in rows.groupby(["variant", "compensation", "seed"], sort=False):
            before = part[part.case == "devices_wires"].set_index("channel")
            after = part[part.case == "devices_mdm"].set_index("channel")
            if before.empty or after.empty:
                continue
            stable = ~(before.unstable | after.unstable)
            record: dict[str, Any] = {"variant": variant, "compensation": method, "seed": seed}
            for metric in ("nf", "output_error", "output_error_net"):
                record[f"{metric}_before"] = float(before[metric].mean())
                record[f"{metric}_after"] = float(after[metric].mean())
            record["n_unstable_before"] = int(before.unstable.sum())
            record["n_unstable_after"] = int(after.unstable.sum())
            k_before = float(before.kernel_rel_l2[stable].mean()) if stable.any() else float("nan")
            k_after = float(after.kernel_rel_l2[stable].mean()) if stable.any() else float("nan")
            record["kernel_rel_l2_before"], record["kernel_rel_l2_after"] = k_before, k_after
            change = k_after / k_before - 1.0 if k_before > 0 else float("nan")
            record["kernel_change"] = change
            record["mdm_effect"] = ("n/a" if not np.isfinite(change) else
                                    "helps" if change < -0.02 else "hurts" if change > 0.02 else "neutral")
            records.append(record)
        return pd.DataFrame(records)


def study_work_units(config: S4DStudyConfig) -> int:
    """Number of ``progress`` calls a study makes (for a progress bar)."""
    methods = config.compensation.methods
    ideal = 1 + len([m for m in methods if m != "insitu"])
    per_seed = 2 + len(methods) * (2 if config.mdm else 1)
    return len(config.variants) * (ideal + per_seed * len(config.device_seeds()))


def build_layer(config: S4DStudyConfig) -> S4DLayer:
    """The S4D layer the config names."""
    m = config.model
    if m.kind == "test":
        return test_model(m.method)
    init = init_s4d_lin if m.kind == "lin" else init_s4d_inv
    params = init(m.channels, m.state_size, dt_min=m.dt_min, dt_max=m.dt_max, seed=m.init_seed)
    return S4DLayer(params, method=m.method)


def _load_device_model(config: S4DStudyConfig) -> Any:
    from cosim.device.modelfile import load_model
    from cosim.paths import DEFAULT_MODEL

    path = config.devices.model_file or DEFAULT_MODEL
    if not path.is_file():
        raise CosimError(
            f"devices.model_file: {path} not found (a relative path in a study file is resolved "
            "against the study file's folder)"
        )
    return load_model(path)


def mean_row_volts(program: CrossbarProgram, u: np.ndarray, dac: DAC) -> np.ndarray:
    """E|v_i| [V] per layer input over an ideal run on ``u`` (H, L): the MDM row loads."""
    volts = dac.to_volts(trajectory_inputs(program, u))  # (L, H, N+1)
    return np.abs(volts).mean(axis=0).ravel()


def trajectory_volts(program: CrossbarProgram, u: np.ndarray, dac: DAC, count: int) -> np.ndarray:
    """``count`` row-voltage vectors (count, H(N+1)) [V] of the layer's own ideal run on ``u``,
    evenly spaced in time (the inputs the crossbar sees in operation)."""
    volts = dac.to_volts(trajectory_inputs(program, u))
    steps = np.linspace(0, volts.shape[0] - 1, min(count, volts.shape[0])).round().astype(int)
    return volts[steps].reshape(len(steps), -1)


def probe_layer(matvec: MatVec, program: CrossbarProgram, dac: DAC) -> np.ndarray:
    """Effective layer matrix (outputs × inputs, digital units) from one input at a time,
    each at half its channel's DAC full scale (no rounding, no clipping)."""
    h, n1 = program.n_channels, program.state_size + 1
    size = h * n1
    plain = DAC(bits=None, full_scale=dac.full_scale, v_read=dac.v_read, clip=False)
    amplitude = np.repeat(np.broadcast_to(plain.channel_scale().ravel(), (h,)), n1) * 0.5
    digital = np.diag(amplitude).reshape(size, h, n1)
    columns = _backend_product(matvec, program, digital, plain, ADC()).reshape(size, size)
    return columns.T / amplitude[None, :]


def eigen_metrics(layer_matrix: np.ndarray, program: CrossbarProgram, reference: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel eigenvalue error and margin, the layer margin and the cross-talk ratio."""
    h, n1 = program.n_channels, program.state_size + 1
    n = n1 - 1
    blocks = np.stack([layer_matrix[c * n1:(c + 1) * n1, c * n1:(c + 1) * n1] for c in range(h)])
    eigenvalues = effective_eigenvalues(program.with_matrices(blocks, label="probed"))
    state = np.concatenate([np.arange(c * n1, c * n1 + n) for c in range(h)])
    transition = layer_matrix[np.ix_(state, state)]
    if program.variant == "delta":
        transition = transition + np.eye(state.size)
    layer_margin = 1.0 - np.abs(np.linalg.eigvals(transition)).max()
    mask = np.kron(np.eye(h), np.ones((n1, n1))).astype(bool)
    crosstalk = np.linalg.norm(layer_matrix[~mask]) / np.linalg.norm(layer_matrix[mask])
    return {
        "eigenvalue_error": eigenvalue_error(eigenvalues, reference),
        "stability_margin": stability_margin(eigenvalues),
        "layer_margin": np.full(h, layer_margin),
        "crosstalk": np.full(h, crosstalk),
    }


def tile_read_metrics(
    backend: CircuitBackend,
    nf_volts: np.ndarray | None,
    step_volts: np.ndarray,
    seed: int,
    gain: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Mean over tiles of (NF, raw differential output error, corrected output error).

    NF (docs/crossbar.md) of the raw array for ``nf_volts`` (K, H(N+1)) [V] (None: random
    inputs in [0, v_read] from ``seed``); the raw differential output error against the
    array's own conductances and the corrected output error ``Σ|g·ΔI/s + o − V W| / Σ|V W|``
    against the wanted weights ``W``, both for ``step_volts`` (K, H(N+1)) [V]."""
    from cosim.crossbar.mdm import random_inputs
    from cosim.crossbar.metrics import differential, differential_error, evaluate, ideal_currents

    nfs, errors, nets = [], [], []
    for index, tile in enumerate(backend.mapped.tiles):
        logical = backend.logical_crossbar(index)
        if nf_volts is None:
            inputs = random_inputs(logical.rows, READ_VECTORS, abs(logical.v_read), seed)
        else:
            inputs = np.abs(nf_volts[:, tile.inputs])
        nfs.append(evaluate(logical, inputs, backend.tile_currents(index, inputs)).tile_nf)
        volts = step_volts[:, tile.inputs]
        currents = backend.tile_currents(index, volts)
        errors.append(differential_error(ideal_currents(logical, volts), currents))
        products = differential(currents) / tile.scale[None, :]
        if gain is not None:
            products = products * gain[tile.outputs][None, :] + offset[tile.outputs][None, :]  # type: ignore[index]
        wanted = volts @ tile.weights
        nets.append(float(np.sum(np.abs(products - wanted)) / max(float(np.sum(np.abs(wanted))), 1e-300)))
    return float(np.mean(nfs)), float(np.mean(errors)), float(np.mean(nets))


class ClipMonitor:
    """A MatVec wrapper that flags, per channel, a DAC input at full scale (clipped) or an
    ADC input at or beyond its full scale."""

    def __init__(self, matvec: MatVec, dac: DAC, adc: ADC, channels: int) -> None:
        self.matvec, self.dac, self.adc = matvec, dac, adc
        self.flags = np.zeros(channels, dtype=bool)

    def __call__(self, matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        h, n1 = volts.shape[-2:]
        if self.dac.clip:
            hit = np.abs(volts) >= self.dac.v_read * (1 - 1e-12)
            self.flags |= hit.reshape(-1, h, n1).any(axis=(0, 2))
        out = self.matvec(matrices, volts)
        full_scale = np.asarray(self.adc.full_scale, dtype=float)
        if self.adc.clip and np.all(np.isfinite(full_scale)):
            hit = np.abs(out) >= np.broadcast_to(full_scale, out.shape[-2:])
            self.flags |= hit.reshape(-1, h, n1).any(axis=(0, 2))
        return out


@dataclass
class _Context:
    config: S4DStudyConfig
    layer: S4DLayer
    program: CrossbarProgram
    reference_kernel: np.ndarray
    reference_output: np.ndarray
    reference_eigenvalues: np.ndarray
    u: np.ndarray
    dac: DAC
    adc: ADC


def _run_pair(matvec: MatVec, ctx: _Context, length: int, with_output: bool = True
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Kernel (impulse) and, optionally, the output for the random input, in one batched
    recurrence of ``length`` steps; also the per-channel clipping flags."""
    h = ctx.program.n_channels
    batch = np.zeros((2 if with_output else 1, h, length))
    batch[0, :, 0] = 1.0
    if with_output:
        batch[1] = ctx.u[:, :length]
    monitor = ClipMonitor(matvec, ctx.dac, ctx.adc, h)
    y = run_recurrence(monitor, ctx.program, batch, dac=ctx.dac, adc=ctx.adc)
    kernel = y[0].copy()
    kernel[:, 0] -= ctx.program.D
    return kernel, (y[1] if with_output else None), monitor.flags


def _metrics(matvec: MatVec, ctx: _Context, length: int, full: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Kernel metrics and flags; with ``full`` also output, MVM and eigenvalue metrics."""
    kernel, output, clipped = _run_pair(matvec, ctx, length, with_output=full)
    k = compare_kernels(kernel, ctx.reference_kernel[:, :length])
    values: dict[str, np.ndarray] = {
        "unstable": np.zeros(ctx.program.n_channels, dtype=bool),
        "clipped": clipped,
        "kernel_rel_l2": k.relative_l2,
        "kernel_snr_db": k.snr_db,
        "kernel_cosine": k.cosine,
        "kernel_gain": k.gain,
    }
    if full:
        o = compare_kernels(output, ctx.reference_output[:, :length])
        values["output_rel_l2"] = o.relative_l2
        values["output_snr_db"] = o.snr_db
        # the analog product through the DAC (the ADC's calibrated range is that of the
        # trajectory, which uniform random test vectors would overdrive)
        values["mvm_error"] = single_step_mvm_error(
            matvec, ctx.program, ctx.program, n_vectors=READ_VECTORS, seed=ctx.config.seed, dac=ctx.dac, adc=ADC()
        )
        values.update(eigen_metrics(probe_layer(matvec, ctx.program, ctx.dac), ctx.program, ctx.reference_eigenvalues))
        values["unstable"] = values["stability_margin"] < 0
    return kernel, values


def _variant_program(layer: S4DLayer, variant: str, u: np.ndarray, config: S4DStudyConfig, v_read: float,
                     ) -> tuple[CrossbarProgram, DAC, ADC, dict[str, float]]:
    """The variant's stored program (balanced if ``dac_balance``), its converters and the DAC
    range use before/after balancing (mean unused bits over inputs, effective bits)."""
    program = layer.crossbar_program(variant)  # type: ignore[arg-type]
    dac, adc = calibrate_converters(program, u, dac_bits=config.dac_bits, adc_bits=config.adc_bits, v_read=v_read)
    unused_before = float(np.nanmean(dac_range_bits(program, u, dac)))
    record = {"unused_bits_before": unused_before}
    if config.dac_balance:
        program, _ = balance_states(program, u)
        dac, adc = calibrate_converters(program, u, dac_bits=config.dac_bits, adc_bits=config.adc_bits, v_read=v_read)
    record["unused_bits_after"] = float(np.nanmean(dac_range_bits(program, u, dac)))
    if config.dac_bits is not None:
        record["effective_bits_before"] = config.dac_bits - record["unused_bits_before"]
        record["effective_bits_after"] = config.dac_bits - record["unused_bits_after"]
    if config.adc_bits is None:
        adc = ADC()
    return program, dac, adc, record


def run_s4d_study(config: S4DStudyConfig | dict[str, Any], progress: Progress | None = None) -> StudyResult:
    """Run every case of the study (see the module doc) and collect the results.

    ``config``: validated settings, or a plain dict in the TOML layout (validated here).
    ``progress``: called with a label after each unit of work (:func:`study_work_units`).
    """
    from cosim.compensation import Devices, compensate_layer

    if not isinstance(config, S4DStudyConfig):
        config = parse_study_config(dict(config), source="run_s4d_study config")
    tell: Progress = progress or (lambda label: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    layer = build_layer(config)
    device_model = _load_device_model(config)
    v_read = float(device_model.u0)
    window = ConductanceWindow.from_device_model(device_model, seed=config.seed, coverage=config.devices.window_coverage)
    length = config.length
    u = np.random.default_rng(config.seed).standard_normal((layer.n_channels, length))
    reference_kernel = layer.kernel(length)
    reference_output = layer.apply_fft(u)
    reference_eigenvalues = effective_eigenvalues(layer.crossbar_program("full"))
    wires = Wires(**config.wires.model_dump())
    program_config = config.program_config()
    options = config.compensation_options()
    methods = list(config.compensation.methods)
    rows: list[pd.DataFrame] = []
    kernels: dict[tuple[str, str, str, int, str], np.ndarray] = {}
    mappings: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    programming: list[dict[str, Any]] = []
    failures: list[pd.DataFrame] = []
    costs: list[dict[str, Any]] = []
    dac_records: dict[str, dict[str, float]] = {}

    for variant in config.variants:
        program, dac, adc, dac_records[variant] = _variant_program(layer, variant, u, config, v_read)
        ctx = _Context(config, layer, program, reference_kernel, reference_output, reference_eigenvalues, u, dac, adc)
        mapped = map_program(program, window, layout=config.layout, scale_scheme=config.scale, weight_bits=config.weight_bits)
        row_means = mean_row_volts(program, u, dac)
        rng = np.random.default_rng(config.seed)
        if config.read_inputs == "trajectory":
            step_volts = trajectory_volts(program, u, dac, READ_VECTORS)
            nf_volts: np.ndarray | None = step_volts
        else:
            step_volts = rng.uniform(-1, 1, (READ_VECTORS, mapped.size)) * v_read
            nf_volts = None

        def record(case: str, method: str, seed: int, backend_name: str, kernel: np.ndarray, values: dict[str, Any]) -> None:
            frame = pd.DataFrame({"channel": np.arange(layer.n_channels), **values})
            for name, value in (("backend", backend_name), ("seed", seed), ("compensation", method),
                                ("case", case), ("variant", variant)):
                frame.insert(0, name, value)
            rows.append(frame)
            kernels[(variant, case, method, seed, backend_name)] = kernel

        def note_programming(case: str, method: str, seed: int, layout: MappedLayer) -> None:
            if layout.programming:
                programming.append({"variant": variant, "case": case, "compensation": method, "seed": seed,
                                    **layout.programming})
            if layout.failures is not None and len(layout.failures):
                frame = layout.failures.copy()
                for name, value in (("seed", seed), ("compensation", method), ("case", case), ("variant", variant)):
                    frame.insert(0, name, value)
                failures.append(frame)

        def compensated(case: str, method: str, seed: int, base: MappedLayer, exact: MappedLayer,
                        case_wires: Wires) -> tuple[MappedLayer, np.ndarray | None, np.ndarray | None]:
            """The layout to read for ``method`` and its digital correction."""
            if method == "none":
                return base, None, None
            tick = time.perf_counter()
            devices = Devices(device_model, seed, program_config) if seed >= 0 else None
            source = base if method == "gain" else exact
            result = compensate_layer(source, method, case_wires, devices=devices, options=options, v_read=v_read)
            costs.append({"variant": variant, "case": case, "compensation": method, "seed": seed,
                          "residual": result.residual, **result.cost.as_dict()})
            timings[f"{variant}/{case}/{method}/{seed}/compensation"] = time.perf_counter() - tick
            if method != "gain" and seed >= 0:
                note_programming(case, method, seed, result.mapped)
            return result.mapped, result.gain, result.offset

        def circuit_case(case: str, method: str, seed: int, layout: MappedLayer, case_wires: Wires, cell_model: str,
                         gain: np.ndarray | None = None, offset: np.ndarray | None = None) -> None:
            mappings[(variant, case, method, seed)] = layout.describe()
            for backend_name in ("nodal", "ngspice"):
                if not getattr(config.backends, backend_name):
                    continue
                tick = time.perf_counter()
                with CircuitBackend(
                    layout, case_wires, solver=backend_name, cell_model=cell_model,  # type: ignore[arg-type]
                    device_model=device_model, timeout_s=config.backends.timeout_s,
                ) as backend:
                    matvec: MatVec = backend
                    if gain is not None:
                        from cosim.compensation import CorrectedMatVec

                        matvec = CorrectedMatVec(backend, gain, offset if offset is not None else np.zeros_like(gain))
                    full = backend_name == "nodal"
                    steps = length if full else min(length, config.backends.ngspice_length)
                    kernel, values = _metrics(matvec, ctx, steps, full)
                    if full:
                        values["nf"], values["output_error"], values["output_error_net"] = tile_read_metrics(
                            backend, nf_volts, step_volts, config.seed, gain, offset)
                    else:
                        nodal = kernels.get((variant, case, method, seed, "nodal"))
                        if nodal is not None:
                            scale = np.linalg.norm(nodal[:, :steps], axis=1)
                            values["vs_nodal"] = np.linalg.norm(kernel - nodal[:, :steps], axis=1) / scale
                    values["steps"] = np.full(layer.n_channels, steps)
                    values["solve_s"] = np.full(layer.n_channels, backend.stats["seconds"])
                record(case, method, seed, backend_name, kernel, values)
                timings[f"{variant}/{case}/{method}/{seed}/{backend_name}"] = time.perf_counter() - tick
            tell(f"{variant} {case} {method}" + (f" seed {seed}" if seed >= 0 else ""))

        circuit_case("ideal_nowire", "none", -1, mapped, Wires.negligible(), "linear")
        for method in methods:
            if method == "insitu":
                continue  # in-situ write-verify needs devices
            layout, gain, offset = compensated("ideal_wires", method, -1, mapped, mapped, wires)
            circuit_case("ideal_wires", method, -1, layout, wires, "linear", gain, offset)
        for seed in config.device_seeds():
            tick = time.perf_counter()
            programmed = program_layer(mapped, device_model, seed, program_config)
            timings[f"{variant}/programming/{seed}"] = time.perf_counter() - tick
            note_programming("devices_wires", "none", seed, programmed)
            tell(f"{variant} programming seed {seed}")
            software = dense_layer_matvec(programmed.stored_layer_weights())
            kernel, values = _metrics(software, ctx, length, True)
            record("devices_model", "none", seed, "software", kernel, values)
            mappings[(variant, "devices_model", "none", seed)] = programmed.describe()
            tell(f"{variant} devices_model seed {seed}")
            placed = with_mdm(programmed, row_means) if config.mdm else None
            placed_exact = with_mdm(mapped, row_means) if config.mdm else None
            for method in methods:
                layout, gain, offset = compensated("devices_wires", method, seed, programmed, mapped, wires)
                circuit_case("devices_wires", method, seed, layout, wires, config.devices.cell_model, gain, offset)
                if placed is not None and placed_exact is not None:
                    layout, gain, offset = compensated("devices_mdm", method, seed, placed, placed_exact, wires)
                    circuit_case("devices_mdm", method, seed, layout, wires, config.devices.cell_model, gain, offset)

    timings["total"] = time.perf_counter() - started
    resolved = config.resolved()
    resolved["conductance_window_S"] = [window.g_min, window.g_max]
    resolved["input_seed"] = config.seed
    resolved["step_vector_seed"] = config.seed
    resolved["nf_input_seed"] = config.seed
    resolved["window_seed"] = config.seed
    resolved["probe_seed"] = options.probe_seed
    summary = pd.concat(rows, ignore_index=True)
    order = KEYS + FLAGS + [c for c in summary.columns if c not in KEYS and c not in FLAGS]
    return StudyResult(
        resolved, summary[order], kernels, reference_kernel, mappings, timings,
        programming=pd.DataFrame(programming),
        failures=pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(),
        compensation=pd.DataFrame(costs), dac=dac_records,
    )
