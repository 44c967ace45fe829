"""Deployment of a trained S4D classifier on simulated crossbars: ``cosim deploy`` (entry point
:func:`deploy_run`).

The digital parts of the model (encoder, GELU, GLU mixing, LayerNorm, pooling, decoder) run in
PyTorch; every S4D layer is replaced by the step recurrence of
:func:`cosim.s4d.ideal.run_recurrence` on its crossbar matrices at one of four levels:

``float``          the trained (unquantized) matrices, exact products;
``quantized``      the matrices quantized as :mod:`cosim.s4d.quant` defines (``bits`` 2–8 or
                   ternary, block scales), exact products — what QAT trained for;
``devices``        the quantized matrices mapped to differential conductance pairs, one
                   crossbar per channel (:func:`cosim.s4d.mapping.map_program`, layout
                   ``channel``, one scale per output column), programmed by write-verify into
                   stochastic devices of the device model (one device seed per row of
                   ``accuracy.csv``); products with the achieved conductances, no wires;
``devices_wires``  the same programmed crossbars in the circuit with wire, source and sense
                   resistances, solved by the nodal solver at every time step
                   (:class:`cosim.s4d.circuit.CircuitBackend`), with a compensation method.
                   The crossbars hold linear cells (resistors at the achieved conductances),
                   so the circuit is a linear map of the row voltages: with ``engine = "probe"``
                   (default) each crossbar is solved once per input (unit vectors) and the
                   recurrence uses that in-circuit matrix — the same result as solving at
                   every step (``engine = "step"``, checked by the spot check to ~1e-12) at a
                   fraction of the cost.

Converters: the DAC maps each channel's ``[x_{k−1}; u_k]`` to ±``v_read`` with a full scale
calibrated on training inputs (peak of an ideal float run, 10 % headroom); no rounding or
clipping (ideal converters), so the levels isolate the weights and the circuit.

Compensation (``devices_wires``): ``none``, or any method of :mod:`cosim.compensation`
(``gain``, ``predistort``, ``insitu``; applied crossbar by crossbar by its
``compensate_layer``, the digital per-output correction after the circuit). Where that module
is absent, ``gain`` is the per-output gain calibration of :func:`probe_gains` (known random
probe voltages per crossbar, least-squares gain and offset of each output against the intended
products, divided out digitally).

Device seeds: layer ``i`` of device seed ``s`` draws its devices from
``SeedSequence([s, i])`` (recorded), so layers do not share devices.

Outputs: ``accuracy.csv`` (columns ``level, variant, bits, compensation, mdm, device_seed,
accuracy, n_test``), ``deploy.json`` (settings, seeds, programming statistics, spot check,
timings), ``accuracy.png`` and ``report.md`` (:mod:`cosim.train.report`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cosim.errors import CosimError
from cosim.s4d.ideal import (
    DAC,
    CrossbarProgram,
    MatVec,
    S4DLayer,
    S4DParams,
    ideal_matvec,
    run_recurrence,
)
from cosim.train.config import DeployConfig

CSV_COLUMNS = ["level", "variant", "bits", "compensation", "mdm", "device_seed", "accuracy", "n_test"]
V_READ = 0.2
HEADROOM = 1.1
PROBE_VECTORS = 32


@dataclass
class LayerSetup:
    """One S4D layer at deployment: active channels, its float and stored programs, its DAC."""

    active: np.ndarray
    float_program: CrossbarProgram
    program: CrossbarProgram
    dac: DAC
    input_mean: np.ndarray  #: E|v| per crossbar input [V] (MDM row loads)


@dataclass
class DeployResult:
    """What :func:`deploy_run` produced."""

    table: Any  # pandas DataFrame with CSV_COLUMNS
    record: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def active_params(params: S4DParams, active: np.ndarray) -> S4DParams:
    """The channels ``active`` of a layer."""
    return S4DParams(A=params.A[active], B=params.B[active], C=params.C[active], D=params.D[active], dt=params.dt[active])


def quantize(program: CrossbarProgram, bits: int | str | None, scheme: str = "block") -> CrossbarProgram:
    """The stored program at ``bits`` (None: unchanged)."""
    from cosim.s4d.quant import quantize_program, ternarize_program

    if bits is None:
        return program
    if bits == "ternary":
        return ternarize_program(program, scheme).program  # type: ignore[arg-type]
    return quantize_program(program, int(bits), scheme).program  # type: ignore[arg-type]


def capture_layer_inputs(model: Any, X: np.ndarray) -> list[np.ndarray]:
    """Inputs (B, H, L) of every S4D layer in the model's own (software) forward pass."""
    import torch

    captured: list[np.ndarray] = []

    def hook(index: int, u: torch.Tensor) -> torch.Tensor:
        captured.append(u.detach().double().numpy())
        return model.s4d_layers()[index](u)

    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(X), hook)
    return captured


def _row_volts(program: CrossbarProgram, u: np.ndarray, dac: DAC) -> np.ndarray:
    """(B, L, H, N+1) DAC voltages of an ideal run on u (B, H, L)."""
    _, states = run_recurrence(ideal_matvec, program, u, return_states=True)
    previous = np.concatenate([np.zeros(states[..., :1, :].shape), states[..., :-1, :]], axis=-2)
    stacked = np.concatenate([previous, u[..., None]], axis=-1)  # (B, H, L, N+1)
    return dac.to_volts(np.moveaxis(stacked, -2, 1))


def layer_setups(model: Any, X_calib: np.ndarray, variant: str, bits: int | str | None, scheme: str) -> list[LayerSetup]:
    """Programs and DACs of every layer, calibrated on ``X_calib`` (training inputs)."""
    inputs = capture_layer_inputs(model, X_calib)
    setups = []
    for layer, params, u in zip(model.s4d_layers(), model.export(), inputs):
        active = np.flatnonzero(layer.channel_mask.numpy() > 0)
        float_program = S4DLayer(active_params(params, active)).crossbar_program(variant)  # type: ignore[arg-type]
        u_active = u[:, active]
        plain = DAC(full_scale=1.0, v_read=V_READ, clip=False)
        volts = _row_volts(float_program, u_active, plain) / V_READ  # digital values
        peak = np.abs(volts).max(axis=(0, 1, 3))
        dac = DAC(bits=None, full_scale=np.where(peak > 0, peak, 1.0) * HEADROOM, v_read=V_READ, clip=False)
        mean = np.abs(_row_volts(float_program, u_active, dac)).mean(axis=(0, 1)).ravel()
        setups.append(LayerSetup(active, float_program, quantize(float_program, bits, scheme), dac, mean))
    return setups


def layer_override(setups: list[LayerSetup], matvecs: list[MatVec], programs: list[CrossbarProgram]) -> Callable[[int, Any], Any]:
    """A model override running layer ``i`` as ``run_recurrence(matvecs[i], programs[i])``."""
    import torch

    def override(index: int, u: torch.Tensor) -> torch.Tensor:
        setup = setups[index]
        values = u.detach().double().numpy()
        y = np.zeros_like(values)
        y[:, setup.active] = run_recurrence(matvecs[index], programs[index], values[:, setup.active], dac=setup.dac)
        return torch.from_numpy(y.astype(np.float32))

    return override


class GainCorrected:
    """MatVec dividing every output of ``inner`` by its probed gain (and removing its offset)."""

    def __init__(self, inner: MatVec, gains: np.ndarray, offsets: np.ndarray) -> None:
        self.inner, self.gains, self.offsets = inner, gains, offsets

    def __call__(self, matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        return (self.inner(matrices, volts) - self.offsets) / self.gains


def probe_gains(backend: Any, program: CrossbarProgram, seed: int, vectors: int = PROBE_VECTORS) -> tuple[np.ndarray, np.ndarray]:
    """Per-output (H, N+1) gains and offsets [V] of a circuit backend against the intended
    program: one all-zero read (offset) and ``vectors`` random row-voltage vectors uniform in
    ±v_read (seeded); gain = least-squares slope of measured vs intended products."""
    h, n1 = program.n_channels, program.state_size + 1
    rng = np.random.default_rng(seed)
    volts = rng.uniform(-V_READ, V_READ, size=(vectors, h, n1))
    offsets = backend(program.matrices, np.zeros((1, h, n1)))[0]
    measured = backend(program.matrices, volts) - offsets
    wanted = ideal_matvec(program.matrices, volts)
    denominator = np.sum(wanted**2, axis=0)
    gains = np.where(denominator > 0, np.sum(measured * wanted, axis=0) / np.where(denominator > 0, denominator, 1.0), 1.0)
    return np.where(np.abs(gains) > 1e-6, gains, 1.0), offsets


def compensation_methods() -> list[str]:
    """Methods available here: those of :mod:`cosim.compensation` if present, else none/gain."""
    try:
        from cosim.compensation import METHODS  # type: ignore[attr-defined]

        return list(METHODS)
    except ImportError:
        return ["none", "gain"]


def _layer_seed(device_seed: int, layer: int) -> int:
    return int(np.random.SeedSequence([int(device_seed), int(layer)]).generate_state(1)[0] % (2**31 - 1))


@dataclass
class _Hardware:
    device_model: Any
    window: Any
    program_config: Any
    wires: Any


def _programmed(setups: list[LayerSetup], hw: _Hardware, device_seed: int, stats: dict[str, Any]) -> list[Any]:
    from cosim.s4d.mapping import map_program, program_layer

    mapped = []
    for index, setup in enumerate(setups):
        seed = _layer_seed(device_seed, index)
        layer = program_layer(map_program(setup.program, hw.window, layout="channel"), hw.device_model, seed, hw.program_config)
        stats[f"seed{device_seed}_layer{index}"] = {"layer_seed": seed, **layer.programming}
        mapped.append(layer)
    return mapped


def effective_matvec(backend: Any) -> MatVec:
    """The circuit's linear map read once: each crossbar is solved once per input row at
    ``v_read`` (unit vectors through the nodal solver), as a dense MatVec. Exact for linear
    cells (superposition)."""
    from cosim.s4d.circuit import dense_layer_matvec

    size = backend.mapped.size
    weights = np.zeros((size, size))  # inputs × outputs
    for index, tile in enumerate(backend.mapped.tiles):
        currents = backend.tile_currents(index, V_READ * np.eye(tile.inputs.size))
        products = (currents[:, 0::2] - currents[:, 1::2]) / tile.scale[None, :] / V_READ
        weights[np.ix_(tile.inputs, tile.outputs)] += products
    return dense_layer_matvec(weights)


class Corrected:
    """MatVec applying a digital per-output correction ``products · gain + offset`` (layer
    order, as :mod:`cosim.compensation` returns it) to the products of ``inner``."""

    def __init__(self, inner: MatVec, gain: np.ndarray, offset: np.ndarray) -> None:
        self.inner, self.gain, self.offset = inner, np.asarray(gain, float), np.asarray(offset, float)

    def __call__(self, matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        out = self.inner(matrices, volts)
        flat = out.reshape(out.shape[:-2] + (-1,)) * self.gain + self.offset
        return flat.reshape(out.shape)


def _library_compensation() -> Any:
    """:func:`cosim.compensation.compensate_layer` and ``Devices`` if installed, else None."""
    try:
        from cosim.compensation import Devices, compensate_layer  # type: ignore[attr-defined]
    except ImportError:
        return None
    return compensate_layer, Devices


def _circuit_matvecs(setups: list[LayerSetup], mapped: list[Any], hw: _Hardware, method: str, mdm: bool,
                     probe_seed: int, engine: str = "probe", device_seed: int = 0,
                     record: dict[str, Any] | None = None) -> tuple[list[MatVec], list[Any]]:
    from cosim.s4d.circuit import CircuitBackend
    from cosim.s4d.mapping import with_mdm

    library = _library_compensation() if method != "none" else None
    matvecs, backends = [], []
    for index, (setup, layer) in enumerate(zip(setups, mapped)):
        placed = with_mdm(layer, setup.input_mean) if mdm else layer
        gain = offset = None
        if library is not None:
            compensate_layer, Devices = library
            devices = Devices(hw.device_model, _layer_seed(device_seed, index), hw.program_config)
            done = compensate_layer(placed, method, hw.wires, devices=devices if method in ("predistort", "insitu") else None,
                                    v_read=V_READ)
            placed, gain, offset = done.mapped, done.gain, done.offset
            if record is not None:
                summary = done.summary()
                summary.pop("tiles", None)
                record[f"{method}/{'mdm' if mdm else 'plain'}/seed{device_seed}/layer{index}"] = summary
        backend = CircuitBackend(placed, hw.wires, solver="nodal")
        backends.append(backend)
        circuit: MatVec = effective_matvec(backend) if engine == "probe" else backend
        if method == "none":
            matvecs.append(circuit)
        elif gain is not None:
            matvecs.append(Corrected(circuit, gain, offset))
        elif method == "gain":
            gains, offsets = probe_gains(circuit, setup.program, probe_seed)
            matvecs.append(GainCorrected(circuit, gains, offsets))
        else:
            raise CosimError(f"compensation {method!r} is not available in this installation (have: none, gain)")
    return matvecs, backends


def spot_check(setups: list[LayerSetup], mapped: list[Any], hw: _Hardware, X_layer0: np.ndarray, samples: int,
               steps: int, timeout_s: float, channels: int = 2) -> dict[str, Any]:
    """ngspice against the nodal solver: the first ``channels`` crossbars of layer 0 with
    wires, the first ``samples`` inputs, ``steps`` time steps of the recurrence."""
    from dataclasses import replace

    from cosim.s4d.circuit import CircuitBackend

    setup, layer = setups[0], mapped[0]
    k = min(channels, setup.program.n_channels)
    program = CrossbarProgram(setup.program.matrices[:k], setup.program.variant, setup.program.D[:k], "spot check")
    sub = replace(layer, program=program, tiles=layer.tiles[:k])
    dac = DAC(bits=None, full_scale=np.asarray(setup.dac.full_scale)[:k], v_read=V_READ, clip=False)
    u = X_layer0[:samples, setup.active[:k], :steps]
    start = time.perf_counter()
    with CircuitBackend(sub, hw.wires, solver="nodal") as nodal:
        y_nodal = run_recurrence(nodal, program, u, dac=dac)
    nodal_s = time.perf_counter() - start
    start = time.perf_counter()
    with CircuitBackend(sub, hw.wires, solver="ngspice", timeout_s=timeout_s) as spice:
        y_spice = run_recurrence(spice, program, u, dac=dac)
    spice_s = time.perf_counter() - start
    scale = float(np.abs(y_nodal).max()) or 1.0
    return {
        "layer": 0, "channels": int(k), "samples": int(u.shape[0]), "steps": int(u.shape[-1]),
        "max_abs_difference": float(np.abs(y_spice - y_nodal).max()),
        "max_relative_difference": float(np.abs(y_spice - y_nodal).max() / scale),
        "nodal_seconds": nodal_s, "ngspice_seconds": spice_s,
    }


def _levels_plan(config: DeployConfig, methods: list[str]) -> list[tuple[str, str, bool]]:
    """(level, compensation, mdm) in evaluation order."""
    plan: list[tuple[str, str, bool]] = []
    for level in config.levels:
        if level == "devices_wires":
            plan += [(level, method, mdm) for method in methods for mdm in config.mdm]
        else:
            plan.append((level, "none", False))
    return plan


def default_compensation(available: list[str]) -> list[str]:
    """``none`` and the best available method (predistort > insitu > gain)."""
    for best in ("predistort", "insitu", "gain"):
        if best in available:
            return ["none", best]
    return ["none"]


def deploy_run(run: Path, output: Path, config: DeployConfig, progress: bool = True) -> DeployResult:
    """Evaluate the run's test split at every level, variant, compensation and device seed."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cosim.device.modelfile import load_model
    from cosim.device.programming import ProgramConfig
    from cosim.paths import DEFAULT_MODEL
    from cosim.s4d.circuit import Wires
    from cosim.s4d.mapping import ConductanceWindow
    from cosim.train.trainer import evaluate, load_run, load_calibration

    started = time.perf_counter()
    model, record, data = load_run(run)
    X, y = data.X_test, data.y_test
    if config.max_samples:
        X, y = X[: config.max_samples], y[: config.max_samples]
    X_calib = load_calibration(run)
    trained_bits = record["config"]["qat"]["bits"]
    scheme = record["config"]["qat"]["scheme"]
    bits = config.bits if config.bits is not None else (trained_bits if trained_bits is not None else 8)
    variants = config.variants or [record["architecture"]["variant"]]
    available = compensation_methods()
    methods = config.compensation or default_compensation(available)
    for method in methods:
        if method not in available:
            raise CosimError(f"compensation {method!r} is not available; choose from {', '.join(available)}")
    device_model = load_model(config.model_file or DEFAULT_MODEL)
    hw = _Hardware(device_model, ConductanceWindow.from_device_model(device_model, seed=0),
                   ProgramConfig(tolerance=config.tolerance), Wires(**config.wires.model_dump()))
    plan = _levels_plan(config, methods)
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    compensation_record: dict[str, Any] = {}
    timings: dict[str, float] = {}
    spot: dict[str, Any] | None = None
    seeded = [p for p in plan if p[0] in ("devices", "devices_wires")]
    total = len(variants) * (len(plan) - len(seeded) + len(seeded) * len(config.device_seeds))
    columns = (TextColumn("deploy {task.fields[case]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("cases", total=total, case="")

        def measure(level: str, variant: str, method: str, mdm: bool, seed: int | None,
                    matvecs: list[MatVec], programs: list[CrossbarProgram], setups: list[LayerSetup]) -> None:
            bar.update(task, case=f"{level} {variant} {method}{' mdm' if mdm else ''} seed {seed}")
            start = time.perf_counter()
            accuracy = evaluate(model, X, y, batch_size=len(y), override=layer_override(setups, matvecs, programs))
            timings[f"{level}/{variant}/{method}/{'mdm' if mdm else 'plain'}/{seed}"] = time.perf_counter() - start
            rows.append({"level": level, "variant": variant, "bits": "float" if level == "float" else str(bits),
                         "compensation": method, "mdm": bool(mdm), "device_seed": "" if seed is None else int(seed),
                         "accuracy": accuracy, "n_test": int(len(y))})
            bar.update(task, advance=1)

        for variant in variants:
            setups = layer_setups(model, X_calib, variant, bits, scheme)
            exact = [ideal_matvec] * len(setups)
            if "float" in config.levels:
                measure("float", variant, "none", False, None, exact, [s.float_program for s in setups], setups)
            if "quantized" in config.levels:
                measure("quantized", variant, "none", False, None, exact, [s.program for s in setups], setups)
            if not seeded:
                continue
            for seed in config.device_seeds:
                start = time.perf_counter()
                mapped = _programmed(setups, hw, seed, stats)
                timings[f"programming/{variant}/{seed}"] = time.perf_counter() - start
                if "devices" in config.levels:
                    stored = [layer.stored_program() for layer in mapped]
                    measure("devices", variant, "none", False, seed, exact, stored, setups)
                for level, method, mdm in plan:
                    if level != "devices_wires":
                        continue
                    matvecs, backends = _circuit_matvecs(setups, mapped, hw, method, mdm, probe_seed=seed, engine=config.engine,
                                                         device_seed=seed, record=compensation_record)
                    try:
                        measure(level, variant, method, mdm, seed, matvecs, [s.program for s in setups], setups)
                    finally:
                        for backend in backends:
                            backend.close()
                if spot is None and config.spot_check.enabled and "devices_wires" in config.levels:
                    layer0 = capture_layer_inputs(model, X[: config.spot_check.samples])[0]
                    spot = spot_check(setups, mapped, hw, layer0, config.spot_check.samples,
                                      min(config.spot_check.steps, X.shape[-1]), config.spot_check.timeout_s)
                    spot.update({"variant": variant, "device_seed": int(seed)})
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    deploy_record = {
        "run": str(run),
        "config": config.model_dump(mode="json"),
        "bits": str(bits),
        "scheme": scheme,
        "variants": variants,
        "compensation": methods,
        "compensation_available": available,
        "trained": {"bits": trained_bits, "variant": record["architecture"]["variant"],
                    "test_accuracy_software": None},
        "window_S": [hw.window.g_min, hw.window.g_max],
        "programming": stats,
        "compensation_details": compensation_record,
        "spot_check": spot,
        "timings": timings,
        "seconds": time.perf_counter() - started,
        "memory_bits": {"quantized": model.crossbar_memory_bits(bits), "float": model.crossbar_memory_bits(None)},
        "layout": "channel (one crossbar per channel)",
        "v_read_V": V_READ,
    }
    try:
        import json

        deploy_record["trained"]["test_accuracy_software"] = json.loads((Path(run) / "metrics.json").read_text())["test_accuracy"]
    except (OSError, ValueError, KeyError):
        pass
    from cosim.train.report import write_deploy_report

    files = write_deploy_report(table, deploy_record, Path(output))
    return DeployResult(table, deploy_record, files)
