"""Encrypted archives of every environment's sensitive data (env.yaml, secrets/, Terraform state
and its saved copies, group_vars): age-encrypted tar with a SHA-256 manifest, verified and restored.

The plain tar never touches disk: it is built in memory and only ciphertext is written."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from callysto_infra import environments, secretfiles
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.progress import Advance, no_progress
from callysto_infra.sizes import human_size

MANIFEST = "MANIFEST.json"
ARCHIVE_RE = re.compile(r"^callysto-backup-(\d{8}T\d{6}\.\d{3}Z)\.tar\.gz\.age$")
AGE_MAGIC = b"age-encryption.org/v1\n"
FORMAT = 1

# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """What encrypts or decrypts an archive: age recipients/identities, or a passphrase."""

    recipients: tuple = ()
    identities: tuple = ()
    passphrase: str | None = None
    source: str = ""

    @property
    def is_passphrase(self) -> bool:
        return self.passphrase is not None


def read_passphrase(path: Path) -> str:
    text = secretfiles.read_text(path, "passphrase file")
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"passphrase file {path} is empty: put the passphrase on its first line")
    return lines[0]


def parse_recipient(text: str, where: str):
    from pyrage import RecipientError, ssh, x25519

    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith("ssh-"):
            return ssh.Recipient.from_str(text)
    except RecipientError as exc:
        raise UsageError(f"{where}: not a valid age public key ({exc})") from None
    raise UsageError(f"{where}: expected an age public key (age1...) or an SSH public key")


def read_recipients_file(path: Path) -> list:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"recipients file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"recipients file {path} cannot be read ({exc.strerror})") from None
    found = [
        parse_recipient(line.strip(), f"{path} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not found:
        raise UsageError(f"recipients file {path} lists no public key")
    return found


def read_identity_file(path: Path) -> list:
    from pyrage import IdentityError, ssh, x25519

    text = secretfiles.read_text(path, "identity file")
    try:
        if text.lstrip().startswith("-----BEGIN OPENSSH PRIVATE KEY-----"):
            return [ssh.Identity.from_buffer(text.encode())]
        found = [
            x25519.Identity.from_str(line.strip())
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    except IdentityError as exc:
        raise UsageError(f"identity file {path}: not an age identity ({exc})") from None
    if not found:
        raise UsageError(f"identity file {path} holds no AGE-SECRET-KEY-1... line")
    return found


def encryption_key(
    recipient: tuple[str, ...] = (),
    recipients_file: Path | None = None,
    passphrase_file: Path | None = None,
    configured=None,
) -> Key:
    """The key named by options, else by callysto.yaml; refuses when there is none."""
    given = bool(recipient) or recipients_file is not None or passphrase_file is not None
    if not given and configured is not None:
        settings = configured.backup
        recipient = tuple(settings.recipients)
        recipients_file = configured.resolve(settings.recipients_file)
        passphrase_file = configured.resolve(settings.passphrase_file)
    if passphrase_file is not None and (recipient or recipients_file is not None):
        raise UsageError(
            "give either age recipients or a passphrase file, not both: an archive has one key"
        )
    if passphrase_file is not None:
        return Key(passphrase=read_passphrase(passphrase_file), source=str(passphrase_file))
    recipients = [parse_recipient(r, "--recipient") for r in recipient]
    if recipients_file is not None:
        recipients += read_recipients_file(recipients_file)
    if not recipients:
        raise UsageError(
            "no encryption key configured, so nothing was written (backups are never plain "
            "text): give --recipient, --recipients-file or --passphrase-file, or set "
            "backup.recipients_file in callysto.yaml"
        )
    return Key(recipients=tuple(recipients), source="recipients")


def decryption_key(
    identity: Path | None = None, passphrase_file: Path | None = None, configured=None
) -> Key:
    """The key named by options, else by callysto.yaml."""
    if identity is not None and passphrase_file is not None:
        raise UsageError("give --identity or --passphrase-file, not both")
    if identity is None and passphrase_file is None and configured is not None:
        identity = configured.resolve(configured.backup.identity_file)
        if identity is None:
            passphrase_file = configured.resolve(configured.backup.passphrase_file)
    if identity is not None:
        return Key(identities=tuple(read_identity_file(identity)), source=str(identity))
    if passphrase_file is not None:
        return Key(passphrase=read_passphrase(passphrase_file), source=str(passphrase_file))
    raise UsageError(
        "no decryption key: give --identity FILE or --passphrase-file FILE, or set "
        "backup.identity_file in callysto.yaml"
    )


# --- what goes in -------------------------------------------------------------------------------


def sensitive_files(root: Path | None = None) -> list[tuple[Path, str]]:
    """(file, name in the archive) for every environment's env.yaml, secrets, Terraform state and
    its saved copies, and group_vars. Environments are not validated: a broken env.yaml is
    exactly the kind of thing one wants back."""
    root = root or environments.envs_dir()
    found: list[tuple[Path, str]] = []
    if not root.is_dir():
        return found
    for env_dir in sorted(p for p in root.iterdir() if (p / environments.ENV_FILE).is_file()):
        candidates = [env_dir / environments.ENV_FILE]
        candidates += sorted(env_dir.glob("terraform.tfstate*"))
        for sub in ("secrets", "state-backups", "group_vars"):
            if (env_dir / sub).is_dir():
                candidates += sorted(p for p in (env_dir / sub).rglob("*"))
        for path in candidates:
            if path.is_file() and not path.is_symlink():
                found.append((path, f"envs/{path.relative_to(root).as_posix()}"))
    return found


# --- writing ------------------------------------------------------------------------------------


@dataclass
class Summary:
    path: Path
    files: int
    bytes: int
    seconds: float
    removed: list[Path] = field(default_factory=list)

    def line(self, verb: str) -> str:
        return (
            f"{verb} {self.path}: {self.files} files, {human_size(self.bytes)}, "
            f"{self.seconds:.1f} s"
        )


class _Hashing:
    """Reads through to FILE, hashing every byte that passes (tarfile only calls read)."""

    def __init__(self, file: BinaryIO, advance: Advance):
        self.file, self.advance = file, advance
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(n)
        self.sha256.update(data)
        self.size += len(data)
        self.advance(len(data))
        return data


def destination_folder(given: Path | None, configured) -> Path:
    """The folder of archives: GIVEN (--to), else backup.destination in callysto.yaml."""
    if given is not None:
        return given
    path = configured.resolve(configured.backup.destination)
    if path is None:
        raise UsageError(
            "no backup destination: give --to DIR or set backup.destination in callysto.yaml"
        )
    return path


def check_destination(destination: Path) -> Path:
    if not destination.exists():
        raise UsageError(
            f"backup destination {destination} does not exist: create it or give another with --to"
        )
    if not destination.is_dir():
        raise UsageError(f"backup destination {destination} is not a folder")
    # Trying is the only test that holds everywhere: root ignores modes, and a read-only
    # mount (or FUSE, NFS, ACLs) is not always visible to access().
    try:
        with tempfile.NamedTemporaryFile(dir=destination, prefix=".callysto-probe-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"backup destination {destination} is not writable ({exc.strerror}): "
            "fix its permissions or give another with --to"
        ) from None
    return destination


def archive_name(now: dt.datetime) -> str:
    stamp = now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"
    return f"callysto-backup-{stamp}.tar.gz.age"


def build_tar(files: list[tuple[Path, str]], advance: Advance = no_progress) -> tuple[bytes, dict]:
    """The gzip'd tar of FILES plus its manifest, in memory, and the manifest."""
    buffer = io.BytesIO()
    manifest: dict = {
        "format": FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {},
    }
    # zlib's own default level, rather than tarfile's maximum of 9.
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path, name in files:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                reader = _Hashing(handle, advance)
                tar.addfile(info, reader)  # type: ignore[arg-type]
            manifest["files"][name] = {
                "sha256": reader.sha256.hexdigest(),
                "size": reader.size,
                "mode": f"{info.mode & 0o7777:04o}",
            }
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), manifest


def encrypt(plain: bytes, key: Key, out: BinaryIO) -> None:
    import pyrage

    if key.is_passphrase:
        out.write(pyrage.passphrase.encrypt(plain, key.passphrase))
    else:
        pyrage.encrypt_io(io.BytesIO(plain), out, list(key.recipients))


def create(
    destination: Path,
    key: Key,
    keep: int | None = None,
    advance: Advance = no_progress,
    root: Path | None = None,
) -> Summary:
    """Write one encrypted archive into DESTINATION, then keep only the newest KEEP archives."""
    started = time.monotonic()
    check_destination(destination)
    files = sensitive_files(root)
    if not files:
        raise UsageError(
            f"no environments under {root or environments.envs_dir()}: nothing to back up"
        )
    plain, manifest = build_tar(files, advance)
    target = destination / archive_name(dt.datetime.now(dt.UTC))
    partial = target.with_name(f".{target.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            encrypt(plain, key, out)
            out.flush()
            os.fsync(out.fileno())
        # Only a complete archive ever carries the real name.
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OperationError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    removed = prune(destination, keep) if keep else []
    total = sum(entry["size"] for entry in manifest["files"].values())
    return Summary(target, len(files), total, time.monotonic() - started, removed)


def archives(destination: Path) -> list[Path]:
    """The archives in DESTINATION, oldest first (the name carries the time)."""
    if not destination.is_dir():
        raise UsageError(f"backup destination {destination} does not exist or is not a folder")
    return sorted(p for p in destination.iterdir() if ARCHIVE_RE.fullmatch(p.name) and p.is_file())


def prune(destination: Path, keep: int) -> list[Path]:
    """Remove all but the newest KEEP archives; only files named like ours are considered."""
    found = archives(destination)
    old = found[:-keep] if keep else []
    for path in old:
        path.unlink()
    return old


# --- reading ------------------------------------------------------------------------------------


def _header_stanzas(path: Path) -> set[str]:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise UsageError(f"archive {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"archive {path} cannot be read ({exc.strerror})") from None
    if not head.startswith(AGE_MAGIC):
        raise OperationError(f"{path} is not an age-encrypted archive (damaged or a wrong file)")
    return {
        line.split(b" ")[1].decode("ascii", "replace")
        for line in head.split(b"\n")
        if line.startswith(b"-> ") and len(line.split(b" ")) > 1
    }


def decrypt(path: Path, key: Key) -> bytes:
    """The plain tar of PATH. A wrong key is bad input (exit 2); damage is a failure (exit 1)."""
    import pyrage

    stanzas = _header_stanzas(path)
    if "scrypt" in stanzas and not key.is_passphrase:
        raise UsageError(f"{path} was encrypted with a passphrase: give --passphrase-file FILE")
    if "scrypt" not in stanzas and key.is_passphrase:
        raise UsageError(f"{path} was encrypted to age keys: give --identity FILE")
    data = path.read_bytes()
    try:
        if key.is_passphrase:
            return pyrage.passphrase.decrypt(data, key.passphrase)
        return pyrage.decrypt(data, list(key.identities))
    except pyrage.DecryptError as exc:
        reason = str(exc)
        if reason == "No matching keys found":
            raise UsageError(
                f"{path} cannot be decrypted with {key.source}: it was encrypted to other keys"
            ) from None
        if key.is_passphrase and reason == "Decryption failed":
            raise UsageError(
                f"{path} cannot be decrypted with the passphrase in {key.source}: wrong passphrase"
            ) from None
        raise OperationError(
            f"{path} is damaged: it fails age's integrity check ({reason}); use another archive"
        ) from None


def _members(plain: bytes) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
            for info in tar:
                handle = tar.extractfile(info) if info.isfile() else None
                yield info, handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise OperationError(f"the archive's contents are not a readable tar ({exc})") from None


def _safe_name(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or pure.parts[0] != "envs":
        raise OperationError(f"the archive holds an unexpected path '{name}': refusing it")
    return name


@dataclass
class Contents:
    manifest: dict
    files: dict[str, tuple[tarfile.TarInfo, bytes]]

    @property
    def bytes(self) -> int:
        return sum(len(data) for _info, data in self.files.values())


def check(path: Path, plain: bytes, advance: Advance = no_progress) -> Contents:
    """Every file of the archive against its manifest entry: same set, sizes and SHA-256."""
    manifest = None
    files: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    for info, data in _members(plain):
        if info.name == MANIFEST:
            try:
                manifest = json.loads(data)
            except ValueError:
                raise OperationError(f"{path}: its manifest is not valid JSON") from None
            continue
        if not info.isfile():
            raise OperationError(f"{path}: unexpected member '{info.name}' (not a regular file)")
        files[_safe_name(info.name)] = (info, data)
        advance(len(data))
    if manifest is None or not isinstance(manifest.get("files"), dict):
        raise OperationError(f"{path} has no manifest: it was not written by 'callysto backup'")
    listed = manifest["files"]
    for name in sorted(set(listed) | set(files)):
        if name not in files:
            raise OperationError(f"{path}: {name} is in the manifest but missing from the archive")
        if name not in listed:
            raise OperationError(f"{path}: {name} is in the archive but not in its manifest")
        digest = hashlib.sha256(files[name][1]).hexdigest()
        if digest != listed[name].get("sha256"):
            raise OperationError(f"{path}: {name} does not match its SHA-256 in the manifest")
    return Contents(manifest, files)


def verify(path: Path, key: Key, advance: Advance = no_progress) -> Summary:
    started = time.monotonic()
    contents = check(path, decrypt(path, key), advance)
    return Summary(path, len(contents.files), contents.bytes, time.monotonic() - started)


def restore(
    path: Path, to: Path, key: Key, force: bool = False, advance: Advance = no_progress
) -> Summary:
    """Verify PATH, then write its files under TO (as envs/<ENV>/...). Existing files are never
    overwritten without FORCE; then every written file is read back against the manifest."""
    started = time.monotonic()
    if to.exists() and not to.is_dir():
        raise UsageError(f"restore target {to} is not a folder")
    contents = check(path, decrypt(path, key))
    existing = [name for name in contents.files if (to / name).exists()]
    if existing and not force:
        raise UsageError(
            f"{len(existing)} file(s) already exist under {to} (first: {existing[0]}): nothing "
            "was restored; use --force to overwrite them, or restore into an empty folder"
        )
    try:
        to.mkdir(parents=True, exist_ok=True)
        for name, (info, data) in sorted(contents.files.items()):
            _write_file(to, name, info, data)
            advance(len(data))
    except OSError as exc:
        raise OperationError(f"cannot restore into {to}: {exc.strerror} ({exc.filename})") from None
    for name in contents.files:
        digest = hashlib.sha256((to / name).read_bytes()).hexdigest()
        if digest != contents.manifest["files"][name]["sha256"]:
            raise OperationError(f"{to / name} differs from the archive after writing it")
    return Summary(to, len(contents.files), contents.bytes, time.monotonic() - started)


def _write_file(root: Path, name: str, info: tarfile.TarInfo, data: bytes) -> None:
    target = root / name
    for parent in reversed(target.relative_to(root).parents):
        directory = root / parent
        if not directory.exists():
            # Secrets' folders are private, like the ones environments.create makes.
            directory.mkdir(mode=0o700 if directory.name == "secrets" else 0o755)
    partial = target.with_name(f".{target.name}.restoring")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, info.mode & 0o7777 or 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(partial, info.mode & 0o7777)
    os.utime(partial, (info.mtime, info.mtime))
    os.replace(partial, target)


def describe(destination: Path) -> list[dict]:
    """One row per archive, newest first, for `backup list`."""
    rows = []
    for path in reversed(archives(destination)):
        stamp = ARCHIVE_RE.fullmatch(path.name).group(1)  # type: ignore[union-attr]
        created = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
        rows.append(
            {
                "archive": path.name,
                "path": str(path),
                "created": created.isoformat(timespec="seconds"),
                "bytes": path.stat().st_size,
            }
        )
    return rows
