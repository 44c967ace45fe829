"""Crossbar arrays: specification, netlists, the fast nodal solver, NF metrics and MDM."""

from cosim.crossbar.cells import CellModel, LinearCells, PolynomialCells, VerilogACells
from cosim.crossbar.spec import Crossbar, Transistor

__all__ = ["CellModel", "Crossbar", "LinearCells", "PolynomialCells", "Transistor", "VerilogACells"]
