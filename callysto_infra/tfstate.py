"""An environment's Terraform state read as data, without running Terraform: checked once (a corrupt
state stops every command and names the newest saved copy), its resource addresses, and its
`hosts` output as typed records: the contract with the inventory, quotas and ssh."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callysto_infra import locking
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.settings import display

if TYPE_CHECKING:
    from callysto_infra.environments import Environment


@dataclass(frozen=True)
class Host:
    """One row of the `hosts` output (terraform/modules/hub/outputs.tf)."""

    name: str
    address: str
    ssh_user: str | None
    groups: tuple[str, ...]
    zfs_disks: tuple[str, ...]
    ssh_port: int | None = None  # None: not given, SSH's own default


def read(env: Environment) -> dict[str, Any] | None:
    """ENV's state as data; None before the first apply. A corrupt state stops every command
    before Terraform runs, so nothing can overwrite what is left of it."""
    path = env.state_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise _corrupt(env, "not text") from None
    except OSError as exc:
        raise OperationError(
            f"Terraform state {display(path)} cannot be read ({exc.strerror})"
        ) from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        # json's messages end in "at" when they name a place ("Unterminated string starting at").
        raise _corrupt(env, f"{exc.msg.removesuffix(' at')} at line {exc.lineno}") from None
    if not (
        isinstance(state, dict)
        and isinstance(state.get("version"), int)
        and isinstance(state.get("resources", []), list)
        and isinstance(state.get("outputs", {}), dict)
    ):
        raise _corrupt(env, "not a Terraform state")
    return state


def _corrupt(env: Environment, reason: str) -> OperationError:
    copies = locking.backups(env.state_file)
    if copies:
        hint = f"restore the newest copy, {display(copies[-1])}, if it is good"
    else:
        hint = f"there is no copy in {display(env.path / locking.BACKUP_DIR)}/ to restore"
    return OperationError(
        f"Terraform state {display(env.state_file)} is corrupt ({reason}): nothing was run; {hint}"
    )


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


def hosts(env: Environment) -> list[Host]:
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
    value = output.get("value") or {}
    rows = value.items() if isinstance(value, dict) else enumerate(value)
    return [_host(env, str(key), row) for key, row in rows]


def _host(env: Environment, key: str, row: Any) -> Host:
    def bad(reason: str) -> OperationError:
        return OperationError(
            f"Terraform state {display(env.state_file)}: hosts row '{key}' {reason}: run "
            f"'callysto terraform apply --env {env.name}' to write the output again"
        )

    if not isinstance(row, dict):
        raise bad("is not a mapping")
    for field in ("name", "address"):
        if not isinstance(row.get(field), str) or not row[field]:
            raise bad(f"has no {field}")
    port = row.get("ssh_port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
    ):
        raise bad(f"has ssh_port {port!r}, not a port number")
    groups = row.get("groups") or ("hub", env.type, env.name)
    disks = (row.get("zfs_disk_1"), row.get("zfs_disk_2"))
    return Host(
        name=row["name"],
        address=row["address"],
        ssh_user=row.get("ssh_user") or None,
        groups=tuple(str(group) for group in groups),
        zfs_disks=tuple(str(disk) for disk in disks if disk),
        ssh_port=port,
    )
