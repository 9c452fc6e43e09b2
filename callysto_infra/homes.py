"""Students' homes <pool>/home/<hash> on an environment's hubs: finding them, quotas, bans, and
deleting and restoring a home. The ZFS commands themselves are zfs.py's."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

from callysto_infra import everyhub, progress, runner, userhash, validate, zfs
from callysto_infra import hubs as hubs_module
from callysto_infra.errors import CallystoError, OperationError, UsageError
from callysto_infra.hubs import Hub
from callysto_infra.sizes import MIN_FREE_BYTES as MIN_FREE_BYTES  # the 507 floor, re-exported
from callysto_infra.sizes import human_size

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

# Where a ban is recorded: `readonly` enforces it, but zfs-fuse reports a mounted dataset's
# readonly as the mount's ("off", source temporary), so the ban itself is kept as data too.
BANNED = "callysto:banned"
PROPERTIES = ("used", "referenced", "refquota", "available", "readonly", BANNED)
SNAPSHOT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}")
DATASET_NAME_RE = re.compile(r"[A-Za-z0-9_.:/-]+")

T = TypeVar("T")


def home_of(pool: str, user_hash: str) -> str:
    return f"{pool}/home/{user_hash}"


def deleted_root(pool: str, user_hash: str) -> str:
    """Where delete-home keeps a user's former homes, one child per deletion."""
    return f"{pool}/deleted/{user_hash}"


def timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


@dataclass(frozen=True)
class Home:
    """One student's dataset as `zfs get -p` reports it (sizes in bytes; no refquota is None)."""

    hub: str
    name: str
    used: int  # with snapshots
    referenced: int  # the files themselves: what refquota limits
    refquota: int | None
    available: int
    readonly: bool
    banned: str | None = None  # when the ban began (UTC)

    @property
    def user_hash(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def as_dict(self) -> dict:
        return {"user": self.user_hash, **asdict(self)}


def _home(hub: Hub, name: str, props: dict[str, str]) -> Home:
    try:
        refquota = int(props["refquota"])
        return Home(
            hub=hub.name,
            name=name,
            used=int(props["used"]),
            referenced=int(props["referenced"]),
            refquota=refquota or None,  # zfs -p reports "no quota" as 0
            available=int(props["available"]),
            readonly=props["readonly"] == "on",
            banned=None if props.get(BANNED, "-") in ("-", "") else props[BANNED],
        )
    except (KeyError, ValueError) as exc:
        raise OperationError(f"hub '{hub.name}': cannot read {name}'s properties ({exc})") from None


# --- reading homes -----------------------------------------------------------------------------


def get_home(hub: Hub, pool: str, user_hash: str) -> Home | None:
    """USER_HASH's home on HUB, or None when the hub has no such dataset."""
    name = home_of(pool, validate.user_hash(user_hash))
    try:
        props = zfs.get_properties(hub, [name], PROPERTIES).get(name)
    except zfs.Missing:
        return None
    if props is None:
        raise OperationError(f"hub '{hub.name}': 'zfs get' did not report {name}")
    return _home(hub, name, props)


def list_homes(hub: Hub, pool: str) -> list[Home]:
    """Every student dataset under <pool>/home on HUB, largest first, from ONE `zfs get` call."""
    parent = f"{pool}/home"
    try:
        table = zfs.get_properties(hub, [parent], PROPERTIES, depth=1)
    except zfs.Missing:
        raise OperationError(
            f"hub '{hub.name}' has no dataset {parent}: is the pool '{pool}' imported there?"
        ) from None
    homes = [
        _home(hub, name, props)
        for name, props in table.items()
        # -d 1 also yields the parent and its own snapshots; only user datasets count.
        if name.startswith(parent + "/") and validate.is_user_hash(name[len(parent) + 1 :])
    ]
    return _largest_first(homes)


def _largest_first(homes) -> list[Home]:
    return sorted(homes, key=lambda h: (-h.used, h.name))


# --- which hubs, and which hub holds a user ----------------------------------------------------


def target_hubs(env: Environment, host: str | None) -> list[Hub]:
    """The hub named by --host, else every hub of the environment."""
    if host is not None:
        return [hubs_module.find(env, validate.host(host))]
    return hubs_module.hubs(env)


def ask_every_hub(
    hubs: Sequence[Hub], question: Callable[[Hub], T]
) -> tuple[list[T], dict[str, str]]:
    """Ask every hub at once (one round trip each); collect answers and the hubs that failed."""
    outcomes = everyhub.on_every_hub(hubs, question)
    answers = [outcome.value for outcome in outcomes if outcome.ok]
    failed = {outcome.hub: outcome.error for outcome in outcomes if not outcome.ok}
    return answers, failed  # type: ignore[return-value]


def list_all_homes(
    env: Environment, host: str | None
) -> tuple[list[everyhub.Outcome[list[Home]]], list[Home]]:
    """Each hub asked (HOST, else every hub) at once, and the homes of those that answered,
    largest first.

    One `zfs get` per hub whatever the number of students. A hub that does not answer is an
    outcome that is not ok: the caller lists the others and fails naming it, so that a partial
    list never passes for the whole fleet.
    """
    asked = target_hubs(env, host)
    if not asked:
        raise OperationError(f"environment '{env.name}' has no hubs in its Terraform state")
    outcomes = everyhub.on_every_hub(asked, lambda hub: list_homes(hub, hub.pool))
    found = (home for outcome in outcomes if outcome.ok for home in outcome.value or [])
    return outcomes, _largest_first(found)


@dataclass(frozen=True)
class Lookup:
    """The answer of every hub to 'do you hold this home?'."""

    found: list[Home]
    unreachable: dict[str, str]  # hub name -> why


def lookup(hubs: Sequence[Hub], user_hash: str) -> Lookup:
    """USER_HASH's home in each hub's own pool (a local fleet's hubs have one each)."""
    answers, failed = ask_every_hub(hubs, lambda hub: get_home(hub, hub.pool, user_hash))
    return Lookup(found=[a for a in answers if a is not None], unreachable=failed)


def locate(hubs: Sequence[Hub], user_hash: str) -> tuple[Home, dict[str, str]]:
    """The one home of USER_HASH among HUBS, and the hubs that did not answer.

    OperationError when no hub holds it (naming an unreachable hub, if any), or several do.
    """
    result = lookup(hubs, user_hash)
    name = home_of(hubs[0].pool if hubs else "<pool>", user_hash)
    if len(result.found) > 1:
        where = ", ".join(h.hub for h in result.found)
        raise OperationError(f"{name} exists on several hubs ({where}): pick one with --host")
    if result.found:
        return result.found[0], result.unreachable
    if result.unreachable:
        first = next(iter(result.unreachable.values()))
        more = len(result.unreachable) - 1
        suffix = f" (and {more} more hub{'s' if more > 1 else ''} failed)" if more else ""
        raise OperationError(f"{name} was not found on the hubs that answered; {first}{suffix}")
    where = ", ".join(h.name for h in hubs)
    raise OperationError(
        f"no hub holds {name} (asked: {where}); the student may not have signed in yet"
    )


def locate_user(
    env: Environment, host: str | None, user: str, note: progress.Say = progress.quiet
) -> tuple[Hub, Home]:
    """(hub, home) of USER (a hash or an e-mail address): the hub given, the only hub, or the one
    hub that holds the dataset. NOTE hears of each hub that did not answer."""
    candidates = target_hubs(env, host)  # a bad --host is refused before any hash or zfs
    user_hash = userhash.hash_of_user(env, user)
    home, silent = locate(candidates, user_hash)
    for name in silent:
        note(f"note: hub '{name}' did not answer; {home.hub} holds the home")
    hub = next(h for h in candidates if h.name == home.hub)
    return hub, home


def where_is(env: Environment, user_hash: str) -> dict:
    """Which hub holds the hash's home: one round trip per hub. Never fails: a hub that cannot
    be asked, or an environment without hubs, is reported in the answer."""
    dataset = home_of(env.config.hub.pool, user_hash)
    try:
        known = hubs_module.hubs(env)
    except CallystoError as exc:
        return {"hub": None, "hubs": [], "dataset": dataset, "unreachable": {}, "error": str(exc)}
    found = lookup(known, user_hash)
    return {
        "hub": ", ".join(h.hub for h in found.found) or None,
        "hubs": [h.hub for h in found.found],
        "dataset": dataset,
        "unreachable": found.unreachable,
    }


# --- quotas and bans ---------------------------------------------------------------------------


def set_quota(hub: Hub, home: Home, size: str, *, force: bool = False) -> tuple[Home, str]:
    """Set HOME's refquota to SIZE (ZFS size syntax or none); returns the home and the value set.

    A quota below the space the files already take is refused; with FORCE it is set as low as ZFS
    allows, which is exactly that space, so the student can write nothing more.
    """
    size = validate.zfs_size(size)
    wanted = validate.zfs_size_bytes(size)
    if wanted is not None and wanted < home.referenced:
        if not force:
            raise UsageError(
                f"quota {size} is below what {home.user_hash} already uses "
                f"({human_size(home.referenced)}): nothing was changed; give a larger size, or "
                "--force to set the quota to the space already used"
            )
        size = str(home.referenced)
    zfs.set_property(hub, home.name, "refquota", size)
    return _reread(hub, home), size


def _reread(hub: Hub, home: Home) -> Home:
    pool, _, user_hash = home.name.partition("/home/")
    fresh = get_home(hub, pool, user_hash)
    if fresh is None:
        raise OperationError(f"{home.name} disappeared from hub '{hub.name}'")
    return fresh


def ban(hub: Hub, home: Home) -> Home:
    """Make HOME read-only, and record since when."""
    zfs.set_property(hub, home.name, BANNED, timestamp())
    zfs.set_property(hub, home.name, "readonly", "on")
    return _reread(hub, home)


def unban(hub: Hub, home: Home) -> Home:
    zfs.set_property(hub, home.name, "readonly", "off")
    zfs.inherit(hub, home.name, BANNED)
    return _reread(hub, home)


# --- deleting and restoring homes --------------------------------------------------------------


def _ensure_deleted_root(hub: Hub, pool: str, user_hash: str) -> str:
    root = deleted_root(pool, user_hash)
    if not zfs.exists(hub, root):
        if not zfs.exists(hub, f"{pool}/deleted"):
            # Never mounted: nothing under it is a live home.
            zfs.create(hub, f"{pool}/deleted", {"mountpoint": "none"})
        zfs.create(hub, root)
    return root


@dataclass(frozen=True)
class Deleted:
    hub: str
    dataset: str  # where the former home now lives, unmounted
    snapshot: str  # what restore-home --from takes


def delete_home(hub: Hub, home: Home) -> Deleted:
    """Snapshot HOME, then take it out of <pool>/home: it moves, unmounted, under <pool>/deleted.

    The home is gone for the hub (the next sign-in makes a fresh, empty one), while its snapshot
    stays restorable until an operator destroys <pool>/deleted/<hash>.
    """
    pool = home.name.split("/", 1)[0]
    stamp = timestamp()
    keep_root = _ensure_deleted_root(hub, pool, home.user_hash)
    snapshot_name = f"callysto-delete-{stamp}"
    zfs.snapshot(hub, f"{home.name}@{snapshot_name}")
    kept = f"{keep_root}/{stamp}"
    if zfs.exists(hub, kept):  # deleted twice within a second
        kept = f"{kept}-{uuid.uuid4().hex[:6]}"
    try:
        zfs.unmount(hub, home.name)
    except zfs.ZfsError as exc:
        if zfs.mount_state(hub, home.name)[1]:
            raise OperationError(
                f"{home.name} on hub '{hub.name}' is busy ({runner.last_line(exc.result)}): "
                f"stop the student's server and try again; snapshot {home.name}@{snapshot_name} "
                "was kept"
            ) from None
    try:
        zfs.rename(hub, home.name, kept)
    except zfs.ZfsError as exc:
        with contextlib.suppress(zfs.ZfsError):
            zfs.mount(hub, home.name)  # leave the home as it was
        raise OperationError(
            f"could not move {home.name} on hub '{hub.name}': {runner.last_line(exc.result)}"
        ) from None
    return Deleted(hub=hub.name, dataset=kept, snapshot=f"{kept}@{snapshot_name}")


def user_snapshots(hub: Hub, pool: str, user_hash: str) -> list[str]:
    """Every snapshot of USER_HASH's home and former homes on HUB, oldest dataset first."""
    found: list[str] = []
    for root in (home_of(pool, user_hash), deleted_root(pool, user_hash)):
        found += zfs.snapshots(hub, root, recursive=True)
    return found


def _belongs_to(snapshot: str, pool: str, user_hash: str) -> bool:
    dataset = snapshot.split("@", 1)[0]
    return dataset == home_of(pool, user_hash) or dataset.startswith(
        deleted_root(pool, user_hash) + "/"
    )


def check_snapshot_spec(spec: str, pool: str, user_hash: str) -> str:
    """A snapshot as the operator names it: a full name of this user's, or a bare snapshot name."""
    dataset, at, name = spec.partition("@")
    if not at:
        name, dataset = spec, ""
    if not SNAPSHOT_NAME_RE.fullmatch(name) or (dataset and not DATASET_NAME_RE.fullmatch(dataset)):
        raise UsageError(
            f"invalid snapshot '{spec}': give a snapshot name such as callysto-20260101T000000Z, "
            f"or a full name such as {home_of(pool, user_hash)}@callysto-20260101T000000Z"
        )
    if dataset and not _belongs_to(spec, pool, user_hash):
        raise UsageError(
            f"snapshot '{spec}' is not of {user_hash}'s home: it must be of "
            f"{home_of(pool, user_hash)} or under {deleted_root(pool, user_hash)}"
        )
    return spec


def find_snapshot(hubs: Sequence[Hub], user_hash: str, spec: str) -> tuple[Hub, str]:
    """The hub and full name of the snapshot SPEC of USER_HASH. A bare name that matches several
    (the same backup snapshot kept by two former homes) must be given in full."""
    pools = list(dict.fromkeys(hub.pool for hub in hubs))
    refusals = []
    for pool in pools:  # a full name must be of one hub's pool (a local fleet has several)
        try:
            check_snapshot_spec(spec, pool, user_hash)
        except UsageError as exc:
            refusals.append(exc)
    if refusals and len(refusals) == len(pools):
        raise refusals[0]
    answers, failed = ask_every_hub(
        hubs, lambda hub: (hub, user_snapshots(hub, hub.pool, user_hash))
    )
    matches = [
        (hub, snap)
        for hub, snaps in answers
        for snap in snaps
        if snap == spec or ("@" not in spec and snap.endswith("@" + spec))
    ]
    if len(matches) > 1:
        names = ", ".join(f"{snap} on {hub.name}" for hub, snap in matches)
        raise UsageError(f"snapshot '{spec}' is ambiguous ({names}): give its full name")
    if matches:
        return matches[0]
    if failed:
        raise OperationError(
            f"snapshot '{spec}' was not found on the hubs that answered; {next(iter(failed.values()))}"
        )
    known = sorted({s.split("@", 1)[1] for _, snaps in answers for s in snaps})
    hint = f"snapshots of this user: {', '.join(known)}" if known else "this user has none"
    raise UsageError(f"no snapshot '{spec}' of {user_hash}'s home ({hint})")


@dataclass(frozen=True)
class Restored:
    hub: str
    home: str
    source: str
    previous: str | None  # the snapshot of what the home held before, when it existed


def restore_user_home(env: Environment, host: str | None, user: str, spec: str) -> Restored:
    """Find USER's snapshot SPEC on the hubs of ENV (or HOST) and restore the home from it."""
    candidates = target_hubs(env, host)
    user_hash = userhash.hash_of_user(env, user)
    hub, full = find_snapshot(candidates, user_hash, spec)
    return restore_home(hub, hub.pool, user_hash, full, env.config.hub.refquota)


def restore_home(hub: Hub, pool: str, user_hash: str, snapshot: str, refquota: str) -> Restored:
    """Make USER_HASH's home hold exactly the files of SNAPSHOT (one of this user's snapshots).

    An existing home is snapshotted first, so a restore can itself be undone; a missing one is
    created with the quota its former home had (else REFQUOTA). Other users are never touched.
    """
    if not _belongs_to(snapshot, pool, user_hash):
        raise UsageError(f"snapshot '{snapshot}' is not of {user_hash}'s home")
    home_name = home_of(pool, user_hash)
    stamp = timestamp()
    current = get_home(hub, pool, user_hash)
    previous = None
    if current is not None:
        if current.banned or current.readonly:
            raise UsageError(
                f"{home_name} is read-only (the user is banned): run 'callysto user unban' first"
            )
        previous = f"{home_name}@callysto-prerestore-{stamp}"
        zfs.snapshot(hub, previous)
    else:
        source_dataset = snapshot.split("@", 1)[0]
        quota = zfs.get_property(hub, source_dataset, "refquota")
        quota = quota if quota not in ("", "0", "-") else validate.zfs_size(refquota)
        zfs.create(hub, home_name, {"refquota": quota})
    target, mounted = zfs.mount_state(hub, home_name)
    if target is None or not mounted:
        raise OperationError(f"{home_name} on hub '{hub.name}' is not mounted; cannot restore")
    # A read-only clone of the snapshot, mounted beside the homes only while files are copied.
    parent_mount = zfs.get_property(hub, f"{pool}/home", "mountpoint")
    clone = f"{_ensure_deleted_root(hub, pool, user_hash)}/restoring-{stamp}"
    mount = f"{parent_mount}/.restoring-{user_hash}-{stamp}"
    zfs.clone(hub, snapshot, clone, {"mountpoint": mount, "readonly": "on"})
    try:
        hub.run(["rsync", "-a", "--delete", f"{mount}/", f"{target}/"])
    finally:
        # A clone left under <pool>/deleted harms no one; what the copy did is the news.
        with contextlib.suppress(zfs.ZfsError):
            zfs.destroy(hub, clone, force=True)
        hub.run(["rmdir", mount], check=False)
    return Restored(hub=hub.name, home=home_name, source=snapshot, previous=previous)
