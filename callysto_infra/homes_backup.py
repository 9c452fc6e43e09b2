"""Backups of students' homes: recursive snapshots <pool>/home@callysto-<time> on each hub, sent
incrementally to a folder of stream files or to a pool (here or over SSH), pruned per environment,
and brought back onto a hub when the hub's own snapshot is gone."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from callysto_infra import hubs as hubs_module
from callysto_infra import runner, validate, zfs
from callysto_infra.environments import Environment
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.progress import Advance, no_progress

SNAPSHOT_RE = re.compile(r"callysto-\d{8}T\d{6}Z")
STREAM_RE = re.compile(r"(callysto-\d{8}T\d{6}Z)\.(?:full|from-(callysto-\d{8}T\d{6}Z))\.zfs")
DATASET_SPEC_RE = re.compile(
    r"(?:(?:(?P<user>[a-z_][a-z0-9_-]{0,31})@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}):)?"
    r"(?P<dataset>[A-Za-z][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.:-]+)+)"
)


def snapshot_name(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"callysto-{now:%Y%m%dT%H%M%SZ}"


def check_snapshot_name(value: str) -> str:
    name = value.rsplit("@", 1)[-1]
    if not SNAPSHOT_RE.fullmatch(name):
        raise UsageError(
            f"invalid snapshot name '{value}': expected callysto-YYYYMMDDTHHMMSSZ "
            "(see 'callysto backup homes status')"
        )
    return name


def on_hub(hub: hubs_module.Hub, argv: Sequence[str]) -> list[str]:
    """ARGV as it runs on HUB: itself here, or one ssh command (for streaming through runner)."""
    return [str(a) for a in argv] if hub.is_local else hub.ssh_argv(argv)


def home_dataset(hub: hubs_module.Hub) -> str:
    """The dataset of HUB's homes (each hub of a local fleet has a pool of its own)."""
    return f"{hub.pool}/home"


def snapshots(hub: hubs_module.Hub, dataset: str) -> list[str]:
    """Our snapshots of DATASET itself (not its children), oldest first."""
    names = [full.partition("@")[2] for full in zfs.snapshots(hub, dataset)]
    return sorted(name for name in names if SNAPSHOT_RE.fullmatch(name))


def _removed(hub: hubs_module.Hub, dataset: str) -> bool:
    """Destroy DATASET and its children; True when it is gone, False when it stays."""
    try:
        zfs.destroy(hub, dataset, recursive=True)
    except zfs.ZfsError:
        return False
    return True


# --- destinations -------------------------------------------------------------------------------


class Destination:
    """Where a hub's home goes. Subclasses: a folder of stream files, or a dataset."""

    def snapshots(self, hub: hubs_module.Hub) -> list[str]:
        raise NotImplementedError

    def wants_full(self, hub: hubs_module.Hub) -> bool:
        return False

    def send(
        self, hub: hubs_module.Hub, home: str, new: str, base: str | None, advance: Advance
    ) -> int:
        raise NotImplementedError

    def prune(self, hub: hubs_module.Hub) -> list[str]:
        return []

    def has_user(self, hub: hubs_module.Hub, snapshot: str, user: str) -> bool | None:
        """Whether USER's home is in SNAPSHOT; None when only a full receive can tell."""
        return None

    def receive(
        self,
        hub: hubs_module.Hub,
        snapshot: str,
        target: str,
        user: str | None,
        advance: Advance,
    ) -> tuple[int, str]:
        """Receive SNAPSHOT onto HUB as TARGET; returns bytes moved and the dataset holding
        USER's files (or the whole home when USER is None)."""
        raise NotImplementedError


@dataclass(frozen=True)
class DirectoryDestination(Destination):
    """Stream files <root>/<hub>/<snapshot>.full.zfs and <snapshot>.from-<base>.zfs.

    A chain of incrementals hangs off each full stream; a new full starts once the chain holds
    KEEP snapshots, so whole old chains can be removed while the newest KEEP stay restorable."""

    root: Path
    keep: int = 30

    def __str__(self) -> str:
        return str(self.root)

    def folder(self, hub: hubs_module.Hub) -> Path:
        return self.root / hub.name

    def streams(self, hub: hubs_module.Hub) -> dict[str, tuple[Path, str | None]]:
        """snapshot -> (stream file, base snapshot or None for a full stream)."""
        found: dict[str, tuple[Path, str | None]] = {}
        folder = self.folder(hub)
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                match = STREAM_RE.fullmatch(path.name)
                if match and path.is_file():
                    found[match.group(1)] = (path, match.group(2))
        return found

    def snapshots(self, hub: hubs_module.Hub) -> list[str]:
        streams = self.streams(hub)
        return sorted(s for s in streams if self._chain(streams, s) is not None)

    @staticmethod
    def _chain(streams: dict, snapshot: str) -> list[Path] | None:
        """The stream files that rebuild SNAPSHOT, full first; None when a link is missing."""
        chain = []
        current: str | None = snapshot
        while current is not None:
            if current not in streams:
                return None
            path, base = streams[current]
            chain.append(path)
            current = base
        return list(reversed(chain))

    def wants_full(self, hub: hubs_module.Hub) -> bool:
        streams = self.streams(hub)
        if not streams:
            return True
        chain = self._chain(streams, max(streams))
        return chain is None or len(chain) >= self.keep

    def check(self) -> None:
        """Refuse a root folder that is not there: a mistyped --to must not become a new folder
        that nobody backs up."""
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise UsageError(
                f"homes backup folder {self.root} {what}: create it first, or give another with --to"
            )

    def private_folder(self, hub: hubs_module.Hub) -> Path:
        """The hub's folder of streams, 0700, and every stream in it 0600: the streams hold every
        student's files unencrypted. Folders and streams of earlier runs are fixed here too."""
        self.check()
        folder = self.folder(hub)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            folder.chmod(0o700)
            for path in folder.iterdir():
                if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
                    path.chmod(0o600)
        except OSError as exc:
            raise UsageError(
                f"homes backup folder {folder} cannot be made private: {exc.strerror}"
            ) from None
        return folder

    def send(self, hub, home, new, base, advance) -> int:
        folder = self.private_folder(hub)
        kind = "full" if base is None else f"from-{base}"
        target = folder / f"{new}.{kind}.zfs"
        partial = folder / f".{target.name}.partial"
        argv = zfs.send_argv(home, new, replicate=True, base=base)
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                moved = runner.transfer(on_hub(hub, argv), out, on_bytes=advance)
            # A stream file appears under its real name only once it is whole.
            partial.rename(target)
        except OSError as exc:
            raise OperationError(f"cannot write {target}: {exc.strerror}") from None
        finally:
            partial.unlink(missing_ok=True)
        return moved

    def prune(self, hub: hubs_module.Hub) -> list[str]:
        streams = self.streams(hub)
        complete = self.snapshots(hub)
        if len(complete) <= self.keep:
            return []
        oldest_kept = complete[-self.keep]
        chain = self._chain(streams, oldest_kept) or []
        first_needed = STREAM_RE.fullmatch(chain[0].name).group(1)  # type: ignore[union-attr]
        removed = []
        for snap, (path, _base) in sorted(streams.items()):
            if snap < first_needed:
                path.unlink()
                removed.append(snap)
        return removed

    def receive(self, hub, snapshot, target, user, advance) -> tuple[int, str]:
        chain = self._chain(self.streams(hub), snapshot)
        if chain is None:
            raise OperationError(f"the streams that rebuild {snapshot} are incomplete in {self}")
        moved = 0
        for number, path in enumerate(chain):
            # zfs-fuse and OpenZFS both count a just-received, mounted dataset as modified;
            # -F rolls it back to the snapshot the next incremental starts from.
            receive = zfs.receive_argv(hub, target, force=number > 0, mount=True)
            with path.open("rb") as stream_file:
                moved += runner.transfer(stream_file, on_hub(hub, receive), on_bytes=advance)
        return moved, f"{target}/{user}" if user else target


@dataclass(frozen=True)
class DatasetDestination(Destination):
    """A replica dataset <dataset>/<hub>, on this machine or on HOST over SSH. Received with -F
    from a replication stream, so it holds the snapshots the hub holds."""

    dataset: str
    host: str | None = None
    ssh_user: str | None = None
    ssh_port: int = 22
    ssh_key: str | None = None
    known_hosts: str | None = None

    def __str__(self) -> str:
        where = f"{self.ssh_user}@{self.host}:" if self.ssh_user else f"{self.host}:"
        return f"{where if self.host else ''}{self.dataset}"

    @property
    def machine(self) -> hubs_module.Hub:
        if self.host is None:
            return hubs_module.Hub(name="localhost", address=None)
        return hubs_module.Hub(
            name=self.host,
            address=self.host,
            ssh_user=self.ssh_user,
            ssh_key=self.ssh_key,
            known_hosts=self.known_hosts,
            ssh_port=self.ssh_port,
        )

    def target(self, hub: hubs_module.Hub) -> str:
        return f"{self.dataset}/{hub.name}"

    def snapshots(self, hub: hubs_module.Hub) -> list[str]:
        return snapshots(self.machine, self.target(hub))

    def send(self, hub, home, new, base, advance) -> int:
        machine, target = self.machine, self.target(hub)
        if base is None and zfs.exists(machine, target):
            raise OperationError(
                f"{self} holds {target} but no snapshot that hub {hub.name} still has, so "
                "nothing can be sent incrementally; rename or destroy it there, then run again"
            )
        if not zfs.exists(machine, self.dataset):
            try:
                zfs.create(machine, self.dataset, parents=True)
            except zfs.ZfsError:
                # Hubs are backed up at once: another may have just made it.
                if not zfs.exists(machine, self.dataset):
                    raise
        send = zfs.send_argv(home, new, replicate=True, base=base)
        receive = zfs.receive_argv(machine, target, force=base is not None)
        return runner.transfer(on_hub(hub, send), on_hub(machine, receive), on_bytes=advance)

    def has_user(self, hub, snapshot, user) -> bool | None:
        return snapshot in snapshots(self.machine, f"{self.target(hub)}/{user}")

    def receive(self, hub, snapshot, target, user, advance) -> tuple[int, str]:
        source = f"{self.target(hub)}/{user}" if user else self.target(hub)
        send = zfs.send_argv(source, snapshot, replicate=user is None)
        receive = zfs.receive_argv(hub, target, mount=True)
        moved = runner.transfer(on_hub(self.machine, send), on_hub(hub, receive), on_bytes=advance)
        return moved, target


def parse_dataset_spec(spec: str) -> DatasetDestination:
    match = DATASET_SPEC_RE.fullmatch(spec)
    if not match:
        raise UsageError(
            f"invalid dataset destination '{spec}': expected pool/dataset or "
            "[user@]host:pool/dataset"
        )
    return DatasetDestination(match["dataset"], match["host"], match["user"])


def destination(
    env: Environment, directory: str | None = None, dataset: str | None = None
) -> Destination:
    """The destination named by options, else by env.yaml's homes_backup section."""
    settings = env.config.homes_backup
    if directory is not None and dataset is not None:
        raise UsageError("give --to DIR or --to-dataset, not both")
    if directory is None and dataset is None:
        directory, dataset = settings.directory, settings.dataset
        if directory is not None:
            path = Path(directory).expanduser()
            directory = str(path if path.is_absolute() else env.path / path)
    if dataset is not None:
        # The backup host is reached like the hubs: its own key if named, this environment's
        # known_hosts, so a first contact is recorded there and checked ever after.
        key = Path(settings.ssh_key).expanduser() if settings.ssh_key else None
        if key is not None and not key.is_absolute():
            key = env.path / key
        return replace(
            parse_dataset_spec(dataset),
            ssh_port=settings.ssh_port,
            ssh_key=str(key) if key else None,
            known_hosts=str(env.known_hosts_file),
        )
    if directory is not None:
        folder = DirectoryDestination(Path(directory), settings.keep_at_destination)
        folder.check()
        return folder
    raise UsageError(
        f"no destination for the homes of '{env.name}': give --to DIR or --to-dataset "
        f"[user@]host:pool/dataset, or set homes_backup.directory or .dataset in env.yaml"
    )


# --- backing up ---------------------------------------------------------------------------------


@dataclass
class HubBackup:
    hub: str
    snapshot: str
    base: str | None
    bytes: int
    seconds: float
    pruned_on_hub: list[str] = field(default_factory=list)
    pruned_at_destination: list[str] = field(default_factory=list)


def _require_home(hub: hubs_module.Hub, home: str) -> None:
    if not zfs.exists(hub, home):
        raise OperationError(f"hub '{hub.name}' has no dataset {home}: is its pool set up?")


def backup_hub(
    env: Environment,
    hub: hubs_module.Hub,
    dest: Destination,
    keep: int | None = None,
    advance: Advance = no_progress,
) -> HubBackup:
    """Snapshot HUB's home recursively, send it (incrementally when a common snapshot exists),
    then prune. A failed send destroys the new snapshot again: the hub is left as it was."""
    started = time.monotonic()
    keep = keep or env.config.homes_backup.keep
    home = home_dataset(hub)
    _require_home(hub, home)
    present = snapshots(hub, home)
    common = [s for s in dest.snapshots(hub) if s in set(present)]
    base = None if (not common or dest.wants_full(hub)) else common[-1]
    new = snapshot_name()
    while new in present or new == base:
        time.sleep(0.2)  # names have a resolution of one second
        new = snapshot_name()
    zfs.snapshot(hub, f"{home}@{new}", recursive=True)
    try:
        moved = dest.send(hub, home, new, base, advance)
    except BaseException:
        _removed(hub, f"{home}@{new}")
        raise
    pruned = prune_hub(hub, home, keep)
    pruned_dest = dest.prune(hub)
    return HubBackup(hub.name, new, base, moved, time.monotonic() - started, pruned, pruned_dest)


def prune_hub(hub: hubs_module.Hub, home: str, keep: int) -> list[str]:
    """Destroy all but the newest KEEP of our snapshots of HOME (other snapshots stay)."""
    old = snapshots(hub, home)[:-keep]
    for snap in old:
        zfs.destroy(hub, f"{home}@{snap}", recursive=True)
    return old


def select_hubs(env: Environment, host: str | None) -> list[hubs_module.Hub]:
    return [hubs_module.find(env, host)] if host else hubs_module.hubs(env)


# --- status -------------------------------------------------------------------------------------


def status(env: Environment, dest: Destination | None) -> list[dict]:
    """Per hub: how many of our snapshots it has, the newest and the oldest; the same at the
    destination when one is configured. A hub that cannot be asked gets an 'error'."""
    rows = []
    for hub in hubs_module.hubs(env):
        home = home_dataset(hub)
        row: dict = {"hub": hub.name, "dataset": home}
        try:
            on_hub_snaps = snapshots(hub, home)
            row.update(_summary(on_hub_snaps))
            if dest is not None:
                row["destination"] = str(dest)
                row["at_destination"] = _summary(dest.snapshots(hub))
        except OperationError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


def _summary(names: list[str]) -> dict:
    return {
        "count": len(names),
        "newest": names[-1] if names else None,
        "oldest": names[0] if names else None,
    }


# --- restoring ----------------------------------------------------------------------------------


@dataclass
class HomeRestore:
    hub: str
    snapshot: str
    user: str | None
    dataset: str
    mountpoint: str
    bytes: int
    seconds: float
    leftover: str | None = None


def restore(
    env: Environment,
    hub: hubs_module.Hub,
    dest: Destination,
    snapshot: str,
    user: str | None = None,
    force: bool = False,
    advance: Advance = no_progress,
) -> HomeRestore:
    """Bring SNAPSHOT back from DEST onto HUB as <pool>/restored/<snapshot>.

    With USER, copy that student's files from it into <pool>/home/<USER> (files already there are
    kept unless FORCE), then remove the restored copy. Without USER the copy stays for the operator.
    """
    started = time.monotonic()
    snapshot = check_snapshot_name(snapshot)
    if user is not None:
        user = validate.user_hash(user)
    available = dest.snapshots(hub)
    if snapshot not in available:
        held = (
            f"it holds {len(available)}, newest {available[-1]}, oldest {available[0]}"
            if available
            else "it holds none yet"
        )
        raise UsageError(
            f"snapshot {snapshot} is not in the backup of hub '{hub.name}' at {dest} ({held}); "
            "nothing was changed"
        )
    if user is not None and dest.has_user(hub, snapshot, user) is False:
        raise UsageError(f"user {user} has no home in {snapshot} at {dest}; nothing was changed")
    pool = hub.pool
    scratch = f"{pool}/restored/{snapshot}"
    if zfs.exists(hub, scratch):
        raise UsageError(
            f"{scratch} already exists on hub '{hub.name}' (an earlier restore): use it, or "
            f"remove it with 'zfs destroy -r {scratch}' and run again"
        )
    zfs.create(hub, f"{pool}/restored", parents=True)
    try:
        moved, holding = dest.receive(hub, snapshot, scratch, user, advance)
        if user is None:
            return HomeRestore(
                hub.name,
                snapshot,
                None,
                scratch,
                zfs.mountpoint(hub, scratch),
                moved,
                time.monotonic() - started,
            )
        if not zfs.exists(hub, holding):
            raise UsageError(
                f"user {user} has no home in {snapshot} at {dest}; nothing was changed"
            )
        live = f"{home_dataset(hub)}/{user}"
        if not zfs.exists(hub, live):
            zfs.create(hub, live, {"refquota": env.config.hub.refquota})
        source, target = zfs.mountpoint(hub, holding), zfs.mountpoint(hub, live)
        # -n keeps what the student has now; --force puts the snapshot's version back instead.
        hub.run(["cp", "-a", *([] if force else ["-n"]), "--", f"{source}/.", f"{target}/"])
    except BaseException:
        if zfs.exists(hub, scratch):
            _removed(hub, scratch)
        raise
    # The student's files are back; a copy that will not go away is worth a warning, not a failure.
    leftover = None if _removed(hub, scratch) else scratch
    return HomeRestore(
        hub.name, snapshot, user, live, target, moved, time.monotonic() - started, leftover
    )
