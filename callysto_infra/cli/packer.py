"""callysto packer: the hub image."""

from __future__ import annotations

import click

from callysto_infra.cli.common import SubGroup, env_option, load_env, not_available

_template = click.Choice(["hub"])


@click.group("packer", cls=SubGroup)
def group() -> None:
    """Build and validate the hub image with Packer."""


@group.command("build")
@env_option
@click.argument("template", type=_template)
def build(env_name: str | None, template: str) -> None:
    """Build the TEMPLATE image (hub) with the environment's cloud settings."""
    load_env(env_name)
    not_available("packer build")


@group.command("validate")
@env_option
@click.argument("template", type=_template)
def validate_(env_name: str | None, template: str) -> None:
    """Validate the TEMPLATE (hub) with the environment's values."""
    load_env(env_name)
    not_available("packer validate")
