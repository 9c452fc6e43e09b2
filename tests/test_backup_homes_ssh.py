"""Homes backups over SSH, as on a real fleet: the hub and the backup host are reached through a
real sshd on 127.0.0.1 (this machine plays both), so `zfs send` and `zfs receive` run as two ssh
processes joined by the CLI, with no shell in between."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from callysto_infra import environments
from tests.test_backup_homes import (  # noqa: F401 (fixtures)
    ALICE,
    backup_pool,
    destroy_soon,
    our_snapshots,
    zfs,
)

PORTS = range(18500, 18550)
SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.fail("no free port in 18500-18549")


@pytest.fixture
def sshd(tmp_path):
    """An sshd on 127.0.0.1 that lets one generated key in as root; stopped by its pid."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is not installed: run scripts/bootstrap-system (or make test)")
    folder = tmp_path / "sshd"
    folder.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host")], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "client")], check=True
    )
    (folder / "authorized_keys").write_text((folder / "client.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\n"
        "UsePAM no\nSetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {proc.stderr.read().decode()}")
        time.sleep(0.1)
    host_key = (folder / "host.pub").read_text().split()[1]
    yield {"port": port, "key": folder / "client", "host_key": host_key}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def remote_env(request, envs_dir, zfs_pool, sshd):
    """A dev environment whose one hub (from the Terraform state) and backup host are both
    127.0.0.1 over SSH."""
    replica_pool = request.getfixturevalue("backup_pool")
    env = environments.create("dev", "brave-otter")
    key = env.ssh_key_file
    key.write_bytes(sshd["key"].read_bytes())
    key.chmod(0o600)
    row = {
        "name": "hub-01.callysto.farm",
        "address": "127.0.0.1",
        "ssh_user": "root",
        "groups": ["hub", "dev", "brave-otter"],
        "ssh_port": sshd["port"],
    }
    env.state_file.write_text(
        json.dumps({"version": 4, "outputs": {"hosts": {"value": {"hub-01": row}}}})
    )
    config = yaml.safe_load((env.path / "env.yaml").read_text())
    config["hub"]["pool"] = zfs_pool.name
    config["homes_backup"] = {
        "dataset": f"root@127.0.0.1:{replica_pool.name}/homes",
        "ssh_port": sshd["port"],
        "ssh_key": "secrets/ssh-key",
        "keep": 3,
    }
    (env.path / "env.yaml").write_text(yaml.safe_dump(config))
    zfs("create", f"{zfs_pool.name}/home/{ALICE}")
    (zfs_pool.mountpoint / "home" / ALICE / "essay.md").write_bytes(os.urandom(50_000))
    yield {"env": env, "replica_pool": replica_pool, "host_key": sshd["host_key"]}
    destroy_soon(zfs_pool)


def test_homes_go_to_a_backup_host_and_come_back_over_ssh(callysto, remote_env, zfs_pool):
    replica_pool, env = remote_env["replica_pool"], remote_env["env"]
    essay = zfs_pool.mountpoint / "home" / ALICE / "essay.md"
    original = essay.read_bytes()
    result = callysto("backup", "homes", "--env", "brave-otter")
    assert result.returncode == 0, result.stderr
    hub, snapshot = result.stdout.strip().split("\t")
    snap = snapshot.split("@")[1]
    assert hub == "hub-01.callysto.farm"
    replica = f"{replica_pool.name}/homes/hub-01.callysto.farm"
    assert our_snapshots(f"{replica}/{ALICE}") == [snap]
    # The first contact was recorded in the environment's own known_hosts, not the operator's.
    assert remote_env["host_key"] in env.known_hosts_file.read_text()

    essay.unlink()
    zfs("destroy", "-r", f"{zfs_pool.name}/home@{snap}")
    result = callysto("backup", "homes", "restore", "--env", "brave-otter", "--from", snap, ALICE)
    assert result.returncode == 0, result.stderr
    assert essay.read_bytes() == original

    status = callysto("backup", "homes", "status", "--env", "brave-otter", "--json")
    (row,) = json.loads(status.stdout)
    assert row["count"] == 0 and row["at_destination"]["newest"] == snap


def test_a_hub_that_is_down_is_named_and_the_others_are_backed_up(
    callysto, remote_env, zfs_pool, one_line_error
):
    replica_pool, env = remote_env["replica_pool"], remote_env["env"]
    state = json.loads(env.state_file.read_text())
    rows = state["outputs"]["hosts"]["value"]
    # Sorted first, so the backup has to go on past it.
    rows["hub-00"] = {**rows["hub-01"], "name": "hub-00.callysto.farm", "ssh_port": free_port()}
    env.state_file.write_text(json.dumps(state))
    result = callysto("backup", "homes", "--env", "brave-otter")
    line = one_line_error(result, "1 of 2 hubs not backed up: hub-00.callysto.farm: UNREACHABLE",
                          code=1, alone=False)  # fmt: skip
    hub, snapshot = result.stdout.strip().split("\t")
    assert hub == "hub-01.callysto.farm", line
    # The run ends with a line per hub, in the fleet's order, then the count.
    summary = result.stderr.splitlines()[-4:-1]
    assert summary[0].startswith("hub-00.callysto.farm: UNREACHABLE: ssh: connect to host")
    assert summary[1] == f"hub-01.callysto.farm: ok: backed up {snapshot.split('@')[1]}"
    assert summary[2] == "backed up 1 of 2 hubs"
    replica = f"{replica_pool.name}/homes/hub-01.callysto.farm"
    assert our_snapshots(f"{replica}/{ALICE}") == [snapshot.split("@")[1]]
