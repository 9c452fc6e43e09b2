"""A whole hub on this machine (a `local` environment): bring it up with the same hub playbook a
cloud hub gets, stop it keeping the data, or destroy its pool and files."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callysto_infra import environments, health, hubs, paths, runner, zfs
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.progress import Say

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

DEFAULT_NAME = "local"
BOOTSTRAP = environments.PROJECT_DIR / "scripts" / "bootstrap-system"
# A fresh hub needs a few seconds after its playbook ends before the proxy routes to it.
WAIT_ATTEMPTS = 60
WAIT_TIMEOUT = 5.0
# In the order they stop: the hub first, so it can stop students' servers through the proxy;
# then the sign-in proxy, and the Docker daemon of the students' containers last.
SERVICES = (
    "jupyterhub",
    "jupyterhub-proxy",
    "idp-proxy",
    "jupyterhub-objects",
    "jupyterhub-docker",
)
# Each hub of a local fleet; its front door's; and what they share (by pid file, in run/).
FLEET_HUB_SERVICES = ("jupyterhub", "jupyterhub-proxy")
# PostgreSQL's fast shutdown is SIGINT (TERM would wait for every client to leave).
FAST_STOP = {"frontdoor-postgres": "INT/30/KILL/5"}
# The pid file of a zfs-fuse the zfs role started, in the data directory (zfs_fuse_pidfile).
ZFS_PIDFILE = "zfs-fuse.pid"
# A local Swift (storage: object without an endpoint; the swift_local role), after the hub.
SWIFT_SERVICES = ("proxy", "object", "container", "account", "memcached")


@dataclass(frozen=True)
class Up:
    env: Environment
    created: bool
    report: health.Report


def ensure_env(name: str | None, hubs_count: int | None = None) -> tuple[Environment, bool]:
    """The local environment NAME (default 'local'), created when missing; HUBS_COUNT makes it
    a fleet of that many hubs (an existing one must already say so in env.yaml)."""
    name = name or DEFAULT_NAME
    if name in environments.list_names():
        env = environments.load(name)
        if env.type != "local":
            raise UsageError(
                f"environment '{name}' is a {env.type} environment, not a local one: "
                "give a local environment with --env, or omit it to use 'local'"
            )
        if hubs_count is not None and len(env.config.fleet) != hubs_count:
            raise UsageError(
                f"environment '{name}' has {len(env.config.fleet)} hub(s), not {hubs_count}: "
                f"set 'hubs: {hubs_count}' (or list the hubs) in "
                f"{env.path / environments.ENV_FILE}, or omit --hubs"
            )
        return env, False
    return environments.create("local", name, hubs=hubs_count), True


def load_local(name: str | None) -> Environment:
    """An existing local environment (for stop and destroy, which never create one)."""
    name = name or DEFAULT_NAME
    if name not in environments.list_names():
        raise UsageError(f"there is no local environment '{name}': 'make local' creates it")
    env = environments.load(name)
    if env.type != "local":
        raise UsageError(f"environment '{name}' is a {env.type} environment, not a local one")
    return env


def check_reachable(env: Environment) -> None:
    """The sign-in proxy runs as an unprivileged user (www-data) from its folder in the data
    directory, so every directory above it must let others through (a clone under /root would
    not)."""
    directory = env.data_dir.resolve()
    closed = environments.closed_to_others(directory)
    if closed is not None:
        raise UsageError(
            f"the sign-in proxy could not reach {directory}: {closed} is closed to other "
            f"users; set local.data_dir in {env.path / environments.ENV_FILE} to a directory "
            f"they can reach (e.g. {environments.SHARED_DATA_ROOT / env.name}) or run "
            f"'chmod o+x {closed}'"
        )


def bootstrap(say: Say) -> None:
    """Install the Debian packages a local hub needs (zfs-fuse, node and npm, ...)."""
    say("checking the system packages a local hub needs (scripts/bootstrap-system)")
    result = runner.run([str(BOOTSTRAP)], check=False, capture=False)
    if not result.ok:
        raise OperationError(
            "scripts/bootstrap-system could not install the system packages; run it as root "
            "(or with sudo) and try again"
        )


def provision(env: Environment, say: Say) -> None:
    """Run the real hub playbook against this machine, through the project's Ansible wrapper."""
    from callysto_infra import ansible

    say(f"provisioning this machine as the hub of '{env.name}' (playbook hub)")
    ansible.run_playbook(env, "hub", ansible.Options())


def up(name: str | None, say: Say, *, install: bool = True, hubs_count: int | None = None) -> Up:
    """Create (if missing), provision and wait for the local hub (or fleet). Running it again
    changes nothing: the playbook is idempotent and never touches a pool that exists."""
    env, created = ensure_env(name, hubs_count)
    if created:
        say(f"created environment '{env.name}' in {env.path}")
    check_reachable(env)
    listed = {hub.pool for hub in hubs.local_hubs(env)}
    left = [hub.pool for hub in pools(env) if hub.pool not in listed]
    if left:
        say(
            f"note: {env.data_dir} also holds pool {', '.join(left)}, of a hub env.yaml no "
            "longer lists: its students' files stay there; 'make local/destroy' removes it too"
        )
    if install:
        bootstrap(say)
    provision(env, say)
    say(f"waiting for the hub at {health.hub_url(env)}")
    report = health.wait(env, attempts=WAIT_ATTEMPTS, timeout=WAIT_TIMEOUT)
    failure = report.first_failure
    if failure is not None:
        raise OperationError(
            f"the local hub did not become healthy: {failure.name}: {failure.detail} "
            f"(see 'callysto health --env {env.name}')"
        )
    return Up(env, created, report)


def sign_in_help(env: Environment) -> str:
    """What a newcomer needs after 'make local': where to go and how to sign in."""
    from callysto_infra import objectstore

    url = health.hub_url(env)
    pool = env.config.hub.pool
    if hubs.is_local_fleet(env):
        return fleet_help(env)
    return "\n".join(
        [
            f"The Callysto hub '{env.name}' is running at {url}",
            "",
            "Sign in: open that address and pick any of the three sign-in buttons. Each leads",
            "to the sign-in proxy (SimpleSAMLphp, on this machine), whose stand-in for that",
            "source asks only for an e-mail address, no password; the proxy turns it into the",
            "anonymous hash the hub receives, and only the hash is kept.",
            "",
            (
                f"Students' notebooks are in Swift, container {objectstore.container(env)}, under "
                f"<hash>/, with a {env.config.hub.refquota} quota:"
                if env.config.storage == "object"
                else f"Students' homes are ZFS datasets {pool}/home/<hash> with a "
                f"{env.config.hub.refquota} quota:"
            ),
            f"  callysto quota list --env {env.name}",
            f"  callysto user findhash --env {env.name} student@example.org",
            f"  callysto health --env {env.name}",
            "Stop it with 'make local/stop' (students' files stay); 'make local/destroy' removes it.",
        ]
    )


def fleet_help(env: Environment) -> str:
    """What comes after 'make local' for a fleet: the front door and each hub."""
    door = health.frontdoor_url(env)
    lines = [
        f"The Callysto fleet '{env.name}' is running: students open its front door at {door}",
        "",
        "Sign in there with any of the three buttons (the stand-in sources ask only for an",
        "e-mail address); the front door gives each new student a hub, for good, and sends",
        "them on. The hubs, each with its own pool:",
    ]
    lines += [
        f"  {hub.name}: {health.hub_url(env, hub)} (pool {hub.pool})"
        for hub in hubs.local_hubs(env)
    ]
    lines += [
        "",
        f"  callysto fleet list --env {env.name}",
        f"  callysto fleet move --env {env.name} USER --to HUB",
        f"  callysto quota list --env {env.name}",
        f"  callysto health --env {env.name}",
        "Stop it with 'make local/stop' (students' files stay); 'make local/destroy' removes it.",
    ]
    return "\n".join(lines)


def _proxy_prefix(env: Environment) -> Path:
    """The prefix of the host that runs the sign-in proxy: the hub, or a fleet's front door."""
    if hubs.is_local_fleet(env):
        return Path(hubs.local_frontdoor(env).prefix or env.hub_prefix)
    return env.hub_prefix


def proxy_memory_dir(env: Environment) -> Path:
    """Where the local sign-in proxy keeps its sessions, in memory (the idp_proxy role's
    idp_proxy_run_dir)."""
    return _memory_dir(_proxy_prefix(env))


def _memory_dir(prefix: Path) -> Path:
    import hashlib

    digest = hashlib.sha1(str(prefix.resolve()).encode(), usedforsecurity=False)
    # A tmpfs on purpose: the proxy's sessions must never reach a disk.
    return Path("/dev/shm") / f"callysto-idp-{digest.hexdigest()[:12]}"  # noqa: S108


def _remove_empty_mountpoints(mountpoint: str | None) -> None:
    # zfs-fuse leaves the pool's (now empty) mount directories behind.
    if mountpoint is None:
        return
    root = Path(mountpoint)
    for directory in sorted(root.glob("**/"), key=lambda p: len(p.parts), reverse=True):
        try:
            directory.rmdir()  # only ever removes an empty directory
        except OSError:
            return


def _zfs_daemon_for_destroy(env: Environment, say: Say) -> None:
    """Start zfs-fuse when ENV's pool files are on disk but no daemon answers (after a reboot,
    say): zfs-fuse keeps its pools in a cache and imports them at its next start, so files
    removed under a pool never destroyed would come back as a FAULTED pool. The pid file goes
    where the playbook keeps it, so the daemon is stopped again at the end of destroy."""
    if not any(env.data_dir.glob("*-[12].img")):
        return
    hub = hubs.local_hubs(env)[0]
    try:
        zfs.pool_names(hub)
        return  # a daemon answers
    except zfs.ZfsError:
        pass
    say("starting zfs-fuse to destroy the pools")
    pidfile = env.data_dir / ZFS_PIDFILE
    pidfile.unlink(missing_ok=True)  # zfs-fuse will not start over a pid file, even a stale one
    runner.run([runner.which("zfs-fuse", "install zfs-fuse"), "--pidfile", str(pidfile)])
    for _ in range(100):
        try:
            zfs.pool_names(hub)
            return
        except zfs.ZfsError:
            time.sleep(0.1)
    raise OperationError("zfs-fuse started but does not answer: see 'zpool list'")


def _stop_own_zfs_daemon(env: Environment, hub: hubs.Hub, say: Say) -> None:
    """Stop the zfs-fuse daemon the playbook started for ENV (its pid file is in the data
    directory), unless pools of others still need it: then it stays and its pid file moves to
    the environment's own folder, so the data directory can go and a later destroy can still stop
    it. A daemon started otherwise is left alone."""
    kept = env.path / ZFS_PIDFILE
    pidfile = next((p for p in (env.data_dir / ZFS_PIDFILE, kept) if p.exists()), None)
    if pidfile is None:
        return
    try:
        others = zfs.pool_names(hub)
    except zfs.ZfsError:
        others = []  # no daemon answers: there is nothing to leave running for
    if others:
        if pidfile != kept:
            shutil.move(pidfile, kept)
        say(
            f"leaving zfs-fuse running for the pools {', '.join(others)} (not this "
            f"environment's); its pid file is now {paths.display(kept)}"
        )
        return
    say("stopping zfs-fuse")
    runner.run(
        [
            "start-stop-daemon", "--stop", "--oknodo", "--pidfile", str(pidfile),
            "--exec", runner.which("zfs-fuse", "install zfs-fuse"), "--retry", "TERM/30",
        ]
    )  # fmt: skip
    pidfile.unlink(missing_ok=True)


def _pidfiles(env: Environment) -> list[tuple[str, Path]]:
    """What runs for ENV, in the order it stops, each with its pid file. Taken from what is on
    disk, not only from env.yaml: a hub taken out of `hubs:`, or an environment switched between
    one hub and a fleet, still has its services stopped."""
    data = env.data_dir
    door = data / hubs.FRONTDOOR_HOST / "run"
    single = env.hub_prefix / "run"
    swift_run = data / "swift" / "run"
    # The front door first (no one is sent to a stopping hub), then each hub (which stops its
    # students' servers), then what they share: the sign-in proxy, the assignment table and
    # the Docker daemon.
    found = [("frontdoor", door / "frontdoor.pid")]
    for run_dir in sorted((data / "hubs").glob("*/run")):
        found += [(f"{run_dir.parent.name} {s}", run_dir / f"{s}.pid") for s in FLEET_HUB_SERVICES]
    found += [(s, single / f"{s}.pid") for s in SERVICES]
    found += [
        ("idp-proxy", door / "idp-proxy.pid"),
        ("frontdoor-postgres", door / "frontdoor-postgres.pid"),
        ("jupyterhub-docker", hubs.local_docker_prefix(env) / "run" / "jupyterhub-docker.pid"),
    ]
    return found + [(f"swift {s}", swift_run / f"{s}.pid") for s in SWIFT_SERVICES]


def pools(env: Environment) -> list[hubs.Hub]:
    """ENV's pools on this machine: its hubs' as env.yaml lists them, and any other whose file
    vdevs are in its data directory (a hub taken out of `hubs:`, the one hub before the
    environment became a fleet), so that destroy leaves no pool over deleted files."""
    listed = {hub.pool: hub for hub in hubs.local_hubs(env)}
    on_disk = {path.name[: -len("-1.img")] for path in env.data_dir.glob("*-[12].img")}
    for pool in sorted(on_disk - set(listed)):
        listed[pool] = hubs.Hub(name=pool, address=None, pool=pool)
    return list(listed.values())


def stop(env: Environment, say: Say) -> None:
    """Stop the hub and then the proxy (the hub stops students' servers as it goes); the pool
    and every home stay."""
    for service, pidfile in _pidfiles(env):
        if not pidfile.exists():
            continue
        say(f"stopping {service}")
        runner.run(
            [
                runner.which("start-stop-daemon", "install dpkg (it ships start-stop-daemon)"),
                "--stop", "--oknodo", "--pidfile", str(pidfile),
                "--retry", FAST_STOP.get(service, "TERM/30/KILL/5"), "--remove-pidfile",
            ]
        )  # fmt: skip
    for docker in (hubs.local_docker_prefix(env), env.hub_prefix):
        _unmount_below(docker / "run" / "docker")


def _unmount_below(directory: Path) -> None:
    """Unmount what is still mounted under DIRECTORY, deepest first: a stopped Docker daemon
    leaves its network namespace file mounted in its exec root."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    targets = [Path(line.split()[1].replace("\\040", " ")) for line in lines if line.strip()]
    below = [t for t in targets if t.is_relative_to(directory)]
    for target in sorted(below, key=lambda p: len(p.parts), reverse=True):
        runner.run(["umount", str(target)], check=False)


def _destroy_pool(here: hubs.Hub, directory: Path, say: Say) -> None:
    """Destroy HERE's pool when it is made of files in DIRECTORY (never another pool)."""
    pool = here.pool
    try:
        vdevs = zfs.pool_vdevs(here, pool)
    except zfs.ZfsError:
        vdevs = None  # no zfs daemon answers, so no pool of this environment is imported
    if vdevs is None:
        return
    foreign = [v for v in vdevs if not Path(v).resolve().is_relative_to(directory.resolve())]
    if foreign or not vdevs:
        raise OperationError(
            f"pool '{pool}' is not made of the files in {directory} "
            f"({', '.join(foreign) or 'no file vdevs'}): it was left alone"
        )
    mounted, _ = zfs.mount_state(here, pool)
    say(f"destroying pool '{pool}'")
    zfs.destroy_pool(here, pool)
    _remove_empty_mountpoints(mounted)


def destroy(env: Environment, say: Say) -> None:
    """Stop the services, destroy the pool and remove its file vdevs. The environment's settings
    and salt stay, so the next 'make local' starts afresh with the same user hashes."""
    stop(env, say)
    directory = env.data_dir
    _zfs_daemon_for_destroy(env, say)
    every = pools(env)
    for here in every:
        _destroy_pool(here, directory, say)
    _stop_own_zfs_daemon(env, every[0], say)
    for prefix in (env.hub_prefix, directory / hubs.FRONTDOOR_HOST):
        shutil.rmtree(_memory_dir(prefix), ignore_errors=True)
    if directory.is_dir():
        say(f"removing {directory}")
        shutil.rmtree(directory)
