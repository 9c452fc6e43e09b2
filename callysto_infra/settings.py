"""Reading the hand-edited YAML settings files (env.yaml, callysto.yaml): the one strict base of
their models, and the reader that turns every problem into one line naming file, field and reason."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from callysto_infra.errors import UsageError
from callysto_infra.paths import PROJECT_DIR, display

__all__ = ["PROJECT_DIR", "Strict", "display", "read"]

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Settings an operator types: a misspelt field is an error, not a silently ignored default,
    and a value read once cannot change under the command that read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """The first problem of EXC as 'FILE: field.path: reason', counting the others."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown field (check the spelling; see 'callysto env show' for the fields)"
    elif first["type"] == "missing":
        reason = "required field is missing"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{display(path)}: {field}: {reason}{suffix}"


def read(path: Path, model: type[M], *, empty_ok: bool = False) -> M:
    """The YAML file PATH validated by MODEL; every problem is one UsageError line. With EMPTY_OK, an empty file gives the model's defaults."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{display(path)}:{where} is not valid YAML") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not text"
        raise UsageError(f"{display(path)}: cannot be read ({reason})") from None
    if raw is None and empty_ok:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"{display(path)}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(format_validation_error(path, exc)) from None
