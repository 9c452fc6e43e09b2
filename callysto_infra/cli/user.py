"""callysto user: find a student's hash, and the account lifecycle (ban, unban, delete, restore)."""

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

_user = validated(validate.user_ref)


@click.group("user", cls=SubGroup)
def group() -> None:
    """Find students' hashes and manage their accounts."""


@group.command("findhash")
@env_option
@json_option
@click.argument("email", required=False, callback=validated(validate.email))
@click.option(
    "--source",
    type=click.Choice(["google", "microsoft", "saml"]),
    default="google",
    show_default=True,
    help="How the student signs in.",
)
@click.option("--idp", metavar="ENTITYID", help="The student's IdP entity ID (with --source saml).")
@click.option(
    "--salt-file", type=click.Path(dir_okay=False), help="Salt file instead of the env's."
)
@click.option("--idp-entity-id", metavar="X", help="Override the environment's IdP entity ID.")
@click.option("--sp-entity-id", metavar="Y", help="Override the environment's SP entity ID.")
@click.option(
    "--file", "roster", type=click.Path(dir_okay=False), help="Hash one address per line; CSV out."
)
def findhash(env_name, as_json, email, source, idp, salt_file, idp_entity_id, sp_entity_id, roster):
    """Print the user hash of EMAIL, and which hub holds its home."""
    if email is None and roster is None:
        raise click.UsageError("give an EMAIL or --file ROSTER")
    if not (salt_file and idp_entity_id and sp_entity_id):
        load_env(env_name)
    not_available("user findhash")


@group.command("ban")
@env_option
@host_option
@click.argument("user", callback=_user)
def ban(env_name: str | None, host: str | None, user: str) -> None:
    """Make USER's home read-only and stop their server."""
    load_env(env_name)
    not_available("user ban")


@group.command("unban")
@env_option
@host_option
@click.argument("user", callback=_user)
def unban(env_name: str | None, host: str | None, user: str) -> None:
    """Make USER's home writable again."""
    load_env(env_name)
    not_available("user unban")


@group.command("delete-home")
@env_option
@host_option
@click.option("--yes", "confirm", metavar="HASH", help="Confirm by repeating the user hash.")
@click.argument("user", callback=_user)
def delete_home(env_name: str | None, host: str | None, confirm: str | None, user: str) -> None:
    """Snapshot USER's home, then destroy it (asks to confirm)."""
    load_env(env_name)
    not_available("user delete-home")


@group.command("restore-home")
@env_option
@host_option
@click.option("--from", "snapshot", required=True, metavar="SNAPSHOT", help="Snapshot name.")
@click.argument("user", callback=_user)
def restore_home(env_name: str | None, host: str | None, snapshot: str, user: str) -> None:
    """Bring USER's files back from SNAPSHOT."""
    load_env(env_name)
    not_available("user restore-home")
