"""The small example netlists kept in ``netlists/`` (each ``crossbar_*.cir`` next to the
``crossbar_*.toml`` it is generated from). Regenerate with ``python -m cosim.crossbar.examples``."""

from __future__ import annotations

from pathlib import Path

from cosim.crossbar import config as cfg
from cosim.fileio import write_text_atomic
from cosim.paths import NETLISTS_DIR

EXAMPLES_DIR = NETLISTS_DIR


def example_configs() -> list[Path]:
    """The example descriptions, sorted by name."""
    return sorted(EXAMPLES_DIR.glob("crossbar_*.toml"))


def render_example(toml: Path) -> str:
    """Netlist text for one example description."""
    return cfg.render(cfg.parse_config(cfg.load_toml(toml), str(toml)), toml.parent)


def regenerate() -> list[Path]:
    """Rewrite every example netlist from its description; returns the files written."""
    return [write_text_atomic(toml.with_suffix(".cir"), render_example(toml)) for toml in example_configs()]


if __name__ == "__main__":
    for written in regenerate():
        print(f"wrote {written}")
