"""Hubs from the Terraform state's `hosts` output, and running programs on them."""

from __future__ import annotations

import json
import subprocess

import pytest

from callysto_infra import environments, hubs
from callysto_infra.errors import UsageError


def write_state(env, hosts: dict) -> None:
    env.state_file.write_text(json.dumps({"version": 4, "outputs": {"hosts": {"value": hosts}}}))


def host_row(name: str, address: str) -> dict:
    return {
        "name": name,
        "address": address,
        "ssh_user": "ptty2u",
        "groups": ["hub", "dev", "brave-otter"],
        "zfs_disk_1": "/dev/disk/by-id/virtio-0a1b2c3d-0000-4000-8",
        "zfs_disk_2": "/dev/disk/by-id/virtio-0a1b2c3d-0000-4000-9",
    }


def test_hubs_come_from_the_state_outputs(envs_dir):
    env = environments.create("dev", "brave-otter")
    write_state(
        env, {"b": host_row("hub-02", "203.0.113.2"), "a": host_row("hub-01", "2001:db8::1")}
    )
    found = hubs.hubs(env)
    assert [h.name for h in found] == ["hub-01", "hub-02"]
    assert found[1].address == "203.0.113.2" and found[1].ssh_user == "ptty2u"
    assert found[0].zfs_disks[0].startswith("/dev/disk/by-id/virtio-")


def test_environment_without_state_says_to_apply_first(envs_dir):
    env = environments.create("dev", "brave-otter")
    with pytest.raises(UsageError, match="terraform apply"):
        hubs.hubs(env)


def test_unknown_host_lists_the_known_ones(envs_dir):
    env = environments.create("dev", "brave-otter")
    write_state(env, {"a": host_row("hub-01", "203.0.113.1")})
    with pytest.raises(UsageError, match=r"'hub-1' is not in environment .*known: hub-01"):
        hubs.find(env, "hub-1")


def test_ssh_argv_quotes_every_remote_word(envs_dir):
    hub = hubs.Hub(name="h", address="203.0.113.1", ssh_user="ptty2u", ssh_key="/k")
    argv = hub.ssh_argv(["zfs", "get", "-H", "refquota", "tank/home/x; reboot"])
    assert argv[-3:] == ["--", "ptty2u@203.0.113.1", "zfs get -H refquota 'tank/home/x; reboot'"]


def test_local_hub_runs_here(envs_dir):
    env = environments.create("local")
    (hub,) = hubs.hubs(env)
    assert hub.is_local
    assert hub.run(["echo", "a b"]).stdout == "a b\n"


def test_zfs_pool_fixture_is_real(zfs_pool):
    out = subprocess.run(
        ["zpool", "list", "-H", "-o", "name,health", zfs_pool.name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == [zfs_pool.name, "ONLINE"]
