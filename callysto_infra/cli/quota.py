"""callysto quota: students' ZFS quotas (refquota of <pool>/home/<hash>)."""

from __future__ import annotations

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

USER_HELP = "USER is a 40-hex user hash or an e-mail address (hashed first)."


def _note(line: str) -> None:
    click.echo(line, err=True)


def locate_user(env, host: str | None, user: str):
    """(hub, home) of USER (see homes.locate_user); hubs that did not answer are noted on stderr.
    With storage: object the 'hub' is the environment's container (objectstore.Store)."""
    if env.config.storage == "object":
        from callysto_infra import objectstore, userhash

        return objectstore.get_home(env, userhash.hash_of_user(env, user))
    from callysto_infra import homes

    return homes.locate_user(env, host, user, note=_note)


def is_object(env) -> bool:
    return env.config.storage == "object"


def describe(home) -> list[tuple[str, str]]:
    from callysto_infra.sizes import human_size

    return [
        ("user", home.user_hash),
        ("hub", home.hub),
        ("dataset", home.name),
        ("used", human_size(home.used)),
        ("files", f"{human_size(home.referenced)} (what the quota limits)"),
        ("quota", human_size(home.refquota)),
        ("available", human_size(home.available)),
        ("banned", f"since {home.banned} (read-only)" if home.banned else "no"),
    ]


def print_fields(rows: list[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@click.group("quota")
def group() -> None:
    """Read and set students' quotas."""


@group.command("get", epilog=USER_HELP)
@env_option
@host_option
@json_option
@click.argument("user", callback=validated(validate.user_ref))
def get(env_name: str | None, host: str | None, as_json: bool, user: str) -> None:
    """Show USER's used space, quota and available space."""
    env = load_env(env_name)
    _, home = locate_user(env, host, user)
    if as_json:
        emit_json(home.as_dict())
    else:
        print_fields(describe(home))


@group.command("set", epilog=USER_HELP)
@env_option
@host_option
@click.option(
    "--force", is_flag=True, help="Below current use: set the quota to the space already used."
)
@click.option("--json", "as_json", is_flag=True, help="Print the home afterwards as JSON.")
@click.argument("user", callback=validated(validate.user_ref))
@click.argument("size", callback=validated(validate.zfs_size))
def set_(
    env_name: str | None, host: str | None, force: bool, as_json: bool, user: str, size: str
) -> None:
    """Set USER's quota to SIZE: a whole number with an optional K, M, G, T or P suffix (e.g.
    2G, 500M), or none.

    A quota below what USER's files already take is refused; with --force the quota becomes
    exactly that space (the smallest ZFS allows), so the student can write nothing more.
    """
    from callysto_infra import homes
    from callysto_infra.sizes import human_size

    env = load_env(env_name)
    hub, home = locate_user(env, host, user)
    if is_object(env):
        from callysto_infra import objectstore

        home, applied = objectstore.set_quota(hub, home, size, force=force)
    else:
        home, applied = homes.set_quota(hub, home, size, force=force)
    if as_json:
        emit_json(home.as_dict())
        return
    click.echo(
        f"quota of {home.user_hash} on {home.hub} is now {human_size(home.refquota)} "
        f"(files take {human_size(home.referenced)})"
    )
    if applied != size:
        click.echo(
            f"note: {size} is below the space already used; the quota is that space "
            f"({applied} bytes), the smallest ZFS allows",
            err=True,
        )


@group.command("list")
@env_option
@host_option
@json_option
def list_(env_name: str | None, host: str | None, as_json: bool) -> None:
    """List every student's dataset with used, quota and available, largest first.

    One 'zfs get' per hub, whatever the number of students, every hub at once (storage:
    object: one listing of the environment's container). With several hubs, a line per hub
    on stderr ends the list; a hub that did not answer is named there, the others' homes are
    listed, and the command exits 1.
    """
    from callysto_infra import everyhub, homes
    from callysto_infra.sizes import human_size

    env = load_env(env_name)
    outcomes: list = []
    if is_object(env):
        from callysto_infra import objectstore

        found = objectstore.list_homes(env)
    else:
        outcomes, found = homes.list_all_homes(env, host)
        if everyhub.none_answered(outcomes):
            everyhub.finish(outcomes)  # no list at all, only why
    if as_json:
        emit_json([h.as_dict() for h in found])
    else:
        many = len(outcomes) > 1
        header = ["USER", "USED", "QUOTA", "AVAILABLE", "BANNED"] + (["HUB"] if many else [])
        rows = [
            [
                h.user_hash,
                human_size(h.used),
                human_size(h.refquota),
                human_size(h.available),
                "yes" if h.banned else "",
            ]
            + ([h.hub] if many else [])
            for h in found
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            cells = zip(row, widths, strict=True)
            click.echo("  ".join(cell.ljust(w) for cell, w in cells).rstrip())
        click.echo(_homes_count(len(found)), err=True)
    everyhub.finish(outcomes, lambda listed: _homes_count(len(listed)))


def _homes_count(count: int) -> str:
    return f"{count} home{'s' if count != 1 else ''}"
