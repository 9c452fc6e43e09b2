"""callysto local: this machine as a hub."""

from __future__ import annotations

import click

from callysto_infra.cli.common import env_option, flag, typed


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
def up(env_name: str | None, no_install: bool) -> None:
    """Create the local environment if needed, provision it and wait until the hub answers."""
    from callysto_infra import local

    done = local.up(env_name, _say, install=not no_install)
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
    pool = env.config.hub.pool
    if not yes:
        click.echo(
            f"This destroys pool '{pool}' of '{env.name}' and every student's files in it, "
            f"and removes {env.data_dir}.",
            err=True,
        )
        if typed(f"Type the pool's name ({pool}) to go on") != pool:
            raise click.Abort()
    local.destroy(env, _say)
    click.echo(
        f"Removed the hub of '{env.name}'; its env.yaml and salt stay for the next 'make local'."
    )
