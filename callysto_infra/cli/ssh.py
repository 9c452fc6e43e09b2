"""callysto ssh: a shell on a hub."""

from __future__ import annotations

import click

from callysto_infra import validate
from callysto_infra.cli.common import SubGroup, env_option, load_env, not_available, validated


@click.group("ssh", cls=SubGroup)
def group() -> None:
    """Connect to hubs over SSH."""


@group.command("shell")
@env_option
@click.option("--print", "print_only", is_flag=True, help="Print the ssh command instead.")
@click.argument("host", callback=validated(validate.host))
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def shell(env_name: str | None, print_only: bool, host: str, command: tuple[str, ...]) -> None:
    """SSH to HOST (its public address, its SSH user, the environment's key), optionally running
    COMMAND given after '--'."""
    load_env(env_name)
    not_available("ssh shell")
