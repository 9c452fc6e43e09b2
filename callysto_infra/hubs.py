"""The hubs of an environment and how to run a program on one: directly on this machine for a
local environment, otherwise over SSH. Hubs come from the Terraform state's `hosts` output (see
tfstate: no Terraform run, no SSH)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callysto_infra import runner, tfstate
from callysto_infra.errors import OperationError, Unreachable, UsageError

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

SSH_HINT = "install the OpenSSH client (apt-get install openssh-client)"


@dataclass(frozen=True)
class Hub:
    """One hub. `address` is the public address operators reach; None means this machine."""

    name: str
    address: str | None
    ssh_user: str | None = None
    groups: tuple[str, ...] = ()
    zfs_disks: tuple[str, ...] = ()
    ssh_key: str | None = None
    known_hosts: str | None = None
    ssh_port: int = 22
    # The hub's ZFS pool (env.yaml hub.pool; each hub of a local fleet has one of its own).
    pool: str = "tank"
    # A hub on this machine: the first of its ports (the public one) and its files' prefix.
    port: int | None = None
    prefix: str | None = None

    @property
    def is_local(self) -> bool:
        return self.address is None

    def ssh_argv(self, remote_argv: Sequence[str] = (), *, batch: bool = True) -> list[str]:
        """The ssh command that runs REMOTE_ARGV on this hub.

        ssh hands the remote side one string for its shell, so each argument is quoted here:
        the remote shell sees exactly the words we pass, and nothing else.
        """
        if self.is_local:
            raise OperationError(f"hub '{self.name}' is this machine; there is nothing to ssh to")
        argv = [runner.which("ssh", SSH_HINT)]
        if self.ssh_key:
            argv += ["-i", self.ssh_key, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
        if batch:
            argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if self.ssh_port != 22:
            argv += ["-p", str(self.ssh_port)]
        target = f"{self.ssh_user}@{self.address}" if self.ssh_user else self.address
        # '--' before the target: an address or user from the state that begins with '-' is
        # then a host name ssh cannot resolve, never an option such as -oProxyCommand=. After
        # it, ssh takes every later word as the remote command, even one beginning with '-'.
        argv += ["--", target]
        if remote_argv:
            argv += [shlex.join(str(a) for a in remote_argv)]
        return argv

    def run(self, argv: Sequence[str], **kwargs) -> runner.Result:
        """Run ARGV on this hub: one process locally, or one SSH round trip."""
        if self.is_local:
            return runner.run(argv, **kwargs)
        check = kwargs.pop("check", True)
        result = runner.run(self.ssh_argv(argv), check=False, **kwargs)
        if result.returncode == 255:
            raise Unreachable(self.name, self.address, runner.last_line(result))
        if check and not result.ok:
            raise OperationError(
                f"'{argv[0]}' failed on hub '{self.name}': {runner.last_line(result)}"
            )
        return result


# A local fleet on this machine: the front door takes local.port (and the sign-in proxy +3,
# PostgreSQL +4); the Nth hub (from 1) local.port + N * LOCAL_HUB_PORTS, which leaves each hub
# room for its proxy, hub, proxy API and object gateway (+0 .. +5) and a local Swift (+6 .. +10).
LOCAL_HUB_PORTS = 20
FRONTDOOR_HOST = "front-door"  # a host may not be named like its group
FRONTDOOR_DB_OFFSET = 4


def is_local_fleet(env: Environment) -> bool:
    """A local environment with `hubs:`: several hubs on this machine behind a front door."""
    return env.type == "local" and env.config.hubs is not None


def local_hub(env: Environment) -> Hub:
    """The one hub of a local environment that is not a fleet: this machine."""
    return Hub(
        name="localhost",
        address=None,
        groups=("hub", "local", env.name),
        pool=env.config.hub.pool,
        port=env.local.port,
        prefix=str(env.hub_prefix),
    )


def local_hubs(env: Environment) -> list[Hub]:
    """The hubs of a local environment: the one hub, or each hub of the fleet with its own
    pool, ports and prefix under the data directory."""
    if not is_local_fleet(env):
        return [local_hub(env)]
    return [
        Hub(
            name=member.name,
            address=None,
            groups=("hub", "local", env.name),
            pool=f"{env.config.hub.pool}-{member.name}",
            port=env.local.port + LOCAL_HUB_PORTS * number,
            prefix=str((env.data_dir / "hubs" / member.name).resolve()),
        )
        for number, member in enumerate(env.config.fleet, 1)
    ]


def container_prefix(env: Environment, hub: Hub) -> str:
    """What HUB's students' containers are named with, before the user name (the inventory's
    hub_container_prefix, the jupyterhub role's DockerSpawner.name_template): hubs that share
    a Docker daemon (a local fleet's) each have their own."""
    return f"callysto-{hub.name}-" if is_local_fleet(env) else "callysto-"


def local_docker_prefix(env: Environment) -> Path:
    """Where a local fleet's one Docker daemon keeps its files: its hubs share it (and the
    students' image), since they share the machine."""
    return env.data_dir / "docker"


def local_frontdoor(env: Environment) -> Hub:
    """A local fleet's front door on this machine (not a hub: it holds no homes)."""
    return Hub(
        name=FRONTDOOR_HOST,
        address=None,
        groups=("frontdoor", "local", env.name),
        port=env.local.port,
        prefix=str((env.data_dir / FRONTDOOR_HOST).resolve()),
    )


def hubs(env: Environment, group: str = "hub") -> list[Hub]:
    """Every hub of ENV (or, with GROUP, every host of that inventory group, e.g. the front
    door), in a stable order."""
    if env.type == "local":
        if group == "frontdoor":
            return [local_frontdoor(env)] if is_local_fleet(env) else []
        return sorted(local_hubs(env), key=lambda hub: hub.name)
    key = str(env.ssh_key_file) if env.ssh_key_file.exists() else None
    # A state read the fast way (tfstate.Located: ssh, ansible hosts) has no settings, and needs
    # no pool; every command that reads ZFS loads the environment in full.
    config = getattr(env, "config", None)
    pool = config.hub.pool if config is not None else Hub.pool
    found = [
        Hub(
            name=host.name,
            address=host.address,
            ssh_user=host.ssh_user,
            groups=host.groups,
            zfs_disks=host.zfs_disks,
            ssh_key=key,
            known_hosts=str(env.known_hosts_file),
            ssh_port=host.ssh_port or 22,
            pool=pool,
        )
        for host in tfstate.hosts(env)
        if group in host.groups
    ]
    return sorted(found, key=lambda hub: hub.name)


def find(env: Environment, name: str) -> Hub:
    """The hub called NAME; a name not in the environment lists the known ones."""
    known = hubs(env)
    for hub in known:
        if hub.name == name or hub.address == name:
            return hub
    names = ", ".join(h.name for h in known) or "none"
    raise UsageError(f"host '{name}' is not in environment '{env.name}' (known: {names})")


# --- the inventory as the read commands answer it, from the state alone ------------------------
# The same hosts and groups Ansible's inventory plugin serves (inventory.build), without starting
# Ansible: `ansible hosts`, `get-ipv4` and `get-ssh-user` only read a file.


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str  # what Ansible connects to (ansible_host)
    ssh_user: str | None  # None: this machine's own user (a local connection)
    groups: tuple[str, ...]


# The inventory group of the host that runs the sign-in proxy (hub.yml's second play): the
# front door when the environment has one, else every hub.
IDP_PROXY_GROUP = "idp_proxy"


def runs_idp_proxy(groups: tuple[str, ...], all_groups: list[tuple[str, ...]]) -> bool:
    """Whether the host of GROUPS runs the sign-in proxy, among hosts of ALL_GROUPS."""
    has_frontdoor = any("frontdoor" in other for other in all_groups)
    return "frontdoor" in groups if has_frontdoor else "hub" in groups


def inventory_hosts(env: Environment) -> list[InventoryHost]:
    """Every host of ENV's inventory, each with the environment's own group among its groups,
    and the sign-in proxy's group on the host that runs it."""
    if env.type == "local":
        if not is_local_fleet(env):
            hub = local_hub(env)
            return [InventoryHost(hub.name, "127.0.0.1", None, (*hub.groups, IDP_PROXY_GROUP))]
        door = local_frontdoor(env)
        return [
            InventoryHost(door.name, "127.0.0.1", None, (*door.groups, IDP_PROXY_GROUP)),
            *(InventoryHost(hub.name, "127.0.0.1", None, hub.groups) for hub in local_hubs(env)),
        ]
    rows = tfstate.hosts(env)
    every = [host.groups for host in rows]
    found = []
    for host in rows:
        groups = host.groups if env.name in host.groups else (*host.groups, env.name)
        if runs_idp_proxy(host.groups, every):
            groups = (*groups, IDP_PROXY_GROUP)
        found.append(InventoryHost(host.name, host.address, host.ssh_user or "root", groups))
    return found


def inventory_names(env: Environment, group: str | None = None) -> list[str]:
    """The hosts of GROUP (a group or a host name; all hosts when None), sorted."""
    known = inventory_hosts(env)
    if group is None or group == "all":
        return sorted(host.name for host in known)
    if any(host.name == group for host in known):
        return [group]
    groups = {name for host in known for name in host.groups}
    if group not in groups:
        raise UsageError(f"unknown group or host '{group}' (groups: {', '.join(sorted(groups))})")
    return sorted(host.name for host in known if group in host.groups)


def inventory_host(env: Environment, name: str) -> InventoryHost:
    """The host called NAME, or whose address is NAME."""
    known = inventory_hosts(env)
    for host in known:
        if host.name == name:
            return host
    for host in known:
        if host.address == name:
            return host
    names = ", ".join(sorted(host.name for host in known)) or "none"
    raise UsageError(f"unknown host '{name}' (known: {names})")
