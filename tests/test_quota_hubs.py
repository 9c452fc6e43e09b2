"""Cloud environments: hubs from the Terraform state, reached over real SSH (an sshd on 127.0.0.1
with a key made here), one round trip per hub; unreachable hubs are named."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from callysto_infra import environments, homes, hubs, runner
from tests.homes import A, make_home, set_pool, zfs_value

SSHD_PORT = 18401
DEAD_PORT = 18402  # nothing listens here
SSHD = "/usr/sbin/sshd"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 that lets in the key it returns; stopped by its pid afterwards."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is not installed: run scripts/bootstrap-system (or make test)")
    base = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host")],
                   check=True)  # fmt: skip
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "client")],
                   check=True)  # fmt: skip
    shutil.copy(base / "client.pub", base / "authorized_keys")
    (base / "sshd_config").write_text(
        f"Port {SSHD_PORT}\nListenAddress 127.0.0.1\nHostKey {base / 'host'}\n"
        f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
        "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\n"
        "LogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")])
    for _ in range(100):
        if _listening(SSHD_PORT):
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("sshd did not start")
    yield base / "client"
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


def host_row(name: str, port: int) -> dict:
    return {
        "name": name,
        "address": "127.0.0.1",
        "ssh_user": getpass.getuser(),
        "ssh_port": port,
        "groups": ["hub", "dev", "brave-otter"],
        "zfs_disk_1": "/dev/disk/by-id/virtio-0000",
        "zfs_disk_2": "/dev/disk/by-id/virtio-0001",
    }


def cloud_env(pool, client_key: Path | None, hosts: dict[str, int]):
    """A dev environment on POOL whose Terraform state lists HOSTS (name -> SSH port)."""
    env = set_pool(environments.create("dev", "brave-otter"), pool.name)
    rows = {name: host_row(name, port) for name, port in hosts.items()}
    env.state_file.write_text(
        json.dumps({"version": 4, "outputs": {"hosts": {"value": rows, "type": "map"}}})
    )
    if client_key is not None:
        shutil.copy(client_key, env.ssh_key_file)
        env.ssh_key_file.chmod(0o600)
    return env


HUB1 = "hub-01.callysto.farm"
HUB2 = "hub-02.callysto.farm"


def test_quota_commands_run_over_ssh_on_the_hub(callysto, envs_dir, zfs_pool, sshd):
    cloud_env(zfs_pool, sshd, {HUB1: SSHD_PORT})
    make_home(zfs_pool, A, "1M")
    got = callysto("quota", "get", "--env", "brave-otter", "--json", A)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["hub"] == HUB1
    done = callysto("quota", "set", "--env", "brave-otter", A, "3M")
    assert done.returncode == 0, done.stderr
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == str(3 * 1024 * 1024)
    listed = callysto("quota", "list", "--env", "brave-otter", "--json")
    assert [h["user"] for h in json.loads(listed.stdout)] == [A]
    assert (envs_dir / "brave-otter" / "secrets" / "known_hosts").read_text()  # host key kept


def test_the_hub_holding_the_home_is_found_when_another_is_down(callysto, envs_dir, zfs_pool, sshd):
    cloud_env(zfs_pool, sshd, {HUB1: DEAD_PORT, HUB2: SSHD_PORT})
    make_home(zfs_pool, A, "1M")
    done = callysto("quota", "set", "--env", "brave-otter", A, "2M")
    assert done.returncode == 0, done.stderr
    assert HUB2 in done.stdout and f"'{HUB1}' did not answer" in done.stderr
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == str(2 * 1024 * 1024)
    found = callysto("user", "findhash", "--env", "brave-otter", "--json", "ada@school.ca")
    assert found.returncode == 0 and HUB1 in json.loads(found.stdout)["unreachable"]


def test_an_unreachable_hub_fails_with_its_name(callysto, envs_dir, zfs_pool, one_line_error):
    cloud_env(zfs_pool, None, {HUB1: DEAD_PORT})
    make_home(zfs_pool, A, "1M")
    for args in (["quota", "get", A], ["quota", "set", A, "2M"], ["quota", "list"],
                 ["user", "ban", A]):  # fmt: skip
        done = callysto(*args, "--env", "brave-otter")
        assert done.returncode == 1, (args, done.stderr)
        assert one_line_error(done) and HUB1 in done.stderr and "unreachable" in done.stderr
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == str(1024 * 1024)


def test_quota_list_of_several_hubs_names_the_one_that_is_down(callysto, envs_dir, zfs_pool, sshd):
    cloud_env(zfs_pool, sshd, {HUB1: DEAD_PORT, HUB2: SSHD_PORT})
    make_home(zfs_pool, A, "1M")
    everywhere = callysto("quota", "list", "--env", "brave-otter")
    assert everywhere.returncode == 1 and HUB1 in everywhere.stderr
    one = callysto("quota", "list", "--env", "brave-otter", "--host", HUB2)
    assert one.returncode == 0 and A in one.stdout


def test_a_home_on_two_hubs_needs_host(callysto, envs_dir, zfs_pool, sshd):
    # Both state entries reach this machine, so both hubs hold the same home: an anomaly that
    # must be named, not resolved by guessing.
    cloud_env(zfs_pool, sshd, {HUB1: SSHD_PORT, HUB2: SSHD_PORT})
    make_home(zfs_pool, A, "1M")
    done = callysto("quota", "set", "--env", "brave-otter", A, "2M")
    assert done.returncode == 1 and "several hubs" in done.stderr and "--host" in done.stderr
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == str(1024 * 1024)
    picked = callysto("quota", "set", "--env", "brave-otter", "--host", HUB2, A, "2M")
    assert picked.returncode == 0, picked.stderr
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == str(2 * 1024 * 1024)


def test_each_hub_gets_one_ssh_round_trip_with_every_word_quoted(envs_dir, monkeypatch):
    env = environments.create("dev", "brave-otter")
    env.ssh_key_file.write_text("key")
    env.state_file.write_text(
        json.dumps({"version": 4, "outputs": {"hosts": {"value": {"a": host_row(HUB1, 2222)}}}})
    )
    (hub,) = hubs.hubs(env)
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(list(argv))
        return runner.Result(tuple(argv), 1, "", "cannot open: dataset does not exist")

    monkeypatch.setattr(runner, "run", fake_run)
    assert homes.get_home(hub, "tank", A) is None
    assert calls == [
        [
            shutil.which("ssh"),
            "-i", str(env.ssh_key_file), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={env.known_hosts_file}",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-p", "2222",
            "--",
            f"{getpass.getuser()}@127.0.0.1",
            f"zfs get -H -p -o name,property,value {','.join(homes.PROPERTIES)} tank/home/{A}",
        ]
    ]  # fmt: skip
