"""callysto local: this machine as a hub."""

from __future__ import annotations

import click

from callysto_infra.cli.common import SubGroup, env_option, not_available


@click.group("local", cls=SubGroup)
def group() -> None:
    """Run a whole hub on this machine (the 'local' environment)."""


@group.command("up")
@env_option
def up(env_name: str | None) -> None:
    """Create the local environment if needed, provision it and wait until the hub answers."""
    not_available("local hub (make local)")


@group.command("stop")
@env_option
def stop(env_name: str | None) -> None:
    """Stop the local hub's services; students' data stays."""
    not_available("local stop")


@group.command("destroy")
@env_option
@click.option("--yes", is_flag=True, help="Do not ask.")
def destroy(env_name: str | None, yes: bool) -> None:
    """Remove the local hub's pool and its files (asks first)."""
    not_available("local destroy")
