"""The exact argv of each Ansible command: one shared set of playbook options, one element per
argument, nothing ever joined into a shell string."""

from __future__ import annotations

import json

import pytest

from callysto_infra import ansible, environments
from callysto_infra.errors import UsageError

SOURCE = "envs/x/inventory.callysto.yml"


def test_check_adds_diff_and_every_option_is_its_own_element():
    options = ansible.Options.parse(
        check=True,
        limit="hub",
        tags="zfs,jupyterhub",
        extra_vars=["a=1 2", "@vars.yml"],
        ansible_args="-v --forks 5 'x y'",
    )
    book = ansible.find_playbook("hub")
    argv = ansible.playbook_argv(SOURCE, book, options)
    assert argv[0].endswith("ansible-playbook")
    assert argv[1:] == [
        "-i", SOURCE,
        "--check", "--diff",
        "--limit", "hub",
        "--tags", "zfs,jupyterhub",
        "--extra-vars", "a=1 2",
        "--extra-vars", "@vars.yml",
        "-v", "--forks", "5", "x y",
        str(ansible.PLAYBOOKS_DIR / "hub.yml"),
    ]  # fmt: skip


def test_a_real_run_has_no_check_options():
    argv = ansible.playbook_argv(SOURCE, ansible.find_playbook("hub.yml"), ansible.Options())
    assert argv[1:] == ["-i", SOURCE, str(ansible.PLAYBOOKS_DIR / "hub.yml")]


def test_adhoc_argv_becomes_root_only_when_asked():
    argv = ansible.adhoc_argv(SOURCE, "hub", "ansible.builtin.command", "uptime -p", become=True)
    assert argv[1:] == [
        "hub", "-i", SOURCE, "-m", "ansible.builtin.command", "-a", "uptime -p", "--become",
    ]  # fmt: skip
    assert "--become" not in ansible.adhoc_argv(SOURCE, "all", "ansible.builtin.ping")


def test_setup_installs_into_the_project_not_the_home_directory():
    argv = ansible.galaxy_argv(ansible.REQUIREMENTS_FILE, ansible.COLLECTIONS_DIR)
    assert argv[1:] == [
        "collection", "install", "-r", str(ansible.REQUIREMENTS_FILE),
        "-p", str(ansible.COLLECTIONS_DIR),
    ]  # fmt: skip
    assert ansible.environment()["ANSIBLE_COLLECTIONS_PATH"] == str(ansible.COLLECTIONS_DIR)


def test_unsplittable_ansible_args_are_bad_input():
    with pytest.raises(UsageError, match="cannot be split"):
        ansible.Options.parse(ansible_args="-e 'open")


def test_results_are_read_as_json_not_text(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(
        '{"stats": {"h": {"ok": 3, "changed": 1, "failures": 0}}, "changed": [], '
        '"failed": [], "unreachable": {}, "results": {}}'
    )
    results = ansible._read_results(path, 0)
    assert (results.total("ok"), results.total("changed")) == (3, 1)


def _env_of(count: int):
    env = environments.create("dev", "brave-otter")
    rows = {
        f"hub-{n:02d}": {"name": f"hub-{n:02d}.callysto.farm", "address": f"203.0.113.{n}",
                         "ssh_user": "root", "groups": ["hub", "dev", "brave-otter"]}
        for n in range(1, count + 1)
    }  # fmt: skip
    env.state_file.write_text(json.dumps({"version": 4, "outputs": {"hosts": {"value": rows}}}))
    return env


def test_a_playbook_runs_every_host_of_the_inventory_at_once(envs_dir):
    argv = ansible.playbook_command(_env_of(12), "hub", ansible.Options())
    assert argv[1:] == [
        "-i", str(envs_dir / "brave-otter" / "inventory.callysto.yml"),
        "--forks", "12", str(ansible.PLAYBOOKS_DIR / "hub.yml"),
    ]  # fmt: skip


def test_a_small_fleet_keeps_ansibles_five_forks_and_the_operators_own_wins(envs_dir):
    two = _env_of(2)
    assert ansible.playbook_command(two, "hub", ansible.Options())[-3:-1] == ["--forks", "5"]
    mine = ansible.Options.parse(ansible_args="--forks 1")
    assert ansible.playbook_command(two, "hub", mine)[-5:-1] == ["--forks", "5", "--forks", "1"]
