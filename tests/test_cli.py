"""The command tree: every command has working help, and the pre-rendered top-level help matches."""

from __future__ import annotations

import subprocess

import click
import pytest
from click.testing import CliRunner

from callysto_infra.cli import main
from tests.conftest import CALLYSTO, PROJECT


def walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = [path for path, _ in walk(main)]

# DESIGN.md section 2 and the issues: the contract this tree must keep.
CONTRACT = [
    "env new", "env list", "env show",
    "terraform setup", "terraform init", "terraform plan", "terraform apply", "terraform destroy",
    "terraform show", "terraform list-targets", "terraform taint", "terraform hub new dev",
    "terraform hub new prod", "terraform hub rebuild",
    "ansible setup", "ansible list-playbooks", "ansible list-tasks", "ansible hosts", "ansible ping",
    "ansible exec", "ansible get-ipv4", "ansible get-ssh-user", "ansible playbook",
    "quota get", "quota set", "quota list",
    "user findhash", "user ban", "user unban", "user delete-home", "user restore-home",
    "backup", "backup list", "backup verify", "backup restore", "backup homes",
    "backup homes status",
    "packer build", "packer validate", "ssh shell", "health", "local up", "local stop",
    "local destroy",
]  # fmt: skip


def test_every_contract_command_exists():
    names = {" ".join(path) for path in COMMANDS}
    assert not set(CONTRACT) - names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "callysto")
def test_every_command_has_help(path):
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="callysto")
    assert result.exit_code == 0, result.output
    assert "Usage: callysto" in result.output
    command = main
    for name in path:
        command = command.commands[name]
    assert command.help, f"'{' '.join(path)}' has no help text"


def test_prerendered_help_is_what_click_renders():
    fast = subprocess.run([str(CALLYSTO), "--help"], capture_output=True, text=True, check=True)
    rendered = CliRunner().invoke(main, ["--help"], prog_name="callysto").output
    assert fast.stdout == rendered, "run scripts/render-help to refresh callysto_infra/cli/help.txt"


def test_shell_completion_comes_from_click():
    result = subprocess.run(
        [str(CALLYSTO)],
        env={"_CALLYSTO_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
    )
    assert result.returncode == 0 and "complete" in result.stdout


@pytest.mark.parametrize("typed", ["3\n", " 3", "+3", "3_0", "٣", "0"])
@pytest.mark.parametrize(
    "argv",
    [["health", "--attempts"], ["local", "up", "--no-install", "--hubs"]],
    ids=lambda argv: " ".join(argv[:-1]),
)
def test_a_count_is_digits_only(envs_dir, callysto, one_line_error, argv, typed):
    """Python's int() takes '3\\n', ' 3', '+3', '3_0' and other scripts' digits: a count given
    to a command must be plain digits, or it is refused before anything is made."""
    one_line_error(callysto(*argv, typed), argv[-1], code=2)
    assert not any(envs_dir.iterdir())
