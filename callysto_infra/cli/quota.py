"""callysto quota: students' ZFS quotas (refquota of tank/home/<hash>)."""

from __future__ import annotations

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    SubGroup,
    env_option,
    host_option,
    json_option,
    load_env,
    not_available,
    validated,
)

USER_HELP = "USER is a 40-hex user hash or an e-mail address (hashed first)."


@click.group("quota", cls=SubGroup)
def group() -> None:
    """Read and set students' quotas."""


@group.command("get", epilog=USER_HELP)
@env_option
@host_option
@json_option
@click.argument("user", callback=validated(validate.user_ref))
def get(env_name: str | None, host: str | None, as_json: bool, user: str) -> None:
    """Show USER's used space, quota and available space."""
    load_env(env_name)
    not_available("quota get")


@group.command("set", epilog=USER_HELP)
@env_option
@host_option
@click.option("--force", is_flag=True, help="Allow a quota below what the user already uses.")
@click.argument("user", callback=validated(validate.user_ref))
@click.argument("size", callback=validated(validate.zfs_size))
def set_(env_name: str | None, host: str | None, force: bool, user: str, size: str) -> None:
    """Set USER's quota to SIZE (e.g. 2G, 500M, or none)."""
    load_env(env_name)
    not_available("quota set")


@group.command("list")
@env_option
@host_option
@json_option
def list_(env_name: str | None, host: str | None, as_json: bool) -> None:
    """List every student's dataset with used, quota and available, largest first."""
    load_env(env_name)
    not_available("quota list")
