"""An environment's Terraform state read as data, without running Terraform: checked once (a corrupt
state stops every command and names the newest good saved copy), backed up only when good, its
resource addresses, and its `hosts` output as typed records: the contract with the inventory,
quotas and ssh. Only the standard library and lean modules are imported here, so the commands that
only read a state (`ansible hosts`, `ssh shell --print`) start fast: see locate()."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from callysto_infra import locking, paths, validate
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.paths import display

# The state format Terraform (0.13 onwards) and OpenTofu write. Another version is a state this
# code was never written for: refused rather than half understood.
FORMAT_VERSION = 4


class StateOwner(Protocol):
    """What reading a state needs of an environment: a validated Environment, or a Located one."""

    name: str
    path: Path

    @property
    def type(self) -> str: ...

    @property
    def state_file(self) -> Path: ...


@dataclass(frozen=True)
class Host:
    """One row of the `hosts` output (terraform/modules/hub/outputs.tf)."""

    name: str
    address: str
    ssh_user: str | None
    groups: tuple[str, ...]
    zfs_disks: tuple[str, ...]
    ssh_port: int | None = None  # None: not given, SSH's own default


class _Bad(Exception):
    """What is wrong with a state, for the one line that refuses it."""


# --- the check -------------------------------------------------------------------------------


def _parse(data: bytes) -> dict[str, Any]:
    """The state in DATA, checked: format version, shape, and every `hosts` row."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad("not text") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        # json's messages end in "at" when they name a place ("Unterminated string starting at").
        raise _Bad(f"{exc.msg.removesuffix(' at')} at line {exc.lineno}") from None
    if not (
        isinstance(state, dict)
        and isinstance(state.get("resources", []), list)
        and isinstance(state.get("outputs", {}), dict)
    ):
        raise _Bad("not a Terraform state")
    version = state.get("version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise _Bad(f"format version {version!r}, not {FORMAT_VERSION}, the one Terraform writes")
    for resource in state.get("resources", []):
        if not isinstance(resource, dict) or not isinstance(resource.get("instances", []), list):
            raise _Bad("a resource is not a mapping with a list of instances")
    output = state.get("outputs", {}).get("hosts")
    if output is not None:
        if not isinstance(output, dict):
            raise _Bad("its 'hosts' output is not a mapping")
        for key, row in _rows(output.get("value")):
            _check_row(key, row)
    return state


def _rows(value: Any) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [(str(key), row) for key, row in value.items()]
    if isinstance(value, list):
        return [(str(key), row) for key, row in enumerate(value)]
    raise _Bad("its 'hosts' output is neither a mapping nor a list")


def _check_row(key: str, row: Any) -> None:
    try:
        if not isinstance(row, dict):
            raise UsageError("is not a mapping")
        validate.state_name(row.get("name"), "name")
        validate.state_address(row.get("address"))
        validate.state_ssh_user(row.get("ssh_user"))
        validate.state_ssh_port(row.get("ssh_port"))
        groups = row.get("groups")
        if groups is not None:
            if not isinstance(groups, list):
                raise UsageError(f"has groups {groups!r}, not a list")
            for group in groups:
                validate.state_name(group, "group")
        for field in ("zfs_disk_1", "zfs_disk_2"):
            if row.get(field):
                validate.state_disk(row[field])
    except UsageError as exc:
        raise _Bad(f"hosts row '{key}' {exc}") from None


def is_good(data: bytes) -> bool:
    """Whether DATA is a state that passes the check (what a backup must be)."""
    try:
        _parse(data)
    except _Bad:
        return False
    return True


def read(env: StateOwner) -> dict[str, Any] | None:
    """ENV's state as data; None before the first apply. A corrupt state stops every command
    before Terraform runs, so nothing can overwrite what is left of it."""
    path = env.state_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise _corrupt(env, "a directory") from None
    except OSError as exc:
        raise OperationError(
            f"Terraform state {display(path)} cannot be read ({exc.strerror})"
        ) from None
    try:
        return _parse(data)
    except _Bad as exc:
        raise _corrupt(env, str(exc)) from None


def newest_good_backup(state_file: Path) -> Path | None:
    """The newest copy in state-backups/ that passes the check (older callysto kept any copy)."""
    for copy in reversed(locking.backups(state_file)):
        try:
            if is_good(copy.read_bytes()):
                return copy
        except OSError:
            continue
    return None


def _corrupt(env: StateOwner, reason: str) -> OperationError:
    good = newest_good_backup(env.state_file)
    if good is not None:
        hint = f"restore the newest good copy, {display(good)}"
    else:
        hint = f"there is no good copy in {display(env.path / locking.BACKUP_DIR)}/ to restore"
    # repr() would quote; this keeps the reason on one line whatever the state held.
    reason = reason.replace("\n", "\\n").replace("\r", "\\r")
    return OperationError(
        f"Terraform state {display(env.state_file)} is corrupt ({reason}): nothing was run; {hint}"
    )


def backup(env: StateOwner) -> Path | None:
    """A private copy of ENV's state in state-backups/, taken before a change: only of a state that
    passes the check and differs from the newest copy, so failed retries never push the last good
    copies out. Returns the newest copy (None when there is no state yet)."""
    return locking.backup(env.state_file, good=is_good)


# --- what is in it ----------------------------------------------------------------------------


def addresses(state: dict[str, Any] | None) -> list[str]:
    """The managed resource addresses in STATE (what taint and -replace accept), sorted."""
    found = []
    for resource in (state or {}).get("resources", []):
        if resource.get("mode") != "managed":
            continue
        base = f"{resource['type']}.{resource['name']}"
        if resource.get("module"):
            base = f"{resource['module']}.{base}"
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            found.append(base if key is None else f"{base}[{json.dumps(key)}]")
    return sorted(found)


def hosts(env: StateOwner) -> list[Host]:
    """The rows of the `hosts` output of ENV's state, in the state's order."""
    state = read(env)
    if state is None:
        raise UsageError(
            f"environment '{env.name}' has no Terraform state yet: run "
            f"'callysto terraform apply --env {env.name}' (make terraform/apply ENV={env.name}) first"
        )
    output = state.get("outputs", {}).get("hosts")
    if not isinstance(output, dict):
        raise OperationError(
            f"Terraform state of '{env.name}' has no 'hosts' output: run "
            f"'callysto terraform apply --env {env.name}'"
        )
    return [_host(env, row) for _key, row in _rows(output.get("value"))]


def _host(env: StateOwner, row: dict[str, Any]) -> Host:
    # Checked by _parse: only the defaults are filled in here.
    groups = row.get("groups") or ("hub", env.type, env.name)
    disks = (row.get("zfs_disk_1"), row.get("zfs_disk_2"))
    return Host(
        name=row["name"],
        address=row["address"],
        ssh_user=row.get("ssh_user") or None,
        groups=tuple(groups),
        zfs_disks=tuple(disk for disk in disks if disk),
        ssh_port=row.get("ssh_port"),
    )


# --- the lean way in --------------------------------------------------------------------------

# env.yaml's top-level type, as callysto writes it. Anything else (quoted oddly, flow style, twice)
# is left to the full reader, which validates the whole file.
_TYPE_LINE = re.compile(r"^type:[ \t]*([\"']?)(dev|prod|local)\1[ \t]*(?:#.*)?$", re.M)


@dataclass(frozen=True)
class Located(paths.EnvPaths):
    """An environment found only to read its state: its name, directory and type, without
    validating env.yaml (no pydantic, no YAML parser)."""

    name: str
    path: Path
    type: str


def locate(name: str | None) -> Located | None:
    """The environment NAME when it has a state to read and its type can be told at a glance;
    otherwise None, and the caller loads it the full way (which also says what is wrong)."""
    if not name or not validate.ENV_NAME_RE.fullmatch(name):
        return None
    path = paths.envs_dir() / name
    try:
        text = (path / "env.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _TYPE_LINE.findall(text)
    if len(found) != 1 or found[0][1] == "local":
        return None
    located = Located(name=name, path=path, type=found[0][1])
    return located if located.state_file.is_file() else None
