"""callysto local: this machine as a hub."""

from __future__ import annotations

import click

from callysto_infra.cli.common import Count, env_option, flag, typed


def _say(message: str) -> None:
    click.echo(f"==> {message}", err=True)


@click.group("local")
def group() -> None:
    """Run a whole hub on this machine (the 'local' environment)."""


@group.command("up")
@env_option
@flag(
    "--no-install",
    help="Do not run scripts/bootstrap-system (the system packages are there already).",
)
@click.option(
    "--hubs",
    "hubs_count",
    type=Count(1, 20),
    default=None,
    help="A fleet of this many hubs behind a front door (a new environment's 'hubs:').",
)
def up(env_name: str | None, no_install: bool, hubs_count: int | None) -> None:
    """Create the local environment if needed, provision it and wait until the hub answers."""
    from callysto_infra import local

    done = local.up(env_name, _say, install=not no_install, hubs_count=hubs_count)
    click.echo(local.sign_in_help(done.env))


@group.command("stop")
@env_option
def stop(env_name: str | None) -> None:
    """Stop the local hub's services; students' data stays."""
    from callysto_infra import local

    env = local.load_local(env_name)
    local.stop(env, _say)
    click.echo(f"The hub of '{env.name}' is stopped; 'make local' starts it again.")


@group.command("destroy")
@env_option
@flag("--yes", help="Do not ask.")
def destroy(env_name: str | None, yes: bool) -> None:
    """Remove the local hub's pool and its files (asks first)."""
    from callysto_infra import local

    env = local.load_local(env_name)
    pools = [hub.pool for hub in local.pools(env)]
    if not yes:
        # One pool: type its name; a fleet's several: the environment's.
        answer = pools[0] if len(pools) == 1 else env.name
        click.echo(
            f"This destroys pool{'s' if len(pools) > 1 else ''} {', '.join(pools)} of "
            f"'{env.name}' and every student's files in them, and removes {env.data_dir}.",
            err=True,
        )
        what = "the pool's name" if len(pools) == 1 else "the environment's name"
        if typed(f"Type {what} ({answer}) to go on") != answer:
            raise click.Abort()
    local.destroy(env, _say)
    click.echo(
        f"Removed the hub of '{env.name}'; its env.yaml and salt stay for the next 'make local'."
    )
