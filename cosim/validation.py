"""Validating configuration dicts with pydantic, with errors that name the source and field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cosim.errors import CosimError

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_errors(source: str, exc: ValidationError) -> str:
    """One line per problem: ``source: field 'a.b': message``, joined with ``; ``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        parts.append(f"{source}: field '{where}': {err['msg']}")
    return "; ".join(parts)


def validate(
    model: type[ModelT], data: Any, source: str, error: type[CosimError] = CosimError
) -> ModelT:
    """``model.model_validate(data)``; a failure raises ``error`` naming ``source`` and every field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe_errors(source, exc)) from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict; every failure is a :class:`CosimError` naming the file."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise CosimError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CosimError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CosimError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
