"""The `cosim` command line: a thin layer over the library.

Each area registers its commands from a module in :mod:`cosim.commands`; heavy imports
happen inside the command functions so that `cosim --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])

_COMMAND_MODULES = [
    "cosim.commands.core",
    "cosim.commands.device",
    "cosim.commands.va",
    "cosim.commands.fit",
    "cosim.commands.crossbar",
    "cosim.commands.s4d",
    "cosim.commands.batch",
    "cosim.commands.demo",
    "cosim.commands.train",
]


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # area not written yet
                continue
            raise
        module.register(app)
    # one place that turns user-caused failures (CosimError, OSError, MemoryError) of any
    # command into an `error:` line; other exceptions are bugs and keep their traceback
    from cosim.commands._guard import guard_commands

    guard_commands(app)


_register_all()

if __name__ == "__main__":
    app()
