"""The one ZFS adapter: every `zfs` and `zpool` command the package runs, on a hubs.Hub (this
machine or over SSH, one round trip each), its output read as data and its errors read in one place.

No policy lives here (what a home is, who may be restored): see homes.py and homes_backup.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from callysto_infra import runner
from callysto_infra.errors import OperationError
from callysto_infra.hubs import Hub

T = TypeVar("T")

# --- zfs's errors, read in one place -----------------------------------------------------------


class ZfsError(OperationError):
    """A zfs or zpool command failed on a hub; the message names the command, the hub and why."""

    def __init__(self, hub: Hub, argv: Sequence[str], result: runner.Result):
        verb = " ".join(argv[:2])  # 'zfs get', 'zpool destroy': the ssh words are not news
        super().__init__(f"'{verb}' failed on hub '{hub.name}': {runner.last_line(result)}")
        self.hub = hub
        self.result = result


class Missing(ZfsError):
    """The dataset, snapshot or pool named does not exist: an answer, not a fault."""


class Busy(ZfsError):
    """zfs-fuse refuses a dataset or pool as busy for a moment after it was mounted or read."""


def error_of(hub: Hub, argv: Sequence[str], result: runner.Result) -> ZfsError | None:
    """What the RESULT of zfs or zpool ARGV means: None when it worked, else the error to raise."""
    if result.ok:
        return None
    # zfs says 'dataset does not exist' and zpool 'no such pool' (exit 1) for a name it cannot open.
    if result.returncode == 1 and (
        "does not exist" in result.stderr or "no such pool" in result.stderr
    ):
        return Missing(hub, argv, result)
    if "busy" in result.stderr:
        return Busy(hub, argv, result)
    return ZfsError(hub, argv, result)


def _run(hub: Hub, argv: list[str], timeout: float | None = None) -> runner.Result:
    result = hub.run(argv, check=False, timeout=timeout)
    error = error_of(hub, argv, result)
    if error is not None:
        raise error
    return result


def _zfs(hub: Hub, *args: str, timeout: float | None = None) -> str:
    return _run(hub, ["zfs", *args], timeout).stdout


def _zpool(hub: Hub, *args: str, timeout: float | None = None) -> str:
    return _run(hub, ["zpool", *args], timeout).stdout


def _patiently(
    action: Callable[[], T],
    attempts: int,
    pause: float,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """ACTION(), tried again while zfs-fuse calls its target busy; the last Busy is raised."""
    for attempt in range(attempts):
        try:
            return action()
        except Busy:
            if attempt == attempts - 1:
                raise
            if before_retry is not None:
                before_retry()
            time.sleep(pause * (attempt + 1))
    raise AssertionError("unreachable")


# --- reading datasets --------------------------------------------------------------------------


def get_properties(
    hub: Hub,
    datasets: Sequence[str],
    properties: Sequence[str],
    *,
    depth: int | None = None,
    timeout: float | None = None,
) -> dict[str, dict[str, str]]:
    """{dataset: {property: value}} of DATASETS (and their descendants to DEPTH) from ONE
    `zfs get -H -p` call. Missing when a dataset named does not exist."""
    recurse = ["-r", "-d", str(depth)] if depth is not None else []
    text = _zfs(hub, "get", "-H", "-p", *recurse, "-o", "name,property,value",
                ",".join(properties), *datasets, timeout=timeout)  # fmt: skip
    table: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise OperationError(f"unexpected 'zfs get' output from hub '{hub.name}': {line!r}")
        name, prop, value = fields
        table.setdefault(name, {})[prop] = value
    return table


def get_property(hub: Hub, dataset: str, prop: str, *, timeout: float | None = None) -> str:
    """One property of one dataset, as `zfs get -p` prints it."""
    props = get_properties(hub, [dataset], [prop], timeout=timeout).get(dataset, {})
    if prop not in props:
        raise OperationError(f"hub '{hub.name}': 'zfs get' did not report {prop} of {dataset}")
    return props[prop]


def exists(hub: Hub, name: str) -> bool:
    """Whether the dataset or snapshot NAME exists on HUB."""
    try:
        get_properties(hub, [name], ["type"])
    except Missing:
        return False
    return True


def list_names(
    hub: Hub, dataset: str, *, kind: str = "filesystem", depth: int | None = None
) -> list[str]:
    """Names of DATASET and its descendants of KIND (filesystem, snapshot), to DEPTH if given."""
    recurse = ["-d", str(depth)] if depth is not None else ["-r"]
    text = _zfs(hub, "list", "-H", "-o", "name", "-t", kind, *recurse, dataset)
    return [line.strip() for line in text.splitlines() if line.strip()]


def snapshots(hub: Hub, dataset: str, *, recursive: bool = False) -> list[str]:
    """Full names (dataset@name) of the snapshots of DATASET itself, or also of its descendants
    when RECURSIVE; a dataset that does not exist has none."""
    try:
        names = list_names(hub, dataset, kind="snapshot", depth=None if recursive else 1)
    except Missing:
        return []
    if recursive:
        return [n for n in names if "@" in n]
    return [n for n in names if n.partition("@")[0] == dataset and "@" in n]


def mount_state(hub: Hub, dataset: str) -> tuple[str | None, bool]:
    """(mountpoint, mounted) of DATASET in one round trip; the mountpoint is None when it is not
    a path (none, legacy, -)."""
    props = get_properties(hub, [dataset], ["mountpoint", "mounted"]).get(dataset, {})
    where = props.get("mountpoint", "")
    return (where if where.startswith("/") else None), props.get("mounted") == "yes"


def mountpoint(hub: Hub, dataset: str) -> str:
    """Where DATASET is mounted; OperationError when it is not mounted at a path."""
    where, mounted = mount_state(hub, dataset)
    if where is None or not mounted:
        raise OperationError(f"{dataset} is not mounted on hub '{hub.name}'")
    return where


# --- changing datasets -------------------------------------------------------------------------


def _options(properties: Mapping[str, str]) -> list[str]:
    return [word for name, value in properties.items() for word in ("-o", f"{name}={value}")]


def create(
    hub: Hub, dataset: str, properties: Mapping[str, str] | None = None, *, parents: bool = False
) -> None:
    _zfs(hub, "create", *(["-p"] if parents else []), *_options(properties or {}), dataset)


def set_property(hub: Hub, dataset: str, prop: str, value: str) -> None:
    # zfs-fuse sets one property per call.
    _zfs(hub, "set", f"{prop}={value}", dataset)


def inherit(hub: Hub, dataset: str, prop: str) -> None:
    _zfs(hub, "inherit", prop, dataset)


def snapshot(hub: Hub, name: str, *, recursive: bool = False) -> None:
    """Take snapshot NAME (dataset@snap), of every descendant too when RECURSIVE."""
    _zfs(hub, "snapshot", *(["-r"] if recursive else []), name)


def clone(hub: Hub, snapshot_name: str, dataset: str, properties: Mapping[str, str]) -> None:
    _zfs(hub, "clone", *_options(properties), snapshot_name, dataset)


def mount(hub: Hub, dataset: str) -> None:
    _zfs(hub, "mount", dataset)


def unmount(hub: Hub, dataset: str, *, force: bool = False) -> None:
    _zfs(hub, "unmount", *(["-f"] if force else []), dataset)


def destroy(
    hub: Hub, name: str, *, recursive: bool = False, force: bool = False, attempts: int = 10
) -> None:
    """Destroy the dataset or snapshot NAME (with its children when RECURSIVE); gone already is
    done. A dataset just read through its mount can be briefly busy (zfs-fuse in particular), so
    it is unmounted and tried again a few times; ZfsError when it stays."""
    argv = ["destroy", *(["-r"] if recursive else []), *(["-f"] if force else []), name]

    def attempt() -> None:
        try:
            _zfs(hub, *argv)
        except Missing:
            return
        except ZfsError:
            # zfs-fuse may report a failure for a destroy that went through.
            if exists(hub, name):
                raise

    def unmount_quietly() -> None:
        if "@" not in name:
            with contextlib.suppress(ZfsError):  # the next attempt says what is wrong
                unmount(hub, name, force=True)

    _patiently(attempt, attempts, 0.2, unmount_quietly)


def rename(hub: Hub, old: str, new: str, *, attempts: int = 10) -> None:
    """Rename OLD to NEW; zfs-fuse may refuse as 'busy' for a moment after an unmount."""
    _patiently(lambda: _zfs(hub, "rename", old, new), attempts, 0.1)


# --- send and receive --------------------------------------------------------------------------


def send_argv(
    dataset: str, snapshot_name: str, *, replicate: bool = False, base: str | None = None
) -> list[str]:
    """`zfs send` of DATASET@SNAPSHOT_NAME: with REPLICATE its descendants and properties too
    (-R), and incrementally from DATASET@BASE with every snapshot between (-I)."""
    replication = ["-R"] if replicate else []
    since = ["-I", f"{dataset}@{base}"] if base else []
    return ["zfs", "send", *replication, *since, f"{dataset}@{snapshot_name}"]


_RECEIVE_FLAGS: dict[str, tuple[str, ...]] = {}


def receive_flags(machine: Hub, mount: bool = False) -> tuple[str, ...]:
    """Flags that keep a received replica from mounting where the sender's home was mounted.

    OpenZFS (which has `zfs version`) takes -u (do not mount now) and -x mountpoint (inherit it
    from the receiving parent); zfs-fuse has neither, and mounts under the parent already when
    the sender's mountpoint is inherited, as it is for <pool>/home by default. MOUNT: a restore
    needs the received files mounted to copy them."""
    key = f"{machine.ssh_user}@{machine.address}"
    if key not in _RECEIVE_FLAGS:
        try:
            _zfs(machine, "version")
            openzfs = True
        except ZfsError:
            openzfs = False
        _RECEIVE_FLAGS[key] = ("-u", "-x", "mountpoint") if openzfs else ()
    flags = _RECEIVE_FLAGS[key]
    return tuple(f for f in flags if f != "-u") if mount else flags


def receive_argv(
    machine: Hub, target: str, *, force: bool = False, mount: bool = False
) -> list[str]:
    """`zfs receive` into TARGET on MACHINE; FORCE (-F) rolls TARGET back to the stream's base."""
    return ["zfs", "receive", *receive_flags(machine, mount), *(["-F"] if force else []), target]


# --- pools -------------------------------------------------------------------------------------


def pool_names(hub: Hub) -> list[str]:
    """The pools imported on HUB."""
    return [line for line in _zpool(hub, "list", "-H", "-o", "name").splitlines() if line]


def pool_health(hub: Hub, pool: str, *, timeout: float | None = None) -> str | None:
    """POOL's health as zpool reports it (ONLINE, DEGRADED, ...); None when it is not imported."""
    try:
        text = _zpool(hub, "list", "-H", "-o", "name,health", pool, timeout=timeout)
    except Missing:
        return None
    fields = text.strip().split("\t")
    return fields[1] if len(fields) == 2 else None


def pool_vdevs(hub: Hub, pool: str) -> list[str] | None:
    """The file or device paths of POOL's vdevs; None when no such pool is imported."""
    # zfs-fuse has no 'zpool list -v -H -P'; its 'zpool status' config table names each leaf
    # vdev by its absolute path in the first column, which is all we read from it.
    try:
        text = _zpool(hub, "status", pool)
    except Missing:
        return None
    paths = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].startswith("/"):
            paths.append(words[0])
    return paths


def destroy_pool(hub: Hub, pool: str, *, attempts: int = 20) -> None:
    """Destroy POOL and everything in it; gone already is done."""
    # zfs-fuse calls a pool busy for a moment after its datasets were in use: try a few times.
    for attempt in range(attempts):
        try:
            _zpool(hub, "destroy", "-f", pool)
            return
        except Missing:
            return
        except ZfsError as exc:
            if attempt == attempts - 1:
                raise OperationError(
                    f"pool '{pool}' could not be destroyed: {runner.last_line(exc.result)}"
                ) from None
        time.sleep(0.5)
