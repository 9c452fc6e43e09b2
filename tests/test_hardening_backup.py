"""Issue 16's backup cases, one row each: a forged archive (made with only the public key) is
refused before anything is read, restore never writes setuid bits, devices, links or paths outside
its target, honours every environment's lock even with --force, verify stays within bounded memory,
and homes backups refuse a mistyped folder and keep their streams private."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyrage
import pytest
import yaml
from pyrage import x25519

from callysto_infra import backup, backup_signing, environments, locking
from callysto_infra.errors import OperationError

MiB = 1 << 20


@pytest.fixture(autouse=True)
def project_config(tmp_path, monkeypatch) -> Path:
    """A private callysto.yaml path (absent): the project's is never read."""
    path = tmp_path / "callysto.yaml"
    monkeypatch.setenv("CALLYSTO_CONFIG", str(path))
    return path


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def keys(tmp_path):
    """The operators' age key (identity 0600, recipients public) and their signing key, with the
    trusted signers file that lists it; and a forger's own signing key, trusted by nobody."""
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    identity = x25519.Identity.generate()
    recipients = folder / "recipients.txt"
    recipients.write_text(f"{identity.to_public()}\n")
    backup_signing.keygen(folder / "signing-key", folder / "trusted-signers")
    backup_signing.keygen(folder / "forger-key", folder / "forger-signers")
    return {
        "identity": private(folder / "identity.txt", f"{identity}\n"),
        "recipients": recipients,
        "signing_key": folder / "signing-key",
        "signers": folder / "trusted-signers",
        "forger_key": folder / "forger-key",
    }


@pytest.fixture
def estate(envs_dir):
    env = environments.create("dev", "brave-otter")
    env.state_file.write_text(json.dumps({"version": 4, "outputs": {"hosts": {"value": {}}}}))
    return envs_dir


def archive_name() -> str:
    time.sleep(0.002)  # names carry milliseconds
    return backup.archive_name(dt.datetime.now(dt.UTC))


def forge(folder: Path, keys: dict, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """An archive as a forger makes one with the public recipients file alone: any members, and
    a manifest that lists every regular file with its right SHA-256."""
    buffer = io.BytesIO()
    listed = {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
            if info.isreg():
                listed[info.name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        manifest = json.dumps({"format": 1, "files": listed}).encode()
        info = tarfile.TarInfo(backup.MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    recipients = backup.read_recipients_file(keys["recipients"])
    folder.mkdir(exist_ok=True)
    path = folder / archive_name()
    path.write_bytes(pyrage.encrypt(buffer.getvalue(), recipients))
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o600, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, int(time.time())
    return info


def restore_args(archive: Path, to: Path, keys: dict, *more: str) -> list[str]:
    return [
        "backup",
        "restore",
        str(archive),
        "--to",
        str(to),
        "--identity",
        str(keys["identity"]),
        "--signer-file",
        str(keys["signers"]),
        *more,
    ]


def tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# --- a forged archive is refused before anything is read ----------------------------------------

EVIL_STATE = json.dumps({"outputs": {"hosts": {"value": {"hub": {"address": "-oProxyCommand=x"}}}}})


@pytest.mark.parametrize(
    "signed_by, refusal, code",
    [
        (None, "has no signature", 2),  # made with the public recipients file alone
        ("forger_key", "signed by a key not in", 1),  # and signed with the forger's own key
    ],
    ids=["unsigned", "signed-by-a-stranger"],
)
def test_forged_archive_is_refused_by_verify_and_restore(
    callysto, estate, keys, tmp_path, one_line_error, signed_by, refusal, code
):
    forged = forge(
        tmp_path / "dest",
        keys,
        [(member("envs/brave-otter/terraform.tfstate"), EVIL_STATE.encode())],
    )
    if signed_by:
        backup_signing.sign(forged, backup_signing.read_signing_key(keys[signed_by]))
    before = tree(estate)
    verify = ["backup", "verify", str(forged), "--identity", str(keys["identity"])]
    result = callysto(*verify, "--signer-file", str(keys["signers"]))
    line = one_line_error(result, refusal, code=code)
    if not signed_by:
        assert "callysto backup sign" in line  # how to proceed with an old archive of one's own
    into = tmp_path / "restored"
    result = callysto(*restore_args(forged, into, keys, "--force"))
    one_line_error(result, refusal, code=code)
    assert not into.exists()
    result = callysto(*restore_args(forged, estate.parent, keys, "--force"))
    one_line_error(result, refusal, code=code)
    assert tree(estate) == before


# --- restore writes nothing unsafe, even from an archive that is signed ----------------------------


def outside(tmp_path: Path) -> Path:
    return tmp_path / "outside" / "planted"


MALICIOUS = {
    "setuid-file": (
        lambda tmp: [member("envs/dev/secrets/tool", mode=0o4755)],
        "setuid, setgid or sticky",
    ),
    "setgid-file": (
        lambda tmp: [member("envs/dev/group_vars/all.yml", mode=0o2644)],
        "setuid, setgid or sticky",
    ),
    "device-file": (
        lambda tmp: [member("envs/dev/secrets/disk", kind=tarfile.BLKTYPE)],
        "a device file",
    ),
    "fifo": (lambda tmp: [member("envs/dev/secrets/pipe", kind=tarfile.FIFOTYPE)], "a FIFO"),
    "symlink-escaping": (
        lambda tmp: [member("envs/dev/secrets/link", tarfile.SYMTYPE, link=str(outside(tmp)))],
        "a symbolic link",
    ),
    "hardlink": (
        lambda tmp: [member("envs/dev/secrets/hard", tarfile.LNKTYPE, link="/etc/passwd")],
        "a hard link",
    ),
    "path-escape": (
        lambda tmp: [member("envs/dev/secrets/../../../outside/planted")],
        "unexpected path",
    ),
    "absolute-path": (lambda tmp: [member(str(outside(tmp)))], "unexpected path"),
    "path-backup-never-writes": (
        lambda tmp: [member("envs/dev/.git/hooks/post-checkout", mode=0o755)],
        "unexpected path",
    ),
    "control-character-in-a-name": (
        lambda tmp: [member("envs/dev\n/env.yaml")],
        "unexpected path",
    ),
}


@pytest.mark.parametrize("case", list(MALICIOUS))
def test_restore_refuses_an_unsafe_member_and_writes_nothing(
    callysto, estate, keys, tmp_path, one_line_error, case
):
    make, refusal = MALICIOUS[case]
    members = [(member("envs/dev/env.yaml"), b"hub: {}\n")]
    members += [(info, b"#!/bin/sh\nid\n") for info in make(tmp_path)]
    archive = forge(tmp_path / "dest", keys, members)
    # Signed by the operator: restore's own checks hold whatever the signature says.
    backup_signing.sign(archive, backup_signing.read_signing_key(keys["signing_key"]))
    into = tmp_path / "restored"
    result = callysto(*restore_args(archive, into, keys))
    one_line_error(result, refusal, code=1)
    assert not into.exists()
    assert not outside(tmp_path).exists() and not outside(tmp_path).is_symlink()
    result = callysto("backup", "verify", str(archive), "--identity", str(keys["identity"]),
                      "--signer-file", str(keys["signers"]))  # fmt: skip
    one_line_error(result, refusal, code=1)


# --- restore honours the lock -------------------------------------------------------------------


def test_restore_with_force_waits_for_no_lock_another_operator_holds(
    callysto, estate, keys, tmp_path, one_line_error
):
    dest = tmp_path / "dest"
    dest.mkdir()
    made = callysto(
        "backup", "--to", str(dest), "--recipients-file", str(keys["recipients"]),
        "--signing-key", str(keys["signing_key"]),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    archive = Path(made.stdout.strip())
    state = estate / "brave-otter" / "terraform.tfstate"
    state.write_text('{"version": 4, "serial": 2}')  # the other operator's newer state
    with locking.hold(estate / "brave-otter", "brave-otter", "terraform apply"):
        result = callysto(*restore_args(archive, estate.parent, keys, "--force"))
    one_line_error(result, "'brave-otter' is busy", "terraform apply", code=1)
    assert state.read_text() == '{"version": 4, "serial": 2}'
    assert not list(estate.parent.glob(".callysto-restore-*"))
    again = callysto(*restore_args(archive, estate.parent, keys, "--force"))  # lock released
    assert again.returncode == 0, again.stderr
    assert json.loads(state.read_text()).get("serial") is None


# --- verify streams within bounded memory --------------------------------------------------------

PEAK_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss(callysto_args: list[str], envs_dir: Path) -> tuple[int, int, str]:
    """Exit code and peak resident memory (bytes) of one `callysto` run, measured in a process of
    its own so that no other child of the test counts."""
    from tests.conftest import CALLYSTO

    env = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(CALLYSTO), *callysto_args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    code, kib = done.stdout.split()
    return int(code), int(kib) * 1024, done.stderr


def test_verify_of_a_small_archive_of_much_content_stays_within_bounded_memory(
    estate, keys, tmp_path
):
    """1 GiB of zeros packs into an archive of about 1 MB; verify once held all of it (1.1 GB)."""
    zeros = estate / "brave-otter" / "secrets" / "zeros.bin"
    with zeros.open("wb") as handle:
        handle.truncate(1 << 30)
    dest = tmp_path / "dest"
    dest.mkdir()
    signing_key = backup_signing.read_signing_key(keys["signing_key"])
    key = backup.encryption_key(recipients_file=keys["recipients"])
    archive = backup.create(dest, key, signing_key).path
    zeros.unlink()
    assert archive.stat().st_size < 3 * MiB
    code, peak, stderr = peak_rss(
        ["backup", "verify", str(archive), "--identity", str(keys["identity"]),
         "--signer-file", str(keys["signers"])],
        estate,
    )  # fmt: skip
    assert code == 0, stderr
    assert "verified" in stderr and ", 1G," in stderr, stderr  # all of the content was read
    assert peak < 200 * MiB, f"verify peaked at {peak / MiB:.0f} MiB"


# --- homes backups ------------------------------------------------------------------------------


def test_homes_backup_refuses_a_missing_folder(callysto, envs_dir, tmp_path, one_line_error):
    environments.create("local")
    mistyped = tmp_path / "mistyped" / "dir"
    result = callysto("backup", "homes", "--env", "local", "--to", str(mistyped))
    one_line_error(result, "does not exist", "--to", code=2)
    assert not mistyped.exists() and not mistyped.parent.exists()


@pytest.fixture
def local_hub(envs_dir, zfs_pool):
    """A local environment whose hub is this machine, zfs_pool its pool, with one student."""
    env = environments.create("local")
    path = env.path / "env.yaml"
    config = yaml.safe_load(path.read_text())
    config["hub"]["pool"] = zfs_pool.name
    path.write_text(yaml.safe_dump(config))
    subprocess.run(["zfs", "create", f"{zfs_pool.name}/home/{'a' * 40}"], check=True)
    (zfs_pool.mountpoint / "home" / ("a" * 40) / "notebook.ipynb").write_text("{}\n")
    return env


def test_homes_backup_streams_are_private_and_old_ones_are_fixed(callysto, local_hub, tmp_path):
    folder = tmp_path / "streams"
    folder.mkdir()
    hub_folder = folder / "localhost"
    hub_folder.mkdir(mode=0o755)
    hub_folder.chmod(0o755)
    old = hub_folder / "callysto-20200101T000000Z.full.zfs"  # a stream of an earlier run
    old.write_bytes(b"earlier stream")
    old.chmod(0o644)
    result = callysto("backup", "homes", "--env", "local", "--to", str(folder))
    assert result.returncode == 0, result.stderr
    streams = sorted(hub_folder.iterdir())
    assert len(streams) == 2
    assert hub_folder.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in streams} == {p.name: 0o600 for p in streams}


# --- every bad input around signatures: one line, nothing changed -------------------------------


def _signed_archive(callysto, keys, tmp_path) -> Path:
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    made = callysto(
        "backup", "--to", str(dest), "--recipients-file", str(keys["recipients"]),
        "--signing-key", str(keys["signing_key"]),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return Path(made.stdout.strip())


def _verify(archive: Path, keys: dict) -> list[str]:
    return ["backup", "verify", str(archive), "--identity", str(keys["identity"]),
            "--signer-file", str(keys["signers"])]  # fmt: skip


def _garbage_signature(archive, keys, tmp_path):
    backup_signing.signature_path(archive).write_bytes(b"\xff\x00 not a signature\n")
    return _verify(archive, keys), "not a callysto backup signature", 1


def _renamed(archive, keys, tmp_path):
    other = archive.with_name(archive_name())
    archive.rename(other)
    backup_signing.signature_path(archive).rename(backup_signing.signature_path(other))
    return _verify(other, keys), "signs an archive named", 1


def _changed_after_signing(archive, keys, tmp_path):
    data = bytearray(archive.read_bytes())
    data[-1] ^= 1
    archive.write_bytes(bytes(data))
    return _verify(archive, keys), "is damaged or was replaced", 1


def _signers_writable_by_others(archive, keys, tmp_path):
    keys["signers"].chmod(0o666)
    return _verify(archive, keys), "chmod go-w", 2


def _no_trusted_signers(archive, keys, tmp_path):
    return (
        ["backup", "verify", str(archive), "--identity", str(keys["identity"])],
        ("backup.trusted_signers"),
        2,
    )


def _signers_file_of_secret_keys(archive, keys, tmp_path):
    keys["signers"].write_text(keys["signing_key"].read_text())
    return _verify(archive, keys), "expected an Ed25519 public key", 2


def _signing_key_readable_by_others(archive, keys, tmp_path):
    keys["signing_key"].chmod(0o644)
    args = ["backup", "--to", str(archive.parent), "--recipients-file", str(keys["recipients"])]
    return [*args, "--signing-key", str(keys["signing_key"])], "chmod 600", 2


def _no_signing_key(archive, keys, tmp_path):
    args = ["backup", "--to", str(archive.parent), "--recipients-file", str(keys["recipients"])]
    return args, "no signing key", 2


def _signing_key_not_a_key(archive, keys, tmp_path):
    private(keys["signing_key"], "hello\n")
    args = ["backup", "--to", str(archive.parent), "--recipients-file", str(keys["recipients"])]
    return [*args, "--signing-key", str(keys["signing_key"])], "not a private key", 2


def _keygen_over_an_existing_key(archive, keys, tmp_path):
    args = ["backup", "keygen", "--signing-key", str(keys["signing_key"])]
    return [*args, "--signer-file", str(keys["signers"])], "already exists", 2


def _sign_a_signed_archive(archive, keys, tmp_path):
    args = ["backup", "sign", str(archive), "--identity", str(keys["identity"])]
    return [*args, "--signing-key", str(keys["signing_key"])], "already signed", 2


BAD_INPUTS = {
    "garbage-signature": _garbage_signature,
    "renamed-archive": _renamed,
    "changed-after-signing": _changed_after_signing,
    "signers-file-writable-by-others": _signers_writable_by_others,
    "no-trusted-signers": _no_trusted_signers,
    "signers-file-of-secret-keys": _signers_file_of_secret_keys,
    "signing-key-readable-by-others": _signing_key_readable_by_others,
    "no-signing-key": _no_signing_key,
    "signing-key-not-a-key": _signing_key_not_a_key,
    "keygen-over-an-existing-key": _keygen_over_an_existing_key,
    "sign-a-signed-archive": _sign_a_signed_archive,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_signature_input_is_one_line_and_changes_nothing(
    callysto, estate, keys, tmp_path, one_line_error, case
):
    archive = _signed_archive(callysto, keys, tmp_path)
    args, fragment, code = BAD_INPUTS[case](archive, keys, tmp_path)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    result = callysto(*args)
    line = one_line_error(result, fragment, code=code)
    assert "PRIVATE KEY" not in line and "PRIVATE KEY" not in result.stdout
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after == before


def test_an_archive_replaced_after_its_signature_was_checked_counts_for_nothing(
    callysto, estate, keys, tmp_path
):
    """The bytes decrypted must be the bytes signed: the check is not only done beforehand."""
    archive = _signed_archive(callysto, keys, tmp_path)
    key = backup.decryption_key(identity=keys["identity"])
    signed = backup_signing.Signed("", "0" * 64)  # what a swap after the check amounts to
    with pytest.raises(OperationError, match="changed while it was read"):
        backup._read_plain(archive, key, signed, lambda stream: stream.read())
