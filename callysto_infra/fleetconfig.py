"""Changing a hub's state in env.yaml, the fleet's source of truth (the front door syncs its hubs
table from it at each start), the way an operator would: their comments, order, quoting and
indentation kept, the result validated like any env.yaml before it replaces the file."""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callysto_infra import environments, settings
from callysto_infra.env_schema import EnvConfig
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.paths import display

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- +)?[^\s#-][^:#]*:(?:\s|$)")


def _indents(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel.yaml names them, read off the file: the indent of
    the first nested key, and where the first block sequence puts its dashes and their content.
    A file that has no sequence gets PyYAML's layout (dashes under their key), as callysto
    writes env.yaml."""
    mapping = offset = sequence = None
    parent = 0  # the indent of the last key line: a sequence's first dash follows its key
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        if match["dash"] is None:
            if mapping is None and indent > 0 and parent == 0:
                mapping = indent
            parent = indent
        elif offset is None:
            offset = max(indent - parent, 0)
            sequence = offset + len(match["dash"])
    if offset is None or sequence is None:
        offset, sequence = 0, 2
    return mapping or 2, max(sequence, offset + 2), offset


def _yaml(text: str):
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-fold a long value the operator wrote on one line
    mapping, sequence, offset = _indents(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def edited(env: Environment, text: str, name: str, state: str) -> str:
    """TEXT (env.yaml) with hub NAME's state set to STATE; a count of hubs becomes the list of
    the same hubs first (env.yaml's names for them: EnvConfig.fleet)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = _yaml(text)
    data = yaml.load(text)
    listed = data.get("hubs")
    if not isinstance(listed, list):
        entries = []
        for hub in env.config.fleet:
            entry = CommentedMap(name=hub.name)
            # The first hub of a count adopts hub.existing_volumes and hub.floating_ip; listed,
            # it must say so itself.
            if hub.existing_volumes:
                entry["existing_volumes"] = list(hub.existing_volumes)
            if hub.floating_ip is not None:
                entry["floating_ip"] = hub.floating_ip
            entries.append(entry)
        data["hubs"] = listed = CommentedSeq(entries)
    for entry in listed:
        if isinstance(entry, dict) and entry.get("name") == name:
            if "state" in entry or state != "accepting":  # accepting is the default
                entry["state"] = state
            break
    else:
        raise UsageError(f"hub {name!r} is not listed under hubs: in env.yaml")
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _same_but_hubs(before: str, after: str) -> None:
    """Fail closed: the edit changes nothing but hubs (what YAML means, not how it reads)."""
    import yaml

    old, new = yaml.safe_load(before), yaml.safe_load(after)
    old.pop("hubs", None)
    new.pop("hubs", None)
    if old != new:
        raise OperationError("editing env.yaml would change more than 'hubs': nothing was written")


@dataclass(frozen=True)
class Edit:
    """A validated new env.yaml, not written yet."""

    path: Path
    before: str
    after: str

    @property
    def changes(self) -> bool:
        return self.before != self.after

    def write(self) -> None:
        """Replace env.yaml with the new text at once (never half-written), keeping its mode,
        unless someone edited it since it was read."""
        if _read(self.path) != self.before:
            raise OperationError(
                f"{display(self.path)} changed while this command ran: nothing was written; "
                "run it again"
            )
        _replace(self.path, self.after)

    def undo(self) -> None:
        _replace(self.path, self.before)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise OperationError(
            f"{display(path)} cannot be read ({why}): nothing was written"
        ) from None


def _replace(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o777
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise OperationError(
            f"{display(path)} cannot be written ({exc.strerror}): it was left as it was"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(partial, mode)
        os.replace(partial, path)
    except BaseException as exc:
        Path(partial).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OperationError(
                f"{display(path)} cannot be written ({exc.strerror}): it was left as it was"
            ) from None
        raise


def prepare(env: Environment, name: str, state: str) -> Edit:
    """The env.yaml of ENV with hub NAME in STATE, validated as env.yaml (one UsageError line
    naming the field otherwise); nothing is written."""
    path = env.path / environments.ENV_FILE
    before = _read(path)
    if any(hub.name == name and hub.state == state for hub in env.config.fleet):
        return Edit(path, before, before)  # so already: a count of hubs stays a count
    after = edited(env, before, name, state)
    _same_but_hubs(before, after)
    try:
        config = settings.parse(after, path, EnvConfig)
    except UsageError as exc:
        raise UsageError(f"{exc} (after the edit; nothing was written)") from None
    if [(h.name, h.state) for h in config.fleet] != [
        (h.name, state if h.name == name else h.state) for h in env.config.fleet
    ]:
        raise OperationError(
            "editing env.yaml would change its hubs otherwise: nothing was written"
        )
    return Edit(path, before, after)
