"""callysto backup: encrypted archives of sensitive data, and ZFS snapshots of student homes."""

from __future__ import annotations

from pathlib import Path

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    Count,
    emit_json,
    env_option,
    flag,
    from_group,
    hub_options,
    json_option,
    load_env,
    validated,
)

_key_file = click.Path(dir_okay=False, path_type=Path)
_folder = click.Path(file_okay=False, path_type=Path)

KEY_HELP = (
    "Keys are named by options or by callysto.yaml (section backup:), never given on the "
    "command line: a passphrase, identity or signing key lives in a 0600 file."
)


def _signing_key_option(func):
    return click.option(
        "--signing-key",
        type=_key_file,
        help="Ed25519 private key (0600) that signs the archive (default: config).",
    )(func)


def _signer_file_option(func):
    return click.option(
        "--signer-file",
        type=_key_file,
        help="Public keys of the trusted signers (default: config backup.trusted_signers).",
    )(func)


def _config():
    from callysto_infra import config

    return config.load()


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.group("backup", invoke_without_command=True, epilog=KEY_HELP)
@click.option("--to", "destination", type=_folder, help="Destination folder.")
@click.option(
    "--recipient",
    metavar="AGE_PUBLIC_KEY",
    multiple=True,
    help="Encrypt to this age public key (repeatable).",
)
@click.option("--recipients-file", type=_key_file, help="Encrypt to the age keys in this file.")
@click.option("--passphrase-file", type=_key_file, help="Encrypt with the passphrase in this file.")
@click.option("--keep", type=Count(min=1), help="Archives to keep (default: config, 30).")
@_signing_key_option
@click.pass_context
def group(
    ctx: click.Context, destination, recipient, recipients_file, passphrase_file, keep, signing_key
) -> None:
    """Back up every environment's sensitive data into one encrypted archive.

    The archive (env.yaml, secrets/, Terraform state and its saved copies, group_vars, and a
    SHA-256 manifest) is written to the destination with a timestamp in its name, signed with
    the operator's signing key in ARCHIVE.sig beside it; its path is printed. Only the newest
    KEEP archives stay.
    """
    if ctx.invoked_subcommand is not None:
        return
    from callysto_infra import backup, backup_signing, progress

    configured = _config()
    folder = backup.destination_folder(destination, configured)
    backup.check_destination(folder)
    key = backup.encryption_key(recipient, recipients_file, passphrase_file, configured)
    signer = backup_signing.read_signing_key(
        backup_signing.signing_key_path(signing_key, configured)
    )
    total = sum(path.stat().st_size for path, _name in backup.sensitive_files())
    with progress.bar("packing", total) as advance:
        summary = backup.create(folder, key, signer, keep or configured.backup.keep, advance)
    click.echo(str(summary.path))
    removed = f"; removed {len(summary.removed)} old archive(s)" if summary.removed else ""
    _say(summary.line("wrote") + removed)


def identity_options(func):
    func = click.option(
        "--identity", type=_key_file, help="age identity file to decrypt with (0600)."
    )(func)
    return click.option(
        "--passphrase-file", type=_key_file, help="File holding the passphrase (0600)."
    )(func)


@group.command("list")
@click.option("--to", "--destination", "destination", type=_folder, help="Destination folder.")
@json_option
def list_(destination: Path | None, as_json: bool) -> None:
    """List the archives in the destination, newest first."""
    from callysto_infra import backup
    from callysto_infra.sizes import human_size

    rows = backup.describe(backup.destination_folder(destination, _config()))
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['archive']}  {row['created']}  {human_size(row['bytes'])}")
    if not rows:
        _say("no archives yet")


def _signers(signer_file, configured):
    from callysto_infra import backup_signing

    return backup_signing.read_signers(backup_signing.signers_path(signer_file, configured))


@group.command("verify", epilog=KEY_HELP)
@identity_options
@_signer_file_option
@click.argument("archive", type=_key_file)
def verify(identity, passphrase_file, signer_file, archive) -> None:
    """Check ARCHIVE's signature, then decrypt it and check every file against its SHA-256 in
    the manifest. An archive no trusted signer signed is refused before anything is read."""
    from callysto_infra import backup, progress

    configured = _config()
    signers = _signers(signer_file, configured)
    key = backup.decryption_key(identity, passphrase_file, configured)
    with progress.bar("verifying") as advance:
        summary = backup.verify(archive, key, signers, advance)
    _say(summary.line("verified"))


@group.command("restore", epilog=KEY_HELP)
@identity_options
@_signer_file_option
@click.option("--to", "destination", required=True, type=_folder, help="Folder to restore into.")
@flag("--force", help="Overwrite existing files.")
@click.argument("archive", type=_key_file)
def restore(identity, passphrase_file, signer_file, destination, force, archive) -> None:
    """Verify ARCHIVE, then restore it into a folder as envs/<ENV>/... (never overwrites
    without --force, and waits for no one: an environment whose lock another command holds is
    refused). Restore into the project folder to put environments back in place."""
    from callysto_infra import backup, progress

    configured = _config()
    signers = _signers(signer_file, configured)
    key = backup.decryption_key(identity, passphrase_file, configured)
    with progress.bar("restoring") as advance:
        summary = backup.restore(archive, destination, key, signers, force, advance)
    _say(summary.line("restored into"))


@group.command("sign", epilog=KEY_HELP)
@identity_options
@_signing_key_option
@click.argument("archive", type=_key_file)
def sign(identity, passphrase_file, signing_key, archive) -> None:
    """Sign ARCHIVE, one made before archives were signed, once it decrypts and every file
    matches its manifest. Sign only an archive you know is yours: nothing in it can say."""
    from callysto_infra import backup, backup_signing, progress

    configured = _config()
    signer = backup_signing.read_signing_key(
        backup_signing.signing_key_path(signing_key, configured)
    )
    key = backup.decryption_key(identity, passphrase_file, configured)
    with progress.bar("checking") as advance:
        summary, written = backup.sign_unsigned(archive, key, signer, advance)
    click.echo(str(written))
    _say(summary.line("checked and signed"))


@group.command("keygen")
@_signing_key_option
@_signer_file_option
def keygen(signing_key, signer_file) -> None:
    """Make a signing key (0600, never over an existing file) and add its public key to the
    trusted signers file. Both default to backup.signing_key_file and backup.trusted_signers
    in callysto.yaml. The public line is printed."""
    from callysto_infra import backup_signing

    configured = _config()
    private = backup_signing.signing_key_path(signing_key, configured)
    public = backup_signing.keygen(private, backup_signing.signers_path(signer_file, configured))
    click.echo(public)
    _say(f"wrote the signing key {private}; keep it private, and share the public line above")


# --- homes ----------------------------------------------------------------------------------------


def destination_options(func):
    func = click.option(
        "--to-dataset",
        "to_dataset",
        metavar="[USER@]HOST:POOL/DATASET",
        help="Replica dataset to receive into (over SSH, or here without HOST:).",
    )(func)
    return click.option(
        "--to", "to_dir", metavar="DIR", help="Folder of stream files (default: env.yaml)."
    )(func)


@group.group("homes", invoke_without_command=True)
@hub_options(json=False)
@destination_options
@click.option("--keep", type=Count(min=1), help="Snapshots kept on the hub.")
@click.pass_context
def homes(ctx: click.Context, env_name, host, to_dir, to_dataset, keep) -> None:
    """Snapshot every student's home and send it to the backup destination.

    Takes <pool>/home@callysto-<time> recursively on every hub at once (or on HOST), sends it
    incrementally from the newest snapshot the destination already has, then keeps the newest
    snapshots on the hub (homes_backup.keep in env.yaml, or --keep). With several hubs, a line
    per hub on stderr ends the run: a hub that is down or fails is named there, the others are
    backed up all the same, and the command exits 1.
    """
    if ctx.invoked_subcommand is not None:
        return
    from callysto_infra import everyhub, homes_backup, progress
    from callysto_infra.sizes import human_size

    env = load_env(env_name)
    if env.config.storage == "object":
        _object_homes_backup(env, to_dir, to_dataset)
        return
    dest = homes_backup.destination(env, to_dir, to_dataset)
    chosen = homes_backup.select_hubs(env, host)
    by_name = {hub.name: hub for hub in chosen}

    def report(done) -> None:
        """The lines of a hub backed up: its snapshot on stdout, what was sent on stderr."""
        click.echo(f"{done.hub}\t{homes_backup.home_dataset(by_name[done.hub])}@{done.snapshot}")
        kind = f"incremental from {done.base}" if done.base else "full"
        pruned = f"; pruned {len(done.pruned_on_hub)} on the hub" if done.pruned_on_hub else ""
        if done.pruned_at_destination:
            pruned += f", {len(done.pruned_at_destination)} at the destination"
        _say(
            f"sent {done.snapshot} of {done.hub} to {dest} ({kind}): "
            f"{human_size(done.bytes)}, {done.seconds:.1f} s{pruned}"
        )

    # Every hub at once, a stream each; a hub that is down or fails is named at the end, and
    # the others are still backed up. The hubs' lines wait until the bars are gone: on a
    # terminal the bars would take stdout's lines into their own display, on stderr. A Ctrl-C
    # still reports the hubs that were done.
    finished = []
    try:
        with progress.bars() as add_bar:
            outcomes = everyhub.on_every_hub(
                chosen,
                lambda hub: homes_backup.backup_hub(
                    env, hub, dest, keep, add_bar(f"sending {hub.name}", None)
                ),
                done=lambda outcome: finished.append(outcome.value) if outcome.ok else None,
            )
    finally:
        for done in finished:
            report(done)
    if len(chosen) > 1:
        for line in everyhub.summary(outcomes, lambda done: f"backed up {done.snapshot}"):
            _say(line)
        failed = everyhub.failures(outcomes)
        if failed:
            _say(f"backed up {len(chosen) - len(failed)} of {len(chosen)} hubs")
    failure = everyhub.failure(outcomes, "not backed up")
    if failure is not None:
        raise failure


def _object_homes_backup(env, to_dir, to_dataset) -> None:
    """storage: object: the container's students copied, incrementally, into a folder."""
    from pathlib import Path

    from callysto_infra import objectstore
    from callysto_infra.errors import UsageError
    from callysto_infra.sizes import human_size

    if to_dataset:
        raise UsageError(
            "students' files in object storage are backed up to a folder: give --to DIR"
        )
    directory = to_dir or env.config.homes_backup.directory
    if directory is None:
        raise UsageError(
            "no backup folder: give --to DIR or set homes_backup.directory in env.yaml"
        )
    path = Path(directory)
    run = objectstore.backup_homes(env, path if path.is_absolute() else env.path / path)
    click.echo(str(run.directory))
    _say(
        f"copied {run.copied} objects ({human_size(run.bytes_copied)}); "
        f"{run.unchanged} unchanged since the last backup"
    )


@from_group("env_name", "to_dir", "to_dataset")
@homes.command("status")
@env_option
@destination_options
@json_option
def homes_status(env_name, to_dir, to_dataset, as_json: bool) -> None:
    """Show the newest and oldest home snapshot per hub, and at the destination."""
    from callysto_infra import homes_backup
    from callysto_infra.errors import OperationError, UsageError

    env = load_env(env_name)
    try:
        dest = homes_backup.destination(env, to_dir, to_dataset)
    except UsageError:
        if to_dir or to_dataset:
            raise
        dest = None  # no destination configured: the hubs' side alone
    rows = homes_backup.status(env, dest)
    if as_json:
        emit_json(rows)
    else:
        for row in rows:
            if "error" in row:
                click.echo(f"{row['hub']}: {row['error']}")
                continue
            line = f"{row['hub']}: {row['count']} snapshot(s) of {row['dataset']}"
            if row["count"]:
                line += f", newest {row['newest']}, oldest {row['oldest']}"
            if "at_destination" in row:
                there = row["at_destination"]
                line += f"; at {row['destination']}: {there['count']}"
                if there["count"]:
                    line += f", newest {there['newest']}, oldest {there['oldest']}"
            click.echo(line)
    failed = [row for row in rows if "error" in row]
    if failed:
        raise OperationError(f"{len(failed)} hub(s) could not be asked: {failed[0]['error']}")


@from_group("env_name", "host", "to_dir", "to_dataset")
@homes.command("restore")
@hub_options(json=False)
@destination_options
@click.option(
    "--from", "snapshot", required=True, metavar="SNAPSHOT", help="callysto-YYYYMMDDTHHMMSSZ."
)
@flag("--force", help="Put back the snapshot's version of existing files.")
@click.argument("user", required=False, callback=validated(validate.user_hash))
def homes_restore(env_name, host, to_dir, to_dataset, snapshot, force, user) -> None:
    """Bring SNAPSHOT back from the backup destination onto the hub.

    With USER (a 40-hex user hash; see 'callysto user findhash'), that student's files from the
    snapshot are copied back into their home (files they have now are kept unless --force).
    Without USER the whole snapshot is received as <pool>/restored/SNAPSHOT and left there.
    """
    from callysto_infra import homes_backup, progress
    from callysto_infra.errors import UsageError
    from callysto_infra.sizes import human_size

    snapshot = homes_backup.check_snapshot_name(snapshot)
    env = load_env(env_name)
    dest = homes_backup.destination(env, to_dir, to_dataset)
    candidates = homes_backup.select_hubs(env, host)
    if len(candidates) != 1:
        raise UsageError(
            f"environment '{env.name}' has {len(candidates)} hubs: choose one with --host "
            f"({', '.join(h.name for h in candidates)})"
        )
    with progress.bar("receiving") as advance:
        done = homes_backup.restore(env, candidates[0], dest, snapshot, user, force, advance)
    click.echo(f"{done.hub}\t{done.dataset}\t{done.mountpoint}")
    if done.leftover:
        _say(f"warning: could not remove {done.leftover}; remove it with 'zfs destroy -r' later")
    what = f"{user}'s files" if user else "the homes"
    tail = "" if user else f"; remove it when done with 'zfs destroy -r {done.dataset}'"
    _say(
        f"restored {what} from {done.snapshot} onto {done.hub} at {done.mountpoint}: "
        f"{human_size(done.bytes)} received, {done.seconds:.1f} s{tail}"
    )
