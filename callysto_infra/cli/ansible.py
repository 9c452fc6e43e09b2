"""callysto ansible: provision hubs with the playbooks under playbooks/."""

from __future__ import annotations

from functools import partial

import click

from callysto_infra import validate
from callysto_infra.cli.common import SubGroup, env_option, load_env, not_available, validated

_playbook = validated(partial(validate.name, what="playbook"))
_group_name = validated(partial(validate.name, what="group"))
_module = validated(partial(validate.name, what="module"))


@click.group("ansible", cls=SubGroup)
def group() -> None:
    """Run Ansible against an environment's hubs."""


def group_option(func):
    return click.option(
        "--group", "group_name", metavar="GROUP", callback=_group_name,
        help="Limit to this inventory group or host (default: all).",
    )(func)  # fmt: skip


def playbook_options(func):
    """The options every playbook command shares."""
    func = click.option(
        "-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE",
        help="Extra variable for Ansible; repeatable.",
    )(func)  # fmt: skip
    func = click.option("--tags", metavar="TAGS", help="Only run tasks with these tags.")(func)
    func = ansible_args_option(func)
    func = click.option(
        "--check", is_flag=True, help="Check mode: report what would change (adds --diff)."
    )(func)
    return group_option(func)


def ansible_args_option(func):
    return click.option(
        "--ansible-args", metavar="ARGS",
        help="More ansible options, split like a shell would split them (never run by one).",
    )(func)  # fmt: skip


@group.command("setup")
def setup() -> None:
    """Install the pinned Ansible collections into the project."""
    not_available("ansible setup")


@group.command("list-playbooks")
def list_playbooks() -> None:
    """List the playbooks with their one-line descriptions."""
    not_available("ansible list-playbooks")


@group.command("list-tasks")
@env_option
@click.argument("playbook", callback=_playbook)
def list_tasks(env_name: str | None, playbook: str) -> None:
    """List the tasks of PLAYBOOK."""
    load_env(env_name)
    not_available("ansible list-tasks")


@group.command("hosts")
@env_option
@group_option
@click.option("--playbook", metavar="PLAYBOOK", callback=_playbook, help="Hosts PLAYBOOK runs on.")
def hosts(env_name: str | None, group_name: str | None, playbook: str | None) -> None:
    """List the environment's hosts (of a group, or of a playbook)."""
    load_env(env_name)
    not_available("ansible hosts")


@group.command("ping")
@env_option
@group_option
def ping(env_name: str | None, group_name: str | None) -> None:
    """Check that Ansible can reach the hosts."""
    load_env(env_name)
    not_available("ansible ping")


@group.command("exec")
@env_option
@group_option
@click.argument("module", callback=_module)
@click.option("--args", "module_args", metavar="ARGS", help="Arguments for the module.")
@ansible_args_option
def exec_(env_name, group_name, module, module_args, ansible_args):
    """Run Ansible MODULE (with --args) on the hosts, as root."""
    load_env(env_name)
    not_available("ansible exec")


@group.command("get-ipv4")
@env_option
@click.argument("host", callback=validated(validate.host))
@click.option("--live", is_flag=True, help="Ask the host itself instead of the inventory.")
def get_ipv4(env_name: str | None, host: str, live: bool) -> None:
    """Print HOST's public address."""
    load_env(env_name)
    not_available("ansible get-ipv4")


@group.command("get-ssh-user")
@env_option
@click.argument("host", callback=validated(validate.host))
def get_ssh_user(env_name: str | None, host: str) -> None:
    """Print HOST's SSH user."""
    load_env(env_name)
    not_available("ansible get-ssh-user")


@group.command("playbook")
@env_option
@playbook_options
@click.argument("playbook", callback=_playbook)
def playbook(
    env_name: str | None,
    group_name: str | None,
    check: bool,
    tags: str | None,
    extra_vars: tuple[str, ...],
    ansible_args: str | None,
    playbook: str,
) -> None:
    """Run PLAYBOOK (a name under playbooks/, e.g. hub) on the environment."""
    load_env(env_name)
    not_available("ansible playbook")
