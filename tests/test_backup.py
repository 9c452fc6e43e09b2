"""`callysto backup`: encrypted archives of every environment's sensitive data, restored
byte-identical, refused without a key, and checked against damage and wrong keys."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from callysto_infra import backup, backup_signing, environments
from callysto_infra.errors import OperationError

AGE_MAGIC = b"age-encryption.org/v1\n"


@pytest.fixture(autouse=True)
def project_config(tmp_path, monkeypatch) -> Path:
    """A private callysto.yaml path (absent until a test writes it): the project's is never read."""
    path = tmp_path / "callysto.yaml"
    monkeypatch.setenv("CALLYSTO_CONFIG", str(path))
    return path


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def keys(tmp_path):
    """An age identity (0600 file), its recipients file, a stranger's identity, a passphrase, and
    the operator's signing key with the trusted signers file listing it."""
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    signing_key, signers = folder / "signing-key", folder / "trusted-signers"
    backup_signing.keygen(signing_key, signers)
    mine, stranger = x25519.Identity.generate(), x25519.Identity.generate()
    recipients = folder / "recipients.txt"
    recipients.write_text(f"# the operators' backup key\n{mine.to_public()}\n")
    return {
        "identity": secret_file(folder / "identity.txt", f"{mine}\n"),
        "stranger": secret_file(folder / "stranger.txt", f"{stranger}\n"),
        "recipients": recipients,
        "passphrase": secret_file(folder / "passphrase", "correct horse battery staple\n"),
        "wrong_passphrase": secret_file(folder / "wrong", "incorrect horse\n"),
        "signing_key": signing_key,
        "signers": signers,
    }


@pytest.fixture
def estate(envs_dir):
    """Two environments with everything a backup must carry, binary files included."""
    local = environments.create("local")
    dev = environments.create("dev", "brave-otter")
    secret_file(dev.ssh_key_file, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n")
    (dev.secrets_dir / "ssh-key.pub").write_text("ssh-ed25519 AAAA operators\n")
    secret_file(dev.secrets_dir / "tls.key", os.urandom(3000).hex())
    (dev.secrets_dir / "blob.bin").write_bytes(os.urandom(70_000))
    dev.state_file.write_text(json.dumps({"version": 4, "outputs": {"hosts": {"value": {}}}}))
    (dev.path / "terraform.tfstate.backup").write_text('{"version": 4}')
    (dev.path / "state-backups").mkdir()
    (dev.path / "state-backups" / "terraform.tfstate.20261126T090000Z").write_text('{"v": 3}')
    (dev.group_vars_dir / "all.yml").write_text("jupyterhub_admin: ops\n")
    (local.group_vars_dir / "hub.yml").write_text("refquota: 1G\n")
    # Not sensitive, not ours: must not be carried.
    (dev.path / "main.tf").write_text("# generated\n")
    return envs_dir


def snapshot_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"  # a command's lock, never backed up
    }


def sensitive(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if not k.endswith("main.tf")}


def make_backup(callysto, dest: Path, keys: dict, *key_args: str) -> Path:
    dest.mkdir(exist_ok=True)
    result = callysto(
        "backup", "--to", str(dest), "--signing-key", str(keys["signing_key"]), *key_args
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == dest and path.is_file()
    return path


def test_backup_delete_restore_gives_back_every_file_byte_identical(
    callysto, estate, keys, tmp_path
):
    before = snapshot_tree(estate)
    archive = make_backup(
        callysto, tmp_path / "dest", keys, "--recipients-file", str(keys["recipients"])
    )
    data = archive.read_bytes()
    assert data.startswith(AGE_MAGIC)
    salt = (estate / "local" / "secrets" / "saml-salt").read_text().strip()
    assert salt.encode() not in data and b"jupyterhub_admin" not in data
    assert archive.stat().st_mode & 0o777 == 0o600

    shutil.rmtree(estate)  # the originals are gone
    result = callysto(
        "backup",
        "restore",
        str(archive),
        "--signer-file",
        str(keys["signers"]),
        "--to",
        str(tmp_path),
        "--identity",
        str(keys["identity"]),
    )
    assert result.returncode == 0, result.stderr
    after = snapshot_tree(estate)
    assert after == sensitive(before)
    assert "envs/brave-otter/main.tf" not in after
    assert (estate / "brave-otter" / "secrets").stat().st_mode & 0o777 == 0o700
    assert "restored into" in result.stderr and f"{len(after)} files" in result.stderr


def test_archive_opens_with_the_standard_age_tool(callysto, estate, keys, tmp_path):
    """An operator without this project can still get the data back: age + tar."""
    archive = make_backup(
        callysto, tmp_path / "dest", keys, "--recipients-file", str(keys["recipients"])
    )
    plain = subprocess.run(
        ["age", "-d", "-i", str(keys["identity"]), str(archive)], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert "envs/brave-otter/secrets/ssh-key" in names
    assert "envs/brave-otter/state-backups/terraform.tfstate.20261126T090000Z" in names
    assert "envs/brave-otter/terraform.tfstate.backup" in names
    assert set(manifest["files"]) == set(names) - {"MANIFEST.json"}


def test_passphrase_and_destination_come_from_callysto_yaml(
    callysto, estate, keys, tmp_path, project_config
):
    dest = tmp_path / "archives"
    dest.mkdir()
    project_config.write_text(
        f"backup:\n  destination: archives\n  passphrase_file: {keys['passphrase']}\n  keep: 5\n"
        f"  signing_key_file: {keys['signing_key']}\n  trusted_signers: {keys['signers']}\n"
    )
    result = callysto("backup")
    assert result.returncode == 0, result.stderr
    archive = Path(result.stdout.strip())
    assert archive.parent == dest
    assert b"-> scrypt" in archive.read_bytes()[:200]
    assert "correct horse" not in result.stdout + result.stderr

    listed = callysto("backup", "list", "--json")
    assert [row["archive"] for row in json.loads(listed.stdout)] == [archive.name]
    verified = callysto("backup", "verify", str(archive))  # passphrase file from the config
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.startswith(f"verified {archive}: ")


def test_verify_with_a_wrong_identity_fails_clearly(
    callysto, estate, keys, tmp_path, one_line_error
):
    archive = make_backup(
        callysto, tmp_path / "dest", keys, "--recipients-file", str(keys["recipients"])
    )
    result = callysto(
        "backup",
        "verify",
        str(archive),
        "--signer-file",
        str(keys["signers"]),
        "--identity",
        str(keys["stranger"]),
    )
    line = one_line_error(result, code=2)
    assert "encrypted to other keys" in line and str(keys["stranger"]) in line


def test_verify_with_a_wrong_passphrase_fails_clearly(
    callysto, estate, keys, tmp_path, one_line_error
):
    archive = make_backup(
        callysto, tmp_path / "dest", keys, "--passphrase-file", str(keys["passphrase"])
    )
    wrong = callysto(
        "backup",
        "verify",
        str(archive),
        "--signer-file",
        str(keys["signers"]),
        "--passphrase-file",
        str(keys["wrong_passphrase"]),
    )
    assert "wrong passphrase" in one_line_error(wrong, code=2)
    with_identity = callysto(
        "backup",
        "verify",
        str(archive),
        "--signer-file",
        str(keys["signers"]),
        "--identity",
        str(keys["identity"]),
    )
    assert "encrypted with a passphrase" in one_line_error(with_identity, code=2)


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate"])
def test_verify_detects_a_damaged_archive(callysto, estate, keys, tmp_path, damage, one_line_error):
    archive = make_backup(
        callysto, tmp_path / "dest", keys, "--recipients-file", str(keys["recipients"])
    )
    data = bytearray(archive.read_bytes())
    if damage == "flip-a-byte":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) - 40 :]
    archive.write_bytes(bytes(data))
    result = callysto(
        "backup",
        "verify",
        str(archive),
        "--signer-file",
        str(keys["signers"]),
        "--identity",
        str(keys["identity"]),
    )
    assert "is damaged" in one_line_error(result, code=1)
    restored = tmp_path / "restored"
    result = callysto(
        "backup",
        "restore",
        str(archive),
        "--signer-file",
        str(keys["signers"]),
        "--to",
        str(restored),
        "--identity",
        str(keys["identity"]),
    )
    one_line_error(result, code=1)
    assert not restored.exists()


def test_verify_catches_a_file_that_differs_from_its_manifest(estate, keys, tmp_path):
    """Damage age cannot see (a file changed before encryption) is caught by the checksums."""
    files = backup.sensitive_files()
    plain, manifest = backup.build_tar(files)
    name = "envs/brave-otter/secrets/tls.key"
    manifest["files"][name]["sha256"] = "0" * 64
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as src,
        tarfile.open(fileobj=buffer, mode="w:gz") as dst,
    ):
        for info in src:
            data = src.extractfile(info).read()
            if info.name == backup.MANIFEST:
                data = json.dumps(manifest).encode()
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    identity = x25519.Identity.from_str(keys["identity"].read_text().strip())
    archive = tmp_path / "tampered.tar.gz.age"
    archive.write_bytes(pyrage.encrypt(buffer.getvalue(), [identity.to_public()]))
    # Signed by the operator: the signature vouches for who made it, the manifest for its files.
    backup_signing.sign(archive, backup_signing.read_signing_key(keys["signing_key"]))
    key = backup.decryption_key(identity=keys["identity"])
    signers = backup_signing.read_signers(keys["signers"])
    with pytest.raises(OperationError, match=f"{name} does not match its SHA-256"):
        backup.verify(archive, key, signers)


def test_backup_refuses_to_write_plain_text_without_a_key(
    callysto, estate, tmp_path, one_line_error
):
    dest = tmp_path / "dest"
    dest.mkdir()
    result = callysto("backup", "--to", str(dest))
    assert "no encryption key configured" in one_line_error(result, code=2)
    assert list(dest.iterdir()) == []


def test_backup_to_a_missing_destination_says_so(callysto, estate, keys, tmp_path, one_line_error):
    missing = tmp_path / "nowhere"
    result = callysto("backup", "--to", str(missing), "--recipients-file", str(keys["recipients"]))
    assert "does not exist" in one_line_error(result, code=2)
    assert not missing.exists()
    assert snapshot_tree(estate)  # the originals are untouched


def test_backup_to_a_read_only_destination_says_so(
    callysto, estate, keys, zfs_pool, one_line_error
):
    """A read-only file system refuses even root, so this holds for any user."""
    subprocess.run(["zfs", "set", "readonly=on", f"{zfs_pool.name}/home"], check=True)
    dest = zfs_pool.mountpoint / "home"
    result = callysto("backup", "--to", str(dest), "--recipients-file", str(keys["recipients"]))
    assert "is not writable" in one_line_error(result, code=2)
    assert list(dest.iterdir()) == []


def test_restore_never_overwrites_without_force(callysto, estate, keys, tmp_path, one_line_error):
    archive = make_backup(
        callysto, tmp_path / "dest", keys, "--recipients-file", str(keys["recipients"])
    )
    env_yaml = estate / "local" / "env.yaml"
    original = env_yaml.read_bytes()
    env_yaml.write_text("# edited since the backup\n")
    restore = ["backup", "restore", str(archive), "--to", str(tmp_path)]
    restore += ["--signer-file", str(keys["signers"])]
    restore += ["--identity", str(keys["identity"])]
    result = callysto(*restore)
    assert "use --force" in one_line_error(result, code=2)
    assert env_yaml.read_text() == "# edited since the backup\n"

    result = callysto(*restore, "--force")
    assert result.returncode == 0, result.stderr
    assert env_yaml.read_bytes() == original


def test_retention_keeps_the_newest_archives(callysto, estate, keys, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "notes.txt").write_text("not an archive: never removed\n")
    written = [
        make_backup(
            callysto, dest, keys, "--recipients-file", str(keys["recipients"]), "--keep", "2"
        )
        for _ in range(4)
    ]
    remaining = sorted(p.name for p in dest.iterdir())
    kept = [written[2].name, written[3].name]
    assert remaining == sorted([*kept, *(f"{name}.sig" for name in kept), "notes.txt"])
    listed = callysto("backup", "list", "--to", str(dest), "--json")
    assert [row["archive"] for row in json.loads(listed.stdout)] == [
        written[3].name,
        written[2].name,
    ]


def test_callysto_yaml_refuses_a_secret_key(callysto, estate, project_config, one_line_error):
    identity = x25519.Identity.generate()
    project_config.write_text(f"backup:\n  recipients: ['{identity}']\n")
    result = callysto("backup", "list")
    line = one_line_error(result, code=2)
    assert "SECRET key" in line and str(identity) not in line


def test_passphrase_file_readable_by_others_is_refused(
    callysto, estate, keys, tmp_path, one_line_error
):
    keys["passphrase"].chmod(0o644)
    dest = tmp_path / "dest"
    dest.mkdir()
    result = callysto("backup", "--to", str(dest), "--passphrase-file", str(keys["passphrase"]))
    assert "chmod 600" in one_line_error(result, code=2)
    assert list(dest.iterdir()) == []


def test_an_unwritable_destination_mid_write_leaves_no_partial_archive(estate, keys, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    key = backup.encryption_key(recipients_file=keys["recipients"])
    signing_key = backup_signing.read_signing_key(keys["signing_key"])

    class Boom(Exception):
        pass

    def explode(_n):
        raise Boom

    with pytest.raises(Boom):
        backup.create(dest, key, signing_key, advance=explode)
    assert list(dest.iterdir()) == []
