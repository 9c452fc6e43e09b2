"""The one reader of the Terraform state: a corrupt state is one line naming the newest saved copy,
and each `hosts` row becomes a typed record or one line saying what is wrong with it."""

from __future__ import annotations

import json

import pytest

from callysto_infra import environments, locking, tfstate
from callysto_infra.errors import OperationError


@pytest.fixture
def env(envs_dir):
    return environments.create("dev", "brave-otter")


def write_hosts(env, hosts) -> None:
    state = {"version": 4, "resources": [], "outputs": {"hosts": {"value": hosts}}}
    env.state_file.write_text(json.dumps(state))


def row(**changes) -> dict:
    base = {
        "name": "hub-01.callysto.farm",
        "address": "203.0.113.1",
        "ssh_user": "ptty2u",
        "groups": ["hub", "dev", "brave-otter"],
        "zfs_disk_1": "/dev/disk/by-id/virtio-1",
        "zfs_disk_2": "/dev/disk/by-id/virtio-2",
    }
    return {key: value for key, value in {**base, **changes}.items() if value is not None}


def test_no_state_yet_is_none(env):
    assert tfstate.read(env) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"version": 4, "resou', "(Unterminated string starting at line 1)"),
        ('["not", "a", "state"]', "not a Terraform state"),
        ('{"version": 4, "resources": {}}', "not a Terraform state"),
    ],
)
def test_a_corrupt_state_is_one_line_naming_the_newest_copy(env, text, reason):
    env.state_file.write_text('{"version": 4, "serial": 1, "resources": []}')
    locking.backup(env.state_file)
    env.state_file.write_text('{"version": 4, "serial": 2, "resources": []}')
    newest = locking.backup(env.state_file)
    env.state_file.write_text(text)
    with pytest.raises(OperationError) as caught:
        tfstate.read(env)
    message = str(caught.value)
    assert "\n" not in message
    assert "terraform.tfstate is corrupt" in message and reason in message
    assert f"restore the newest good copy, {newest}" in message
    assert env.state_file.read_text() == text, "the reader never writes"


def test_a_corrupt_state_without_copies_says_there_is_none(env):
    env.state_file.write_bytes(b"\xff\xfe")
    with pytest.raises(
        OperationError, match=r"corrupt \(not text\).*no good copy in .*state-backups/"
    ):
        tfstate.read(env)


def test_hosts_rows_become_records(env):
    write_hosts(env, {"a": row(), "b": row(name="hub-02", ssh_port=2222, groups=None)})
    first, second = tfstate.hosts(env)
    assert first == tfstate.Host(
        name="hub-01.callysto.farm",
        address="203.0.113.1",
        ssh_user="ptty2u",
        groups=("hub", "dev", "brave-otter"),
        zfs_disks=("/dev/disk/by-id/virtio-1", "/dev/disk/by-id/virtio-2"),
        ssh_port=None,
    )
    assert second.ssh_port == 2222
    assert second.groups == ("hub", "dev", "brave-otter"), "groups default to the environment's"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (row(address=None), "hosts row 'a' has no address"),
        (row(name=""), "hosts row 'a' has no name"),
        (row(ssh_port="22a"), "hosts row 'a' has ssh_port '22a', not a port number"),
        (row(ssh_port=True), "not a port number"),
        ("hub-01", "hosts row 'a' is not a mapping"),
    ],
)
def test_a_bad_hosts_row_is_one_line(env, bad, says):
    write_hosts(env, {"a": bad})
    with pytest.raises(OperationError) as caught:
        tfstate.hosts(env)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert "terraform.tfstate is corrupt" in str(caught.value)


def test_a_state_row_without_an_address_is_one_line_at_the_cli(callysto, env):
    write_hosts(env, {"a": row(address=None)})
    for args in (
        ["ansible", "hosts", "--env", "brave-otter"],
        ["ssh", "shell", "--env", "brave-otter", "--print", "hub-01"],
    ):
        result = callysto(*args)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "has no address" in lines[0], result.stderr
