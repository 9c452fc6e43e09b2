"""Reading the hand-edited YAML settings files (env.yaml, callysto.yaml): the one strict base of
their models, and the reader that turns every problem into one line naming file, field and reason."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from callysto_infra.errors import UsageError
from callysto_infra.paths import PROJECT_DIR, display

__all__ = ["PROJECT_DIR", "Strict", "display", "parse", "read"]

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Settings an operator types: a misspelt field is an error, not a silently ignored default,
    a value read once cannot change under the command that read it, and a value of the wrong type
    is refused rather than converted (YAML reads `yes` as true, which must never become 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _tags(loc: tuple) -> list[bool]:
    """Which parts of LOC name a member of a union (hubs: list[...] or constrained-int), not a
    key of the file."""
    return [
        isinstance(part, str)
        and (
            "[" in part or (part == "constrained-int" and number > 0 and loc[number - 1] == "hubs")
        )
        for number, part in enumerate(loc)
    ]


def _other_type(error: dict) -> bool:
    """An error of a union member whose type is not the one given (an int member for a list)."""
    return error["type"] in ("int_type", "list_type") and any(_tags(error["loc"]))


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """The first problem of EXC as 'FILE: field.path: reason', counting the others."""
    errors = exc.errors()
    # A field of several types (hubs: a list or a count) reports a problem per type; the one
    # of the type given counts (a list's for a list), and the types' names are not fields.
    errors = [e for e in errors if not _other_type(e)] or errors
    first = errors[0]
    loc = first["loc"]
    field = ".".join(str(p) for p, tag in zip(loc, _tags(loc), strict=True) if not tag)
    field = field or "(top level)"
    reason = first["msg"].removeprefix("Value error, ")
    if isinstance(first.get("input"), bool) and first["type"] != "bool_type":
        reason += " (YAML reads yes/no/on/off/true/false as a boolean: quote it or give a number)"
    if first["type"] == "extra_forbidden":
        reason = "unknown field (check the spelling; see 'callysto env show' for the fields)"
    elif first["type"] == "missing":
        reason = "required field is missing"
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{display(path)}: {field}: {reason}{suffix}"


# A settings file is a page or two; anything far larger, or nested far deeper, is not one, and
# reading it whole (a device, a binary) or recursing into it must not be what stops the command.
MAX_BYTES = 1 << 20
MAX_DEPTH = 32


class _Refused(Exception):
    """A YAML document that parses but is not taken as settings: LINE (1-based) and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _loader():
    """PyYAML's safe loader, stricter: a key given twice, an alias (*name) or nesting beyond
    MAX_DEPTH is refused instead of silently keeping the last value or expanding it."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(
                    event.start_mark.line + 1,
                    f"the alias *{event.anchor} is not allowed in settings: write the value out",
                )
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _Refused(
                        event.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels"
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.setdefault(key, line)
                except TypeError:
                    continue  # an unhashable key: SafeLoader's own error names it
                if first != line:
                    raise _Refused(
                        line,
                        f"duplicate key {key!r} (first given on line {first}): "
                        "keep one of them, with every setting it should hold",
                    )
            return super().construct_mapping(node, deep=deep)

    return Loader


def _text(path: Path) -> str:
    """The text of PATH: UTF-8, no NUL byte, at most MAX_BYTES; else one UsageError line."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{display(path)}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_BYTES:
        raise UsageError(
            f"{display(path)}: larger than {MAX_BYTES >> 10} KiB, so not a settings file"
        )
    if b"\x00" in data:
        raise UsageError(f"{display(path)}: holds a NUL byte, so it is not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{display(path)}: cannot be read (not UTF-8 text)") from None


def read(path: Path, model: type[M], *, empty_ok: bool = False) -> M:
    """The YAML file PATH validated by MODEL; every problem is one UsageError line. With EMPTY_OK, an empty file gives the model's defaults."""
    return parse(_text(path), path, model, empty_ok=empty_ok)


def parse(text: str, path: Path, model: type[M], *, empty_ok: bool = False) -> M:
    """TEXT, the YAML of the file PATH (read, or about to be written), validated by MODEL as
    read() validates the file: every problem is one UsageError line naming PATH."""
    import yaml

    try:
        raw = yaml.load(text, Loader=_loader())  # noqa: S506 (a SafeLoader, made stricter)
    except _Refused as exc:
        raise UsageError(f"{display(path)}: line {exc.line}: {exc.reason}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{display(path)}:{where} is not valid YAML") from None
    if raw is None and empty_ok:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"{display(path)}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(format_validation_error(path, exc)) from None
