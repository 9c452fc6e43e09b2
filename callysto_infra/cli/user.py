"""callysto user: find a student's hash, and the account lifecycle (ban, unban, delete, restore)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    emit,
    emit_json,
    env_option,
    hub_options,
    json_option,
    load_env,
    typed,
    validated,
)
from callysto_infra.cli.quota import USER_HELP, describe, is_object, locate_user, print_fields

_user = validated(validate.user_ref)


@click.group("user")
def group() -> None:
    """Find students' hashes and manage their accounts."""


# --- findhash ----------------------------------------------------------------------------------


def _hasher(env_name, salt_file, idp_entity_id, sp_entity_id):
    """The deployment's hasher, and the environment when one was needed or given."""
    from pathlib import Path

    from callysto_infra import environments, userhash

    env = None
    if env_name or not (salt_file and idp_entity_id and sp_entity_id):
        env = load_env(env_name)
    salt = environments.read_salt(Path(salt_file) if salt_file else env.salt_file)
    return env, userhash.Hasher(
        salt,
        idp_entity_id or env.idp_entity_id,
        sp_entity_id or env.sp_entity_id,
    )


@group.command("findhash")
@env_option
@json_option
@click.argument("email", required=False, callback=validated(validate.email))
@click.option(
    "--source",
    type=click.Choice(["institution", "google", "microsoft", "saml"]),
    default="google",
    help="The button the student signs in with ('saml' is the former name of institution).",
)
@click.option(
    "--idp", metavar="ENTITYID", callback=validated(validate.entity_id),
    help="The student's IdP entity ID (with --source institution).",
)  # fmt: skip
@click.option(
    "--account-id",
    metavar="ID",
    callback=validated(validate.microsoft_account_id),
    help="The student's Microsoft account id (with --source microsoft): the proxy hashes it, "
    "not the address.",
)
@click.option(
    "--salt-file", type=click.Path(dir_okay=False), help="Salt file instead of the env's."
)
@click.option(
    "--idp-entity-id", metavar="X", callback=validated(validate.entity_id),
    help="Override the environment's IdP entity ID.",
)  # fmt: skip
@click.option(
    "--sp-entity-id", metavar="Y", callback=validated(validate.entity_id),
    help="Override the environment's SP entity ID.",
)  # fmt: skip
@click.option(
    "--file", "roster", type=click.Path(dir_okay=False), help="Hash one address per line; CSV out."
)
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write the roster's CSV here, not stdout."
)
def findhash(
    env_name,
    as_json,
    email,
    source,
    idp,
    account_id,
    salt_file,
    idp_entity_id,
    sp_entity_id,
    roster,
    output,
):
    """Print the user hash of EMAIL, as the sign-in proxy gives it, and which hub holds its home.

    With --file ROSTER, hash one address per line and write CSV 'email,hash' (a class list).
    The salt always comes from a file: the environment's secrets/saml-salt, or --salt-file.
    A Microsoft sign-in is hashed from the account id: give --account-id ID instead of EMAIL.
    """
    from callysto_infra import userhash

    source = userhash.ALIASES.get(source, source)
    if source == "microsoft":
        if account_id is None:
            raise click.UsageError(str(userhash.NeedsAccountId()))
        if roster is not None:
            raise click.UsageError(
                "a roster holds addresses, and Microsoft sign-ins are hashed from account ids: "
                "hash each student with --account-id ID"
            )
    elif account_id is not None:
        raise click.UsageError("--account-id is only for --source microsoft")
    elif (email is None) == (roster is None):
        raise click.UsageError("give either an EMAIL or --file ROSTER")
    if source == "institution" and not idp:
        raise click.UsageError("--source institution needs --idp ENTITYID (the student's IdP)")
    if idp and source != "institution":
        raise click.UsageError("--idp is only for --source institution")
    env, hasher = _hasher(env_name, salt_file, idp_entity_id, sp_entity_id)

    if roster is not None:
        from callysto_infra import rosters

        addresses = rosters.read(roster)
        hashes = rosters.hashes(hasher, addresses, source, idp)
        if as_json:
            emit_json([{"email": a, "hash": h} for a, h in zip(addresses, hashes, strict=True)])
        elif output:
            rosters.write(output, rosters.csv_text(addresses, hashes))
        else:
            sys.stdout.write(rosters.csv_text(addresses, hashes))
        return

    if source == "microsoft":
        user_id = userhash.microsoft_user_id(account_id)
    else:
        user_id = userhash.user_id(email, source, idp)
    user_hash = hasher.targeted_id(user_id)
    from callysto_infra import homes  # a roster never asks the hubs, so only here

    where = homes.where_is(env, user_hash) if env is not None else None
    if as_json:
        emit_json({"email": email, "source": source, "user_id": user_id, "hash": user_hash,
                   **({"account_id": account_id} if account_id else {}), **(where or {})})  # fmt: skip
        return
    click.echo(user_hash)
    if where is None:
        return
    if where["hub"]:
        click.echo(f"hub: {where['hub']} holds {where['dataset']}")
    elif where.get("error"):
        click.echo(f"hub: unknown ({where['error']})", err=True)
    elif where["unreachable"]:
        names = ", ".join(where["unreachable"])
        click.echo(f"hub: not found on the hubs that answered; unreachable: {names}", err=True)
    else:
        click.echo(f"hub: none holds {where['dataset']} (not signed in yet?)", err=True)


# --- ban and unban -----------------------------------------------------------------------------


def _hub_of(env, hub):
    """The hub whose API stops a student's server: with storage: object the home is in the
    container, and the server on the environment's (only) hub."""
    if not is_object(env):
        return hub
    from callysto_infra import hubs
    from callysto_infra.errors import CallystoError

    try:
        known = hubs.hubs(env)
    except CallystoError:
        return None
    return known[0] if known else None


def _stop(env, hub, user_hash: str) -> str:
    from callysto_infra import hubapi

    target = _hub_of(env, hub)
    if target is None:
        return "server not stopped: the environment has no hub yet"
    return hubapi.stop_server(env, target, user_hash)


def home_command(name: str, *, json: bool = True) -> Callable[[Callable[..., None]], click.Command]:
    """A command on USER's home: --env, --host (and --json unless json=False), then the command's
    own options, and USER. The function is called with the environment, the hub holding the home
    and the home, then its own options."""

    def decorate(func: Callable[..., None]) -> click.Command:
        @functools.wraps(func)
        def located(env_name: str | None, host: str | None, user: str, **options: Any) -> None:
            env = load_env(env_name)
            hub, home = locate_user(env, host, user)
            func(env, hub, home, **options)

        command = click.argument("user", callback=_user)(located)
        return group.command(name, epilog=USER_HELP)(hub_options(json=json)(command))

    return decorate


@home_command("ban")
def ban(env, hub, home, as_json: bool) -> None:
    """Make USER's home read-only and stop their running server."""
    from callysto_infra import homes, objectstore

    home = objectstore.ban(hub, home) if is_object(env) else homes.ban(hub, home)
    server = _stop(env, hub, home.user_hash)
    line = f"banned {home.user_hash} on {home.hub}: {home.name} is read-only; {server}"
    emit(as_json, {**home.as_dict(), "server": server}, [line])


@home_command("unban")
def unban(env, hub, home, as_json: bool) -> None:
    """Make USER's home writable again."""
    from callysto_infra import homes, objectstore

    home = objectstore.unban(hub, home) if is_object(env) else homes.unban(hub, home)
    line = f"unbanned {home.user_hash} on {home.hub}: {home.name} is writable"
    emit(as_json, home.as_dict(), [line])


# --- delete and restore ------------------------------------------------------------------------


@home_command("delete-home", json=False)
@click.option("--yes", "confirm", metavar="HASH", help="Confirm by repeating the user hash.")
def delete_home(env, hub, home, confirm: str | None) -> None:
    """Snapshot USER's home, then delete it (confirm by typing the user hash).

    The home leaves <pool>/home (the next sign-in starts empty); its snapshot stays under
    <pool>/deleted/<hash>/ and 'callysto user restore-home --from SNAPSHOT' brings it back.
    """
    from callysto_infra import homes
    from callysto_infra.errors import UsageError

    if confirm is None:
        print_fields(describe(home))
        confirm = typed(f"Type the user hash to delete this home on {home.hub}")
    if confirm.strip() != home.user_hash:
        raise UsageError(
            f"confirmation {confirm.strip()!r} is not the user hash {home.user_hash}: nothing was "
            "changed"
        )
    server = _stop(env, hub, home.user_hash)
    if is_object(env):
        from callysto_infra import objectstore

        deleted = objectstore.delete_home(hub, home)
    else:
        deleted = homes.delete_home(hub, home)
    click.echo(f"deleted the home of {home.user_hash} on {deleted.hub} ({server})")
    click.echo(f"kept: {deleted.snapshot}")
    click.echo(
        f"restore with: callysto user restore-home --env {env.name} --from {deleted.snapshot} "
        f"{home.user_hash}"
    )


@group.command("restore-home", epilog=USER_HELP)
@hub_options(json=False)
@click.option(
    "--from",
    "snapshot",
    required=True,
    metavar="SNAPSHOT",
    help="A snapshot of USER's home: its full name, or a name such as callysto-<timestamp>.",
)
@click.argument("user", callback=_user)
def restore_home(env_name: str | None, host: str | None, snapshot: str, user: str) -> None:
    """Bring USER's files back from SNAPSHOT, whether delete-home or a backup took it.

    The home then holds exactly the snapshot's files; what it held before is snapshotted first.
    """
    from callysto_infra import homes

    env = load_env(env_name)
    if is_object(env):
        from callysto_infra import objectstore, userhash

        source, previous = objectstore.restore_home(env, userhash.hash_of_user(env, user), snapshot)
        click.echo(f"restored {userhash.hash_of_user(env, user)} from deleted home {source}")
        if previous:
            click.echo(f"what it held before: deleted home {previous}")
        return
    restored = homes.restore_user_home(env, host, user, snapshot)
    click.echo(f"restored {restored.home} on {restored.hub} from {restored.source}")
    if restored.previous:
        click.echo(f"what it held before: {restored.previous}")
