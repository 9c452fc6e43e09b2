"""The Ansible inventory of an environment, built from its Terraform state's `hosts` output (or,
for a local environment, this machine). The inventory plugin under playbooks/ serves it to Ansible."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callysto_infra import homes, hubs, tfstate, validate

if TYPE_CHECKING:
    from callysto_infra.env_schema import ServerSettings
    from callysto_infra.environments import Environment

# The file Ansible is pointed at. It lives in the environment's directory so that Ansible reads
# envs/<ENV>/group_vars/ beside it, as for any inventory source.
SOURCE_NAME = "inventory.callysto.yml"
SOURCE_TEXT = """\
# Ansible reads this environment's hubs through the project's inventory plugin, which takes them
# from the Terraform state's 'hosts' output (a local environment: this machine). Do not edit.
plugin: callysto
"""


@dataclass
class Inventory:
    """Groups with their hosts and variables, and each host's variables."""

    groups: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, host: str, groups: list[str], variables: dict[str, Any]) -> None:
        self.host_vars.setdefault(host, {}).update(variables)
        for name in groups:
            members = self.groups.setdefault(name, [])
            if host not in members:
                members.append(host)


def source_file(env: Environment) -> str:
    """The inventory source of ENV, written when missing (its content never varies)."""
    path = env.path / SOURCE_NAME
    if not path.exists() or path.read_text(encoding="utf-8") != SOURCE_TEXT:
        path.write_text(SOURCE_TEXT, encoding="utf-8")
    return str(path)


def env_vars(env: Environment) -> dict[str, Any]:
    """What every play needs to know about the environment, from env.yaml."""
    config = env.config
    variables: dict[str, Any] = {
        "callysto_env_name": env.name,
        "callysto_env_type": env.type,
        "callysto_env_dir": str(env.path.resolve()),
        "callysto_secrets_dir": str(env.secrets_dir.resolve()),
        "hub_fqdn": env.fqdn,
        # The sign-in proxy's host: the front door, else the hub.
        "idp_proxy_fqdn": env.idp_proxy_fqdn,
        "hub_pool": config.hub.pool,
        "hub_refquota": config.hub.refquota,
        "hub_min_free_bytes": homes.MIN_FREE_BYTES,
        "hub_prefix": str(env.hub_prefix.resolve()),
        "support_email": config.support_email,
        "saml_idp_entity_id": env.idp_entity_id,
        "saml_sp_entity_id": env.sp_entity_id,
        "hub_servers": servers_vars(config.servers),
        "hub_storage": config.storage,
    }
    if config.storage == "object":
        from callysto_infra import objectstore

        variables["hub_object"] = {
            "endpoint": objectstore.endpoint(env),
            "container": objectstore.container(env),
            "region": objectstore.region(env),
            "local_swift": env.type == "local" and not (config.object and config.object.endpoint),
            "quota_bytes": validate.zfs_size_bytes(config.hub.refquota) or 0,
        }
    saml = config.saml
    if saml.institution_idp:
        variables["idp_proxy_institution_idp"] = saml.institution_idp
    if saml.institution_metadata:
        source = saml.institution_metadata
        if not source.startswith("https://"):
            source = str((env.path / source).resolve())
        variables["idp_proxy_institution_metadata"] = source
    if saml.google_client_id:
        variables["idp_proxy_google_client_id"] = saml.google_client_id
    if saml.microsoft_client_id:
        variables["idp_proxy_microsoft_client_id"] = saml.microsoft_client_id
    if env.config.hubs is not None:
        variables["fleet_hubs"] = fleet_vars(env)
    if env.type == "local":
        local = env.local
        variables.update(
            local_port=local.port,
            local_data_dir=str(env.data_dir.resolve()),
            local_vdev_size=local.vdev_size,
        )
    return variables


def fleet_vars(env: Environment) -> list[dict[str, Any]]:
    """The fleet as the front door takes it: each hub's name, address, capacity and state."""
    if hubs.is_local_fleet(env):
        urls = {hub.name: f"http://127.0.0.1:{hub.port}/" for hub in hubs.local_hubs(env)}
    else:
        domain = env.config.host.domain
        urls = {member.name: f"https://{member.name}.{domain}/" for member in env.config.fleet}
    return [
        {
            "name": member.name,
            "url": urls[member.name],
            "capacity": member.capacity,
            "state": member.state,
        }
        for member in env.config.fleet
    ]


def servers_vars(servers: ServerSettings) -> dict[str, Any]:
    """env.yaml's servers section as the jupyterhub role takes it: bytes, CPUs and seconds."""
    limits = ("memory", "cpu", "processes")
    idle = servers.idle_timeout
    return {
        "memory": servers.memory,
        "cpu": servers.cpu,
        "processes": servers.processes,
        "idle_timeout": idle,
        "max_age": servers.max_age,
        # The culler looks (and the hub gathers activity) often enough for a short timeout.
        "cull_every": max(1, min(60, (idle or servers.max_age) // 2)),
        "kernel_idle_timeout": servers.kernel_idle_timeout,
        "concurrent_spawns": servers.concurrent_spawns,
        "starting_at_once": servers.starting_at_once,
        "groups": {
            name: {key: getattr(group, key) for key in limits if getattr(group, key) is not None}
            for name, group in servers.groups.items()
        },
        "load_groups": {
            name: {"users": list(group.members)} for name, group in servers.groups.items()
        },
    }


def build(env: Environment) -> Inventory:
    """The inventory of ENV. Raises UsageError when a cloud environment has no state yet."""
    inventory = Inventory()
    if env.type == "local":
        connection = {
            "ansible_connection": "local",
            "ansible_host": "127.0.0.1",
            # Modules run with the same Python as Ansible itself, so nothing else is needed.
            "ansible_python_interpreter": sys.executable,
            # Root needs no sudo (and a machine without sudo must still work).
            "ansible_become": os.geteuid() != 0,
        }
        if not hubs.is_local_fleet(env):
            hub = hubs.local_hub(env)
            inventory.add(hub.name, [*hub.groups, hubs.IDP_PROXY_GROUP], connection)
        else:
            # A fleet on this machine: the front door (sign-in proxy, assignment table, the
            # front door service) and each hub with its own pool, ports and prefix; the hubs
            # share the machine's one Docker daemon and zfs-fuse.
            door = hubs.local_frontdoor(env)
            inventory.add(
                door.name,
                [*door.groups, hubs.IDP_PROXY_GROUP],
                {**connection, "hub_prefix": door.prefix, "local_port": door.port},
            )
            for hub in hubs.local_hubs(env):
                inventory.add(
                    hub.name,
                    list(hub.groups),
                    {
                        **connection,
                        "hub_pool": hub.pool,
                        "hub_prefix": hub.prefix,
                        "local_port": hub.port,
                        "hub_docker_prefix": str(hubs.local_docker_prefix(env).resolve()),
                        "hub_container_prefix": hubs.container_prefix(env, hub),
                    },
                )
    else:
        key = env.ssh_key_file
        rows = tfstate.hosts(env)
        every = [host.groups for host in rows]
        for host in rows:
            variables: dict[str, Any] = {
                "ansible_host": host.address,
                "ansible_user": host.ssh_user or "root",
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={env.known_hosts_file.resolve()} "
                    "-o StrictHostKeyChecking=accept-new"
                ),
            }
            if host.ssh_port is not None:
                variables["ansible_port"] = host.ssh_port
            if key.exists():
                variables["ansible_ssh_private_key_file"] = str(key.resolve())
            for number, disk in enumerate(host.zfs_disks, 1):
                variables[f"zfs_disk_{number}"] = disk
            groups = list(host.groups)
            if hubs.runs_idp_proxy(host.groups, every):
                groups.append(hubs.IDP_PROXY_GROUP)
            inventory.add(host.name, groups, variables)
    # Environment-wide settings are group variables of <ENV>, so envs/<ENV>/group_vars/ can
    # override any of them.
    inventory.groups.setdefault(env.name, [])
    inventory.group_vars[env.name] = env_vars(env)
    for host in inventory.host_vars:
        if host not in inventory.groups[env.name]:
            inventory.groups[env.name].append(host)
    return inventory
