"""Built-in job kinds.

* ``crossbar_ideal_nf``: a small, real workload; nonideality factor of a linear-resistor
  crossbar with wire resistance (DESIGN §5), solved by sparse nodal analysis. A placeholder
  until the crossbar area registers its solver-based kinds.
* ``ngspice_divider``: a resistor divider simulated by ``ngspice -b -r out.raw in.cir`` in a
  subprocess (:func:`cosim.spice.batch.run_batch`); it shows that every job runs isolated in its
  own process tree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from pydantic import BaseModel, ConfigDict, Field

from cosim.batch.jobs import register_job
from cosim.paths import TEMPLATES_DIR
from cosim.spice.batch import run_batch
from cosim.spice.render import render_netlist

DIVIDER_TEMPLATE = TEMPLATES_DIR / "batch_divider.cir.j2"


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


def _stamp(n_nodes: int, a: np.ndarray, b: np.ndarray, g: np.ndarray) -> sp.csc_matrix:
    """Nodal conductance matrix of two-terminal conductances g between nodes a and b."""
    rows = np.concatenate([a, b, a, b])
    cols = np.concatenate([a, b, b, a])
    vals = np.concatenate([g, g, -g, -g])
    return sp.coo_matrix((vals, (rows, cols)), shape=(n_nodes, n_nodes)).tocsc()


def crossbar_column_currents(
    g: np.ndarray, v: np.ndarray, r_wire: float, r_source: float, r_sense: float
) -> np.ndarray:
    """Sensed column currents (A) of an M×C crossbar with wire segments of ``r_wire`` Ω.

    Row i is driven at column 0 by ``v[i, k]`` through ``r_source``; column j is sensed at row
    M−1 into a virtual ground through ``r_sense``. ``g`` is M×C (S), ``v`` is M×K (V);
    returns C×K.
    """
    m, c = g.shape
    row_node = np.arange(m * c).reshape(m, c)
    col_node = row_node + m * c
    n = 2 * m * c
    edges_a = [row_node[:, :-1].ravel(), col_node[:-1, :].ravel(), row_node.ravel()]
    edges_b = [row_node[:, 1:].ravel(), col_node[1:, :].ravel(), col_node.ravel()]
    g_wire = 1.0 / r_wire
    edges_g = [
        np.full(m * (c - 1), g_wire),
        np.full((m - 1) * c, g_wire),
        g.ravel(),
    ]
    matrix = _stamp(n, np.concatenate(edges_a), np.concatenate(edges_b), np.concatenate(edges_g))
    to_ground = np.zeros(n)
    to_ground[row_node[:, 0]] += 1.0 / r_source
    to_ground[col_node[-1, :]] += 1.0 / r_sense
    matrix = (matrix + sp.diags(to_ground)).tocsc()
    rhs = np.zeros((n, v.shape[1]))
    rhs[row_node[:, 0], :] = v / r_source
    solution = spla.splu(matrix).solve(rhs)
    return solution[col_node[-1, :], :] / r_sense


@register_job("crossbar_ideal_nf", params=CrossbarIdealParams)
def crossbar_ideal_nf(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """NF and differential output error of seeded Gaussian weights on a wired crossbar.

    Weights w ~ N(0, 1) (rows × cols) map to differential column pairs (G⁺ in column 2j, G⁻ in
    2j+1): G± = g_min + (g_max − g_min)·clip(±w / weight_clip, 0, 1). Inputs are uniform in
    [0, v_read]. NF follows DESIGN §5.
    """
    p = CrossbarIdealParams.model_validate(params)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((p.rows, p.cols))
    inputs = rng.uniform(0.0, p.v_read, size=(p.rows, p.n_inputs))
    span = p.g_max - p.g_min
    g = np.empty((p.rows, 2 * p.cols))
    g[:, 0::2] = p.g_min + span * np.clip(weights / p.weight_clip, 0.0, 1.0)
    g[:, 1::2] = p.g_min + span * np.clip(-weights / p.weight_clip, 0.0, 1.0)
    real = crossbar_column_currents(g, inputs, p.r_wire, p.r_source, p.r_sense)
    ideal = g.T @ inputs
    valid = ideal >= 1e-3 * ideal.max()
    nf = (ideal - real)[valid] / ideal[valid]
    diff_real = real[0::2] - real[1::2]
    diff_ideal = ideal[0::2] - ideal[1::2]
    diff_error = np.abs(diff_real - diff_ideal).sum() / np.abs(diff_ideal).sum()
    return {
        "nf": float(nf.mean()),
        "nf_max": float(nf.max()),
        "diff_error": float(diff_error),
        "unknowns": int(4 * p.rows * p.cols),
    }


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
