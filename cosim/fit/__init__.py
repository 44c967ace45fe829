"""Fitting the generative device model to measurements (docs/fitting.md, docs/file-formats.md).

* :mod:`cosim.fit.readers` — cycle tables and raw I–V loops, column aliases, units → SI;
* :mod:`cosim.fit.qc` — quality-control findings (device, cycle, action);
* :mod:`cosim.fit.extract` — features from I–V loops (R at U0, SET/RESET thresholds);
* :mod:`cosim.fit.fit` — location/scale, Γ, latents, VAR order and fit, D2D mixture, I–V basis;
* :mod:`cosim.fit.report` — statistics of data and model side by side, markdown + figures.
"""

from cosim.fit.fit import FitConfig, FitResult, fit_file, fit_measurement, fit_table
from cosim.fit.qc import QCConfig, QCEntry, QCReport
from cosim.fit.readers import Measurement, read_measurements

__all__ = [
    "FitConfig", "FitResult", "Measurement", "QCConfig", "QCEntry", "QCReport", "fit_file",
    "fit_measurement", "fit_table", "read_measurements",
]
