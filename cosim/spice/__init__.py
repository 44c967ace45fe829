"""Simulator backends and the result type they all return."""

from cosim.spice.result import Plot, SimResult

__all__ = ["Plot", "SimResult"]
