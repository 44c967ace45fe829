"""Generative ReRAM device model (Synaptogen-style, docs/device-model.md).

Modules: :mod:`~cosim.device.modelfile` (JSON schema, validation, Synaptogen import),
:mod:`~cosim.device.rng` (counter-based hash RNG shared with Verilog-A),
:mod:`~cosim.device.model` (vectorized float64 reference model),
:mod:`~cosim.device.programming` (write-verify), :mod:`~cosim.device.synth` (synthetic data),
:mod:`~cosim.device.plots` (figures).
"""

from cosim.device.modelfile import (
    DEFAULT_MA_ORDER,
    DeviceModel,
    import_synaptogen,
    load_model,
    ma_coefficients,
    save_model,
)

from cosim.device.model import DeviceArray, FeatureEngine, draw_d2d, feature_sequences

__all__ = [
    "DEFAULT_MA_ORDER",
    "DeviceArray",
    "DeviceModel",
    "FeatureEngine",
    "draw_d2d",
    "feature_sequences",
    "import_synaptogen",
    "load_model",
    "ma_coefficients",
    "save_model",
]
