"""The fake cloud's state: one JSON file, edited under a file lock by the provider (which Terraform
may call from several threads and processes) and read by the tests."""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CLOUD_FILE_VAR = "CALLYSTO_TEST_CLOUD"
DELAY_VAR = "CALLYSTO_TEST_CLOUD_DELAY"

COLLECTIONS = (
    "instances",
    "volumes",
    "volume_attachments",
    "ports",
    "secgroups",
    "secgroup_rules",
    "floating_ips",
    "floating_ip_associations",
    "recordsets",
)


def new_id() -> str:
    return str(uuid.uuid4())


def seed(
    path: Path,
    *,
    zones: tuple[str, ...] = ("callysto.farm.", "callysto.ca."),
    image: str = "callysto-hub",
    network: str = "default",
) -> dict[str, Any]:
    """A cloud with an image, a network, DNS zones and a floating IP pool, and nothing else."""
    cloud: dict[str, Any] = {
        "images": [
            {"id": new_id(), "name": image, "created_at": "2026-01-01T00:00:00Z"},
            {"id": new_id(), "name": image, "created_at": "2026-02-01T00:00:00Z"},
        ],
        "networks": [{"id": new_id(), "name": network}],
        "dns_zones": [{"id": new_id(), "name": zone} for zone in zones],
        "floating_ip_pools": ["public"],
        **{name: {} for name in COLLECTIONS},
    }
    write(path, cloud)
    return cloud


def read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write(path: Path, cloud: dict[str, Any]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cloud, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


@contextmanager
def edit(path: Path) -> Iterator[dict[str, Any]]:
    """The cloud, to change in place; written back when the block ends without an error."""
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cloud = read(path)
        yield cloud
        write(path, cloud)


def add_volume(path: Path, name: str, size: int = 250) -> str:
    """A volume that exists before Terraform runs (a prod hub's data)."""
    volume_id = new_id()
    with edit(path) as cloud:
        cloud["volumes"][volume_id] = {"id": volume_id, "name": name, "size": size}
    return volume_id


def add_floating_ip(path: Path, address: str, pool: str = "public") -> str:
    """A floating IP allocated before Terraform runs (a prod hub's address)."""
    fip_id = new_id()
    with edit(path) as cloud:
        cloud["floating_ips"][fip_id] = {"id": fip_id, "address": address, "pool": pool}
    return fip_id
