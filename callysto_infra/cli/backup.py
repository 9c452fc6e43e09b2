"""callysto backup: encrypted archives of sensitive data, and ZFS snapshots of student homes."""

from __future__ import annotations

import click

from callysto_infra.cli.common import (
    SubGroup,
    env_option,
    host_option,
    json_option,
    load_env,
    not_available,
)

_key_file = click.Path(dir_okay=False)


@click.group("backup", cls=SubGroup, invoke_without_command=True)
@click.option("--to", "destination", type=click.Path(file_okay=False), help="Destination folder.")
@click.option("--recipient", metavar="AGE_PUBLIC_KEY", help="Encrypt to this age public key.")
@click.option("--recipients-file", type=_key_file, help="Encrypt to the age keys in this file.")
@click.option("--passphrase-file", type=_key_file, help="Encrypt with the passphrase in this file.")
@click.pass_context
def group(ctx: click.Context, destination, recipient, recipients_file, passphrase_file) -> None:
    """Back up every environment's sensitive data into one encrypted archive."""
    if ctx.invoked_subcommand is None:
        not_available("backup")


def identity_options(func):
    func = click.option("--identity", type=_key_file, help="age identity file to decrypt with.")(
        func
    )
    return click.option("--passphrase-file", type=_key_file, help="Passphrase file.")(func)


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the archives in the destination."""
    not_available("backup list")


@group.command("verify")
@identity_options
@click.argument("archive", type=click.Path(dir_okay=False))
def verify(identity, passphrase_file, archive) -> None:
    """Decrypt ARCHIVE and check every file's checksum."""
    not_available("backup verify")


@group.command("restore")
@identity_options
@click.option("--to", "destination", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.argument("archive", type=click.Path(dir_okay=False))
def restore(identity, passphrase_file, destination, force, archive) -> None:
    """Restore ARCHIVE into a folder (never overwrites without --force)."""
    not_available("backup restore")


@group.group("homes", invoke_without_command=True)
@env_option
@host_option
@click.pass_context
def homes(ctx: click.Context, env_name: str | None, host: str | None) -> None:
    """Snapshot every student's home and send it to the backup destination."""
    if ctx.invoked_subcommand is None:
        load_env(env_name)
        not_available("backup homes")


@homes.command("status")
@env_option
@json_option
def homes_status(env_name: str | None, as_json: bool) -> None:
    """Show the newest and oldest home snapshot per hub."""
    load_env(env_name)
    not_available("backup homes status")
