"""Exception types shared across cosim. Messages name the file, row or field at fault."""


class CosimError(Exception):
    """Base class for errors reported to the user without a traceback."""


class ToolchainError(CosimError):
    """A required external tool (ngspice, openvaf-r, VACASK) is missing or broken."""


class NetlistError(CosimError):
    """A netlist could not be rendered safely (bad identifier or value)."""


class SimulationError(CosimError):
    """A simulator run failed: error in the log, non-convergence, crash or timeout."""


class SimulationTimeout(SimulationError):
    """A simulator run exceeded its time limit and was killed."""


class ConvergenceError(SimulationError):
    """The simulator reported that it could not converge."""


class ModelFileError(CosimError):
    """A device model file is malformed; the message names the field."""


class DataFileError(CosimError):
    """A measurement file is malformed; the message names the file, row or column."""
