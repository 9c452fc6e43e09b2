"""`callysto ssh shell` against a real sshd on 127.0.0.1, reached through a hand-written state."""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import subprocess
import time

import pytest

from callysto_infra import environments

SSHD = "/usr/sbin/sshd"
PORTS = range(18200, 18220)
HUB = "brave-otter.callysto.farm"


def free_port(ports: range) -> int:
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {ports}")


def keygen(path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True
    )


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on 127.0.0.1 that lets the current user in with the keys in its authorized_keys."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is not installed: run scripts/bootstrap-system (or make test)")
    if os.geteuid() == 0:
        # sshd running as root insists on its privilege separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    root = tmp_path / "sshd"
    root.mkdir()
    keygen(root / "host_key")
    authorized = root / "authorized_keys"
    authorized.touch(mode=0o600)
    port = free_port(PORTS)
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"PidFile {root / 'sshd.pid'}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "sshd.log", "w"),  # noqa: SIM115 -- sshd owns it until it stops
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()}")
        time.sleep(0.05)
    host_key = (root / "host_key.pub").read_text().split()[1]
    yield {"port": port, "authorized_keys": authorized, "host_key": host_key}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def hub_env(envs_dir, sshd):
    """A dev environment whose state lists one hub: the test's sshd, as the current user, with
    the environment's own key authorized there."""
    env = environments.create("dev", "brave-otter")
    keygen(env.ssh_key_file)
    sshd["authorized_keys"].write_text(env.ssh_key_file.with_suffix(".pub").read_text())
    host = {
        "name": HUB,
        "address": "127.0.0.1",
        "ssh_user": getpass.getuser(),
        "ssh_port": sshd["port"],
        "groups": ["hub", "dev", "brave-otter"],
        "zfs_disk_1": "/dev/disk/by-id/virtio-0a1b2c3d-0000-4000-8",
        "zfs_disk_2": "/dev/disk/by-id/virtio-0a1b2c3d-0000-4000-9",
    }
    state = {"version": 4, "outputs": {"hosts": {"value": {"brave-otter": host}}}}
    env.state_file.write_text(json.dumps(state))
    return env


def test_ssh_shell_runs_the_command_on_the_hub_with_every_word_intact(callysto, hub_env):
    words = ["a  b", "$HOME", "x;y", "'quoted'"]
    result = callysto("ssh", "shell", "--env", "brave-otter", HUB, "--", "printf", "%s|", *words)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a  b|$HOME|x;y|'quoted'|"


def test_ssh_shell_logs_in_as_the_hubs_ssh_user_and_remembers_its_key(callysto, hub_env, sshd):
    result = callysto("ssh", "shell", "--env", "brave-otter", HUB, "--", "id", "-un")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == getpass.getuser()
    # The hub's host key went to the environment's own known_hosts, not the operator's.
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{sshd['port']}", "-f", str(hub_env.known_hosts_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0
    assert sshd["host_key"] in found.stdout


def test_ssh_shell_passes_on_the_remote_exit_status(callysto, hub_env):
    result = callysto("ssh", "shell", "--env", "brave-otter", HUB, "--", "sh", "-c", "exit 3")
    assert result.returncode == 3


def test_ssh_shell_print_shows_the_command_it_would_run(callysto, hub_env):
    result = callysto("ssh", "shell", "--env", "brave-otter", "--print", HUB, "--", "echo", "hi")
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout)
    assert argv[argv.index("-i") + 1] == str(hub_env.ssh_key_file)
    assert f"{getpass.getuser()}@127.0.0.1" in argv
    # What it prints is what it runs.
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert ran.stdout == "hi\n", ran.stderr


def test_ssh_shell_to_an_unknown_host_lists_the_known_ones(callysto, hub_env):
    result = callysto("ssh", "shell", "--env", "brave-otter", "hub-02.callysto.farm")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"known: {HUB}" in result.stderr


def test_ssh_shell_refuses_a_local_environment(callysto, envs_dir):
    environments.create("local")
    result = callysto("ssh", "shell", "--env", "local", "localhost")
    assert result.returncode == 1
    assert "is this machine" in result.stderr and result.stderr.count("\n") == 1
