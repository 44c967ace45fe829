"""The circuit study: ideal S4D vs crossbar circuits, with and without MDM.

:func:`run_s4d_study` maps the layer (per variant) to conductances, programs stochastic
devices (per device seed), runs the step recurrence through the circuit backends and compares
every case against the ideal model. Cases:

==================  ==========================================================================
``ideal_nowire``    exact target conductances (quantized to device levels if ``weight_bits``),
                    wires of 1 nΩ (:meth:`Wires.negligible`)
``ideal_wires``     the same conductances with the configured wires
``devices_model``   programmed devices, their software model: the stored weights
                    ``(G⁺ − G⁻)/s`` in an exact product (no circuit), per seed
``devices_wires``   programmed devices in the circuit with wires, per seed
``devices_mdm``     the same devices placed by MDM, with wires, per seed
==================  ==========================================================================

Per case, channel and backend the summary holds: kernel metrics against the ideal kernel
(relative L2, SNR dB, cosine, gain), the output error for a random input, the single-step MVM
error, the effective eigenvalues' error and stability margin (diagonal blocks of the probed
layer matrix), the layer's stability margin including cross-talk, the cross-talk ratio, and
per tile the NF (docs/crossbar.md, random inputs in [0, v_read]) and the differential output error of
the S4D step voltages. Every seed is recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cosim.s4d.circuit import CircuitBackend, Wires, dense_layer_matvec
from cosim.s4d.config import S4DStudyConfig, parse_study_config
from cosim.s4d.ideal import (
    ADC,
    DAC,
    CrossbarProgram,
    MatVec,
    S4DLayer,
    calibrate_converters,
    ideal_matvec,
    init_s4d_inv,
    init_s4d_lin,
    run_recurrence,
    test_model,
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
"""Random input vectors per single-step MVM error, NF and output-error estimate."""

CASES = ("ideal_nowire", "ideal_wires", "devices_model", "devices_wires", "devices_mdm")


@dataclass
class StudyResult:
    """Everything a study produced.

    ``summary``: one row per (variant, case, seed, backend, channel) with every metric;
    ``kernels``: (variant, case, seed, backend) → K̂ (H, L) (seed −1 for seed-free cases);
    ``ideal_kernel``: K (H, L); ``mappings``: (variant, case, seed) → mapping description;
    ``config``: resolved settings incl. every seed; ``timings``: seconds per stage.
    """

    config: dict[str, Any]
    summary: pd.DataFrame
    kernels: dict[tuple[str, str, int, str], np.ndarray]
    ideal_kernel: np.ndarray
    mappings: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Mean and standard deviation over device seeds per (variant, case, backend, channel)."""
        metrics = [c for c in self.summary.columns if c not in ("variant", "case", "seed", "backend", "channel")]
        grouped = self.summary.groupby(["variant", "case", "backend", "channel"], sort=False)[metrics]
        mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
        return mean.join(std.add_suffix("_sd")).reset_index()

    def mdm_table(self) -> pd.DataFrame:
        """NF, output error and kernel error before/after MDM per variant and device seed."""
        rows = self.summary[(self.summary.backend == "nodal") & self.summary.case.isin(["devices_wires", "devices_mdm"])]
        wide = rows.groupby(["variant", "seed", "case"])[["nf", "output_error", "kernel_rel_l2"]].mean().unstack("case")
        wide.columns = [f"{metric}_{'before' if case == 'devices_wires' else 'after'}" for metric, case in wide.columns]
        return wide.reset_index()


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

    return load_model(config.devices.model_file or DEFAULT_MODEL)


def mean_row_volts(program: CrossbarProgram, u: np.ndarray, dac: DAC) -> np.ndarray:
    """E|v_i| [V] per layer input over an ideal run on ``u`` (H, L): the MDM row loads."""
    _, states = run_recurrence(ideal_matvec, program, u, return_states=True)
    n = program.state_size
    previous = np.concatenate([np.zeros((program.n_channels, 1, n)), states[:, :-1, :]], axis=1)
    stacked = np.concatenate([previous, u[..., None]], axis=-1)  # (H, L, N+1)
    volts = dac.to_volts(np.moveaxis(stacked, 1, 0))  # (L, H, N+1)
    return np.abs(volts).mean(axis=0).ravel()


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


def tile_read_metrics(backend: CircuitBackend, step_volts: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean over tiles of the NF (random inputs in [0, v_read], docs/crossbar.md) and of the
    differential output error for the S4D step voltages ``step_volts`` (K, H(N+1)) [V]."""
    from cosim.crossbar.mdm import random_inputs
    from cosim.crossbar.metrics import differential_error, evaluate, ideal_currents

    nfs, errors = [], []
    for index, tile in enumerate(backend.mapped.tiles):
        logical = backend.logical_crossbar(index)
        inputs = random_inputs(logical.rows, READ_VECTORS, abs(logical.v_read), seed)
        nfs.append(evaluate(logical, inputs, backend.tile_currents(index, inputs)).tile_nf)
        volts = step_volts[:, tile.inputs]
        errors.append(differential_error(ideal_currents(logical, volts), backend.tile_currents(index, volts)))
    return float(np.mean(nfs)), float(np.mean(errors))


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


def _run_pair(matvec: MatVec, ctx: _Context, length: int, with_output: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Kernel (impulse) and, optionally, the output for the random input, in one batched
    recurrence of ``length`` steps."""
    h = ctx.program.n_channels
    batch = np.zeros((2 if with_output else 1, h, length))
    batch[0, :, 0] = 1.0
    if with_output:
        batch[1] = ctx.u[:, :length]
    y = run_recurrence(matvec, ctx.program, batch, dac=ctx.dac, adc=ctx.adc)
    kernel = y[0].copy()
    kernel[:, 0] -= ctx.program.D
    return kernel, (y[1] if with_output else None)


def _metrics(matvec: MatVec, ctx: _Context, length: int, full: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Kernel metrics; with ``full`` also output, MVM and eigenvalue metrics."""
    kernel, output = _run_pair(matvec, ctx, length, with_output=full)
    k = compare_kernels(kernel, ctx.reference_kernel[:, :length])
    values = {
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
    return kernel, values


def run_s4d_study(config: S4DStudyConfig | dict[str, Any]) -> StudyResult:
    """Run every case of the study (see the module doc) and collect the results.

    ``config``: validated settings, or a plain dict in the TOML layout (validated here).
    """
    if not isinstance(config, S4DStudyConfig):
        config = parse_study_config(dict(config), source="run_s4d_study config")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    layer = build_layer(config)
    device_model = _load_device_model(config)
    window = ConductanceWindow.from_device_model(device_model, seed=config.seed, coverage=config.devices.window_coverage)
    length = config.length
    u = np.random.default_rng(config.seed).standard_normal((layer.n_channels, length))
    reference_kernel = layer.kernel(length)
    reference_output = layer.apply_fft(u)
    reference_eigenvalues = effective_eigenvalues(layer.crossbar_program("full"))
    wires = Wires(**config.wires.model_dump())
    from cosim.device.programming import ProgramConfig

    program_config = ProgramConfig(tolerance=config.devices.tolerance, max_pulses=config.devices.max_pulses)
    rows: list[pd.DataFrame] = []
    kernels: dict[tuple[str, str, int, str], np.ndarray] = {}
    mappings: dict[tuple[str, str, int], dict[str, Any]] = {}

    for variant in config.variants:
        program = layer.crossbar_program(variant)
        dac, adc = calibrate_converters(
            program, u, dac_bits=config.dac_bits, adc_bits=config.adc_bits, v_read=float(device_model.u0)
        )
        if config.adc_bits is None:
            adc = ADC()
        ctx = _Context(config, layer, program, reference_kernel, reference_output, reference_eigenvalues, u, dac, adc)
        mapped = map_program(program, window, layout=config.layout, scale_scheme=config.scale, weight_bits=config.weight_bits)
        row_means = mean_row_volts(program, u, dac)
        step_volts = np.random.default_rng(config.seed).uniform(-1, 1, (READ_VECTORS, mapped.size)) * float(device_model.u0)

        def record(case: str, seed: int, backend_name: str, kernel: np.ndarray, values: dict[str, Any]) -> None:
            frame = pd.DataFrame({"channel": np.arange(layer.n_channels), **values})
            frame.insert(0, "backend", backend_name)
            frame.insert(0, "seed", seed)
            frame.insert(0, "case", case)
            frame.insert(0, "variant", variant)
            rows.append(frame)
            kernels[(variant, case, seed, backend_name)] = kernel

        def circuit_case(case: str, seed: int, layout: MappedLayer, case_wires: Wires, cell_model: str) -> None:
            mappings[(variant, case, seed)] = layout.describe()
            for backend_name in ("nodal", "ngspice"):
                if not getattr(config.backends, backend_name):
                    continue
                tick = time.perf_counter()
                with CircuitBackend(
                    layout, case_wires, solver=backend_name, cell_model=cell_model,  # type: ignore[arg-type]
                    device_model=device_model, timeout_s=config.backends.timeout_s,
                ) as backend:
                    full = backend_name == "nodal"
                    steps = length if full else min(length, config.backends.ngspice_length)
                    kernel, values = _metrics(backend, ctx, steps, full)
                    if full:
                        values["nf"], values["output_error"] = tile_read_metrics(backend, step_volts, config.seed)
                    else:
                        nodal = kernels.get((variant, case, seed, "nodal"))
                        if nodal is not None:
                            scale = np.linalg.norm(nodal[:, :steps], axis=1)
                            values["vs_nodal"] = np.linalg.norm(kernel - nodal[:, :steps], axis=1) / scale
                    values["steps"] = np.full(layer.n_channels, steps)
                    values["solve_s"] = np.full(layer.n_channels, backend.stats["seconds"])
                record(case, seed, backend_name, kernel, values)
                timings[f"{variant}/{case}/{seed}/{backend_name}"] = time.perf_counter() - tick

        circuit_case("ideal_nowire", -1, mapped, Wires.negligible(), "linear")
        circuit_case("ideal_wires", -1, mapped, wires, "linear")
        for seed in config.device_seeds():
            tick = time.perf_counter()
            programmed = program_layer(mapped, device_model, seed, program_config)
            timings[f"{variant}/programming/{seed}"] = time.perf_counter() - tick
            software = dense_layer_matvec(programmed.stored_layer_weights())
            kernel, values = _metrics(software, ctx, length, True)
            record("devices_model", seed, "software", kernel, values)
            mappings[(variant, "devices_model", seed)] = programmed.describe()
            circuit_case("devices_wires", seed, programmed, wires, config.devices.cell_model)
            if config.mdm:
                circuit_case("devices_mdm", seed, with_mdm(programmed, row_means), wires, config.devices.cell_model)

    timings["total"] = time.perf_counter() - started
    resolved = config.resolved()
    resolved["conductance_window_S"] = [window.g_min, window.g_max]
    resolved["input_seed"] = config.seed
    resolved["step_vector_seed"] = config.seed
    resolved["nf_input_seed"] = config.seed
    resolved["window_seed"] = config.seed
    return StudyResult(resolved, pd.concat(rows, ignore_index=True), kernels, reference_kernel, mappings, timings)
