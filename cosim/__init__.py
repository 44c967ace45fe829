"""cosim: circuit-level co-simulation of memristive (ReRAM) crossbars."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cosim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
