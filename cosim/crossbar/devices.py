"""Verilog-A device cells for crossbars: the generative model and the compact-model library.

:func:`generative_cells` puts one instance of the project's generative Verilog-A model
(:mod:`cosim.veriloga`) in every cell, each with its own device id, D2D vector and initial
state: cell (i, j) is device ``first_device + i·N + j`` of ``seed``, the same device that
``cosim synth --seed S`` writes as ``device = first_device + i·N + j`` and that
:class:`cosim.device.model.DeviceArray` simulates for that seed and id. The OSDI library is
rendered and compiled on demand (cached by :func:`cosim.veriloga.compile_reram`).

:func:`library_cells` does the same for a compact model of ``veriloga/library/``
(:mod:`cosim.library`), with instance parameters per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from cosim.crossbar.cells import PolynomialCells, VerilogACells
from cosim.device.model import DeviceArray
from cosim.device.modelfile import DeviceModel
from cosim.errors import CosimError

GENERATIVE_STATE_NODES = ("a", "b", "pk")
"""Internal nodes of the generative model: SET count, first-RESET count, RESET peak [V]."""
GENERATIVE_OUTPUTS = ("r", "cycle", "hrs", "lrs", "us", "ur")
"""Operating-point outputs of the generative model probed per cell with ``save="cells"``."""
SET_LEVEL, RESET_LEVEL = -10.0, 10.0
"""Quasi-static levels [V] beyond every threshold: a full SET and a full RESET."""


def device_ids(shape: tuple[int, int], first_device: int = 0) -> np.ndarray:
    """Device id of each cell, (M, N): ``first_device + i·N + j`` (row-major)."""
    rows, cols = shape
    if first_device < 0:
        raise CosimError(f"first_device must be >= 0, got {first_device}")
    return first_device + np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)


def reference_devices(model: DeviceModel, seed: int, ids: np.ndarray, cycle0: int = 0,
                      lrs0: int = 0) -> DeviceArray:
    """The Python devices (truncated-MA form, as in the Verilog-A model) in their initial state.

    ``ids`` of any shape (flattened); a device starts in HRS of cycle ``cycle0`` (full SET /
    full RESET pairs move it there), or in LRS of that cycle with ``lrs0 = 1``.
    """
    if cycle0 < 0 or lrs0 not in (0, 1):
        raise CosimError("cycle0 must be >= 0 and lrs0 0 or 1")
    devices = DeviceArray(model, seed=seed, device_ids=np.asarray(ids).ravel(), method="ma")
    for _ in range(int(cycle0)):
        devices.apply(SET_LEVEL)
        devices.apply(RESET_LEVEL)
    if lrs0:
        devices.apply(SET_LEVEL)
    return devices


def generative_cells(model: DeviceModel, seed: int, shape: tuple[int, int], first_device: int = 0,
                     cycle0: int = 0, lrs0: int = 0, osdi_file: Path | None = None,
                     model_name: str = "rram") -> VerilogACells:
    """One generative Verilog-A device per cell (see the module docstring).

    ``osdi_file``: a compiled library of the same model; by default the model is rendered with
    the default options and compiled (cached). The cells carry a polynomial ``equivalent``
    with each device's initial state, so the nodal solver reads the same array.
    """
    from cosim.veriloga import DEFAULT_MODULE, compile_reram, instance_params

    ids = device_ids(shape, first_device)
    params = instance_params(model, seed, ids, cycle0=np.full(shape, cycle0), lrs0=np.full(shape, lrs0))
    reference = reference_devices(model, seed, ids, cycle0, lrs0)
    equivalent = PolynomialCells.from_state(reference.r.reshape(shape), model.llrs_poly(), model.hhrs_poly())
    osdi = Path(osdi_file) if osdi_file is not None else compile_reram(model)
    return VerilogACells(
        shape_=shape, model=model_name, module=DEFAULT_MODULE, params=params, osdi_file=osdi,
        equivalent=equivalent, state_nodes=GENERATIVE_STATE_NODES, outputs=GENERATIVE_OUTPUTS,
    )


def library_cells(name: str, shape: tuple[int, int], params: Mapping[str, object] | None = None,
                  model_params: Mapping[str, float] | None = None, model_name: str | None = None) -> VerilogACells:
    """One instance of library model ``name`` (``vteam``, ``stanford_pku``, …) per cell."""
    from cosim.library import get_model

    entry = get_model(name)
    return VerilogACells(
        shape_=shape, model=model_name or entry.name, module=entry.module, params=dict(params or {}),
        model_params=dict(model_params or {}), osdi_file=entry.compile(),
        state_nodes=entry.state_nodes, outputs=(),
    )
