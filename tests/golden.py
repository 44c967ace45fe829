"""Comparing generated text files (netlists, Verilog-A) with the committed golden copies.

Floats in generated files are printed to 12 significant digits (``cosim.spice.render``), but a
value lying on a rounding boundary can still print differently on another CPU, whose math
library may differ in the last bit. Golden files are therefore compared as text outside the
numbers and as numbers (relative tolerance) inside them, never byte for byte.
"""

from __future__ import annotations

import re

import numpy as np

NUMBER = re.compile(r"(?<![A-Za-z_\d])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
"""A number not glued to an identifier (``r0_1`` and ``Rx0_0`` stay text)."""


def assert_same_text_and_numbers(got: str, stored: str, name: str, rtol: float = 1e-9) -> None:
    """Same lines with the numbers masked, and the numbers equal within ``rtol``."""
    got_lines, stored_lines = got.splitlines(), stored.splitlines()
    assert len(got_lines) == len(stored_lines), f"{name} is stale (line count differs)"
    for number, (a, b) in enumerate(zip(got_lines, stored_lines), start=1):
        assert NUMBER.sub("#", a) == NUMBER.sub("#", b), f"{name}:{number} is stale:\n{a}\n{b}"
        np.testing.assert_allclose([float(x) for x in NUMBER.findall(a)],
                                   [float(x) for x in NUMBER.findall(b)], rtol=rtol, atol=0,
                                   err_msg=f"{name}:{number} is stale")
