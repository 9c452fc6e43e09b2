"""callysto terraform: the hub's cloud resources, one state directory per environment."""

from __future__ import annotations

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    SubGroup,
    env_option,
    json_option,
    load_env,
    not_available,
    validated,
)


@click.group("terraform", cls=SubGroup)
def group() -> None:
    """Create, change and destroy hubs with Terraform (or OpenTofu)."""


@group.command("setup")
def setup() -> None:
    """Report which Terraform binary is used and its version."""
    not_available("terraform setup")


@group.command("init")
@env_option
def init(env_name: str | None) -> None:
    """Run 'terraform init' for the environment."""
    load_env(env_name)
    not_available("terraform init")


@group.command("plan")
@env_option
def plan(env_name: str | None) -> None:
    """Plan changes and save the plan, bound to the environment, for 'apply'."""
    load_env(env_name)
    not_available("terraform plan")


@group.command("apply")
@env_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking.")
def apply(env_name: str | None, auto_approve: bool) -> None:
    """Apply the saved plan if it is still current; otherwise plan, show the summary and ask."""
    load_env(env_name)
    not_available("terraform apply")


@group.command("destroy")
@env_option
@click.option("--auto-approve", is_flag=True, help="Destroy without asking.")
@click.option(
    "--confirm-prod", metavar="ENVNAME", help="Required for prod: repeat the environment's name."
)
def destroy(env_name: str | None, auto_approve: bool, confirm_prod: str | None) -> None:
    """Destroy the environment's resources (prod needs --confirm-prod ENVNAME)."""
    load_env(env_name)
    not_available("terraform destroy")


@group.command("show")
@env_option
@json_option
def show(env_name: str | None, as_json: bool) -> None:
    """Show the environment's state."""
    load_env(env_name)
    not_available("terraform show")


@group.command("list-targets")
@env_option
def list_targets(env_name: str | None) -> None:
    """List the resource addresses in the environment's state."""
    load_env(env_name)
    not_available("terraform list-targets")


@group.command("taint")
@env_option
@click.argument("target", callback=validated(validate.terraform_address))
def taint(env_name: str | None, target: str) -> None:
    """Mark TARGET (a resource address) for replacement at the next apply."""
    load_env(env_name)
    not_available("terraform taint")


@group.group("hub")
def hub() -> None:
    """Create and rebuild hub environments."""


@hub.group("new")
def hub_new() -> None:
    """Create a new hub environment."""


@hub_new.command("dev")
@click.argument("name", required=False)
def hub_new_dev(name: str | None) -> None:
    """Create a dev environment; NAME defaults to a pet name such as brave-otter."""
    from callysto_infra.cli.env import create_and_report

    create_and_report("dev", name)


@hub_new.command("prod")
@click.argument("name")
def hub_new_prod(name: str) -> None:
    """Create a prod environment named NAME."""
    from callysto_infra.cli.env import create_and_report

    create_and_report("prod", name)


@hub.command("rebuild")
@env_option
@click.option(
    "--with-volumes",
    is_flag=True,
    help="Also replace both ZFS volumes, and the students' data on them (asks to confirm).",
)
def hub_rebuild(env_name: str | None, with_volumes: bool) -> None:
    """Replace the hub's instance; its two ZFS volumes and their data stay."""
    load_env(env_name)
    not_available("terraform hub rebuild")
