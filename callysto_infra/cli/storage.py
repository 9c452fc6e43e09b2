"""callysto storage: moving students between ZFS homes and object storage (Plan B)."""

from __future__ import annotations

import click

from callysto_infra import validate
from callysto_infra.cli.common import env_option, host_option, load_env, validated


@click.group("storage")
def group() -> None:
    """Move students' files between ZFS homes and object storage."""


@group.command("migrate", epilog="USER is a 40-hex user hash or an e-mail address (hashed first).")
@env_option
@host_option
@click.option(
    "--to", "target", required=True, type=click.Choice(["object", "zfs"]),
    help="Where the files go: the environment's Swift container, or the hub's ZFS homes.",
)  # fmt: skip
@click.argument("users", nargs=-1, callback=validated(validate.user_ref))
def migrate(env_name: str | None, host: str | None, target: str, users: tuple[str, ...]) -> None:
    """Copy USERS (default: every home of the other side) to object storage or to ZFS, checking
    every file against its copy (MD5).

    The source stays as it was. A file already copied, with the same content, is not sent
    again, so an interrupted migration is resumed by running the same command. Set storage in
    env.yaml to the new side (and run the hub playbook) once every student is moved.
    """
    from callysto_infra import objectstore, userhash

    env = load_env(env_name)
    hashes = [userhash.hash_of_user(env, user) for user in users]

    def say(line: str) -> None:
        click.echo(line)

    done = objectstore.migrate(env, target, hashes, host, say)
    files = sum(m.verified for m in done)
    click.echo(
        f"{len(done)} home{'s' if len(done) != 1 else ''} in {target}: {files} files verified",
        err=True,
    )
    left = [m for m in done if m.skipped]
    if left:
        from callysto_infra.errors import OperationError

        names = ", ".join(f"{m.user}: {', '.join(m.skipped[:3])}" for m in left)
        raise OperationError(f"links or special files were not moved (move them by hand): {names}")
