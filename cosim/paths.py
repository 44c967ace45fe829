"""Locations of the project's data folders (templates, Verilog-A, models, netlists)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
VERILOGA_DIR = PROJECT_ROOT / "veriloga"
DATA_DIR = PROJECT_ROOT / "data"
MODELS_DIR = DATA_DIR / "models"
NETLISTS_DIR = PROJECT_ROOT / "netlists"
DEFAULT_MODEL = MODELS_DIR / "default.json"
