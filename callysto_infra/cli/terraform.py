"""callysto terraform: the hub's cloud resources, one state directory per environment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    emit,
    emit_json,
    env_option,
    flag,
    json_option,
    load_env,
    typed,
    validated,
)
from callysto_infra.progress import to_stderr

if TYPE_CHECKING:
    from callysto_infra.terraform import Operator


@click.group("terraform")
def group() -> None:
    """Create, change and destroy hubs with Terraform (or OpenTofu)."""


def _show_plan(lines: list[str]) -> None:
    """A plan's summary is the command's result: stdout, before the question on stderr."""
    click.echo("\n".join(lines))


def _confirm(question: str) -> bool:
    return click.confirm(question, default=False, err=True)


def _operator(confirm_prod: str | None) -> Operator:
    """Steps on stderr, the plan's summary on stdout, the question on stderr; a prod environment's
    name typed here, when this is a terminal."""
    import sys

    from callysto_infra import terraform

    return terraform.Operator(
        say=to_stderr,
        show_plan=_show_plan,
        confirm=_confirm,
        type_name=typed,
        interactive=sys.stdin.isatty(),
        confirm_prod=confirm_prod,
    )


def _change(
    action: str, env_name: str | None, confirm_prod: str | None, *args: Any, **options: Any
) -> None:
    """terraform.ACTION (apply, destroy, rebuild, taint) on the environment, asking at this
    terminal."""
    from callysto_infra import terraform

    env = load_env(env_name)
    getattr(terraform, action)(env, *args, operator=_operator(confirm_prod), **options)


confirm_prod_option = click.option(
    "--confirm-prod",
    metavar="ENVNAME",
    help="A prod environment's name, instead of typing it when asked (needed without a terminal).",
)


def _confirm_volumes(env_name: str) -> bool:
    """Typed confirmation: replacing the volumes erases every student's home on the hub."""
    click.echo(
        f"--with-volumes replaces BOTH ZFS volumes of '{env_name}': every student's home on "
        "this hub is erased.",
        err=True,
    )
    return typed(f"Type the environment's name ({env_name}) to go on") == env_name


@group.command("setup")
@json_option
def setup(as_json: bool) -> None:
    """Report which Terraform binary is used and its version."""
    from callysto_infra import terraform

    info = terraform.setup()
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info['binary']} {info['version']} ({info['path']}, from {info['source']})")


@group.command("init")
@env_option
def init(env_name: str | None) -> None:
    """Run 'terraform init' for the environment."""
    from callysto_infra import terraform

    terraform.init(load_env(env_name), say=to_stderr)


@group.command("plan")
@env_option
def plan(env_name: str | None) -> None:
    """Plan changes and save the plan, bound to the environment, for 'apply'."""
    from callysto_infra import terraform

    terraform.plan(load_env(env_name), say=to_stderr)


@group.command("apply")
@env_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking.")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Apply this plan, saved by 'callysto terraform plan' for this environment and current.",
)
@confirm_prod_option
def apply(
    env_name: str | None, auto_approve: bool, plan_file: Path | None, confirm_prod: str | None
) -> None:
    """Apply the saved plan if it is still current; otherwise plan, show the summary and ask.
    Prod always shows the summary and asks for its name (or --confirm-prod NAME)."""
    _change("apply", env_name, confirm_prod, auto_approve=auto_approve, plan_file=plan_file)


@group.command("destroy")
@env_option
@click.option("--auto-approve", is_flag=True, help="Destroy without asking (not prod's name).")
@confirm_prod_option
def destroy(env_name: str | None, auto_approve: bool, confirm_prod: str | None) -> None:
    """Destroy the environment's resources (prod: its name typed, or --confirm-prod ENVNAME)."""
    _change("destroy", env_name, confirm_prod, auto_approve=auto_approve)


@group.command("show")
@env_option
@json_option
def show(env_name: str | None, as_json: bool) -> None:
    """Show the environment's state."""
    from callysto_infra import terraform

    result = terraform.show(load_env(env_name), as_json=as_json, say=to_stderr)
    if as_json:
        emit_json(result)
    else:
        click.echo(str(result).rstrip())


@group.command("list-targets")
@env_option
@json_option
def list_targets(env_name: str | None, as_json: bool) -> None:
    """List the resource addresses in the environment's state."""
    from callysto_infra import terraform

    targets = terraform.list_targets(load_env(env_name), say=to_stderr)
    emit(as_json, targets, targets)


@group.command("taint")
@env_option
@click.argument("target", callback=validated(validate.terraform_address))
@confirm_prod_option
def taint(env_name: str | None, target: str, confirm_prod: str | None) -> None:
    """Mark TARGET (a resource address) for replacement at the next apply."""
    _change("taint", env_name, confirm_prod, target)


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
    "--hub",
    "hub_name",
    metavar="NAME",
    callback=validated(validate.host),
    help="The hub to rebuild (needed when the environment has several).",
)
@flag(
    "--with-volumes",
    help="Also replace both ZFS volumes, and the students' data on them (asks to confirm).",
)
@flag("--auto-approve", help="Rebuild without asking (not the volumes' question, nor prod's).")
@confirm_prod_option
def hub_rebuild(
    env_name: str | None,
    hub_name: str | None,
    with_volumes: bool,
    auto_approve: bool,
    confirm_prod: str | None,
) -> None:
    """Replace a hub's instance; its two ZFS volumes and their data stay."""
    _change(
        "rebuild",
        env_name,
        confirm_prod,
        hub=hub_name,
        with_volumes=with_volumes,
        auto_approve=auto_approve,
        confirm_volumes=_confirm_volumes,
    )
