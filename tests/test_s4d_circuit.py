"""Circuit-level S4D recurrence (nodal solver and in-process ngspice) against software models."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.device.modelfile import load_model
from cosim.device.programming import ProgramConfig
from cosim.paths import DEFAULT_MODEL
from cosim.s4d import (
    calibrate_converters,
    impulse_kernel,
    probe_program,
    program_kernel,
    run_recurrence,
    test_model,
)
from cosim.s4d.circuit import CircuitBackend, Wires, dense_layer_matvec
from cosim.s4d.ideal import S4DError, S4DLayer, init_s4d_lin
from cosim.s4d.mapping import ConductanceWindow, map_program, program_layer, with_mdm

WINDOW = ConductanceWindow(4.0e-5, 1.9e-4)


def relative(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel relative L2 distance along the last axis."""
    return np.linalg.norm(estimate - reference, axis=-1) / np.linalg.norm(reference, axis=-1)


@pytest.fixture(scope="module")
def device_model():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def programmed_channel(device_model):
    """Delta program, 8-bit device levels, one crossbar per channel, programmed devices."""
    mapped = map_program(test_model().crossbar_program("delta"), WINDOW, layout="channel", weight_bits=8)
    return program_layer(mapped, device_model, seed=5, config=ProgramConfig(tolerance=0.05))


@pytest.mark.parametrize("variant", ["full", "delta"])
def test_nodal_kernel_without_wires_equals_ideal(variant):
    layer = test_model()
    program = layer.crossbar_program(variant)
    mapped = map_program(program, WINDOW, layout="layer")
    with CircuitBackend(mapped, Wires.negligible(), solver="nodal") as backend:
        kernel = impulse_kernel(backend, program, 256)
        assert backend.stats["solves"] == 256
    reference = layer.kernel(256)
    assert relative(kernel, reference).max() <= 1e-6
    assert np.abs(kernel - reference).max() <= 1e-6 * np.abs(reference).max()


def test_nodal_factorization_reused_across_steps():
    program = test_model().crossbar_program("full")
    with CircuitBackend(map_program(program, WINDOW), Wires(), solver="nodal") as backend:
        impulse_kernel(backend, program, 16)
        assert backend._solvers[0].solver.stats.factorizations == 1


def test_ngspice_kernel_without_wires_equals_ideal_channel_layout():
    layer = test_model()
    program = layer.crossbar_program("delta")
    mapped = map_program(program, WINDOW, layout="channel")
    with CircuitBackend(mapped, Wires.negligible(), solver="ngspice", timeout_s=120) as backend:
        kernel = impulse_kernel(backend, program, 32)
    reference = layer.kernel(32)
    assert relative(kernel, reference).max() <= 1e-6


@pytest.mark.slow
def test_ngspice_kernel_without_wires_equals_ideal_layer_crossbar():
    """The whole 68×136 layer crossbar in ngspice (≈2 s per operating point): 4 steps."""
    layer = test_model()
    program = layer.crossbar_program("full")
    with CircuitBackend(map_program(program, WINDOW), Wires.negligible(), solver="ngspice", timeout_s=120) as backend:
        kernel = impulse_kernel(backend, program, 4)
    reference = layer.kernel(4)
    assert relative(kernel, reference).max() <= 1e-6


def test_programmed_devices_match_their_software_model(programmed_channel):
    """Quantized + programmed conductances, no wires: the circuit kernel equals the closed-form
    kernel of the stored weights (an independent computation); the distance to the ideal
    kernel is reported only."""
    layer = test_model()
    program = layer.crossbar_program("delta")
    with CircuitBackend(programmed_channel, Wires.negligible(), solver="nodal") as backend:
        kernel = impulse_kernel(backend, program, 256)
    software = program_kernel(programmed_channel.stored_program(), 256)
    assert relative(kernel, software).max() <= 1e-6
    distance = relative(kernel, layer.kernel(256))
    print("\nprogrammed devices (seed 5, 8-bit levels, delta) vs ideal kernel:", np.round(distance, 4))
    assert np.all(distance > 1e-4)  # the devices did change the kernel


def test_layer_crosstalk_and_converters_match_software_model(device_model):
    """Layer crossbar: programmed off-block cells add cross-talk; with 8-bit DAC and ADC the
    circuit still equals its software model (the stored layer matrix, same converters)."""
    layer = test_model()
    program = layer.crossbar_program("full")
    mapped = program_layer(map_program(program, WINDOW, layout="layer"), device_model, seed=2)
    stored = mapped.stored_layer_weights()
    off_block = stored.copy()
    off_block[np.kron(np.eye(4), np.ones((17, 17))).astype(bool)] = 0
    assert np.abs(off_block).max() > 0  # cross-talk between channels exists
    u = np.random.default_rng(1).standard_normal((4, 48))
    dac, adc = calibrate_converters(program, u, dac_bits=8, adc_bits=8)
    with CircuitBackend(mapped, Wires.negligible(), solver="nodal") as backend:
        y_circuit = run_recurrence(backend, program, u, dac=dac, adc=adc)
    y_software = run_recurrence(dense_layer_matvec(stored), program, u, dac=dac, adc=adc)
    assert relative(y_circuit, y_software).max() <= 1e-6


def test_wired_circuit_equals_its_probed_linear_model(programmed_channel):
    """With 1 Ω wires the circuit is still linear: its impulse kernel equals the closed-form
    kernel of its probed effective matrices."""
    program = test_model().crossbar_program("delta")
    with CircuitBackend(programmed_channel, Wires(), solver="nodal") as backend:
        kernel = impulse_kernel(backend, program, 128)
        probed = probe_program(backend, program, amplitude=0.5)
    assert relative(kernel, program_kernel(probed, 128)).max() <= 1e-8


def test_ngspice_equals_nodal_with_wires_and_devices(device_model):
    """Programmed devices, 1 Ω wires, linear and polynomial (device I–V) cells: ngspice
    in-process and the nodal solver give the same products (a small S4D-Lin layer: H = 2,
    N = 4, one 5×10 array per channel)."""
    program = init_s4d_lin(2, 4, seed=1)
    mapped = map_program(S4DLayer(program).crossbar_program("delta"), WINDOW, layout="channel")
    programmed = program_layer(mapped, device_model, seed=3)
    volts = np.random.default_rng(4).uniform(-0.2, 0.2, (6, programmed.size))
    for cell_model in ("linear", "polynomial"):
        results = {}
        for solver in ("nodal", "ngspice"):
            with CircuitBackend(programmed, Wires(), solver=solver, cell_model=cell_model,
                                device_model=device_model) as backend:
                results[solver] = backend.layer_products(volts)
        scale = np.abs(results["nodal"]).max()
        assert np.abs(results["ngspice"] - results["nodal"]).max() <= 1e-6 * scale, cell_model
    assert not np.allclose(results["nodal"], volts @ programmed.stored_layer_weights(), rtol=1e-3)


def test_mdm_is_undone_digitally(programmed_channel):
    """Without wires the MDM placement changes nothing; with wires it changes the products."""
    program = test_model().crossbar_program("delta")
    mean = np.random.default_rng(0).uniform(0.0, 0.2, programmed_channel.size)
    remapped = with_mdm(programmed_channel, mean)
    assert any(not np.array_equal(t.remap.row_order, np.arange(17)) for t in remapped.tiles)
    kernels = {}
    for name, mapped in (("before", programmed_channel), ("after", remapped)):
        with CircuitBackend(mapped, Wires.negligible()) as backend:
            kernels[name] = impulse_kernel(backend, program, 64)
    assert relative(kernels["after"], kernels["before"]).max() <= 1e-8
    volts = np.random.default_rng(1).uniform(-0.2, 0.2, (4, programmed_channel.size))
    with CircuitBackend(programmed_channel, Wires()) as a, CircuitBackend(remapped, Wires()) as b:
        assert not np.allclose(a.layer_products(volts), b.layer_products(volts), rtol=1e-9, atol=0)


def test_backend_checks_shapes_and_options():
    program = test_model().crossbar_program("full")
    mapped = map_program(program, WINDOW, layout="channel")
    with pytest.raises(S4DError, match="solver"):
        CircuitBackend(mapped, solver="xyce")  # type: ignore[arg-type]
    with CircuitBackend(mapped) as backend:
        with pytest.raises(S4DError, match="holds H=4"):
            backend(program.matrices, np.zeros((4, 5)))
        with pytest.raises(S4DError, match="volts"):
            backend.layer_products(np.zeros((1, 10)))
    with pytest.raises(S4DError, match="closed"):
        backend.layer_products(np.zeros((1, 68)))
