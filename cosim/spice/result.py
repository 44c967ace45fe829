"""One result type returned by every simulator backend (ngspice batch, ngspice in-process,
the fast nodal solver, VACASK).

Vector names are normalised to lower case: node voltages ``v(node)``, branch currents
``i(element)``, the sweep variable as ``time`` / ``frequency`` / ``v(v-sweep)``. Values are SI
units (V, A, s, Hz); complex analyses hold complex arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Plot:
    """One analysis' vectors (a plot in ngspice terms)."""

    name: str
    """Analysis name as the simulator gave it, e.g. ``"Operating Point"``."""
    vectors: dict[str, np.ndarray]
    """Vector name → 1-D array (length = number of points)."""
    title: str = ""
    units: dict[str, str] = field(default_factory=dict)
    """Vector name → unit/type string ("voltage", "current", "time", ...)."""

    @property
    def is_complex(self) -> bool:
        return any(np.iscomplexobj(v) for v in self.vectors.values())

    @property
    def n_points(self) -> int:
        return len(next(iter(self.vectors.values()))) if self.vectors else 0

    def to_frame(self) -> pd.DataFrame:
        """Wide table: one column per vector, one row per point."""
        return pd.DataFrame({k: np.asarray(v) for k, v in self.vectors.items()})


@dataclass
class SimResult:
    """Everything one simulator run returned."""

    backend: str
    plots: list[Plot]
    log: str = ""
    elapsed_s: float = 0.0
    meta: dict[str, object] = field(default_factory=dict)

    def plot(self, index: int = -1) -> Plot:
        if not self.plots:
            raise KeyError("result holds no plots")
        return self.plots[index]

    def __getitem__(self, name: str) -> np.ndarray:
        """Vector ``name`` (case-insensitive) from the last plot."""
        key = normalise_vector_name(name)
        vectors = self.plot().vectors
        if key not in vectors:
            raise KeyError(f"no vector {name!r}; have {sorted(vectors)}")
        return vectors[key]

    def __contains__(self, name: str) -> bool:
        return bool(self.plots) and normalise_vector_name(name) in self.plot().vectors

    @property
    def names(self) -> list[str]:
        return list(self.plot().vectors) if self.plots else []

    def cells(self, crossbar: object, plot: int = -1) -> object:
        """Per-cell (points, M, N) arrays of a crossbar run saved with ``save="cells"``.

        Returns a :class:`cosim.crossbar.probes.CellArrays` (node and cell voltages, cell
        currents, Verilog-A state nodes); ``crossbar`` is the simulated
        :class:`cosim.crossbar.Crossbar`.
        """
        from cosim.crossbar.probes import CellArrays

        return CellArrays.from_result(self, crossbar, plot)  # type: ignore[arg-type]

    def to_long_frame(self) -> pd.DataFrame:
        """Long table over all plots: ``plot, point, vector, value`` (+ ``imag`` if complex)."""
        frames = []
        for p_index, plot in enumerate(self.plots):
            for name, values in plot.vectors.items():
                values = np.asarray(values)
                frame = pd.DataFrame(
                    {
                        "plot": p_index,
                        "analysis": plot.name,
                        "point": np.arange(len(values)),
                        "vector": name,
                        "value": values.real.astype(float),
                    }
                )
                if np.iscomplexobj(values):
                    frame["imag"] = values.imag.astype(float)
                frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["plot", "analysis", "point", "vector", "value"])
        return pd.concat(frames, ignore_index=True)


def normalise_vector_name(name: str) -> str:
    """Map simulator spellings to one form: ``V(Out)`` → ``v(out)``, ``vin#branch`` → ``i(vin)``.

    An OSDI device's implicit branch (``V(a,b) <+ ...`` in Verilog-A) adds a current unknown
    that ngspice names ``n1#flow(a,b)`` and writes to raw files as ``v(n1#flow(a,b))`` with
    type voltage; it is a current in A, so it becomes ``i(n1#flow(a,b))``.
    """
    key = name.strip().lower()
    if key.endswith("#branch"):
        return f"i({key[: -len('#branch')]})"
    inner = key[2:-1] if key.startswith("v(") and key.endswith(")") else key
    if _FLOW_RE.search(inner):
        return f"i({inner})"
    return key


_FLOW_RE = re.compile(r"#flow\([^()]*\)$")


def is_branch_flow(name: str) -> bool:
    """True for a normalised name of an implicit-branch current (``i(n1#flow(a,b))``)."""
    return name.startswith("i(") and bool(_FLOW_RE.search(name[2:-1]))
