"""Validating configuration dicts with pydantic, with errors that name the source and field."""

from __future__ import annotations

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
