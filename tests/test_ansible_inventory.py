"""The Ansible inventory from Terraform outputs, and the `callysto ansible` commands that answer
from it without SSH; bad input gives one line and a non-zero exit."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from callysto_infra import ansible, environments

ENV = "brave-otter"


def row(name: str, address: str, *, ssh_user: str = "ptty2u", env: str = ENV, **extra) -> dict:
    return {
        "name": name,
        "address": address,
        "ssh_user": ssh_user,
        "groups": ["hub", "dev", env],
        "zfs_disk_1": f"/dev/disk/by-id/virtio-{name[:8]}-1",
        "zfs_disk_2": f"/dev/disk/by-id/virtio-{name[:8]}-2",
        **extra,
    }


def write_state(env, rows: list[dict]) -> None:
    hosts = {r["name"].split(".")[0]: r for r in rows}
    state = {"version": 4, "terraform_version": "1.0.3", "outputs": {"hosts": {"value": hosts}}}
    env.state_file.write_text(json.dumps(state))


@pytest.fixture
def fleet(envs_dir):
    """A dev environment whose state holds three hubs (one with its own SSH user)."""
    env = environments.create("dev", ENV)
    write_state(
        env,
        [
            row("hub-01.callysto.farm", "203.0.113.11"),
            row("hub-02.callysto.farm", "2001:db8::2", ssh_user="debian"),
            row("hub-03.callysto.farm", "203.0.113.13"),
        ],
    )
    return env


def test_hosts_lists_every_hub_of_the_state(callysto, fleet):
    proc = callysto("ansible", "hosts", "--env", ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "hub-01.callysto.farm",
        "hub-02.callysto.farm",
        "hub-03.callysto.farm",
    ]


def test_hosts_of_a_group_and_of_a_playbook(callysto, fleet):
    by_group = callysto("ansible", "hosts", "--env", ENV, "--group", "dev", "--json")
    assert by_group.returncode == 0, by_group.stderr
    assert len(json.loads(by_group.stdout)) == 3
    by_host = callysto("ansible", "hosts", "--env", ENV, "--group", "hub-02.callysto.farm")
    assert by_host.stdout.split() == ["hub-02.callysto.farm"]
    # init.yml runs on hub:!local; a dev environment's hubs are all in it.
    by_play = callysto("ansible", "hosts", "--env", ENV, "--playbook", "init", "--json")
    assert by_play.returncode == 0, by_play.stderr
    assert json.loads(by_play.stdout) == [
        "hub-01.callysto.farm",
        "hub-02.callysto.farm",
        "hub-03.callysto.farm",
    ]


def test_local_environment_is_excluded_from_cloud_only_playbooks(callysto, envs_dir):
    environments.create("local", "here")
    hub_play = callysto("ansible", "hosts", "--env", "here", "--playbook", "hub", "--json")
    assert json.loads(hub_play.stdout) == ["localhost"]
    init_play = callysto("ansible", "hosts", "--env", "here", "--playbook", "init", "--json")
    assert init_play.returncode == 0, init_play.stderr
    assert json.loads(init_play.stdout) == []


def test_get_ipv4_and_ssh_user_answer_from_the_inventory(callysto, fleet):
    ipv4 = callysto("ansible", "get-ipv4", "--env", ENV, "hub-03.callysto.farm")
    assert (ipv4.returncode, ipv4.stdout) == (0, "203.0.113.13\n")
    user = callysto("ansible", "get-ssh-user", "--env", ENV, "hub-02.callysto.farm")
    assert (user.returncode, user.stdout) == (0, "debian\n")
    other = callysto("ansible", "get-ssh-user", "--env", ENV, "hub-01.callysto.farm")
    assert other.stdout == "ptty2u\n"


def test_inventory_carries_disks_env_settings_and_group_vars(fleet):
    (fleet.group_vars_dir / f"{ENV}.yml").write_text("hub_refquota: 2G\nsite_note: kept\n")
    view = ansible.load_inventory(fleet)
    host = view.host("hub-01.callysto.farm")
    assert host["ansible_host"] == "203.0.113.11"
    assert host["ansible_user"] == "ptty2u"
    assert host["zfs_disk_2"] == "/dev/disk/by-id/virtio-hub-01.c-2"
    assert host["callysto_env_type"] == "dev"
    assert host["hub_pool"] == "tank"
    # envs/<ENV>/group_vars/ wins over the settings taken from env.yaml.
    assert (host["hub_refquota"], host["site_note"]) == ("2G", "kept")
    assert set(view.groups) >= {"hub", "dev", ENV}
    assert view.hosts("hub") == view.hosts(ENV) == view.hosts("dev")


def test_local_inventory_is_this_machine(envs_dir):
    env = environments.create("local", "here")
    host = ansible.load_inventory(env).host("localhost")
    assert host["ansible_connection"] == "local"
    assert host["local_port"] == 8000
    assert host["local_data_dir"] == str(env.data_dir.resolve())
    assert host["hub_prefix"] == str((env.data_dir / "jupyterhub").resolve())


def test_unknown_host_is_one_line(callysto, fleet, one_line_error):
    proc = callysto("ansible", "get-ipv4", "--env", ENV, "hub-9.callysto.farm")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "unknown host 'hub-9.callysto.farm'" in line and "hub-01.callysto.farm" in line


def test_unknown_group_is_one_line(callysto, fleet, one_line_error):
    for args in (("hosts", "--group", "prod"), ("ping", "--group", "prod")):
        proc = callysto("ansible", *args, "--env", ENV)
        assert proc.returncode == 2, proc.stderr
        assert "unknown group or host 'prod'" in one_line_error(proc)


def test_unknown_playbook_is_one_line(callysto, fleet, one_line_error):
    for args in (("playbook", "--check"), ("list-tasks",)):
        proc = callysto("ansible", *args, "--env", ENV, "nosuch")
        assert proc.returncode == 2
        line = one_line_error(proc)
        assert "unknown playbook 'nosuch'" in line and "hub" in line


def test_environment_without_state_says_to_apply_first(callysto, envs_dir, one_line_error):
    environments.create("dev", "calm-heron")
    for args in (("hosts",), ("get-ipv4", "hub-01"), ("playbook", "--check", "hub")):
        proc = callysto("ansible", *args, "--env", "calm-heron")
        assert proc.returncode == 2, proc.stderr
        assert "terraform apply" in one_line_error(proc)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_unreachable_host_is_one_line(callysto, envs_dir, one_line_error):
    env = environments.create("dev", "dark-moth")
    write_state(
        env, [row("gone.callysto.farm", "127.0.0.1", env="dark-moth", ssh_port=_closed_port())]
    )
    proc = callysto("ansible", "ping", "--env", "dark-moth")
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert line.startswith("error: host 'gone.callysto.farm' is unreachable")


def test_list_playbooks_shows_each_description(callysto, envs_dir):
    proc = callysto("ansible", "list-playbooks")
    assert proc.returncode == 0
    listed = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert listed["hub"].startswith("Provisions a hub")
    assert {"hub", "init", "update-packages"} <= set(listed)
    assert "requirements" not in listed


def test_list_tasks_reads_the_playbook(callysto, envs_dir):
    environments.create("local", "here")
    proc = callysto("ansible", "list-tasks", "--env", "here", "hub")
    assert proc.returncode == 0, proc.stderr
    assert "zfs : Create the pool as a mirror of the two empty devices" in proc.stdout


def test_setup_needs_no_galaxy_when_nothing_is_pinned(callysto, envs_dir):
    proc = callysto("ansible", "setup")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to install" in proc.stdout


def test_bad_extra_variable_is_refused_before_anything_runs(callysto, fleet, one_line_error):
    proc = callysto("ansible", "playbook", "--env", ENV, "-e", "novalue", "hub")
    assert proc.returncode == 2
    assert "KEY=VALUE" in one_line_error(proc)


def test_ping_exec_and_live_address_on_this_machine(callysto, envs_dir):
    import ipaddress

    environments.create("local", "here")
    ping = callysto("ansible", "ping", "--env", "here")
    assert (ping.returncode, ping.stdout) == (0, "localhost: pong\n"), ping.stderr
    marker = f"marker-{uuid.uuid4().hex}"
    run = callysto(
        "ansible", "exec", "--env", "here", "ansible.builtin.command", "--args", f"echo {marker}"
    )
    assert run.returncode == 0 and marker in run.stdout, run.stderr
    live = callysto("ansible", "get-ipv4", "--env", "here", "--live", "localhost")
    assert live.returncode == 0, live.stderr
    assert ipaddress.ip_address(live.stdout.strip()).version == 4
