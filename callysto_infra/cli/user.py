"""callysto user: find a student's hash, and the account lifecycle (ban, unban, delete, restore)."""

from __future__ import annotations

import sys

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    emit_json,
    env_option,
    host_option,
    json_option,
    load_env,
    validated,
)
from callysto_infra.cli.quota import USER_HELP, describe, locate_user, print_fields, target_hubs

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


def _read_roster(path: str) -> list[str]:
    """One address per line; blank lines and # comments are skipped. Every address is checked
    before anything is written, so a bad roster produces no partial CSV."""
    import re

    from callysto_infra.errors import UsageError

    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except OSError as exc:
        raise UsageError(f"roster {path} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"roster {path} is not UTF-8 text: save it as UTF-8 (CSV UTF-8)") from None
    # validate.email's own pattern, run over the whole file at once: a class of 100,000 stays fast.
    address = validate.EMAIL_RE.pattern.removeprefix("^").removesuffix("$")
    bad = re.search(rf"^(?![ \t]*(?:#.*)?\r?$)(?![ \t]*{address}[ \t]*\r?$).*$", text, re.M)
    lines = [line.strip() for line in text.splitlines()]
    addresses = [line for line in lines if line and not line.startswith("#")]
    too_long = next((a for a in addresses if len(a) > 254), None)
    if bad is not None or too_long is not None:
        number = text.count("\n", 0, bad.start()) + 1 if bad else lines.index(too_long) + 1
        shown = bad.group(0).strip() if bad else too_long
        raise UsageError(
            f"roster {path} line {number}: '{shown}' is not an e-mail address "
            "(one address per line): nothing was written"
        )
    return addresses


def _write_roster(addresses: list[str], hashes: list[str], output: str | None) -> None:
    """CSV 'email,hash'. Addresses hold no quotes or line breaks (validate.email), so only one
    with a comma needs CSV quoting; without any, plain lines are the same CSV, three times faster."""
    import csv
    import io

    if any("," in a for a in addresses):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(zip(addresses, hashes, strict=True))
        body = buffer.getvalue()
    else:
        body = "".join(f"{a},{h}\n" for a, h in zip(addresses, hashes, strict=True))
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write("email,hash\n" + body)
    else:
        sys.stdout.write("email,hash\n" + body)


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
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write the roster's CSV here, not stdout."
)
def findhash(
    env_name, as_json, email, source, idp, salt_file, idp_entity_id, sp_entity_id, roster, output
):
    """Print the user hash of EMAIL, and which hub holds its home.

    With --file ROSTER, hash one address per line and write CSV 'email,hash' (a class list).
    The salt always comes from a file: the environment's secrets/saml-salt, or --salt-file.
    """
    from callysto_infra import userhash

    if (email is None) == (roster is None):
        raise click.UsageError("give either an EMAIL or --file ROSTER")
    if source == "saml" and not idp:
        raise click.UsageError("--source saml needs --idp ENTITYID (the student's IdP)")
    if idp and source != "saml":
        raise click.UsageError("--idp is only for --source saml")
    env, hasher = _hasher(env_name, salt_file, idp_entity_id, sp_entity_id)

    if roster is not None:
        addresses = _read_roster(roster)
        if source == "saml":
            ids = [userhash.user_id(a, source, idp) for a in addresses]
        else:  # the OAuth user ID is the lower-cased address (userhash.user_id), done in bulk
            ids = "\n".join(addresses).lower().split("\n") if addresses else []
        hashes = hasher.many(ids)
        if as_json:
            emit_json([{"email": a, "hash": h} for a, h in zip(addresses, hashes, strict=True)])
        else:
            _write_roster(addresses, hashes, output)
        return

    user_id = userhash.user_id(email, source, idp)
    user_hash = hasher.targeted_id(user_id)
    where = _where(env, user_hash) if env is not None else None
    if as_json:
        emit_json({"email": email, "source": source, "user_id": user_id, "hash": user_hash,
                   **(where or {})})  # fmt: skip
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


def _where(env, user_hash: str) -> dict:
    """Which hub holds the hash's home: one round trip per hub. Never fails the command: the
    hash is the answer, the hub a bonus when the hubs can be reached."""
    from callysto_infra import hubs, zfs
    from callysto_infra.errors import CallystoError

    dataset = zfs.home_of(env.config.hub.pool, user_hash)
    try:
        known = hubs.hubs(env)
    except CallystoError as exc:
        return {"hub": None, "hubs": [], "dataset": dataset, "unreachable": {}, "error": str(exc)}
    found = zfs.lookup(known, env.config.hub.pool, user_hash)
    return {
        "hub": ", ".join(h.hub for h in found.found) or None,
        "hubs": [h.hub for h in found.found],
        "dataset": dataset,
        "unreachable": found.unreachable,
    }


# --- ban and unban -----------------------------------------------------------------------------


@group.command("ban", epilog=USER_HELP)
@env_option
@host_option
@json_option
@click.argument("user", callback=_user)
def ban(env_name: str | None, host: str | None, as_json: bool, user: str) -> None:
    """Make USER's home read-only and stop their running server."""
    from callysto_infra import hubapi, zfs

    env = load_env(env_name)
    hub, home = locate_user(env, host, user)
    home = zfs.ban(hub, home)
    server = hubapi.stop_server(env, hub, home.user_hash)
    if as_json:
        emit_json({**home.as_dict(), "server": server})
    else:
        click.echo(f"banned {home.user_hash} on {home.hub}: {home.name} is read-only; {server}")


@group.command("unban", epilog=USER_HELP)
@env_option
@host_option
@json_option
@click.argument("user", callback=_user)
def unban(env_name: str | None, host: str | None, as_json: bool, user: str) -> None:
    """Make USER's home writable again."""
    from callysto_infra import zfs

    env = load_env(env_name)
    hub, home = locate_user(env, host, user)
    home = zfs.unban(hub, home)
    if as_json:
        emit_json(home.as_dict())
    else:
        click.echo(f"unbanned {home.user_hash} on {home.hub}: {home.name} is writable")


# --- delete and restore ------------------------------------------------------------------------


@group.command("delete-home", epilog=USER_HELP)
@env_option
@host_option
@click.option("--yes", "confirm", metavar="HASH", help="Confirm by repeating the user hash.")
@click.argument("user", callback=_user)
def delete_home(env_name: str | None, host: str | None, confirm: str | None, user: str) -> None:
    """Snapshot USER's home, then delete it (confirm by typing the user hash).

    The home leaves <pool>/home (the next sign-in starts empty); its snapshot stays under
    <pool>/deleted/<hash>/ and 'callysto user restore-home --from SNAPSHOT' brings it back.
    """
    from callysto_infra import hubapi, zfs
    from callysto_infra.errors import UsageError

    env = load_env(env_name)
    hub, home = locate_user(env, host, user)
    if confirm is None:
        print_fields(describe(home))
        typed = click.prompt(
            f"Type the user hash to delete this home on {home.hub}",
            default="",
            show_default=False,
            err=True,
        )
    else:
        typed = confirm
    if typed.strip() != home.user_hash:
        raise UsageError(
            f"confirmation '{typed.strip()}' is not the user hash {home.user_hash}: nothing was "
            "changed"
        )
    server = hubapi.stop_server(env, hub, home.user_hash)
    deleted = zfs.delete_home(hub, home)
    click.echo(f"deleted the home of {home.user_hash} on {deleted.hub} ({server})")
    click.echo(f"kept: {deleted.snapshot}")
    click.echo(
        f"restore with: callysto user restore-home --env {env.name} --from {deleted.snapshot} "
        f"{home.user_hash}"
    )


@group.command("restore-home", epilog=USER_HELP)
@env_option
@host_option
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
    from callysto_infra import userhash, zfs

    env = load_env(env_name)
    pool = env.config.hub.pool
    candidates = target_hubs(env, host)
    user_hash = userhash.hash_of_user(env, user)
    zfs.check_snapshot_spec(snapshot, pool, user_hash)
    hub, full = zfs.find_snapshot(candidates, pool, user_hash, snapshot)
    restored = zfs.restore_home(hub, pool, user_hash, full, env.config.hub.refquota)
    click.echo(f"restored {restored.home} on {restored.hub} from {restored.source}")
    if restored.previous:
        click.echo(f"what it held before: {restored.previous}")
