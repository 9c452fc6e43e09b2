"""The Makefile: every seed target calls the right `callysto` argv, and `make help` lists them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT

SEED_TARGETS = """
ansible/exec ansible/get-ipv4 ansible/get-ssh-user ansible/hosts/group ansible/hosts
ansible/hosts/playbook ansible/list-playbooks ansible/list-tasks ansible/ping
ansible/playbook/check ansible/playbook ansible/setup backup packer/build/hub quota/get quota/set
ssh/shell terraform/apply terraform/auto-apply terraform/auto-destroy terraform/destroy
terraform/hub/new/dev terraform/hub/new/prod terraform/hub/rebuild terraform/init
terraform/list-targets terraform/plan terraform/setup terraform/show terraform/taint user/findhash
""".split()

H = "0123456789abcdef0123456789abcdef01234567"

# (target, make variables, expected callysto argv)
CASES = [
    ("terraform/setup", {}, ["terraform", "setup"]),
    ("terraform/init", {"ENV": "dev"}, ["terraform", "init", "--env", "dev"]),
    ("terraform/plan", {"ENV": "dev"}, ["terraform", "plan", "--env", "dev"]),
    ("terraform/apply", {"ENV": "dev"}, ["terraform", "apply", "--env", "dev"]),
    ("terraform/auto-apply", {"ENV": "dev"},
     ["terraform", "apply", "--env", "dev", "--auto-approve"]),
    ("terraform/destroy", {"ENV": "dev"}, ["terraform", "destroy", "--env", "dev"]),
    ("terraform/auto-apply", {"ENV": "prod", "CONFIRM_PROD": "prod"},
     ["terraform", "apply", "--env", "prod", "--confirm-prod", "prod", "--auto-approve"]),
    ("terraform/destroy", {"ENV": "prod", "CONFIRM_PROD": "prod"},
     ["terraform", "destroy", "--env", "prod", "--confirm-prod", "prod"]),
    ("terraform/auto-destroy", {"ENV": "dev"},
     ["terraform", "destroy", "--env", "dev", "--auto-approve"]),
    ("terraform/show", {"ENV": "dev"}, ["terraform", "show", "--env", "dev"]),
    ("terraform/list-targets", {"ENV": "dev"}, ["terraform", "list-targets", "--env", "dev"]),
    ("terraform/taint", {"ENV": "dev", "TARGET": "module.hub.x.y"},
     ["terraform", "taint", "--env", "dev", "module.hub.x.y"]),
    ("terraform/hub/new/dev", {}, ["terraform", "hub", "new", "dev"]),
    ("terraform/hub/new/dev", {"ENV": "brave-otter"},
     ["terraform", "hub", "new", "dev", "brave-otter"]),
    ("terraform/hub/new/prod", {"ENV": "prod"}, ["terraform", "hub", "new", "prod", "prod"]),
    ("terraform/hub/rebuild", {"ENV": "dev"}, ["terraform", "hub", "rebuild", "--env", "dev"]),
    ("ansible/setup", {}, ["ansible", "setup"]),
    ("ansible/list-playbooks", {}, ["ansible", "list-playbooks"]),
    ("ansible/list-tasks", {"ENV": "dev", "PLAYBOOK": "hub"},
     ["ansible", "list-tasks", "--env", "dev", "hub"]),
    ("ansible/hosts", {"ENV": "dev"}, ["ansible", "hosts", "--env", "dev"]),
    ("ansible/hosts/group", {"ENV": "dev", "GROUP": "hub"},
     ["ansible", "hosts", "--env", "dev", "--group", "hub"]),
    ("ansible/hosts/playbook", {"ENV": "dev", "PLAYBOOK": "hub"},
     ["ansible", "hosts", "--env", "dev", "--playbook", "hub"]),
    ("ansible/ping", {"ENV": "dev"}, ["ansible", "ping", "--env", "dev"]),
    ("ansible/ping", {"ENV": "dev", "GROUP": "hub"},
     ["ansible", "ping", "--env", "dev", "--group", "hub"]),
    ("ansible/exec", {"ENV": "dev", "MODULE": "command", "ARGS": "uptime -p"},
     ["ansible", "exec", "--env", "dev", "command", "--args", "uptime -p"]),
    ("ansible/exec", {"ENV": "dev", "GROUP": "hub", "MODULE": "ping", "ANSIBLE_ARGS": "-v -f 5"},
     ["ansible", "exec", "--env", "dev", "--group", "hub", "ping", "--ansible-args", "-v -f 5"]),
    ("ansible/get-ipv4", {"ENV": "dev", "HOST": "h1"}, ["ansible", "get-ipv4", "--env", "dev", "h1"]),
    ("ansible/get-ssh-user", {"ENV": "dev", "HOST": "h1"},
     ["ansible", "get-ssh-user", "--env", "dev", "h1"]),
    ("ansible/playbook", {"ENV": "dev", "PLAYBOOK": "hub"},
     ["ansible", "playbook", "--env", "dev", "hub"]),
    ("ansible/playbook", {"ENV": "dev", "PLAYBOOK": "hub", "GROUP": "hub"},
     ["ansible", "playbook", "--env", "dev", "--group", "hub", "hub"]),
    ("ansible/playbook/check", {"ENV": "dev", "PLAYBOOK": "hub"},
     ["ansible", "playbook", "--env", "dev", "--check", "hub"]),
    ("quota/get", {"ENV": "dev", "USER": H}, ["quota", "get", "--env", "dev", H]),
    ("quota/get", {"ENV": "dev", "USERHASH": H, "HOST": "h1"},
     ["quota", "get", "--env", "dev", "--host", "h1", H]),
    ("quota/set", {"ENV": "dev", "USER": "a@b.ca", "REFQUOTA": "2G"},
     ["quota", "set", "--env", "dev", "a@b.ca", "2G"]),
    ("user/findhash", {"ENV": "dev", "USER": "a@b.ca"}, ["user", "findhash", "--env", "dev", "a@b.ca"]),
    ("user/findhash", {"ENV": "dev", "EMAIL": "a@b.ca"}, ["user", "findhash", "--env", "dev", "a@b.ca"]),
    ("user/banuser", {"ENV": "dev", "USERHASH": H}, ["user", "ban", "--env", "dev", H]),
    ("user/unbanuser", {"ENV": "dev", "USERHASH": H}, ["user", "unban", "--env", "dev", H]),
    ("zfsdir/delete", {"ENV": "dev", "USERHASH": H}, ["user", "delete-home", "--env", "dev", H]),
    ("packer/build/hub", {"ENV": "dev"}, ["packer", "build", "hub", "--env", "dev"]),
    ("backup", {}, ["backup"]),
    ("ssh/shell", {"ENV": "dev", "HOST": "h1"}, ["ssh", "shell", "--env", "dev", "h1"]),
    ("local", {}, ["local", "up"]),
    ("local/stop", {}, ["local", "stop"]),
    ("local/destroy", {}, ["local", "destroy"]),
]  # fmt: skip


@pytest.fixture
def echo_argv(tmp_path):
    """A stand-in for `callysto` that prints the argv it was given, as JSON."""
    script = tmp_path / "callysto"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n", encoding="utf-8"
    )
    script.chmod(0o755)
    return script


def make(*args: str, env: dict[str, str] | None = None):
    base = {k: v for k, v in os.environ.items() if k not in {"ENV", "HOST", "USERHASH", "EMAIL"}}
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**base, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(("target", "variables", "argv"), CASES, ids=[c[0] for c in CASES])
def test_target_calls_callysto_with_the_right_argv(echo_argv, target, variables, argv):
    result = make(target, f"CALLYSTO={echo_argv}", *(f"{k}={v}" for k, v in variables.items()))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == argv


def test_every_seed_target_has_a_case():
    assert set(SEED_TARGETS) <= {case[0] for case in CASES}


def test_help_lists_every_seed_target_sorted_with_a_description():
    result = make("help")
    assert result.returncode == 0
    rows = [line.split(None, 1) for line in result.stdout.splitlines()]
    targets = [row[0] for row in rows]
    assert set(SEED_TARGETS) | {"help", "test", "local"} <= set(targets)
    assert targets == sorted(targets)
    assert all(len(row) == 2 and row[1].strip() for row in rows)


def test_user_from_the_login_shell_is_ignored(echo_argv):
    result = make("quota/get", "ENV=dev", f"CALLYSTO={echo_argv}", env={"USER": "operator"})
    assert result.returncode == 2
    assert "USER is required" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("target", "variables", "missing"),
    [
        ("quota/set", ["ENV=dev", f"USER={H}"], "REFQUOTA"),
        ("quota/get", ["ENV=dev"], "USER"),
        ("terraform/taint", ["ENV=dev"], "TARGET"),
        ("ansible/playbook", ["ENV=dev"], "PLAYBOOK"),
        ("ansible/exec", ["ENV=dev"], "MODULE"),
        ("ansible/hosts/group", ["ENV=dev"], "GROUP"),
        ("ssh/shell", ["ENV=dev"], "HOST"),
        ("terraform/hub/new/prod", [], "ENV"),
    ],
)
def test_missing_make_variable_is_named(echo_argv, target, variables, missing):
    result = make(target, f"CALLYSTO={echo_argv}", *variables)
    assert result.returncode == 2
    assert f"{missing} is required" in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_values_are_never_parsed_by_a_shell(echo_argv, tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"h1; touch {marker}"
    result = make("ssh/shell", "ENV=dev", f"HOST={hostile}", f"CALLYSTO={echo_argv}")
    assert json.loads(result.stdout) == ["ssh", "shell", "--env", "dev", hostile]
    hostile = f'"`touch {marker}`"'
    result = make("ansible/get-ipv4", "ENV=dev", f"HOST={hostile}", f"CALLYSTO={echo_argv}")
    assert json.loads(result.stdout)[-1] == hostile
    assert not marker.exists()


def test_missing_environment_is_reported_by_callysto(envs_dir):
    result = make("terraform/plan")
    assert result.returncode == 2
    assert "use --env NAME (make: ENV=NAME)" in result.stderr


@pytest.mark.parametrize(
    "variable", ["ARGS", "ENV", "USER", "EMAIL", "HOST", "TARGET", "ANY_OTHER"]
)
def test_make_never_expands_a_value(echo_argv, tmp_path, variable):
    marker = tmp_path / "pwned"
    hostile = f"$(shell touch {marker})"
    for target in ("help", "quota/get"):
        make(target, "ENV=dev", f"USERHASH={H}", f"{variable}={hostile}", f"CALLYSTO={echo_argv}")
    assert not marker.exists()


def test_dollars_in_a_value_arrive_as_typed(echo_argv):
    args = "msg=cost:$5,$HOME $$ ${PATH}"
    result = make(
        "ansible/exec", "ENV=dev", "MODULE=debug", f"ARGS={args}", f"CALLYSTO={echo_argv}"
    )
    assert json.loads(result.stdout) == ["ansible", "exec", "--env", "dev", "debug", "--args", args]


def test_a_value_from_the_environment_is_not_expanded_either(echo_argv, tmp_path):
    marker = tmp_path / "pwned"
    result = make(
        "terraform/plan", f"CALLYSTO={echo_argv}", env={"ENV": f"$(shell touch {marker})"}
    )
    assert json.loads(result.stdout) == ["terraform", "plan", "--env", f"$(shell touch {marker})"]
    assert not marker.exists()
