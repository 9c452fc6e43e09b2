"""callysto packer: the hub image."""

from __future__ import annotations

import click

from callysto_infra.cli.common import env_option, flag, load_env

_template = click.Choice(["hub"])


@click.group("packer")
def group() -> None:
    """Build and validate the hub image with Packer."""


@group.command("build")
@env_option
@click.argument("template", type=_template)
def build(env_name: str | None, template: str) -> None:
    """Build the TEMPLATE image (hub) with the environment's cloud settings.

    Credentials come from clouds.yaml (the entry env.yaml cloud.cloud names) or, when
    OS_AUTH_URL is set, from the OS_* variables of an openrc. Packer's progress streams here.
    """
    from callysto_infra import packer

    image = packer.build(load_env(env_name), template)
    click.echo(
        f"image '{image.name}' built: {image.id} ({image.build_date}); "
        "hubs boot it from their next Terraform apply"
    )


@group.command("validate")
@env_option
@flag("--syntax-only", help="Check the template's syntax only, without logging in to the cloud.")
@click.argument("template", type=_template)
def validate_(env_name: str | None, syntax_only: bool, template: str) -> None:
    """Validate the TEMPLATE (hub) with the environment's values.

    Packer's OpenStack builder logs in to the cloud while it checks the template, so this needs
    the same credentials as build, unless --syntax-only.
    """
    from callysto_infra import packer

    env = load_env(env_name)
    packer.validate(env, template, syntax_only=syntax_only)
    scope = " (syntax only)" if syntax_only else ""
    click.echo(f"Packer template '{template}' is valid for environment '{env.name}'{scope}")
