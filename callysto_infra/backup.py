"""Encrypted archives of every environment's sensitive data (env.yaml, secrets/, Terraform state
and its saved copies, group_vars): age-encrypted tar with a SHA-256 manifest, verified and restored.

The plain tar never touches disk: it is built in memory and only ciphertext is written."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from callysto_infra import backup_signing, environments, locking, secretfiles, validate
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
    signing_key,
    keep: int | None = None,
    advance: Advance = no_progress,
    root: Path | None = None,
) -> Summary:
    """Write one encrypted archive into DESTINATION and its signature by SIGNING_KEY beside it,
    then keep only the newest KEEP archives."""
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
    signature = backup_signing.signature_path(target)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            encrypt(plain, key, out)
            out.flush()
            os.fsync(out.fileno())
        # The signature first, then the archive: an archive under its real name is whole and
        # signed.
        backup_signing.sign(partial, signing_key, signed_name=target.name)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        signature.unlink(missing_ok=True)
        raise OperationError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        signature.unlink(missing_ok=True)
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
        backup_signing.signature_path(path).unlink(missing_ok=True)
    return old


# --- reading ------------------------------------------------------------------------------------

CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 16 << 20
_PART_RE = re.compile(r"[^/\x00-\x1f\x7f]+")
_KIND_RE = re.compile(r"env\.yaml|terraform\.tfstate[^/]*|(?:secrets|state-backups|group_vars)/.+")
PRIVATE_FOLDERS = ("secrets", "state-backups")


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


def _check_key_kind(path: Path, key: Key) -> None:
    stanzas = _header_stanzas(path)
    if "scrypt" in stanzas and not key.is_passphrase:
        raise UsageError(f"{path} was encrypted with a passphrase: give --passphrase-file FILE")
    if "scrypt" not in stanzas and key.is_passphrase:
        raise UsageError(f"{path} was encrypted to age keys: give --identity FILE")


def _decrypt_error(path: Path, key: Key, reason: str) -> Exception:
    """A wrong key is bad input (exit 2); damage is a failure (exit 1)."""
    if reason == "No matching keys found":
        return UsageError(
            f"{path} cannot be decrypted with {key.source}: it was encrypted to other keys"
        )
    if key.is_passphrase and reason == "Decryption failed":
        return UsageError(
            f"{path} cannot be decrypted with the passphrase in {key.source}: wrong passphrase"
        )
    return OperationError(
        f"{path} is damaged: it fails age's integrity check ({reason}); use another archive"
    )


def _replaced(path: Path) -> OperationError:
    return OperationError(f"{path} changed while it was read (not the archive that was signed)")


def _read_plain(path: Path, key: Key, signed: backup_signing.Signed, consume):
    """CONSUME(the decrypted gzip'd tar of PATH, as a stream), returning what it returns.

    With age keys the archive is decrypted while CONSUME reads, in bounded memory. pyrage has no
    streaming passphrase decryption, so a passphrase archive is decrypted whole first (memory:
    twice the archive's size; the tar inside is still read in pieces). Either way the bytes
    decrypted must be the ones signed, and age's check of the last piece must pass, before the
    result counts."""
    import pyrage

    _check_key_kind(path, key)
    if key.is_passphrase:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != signed.sha256:
            raise _replaced(path)
        try:
            plain = pyrage.passphrase.decrypt(data, key.passphrase)
        except pyrage.DecryptError as exc:
            raise _decrypt_error(path, key, str(exc)) from None
        del data
        stream = io.BytesIO(plain)
        result = consume(stream)
        return result

    read_end, write_end = os.pipe()
    failures: list[Exception] = []
    digests: list[str] = []

    def pump() -> None:
        try:
            with path.open("rb") as raw, os.fdopen(write_end, "wb") as sink:
                reader = _Hashing(raw, no_progress)
                pyrage.decrypt_io(reader, sink, list(key.identities))
                digests.append(reader.sha256.hexdigest())
        except BrokenPipeError:
            pass  # the reader stopped: its own error says why
        except pyrage.DecryptError as exc:
            failures.append(_decrypt_error(path, key, str(exc)))
        except OSError as exc:
            failures.append(OperationError(f"cannot read {path}: {exc.strerror}"))

    thread = threading.Thread(target=pump, name="age-decrypt", daemon=True)
    thread.start()
    problem: OperationError | None = None
    try:
        with os.fdopen(read_end, "rb") as stream:
            try:
                result = consume(stream)
                while stream.read(CHUNK):
                    pass  # what follows the tar: age checks the last piece at the end
            except OperationError as exc:
                problem = exc
    finally:
        thread.join()
    if failures:
        raise failures[0]
    if problem is not None:
        raise problem
    if digests != [signed.sha256]:
        raise _replaced(path)
    return result


def _safe_name(path: Path, name: str) -> str:
    """NAME when it is a path backup writes (envs/<ENV>/env.yaml, terraform.tfstate*, or under
    secrets/, state-backups/, group_vars/), with no '.', '..', empty or control-character part."""
    parts = name.split("/")
    if not (
        len(parts) >= 3
        and parts[0] == "envs"
        and validate.ENV_NAME_RE.fullmatch(parts[1])
        and all(_PART_RE.fullmatch(part) and part not in (".", "..") for part in parts)
        and _KIND_RE.fullmatch("/".join(parts[2:]))
    ):
        raise OperationError(
            f"{path}: the archive holds an unexpected path {name!r}: refusing it "
            "(nothing was written)"
        )
    return name


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"a symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"a hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "a device file"
    if info.isfifo():
        return "a FIFO"
    if info.isdir():
        return "a folder"
    return "not a regular file"


def _check_member(path: Path, info: tarfile.TarInfo, seen: dict) -> str:
    """The member's name, once it is a regular file with plain permissions at a safe path that
    the archive holds once."""
    if not info.isreg():
        raise OperationError(
            f"{path}: {info.name!r} is {_kind(info)}: refusing the archive (nothing was written)"
        )
    if info.mode & 0o7000:
        raise OperationError(
            f"{path}: {info.name!r} has setuid, setgid or sticky bits ({info.mode & 0o7777:04o}):"
            " refusing the archive (nothing was written)"
        )
    name = _safe_name(path, info.name)
    if name in seen:
        raise OperationError(f"{path}: {name!r} is in the archive twice: refusing it")
    return name


@dataclass
class Contents:
    manifest: dict
    files: dict[str, tuple[tarfile.TarInfo, str]]  # name -> (member, SHA-256)

    @property
    def bytes(self) -> int:
        return sum(info.size for info, _digest in self.files.values())


def _scan(path: Path, stream: BinaryIO, store, advance: Advance) -> Contents:
    """Every member of the tar STREAM, checked (_check_member) and then handed to STORE(tar,
    member, name), which returns its SHA-256; then the whole against the manifest."""
    manifest = None
    files: dict[str, tuple[tarfile.TarInfo, str]] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for info in tar:
                if info.name == MANIFEST:
                    if manifest is not None or not info.isreg() or info.size > MAX_MANIFEST_BYTES:
                        raise OperationError(f"{path}: its manifest is not one plain file")
                    handle = tar.extractfile(info)
                    try:
                        manifest = json.loads(handle.read())  # type: ignore[union-attr]
                    except ValueError:
                        raise OperationError(f"{path}: its manifest is not valid JSON") from None
                    continue
                name = _check_member(path, info, files)
                files[name] = (info, store(tar, info, name))
                advance(info.size)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise OperationError(f"{path}: its contents are not a readable tar ({exc})") from None
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("files"), dict)
        or not all(isinstance(entry, dict) for entry in manifest["files"].values())
    ):
        raise OperationError(f"{path} has no manifest: it was not written by 'callysto backup'")
    listed = manifest["files"]
    for name in sorted(set(listed) | set(files)):
        if name not in files:
            raise OperationError(f"{path}: {name} is in the manifest but missing from the archive")
        if name not in listed:
            raise OperationError(f"{path}: {name} is in the archive but not in its manifest")
        info, digest = files[name]
        if digest != listed[name].get("sha256") or info.size != listed[name].get("size"):
            raise OperationError(f"{path}: {name} does not match its SHA-256 in the manifest")
    return Contents(manifest, files)


def _hash_member(tar: tarfile.TarFile, info: tarfile.TarInfo, _name: str) -> str:
    digest = hashlib.sha256()
    handle = tar.extractfile(info)
    while chunk := handle.read(CHUNK):  # type: ignore[union-attr]
        digest.update(chunk)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    return backup_signing.file_sha256(path)


def verify(
    path: Path, key: Key, signers: backup_signing.Signers, advance: Advance = no_progress
) -> Summary:
    """Check PATH's signature, then decrypt it and check every file against the manifest."""
    started = time.monotonic()
    signed = backup_signing.check(path, signers)
    contents = _read_plain(
        path, key, signed, lambda stream: _scan(path, stream, _hash_member, advance)
    )
    return Summary(path, len(contents.files), contents.bytes, time.monotonic() - started)


def sign_unsigned(
    path: Path, key: Key, signing_key, advance: Advance = no_progress
) -> tuple[Summary, Path]:
    """Sign PATH, an archive without a signature (made before archives were signed), once it
    decrypts with KEY and every file matches its manifest. The operator vouches for where it
    came from: nothing in an unsigned archive can say."""
    started = time.monotonic()
    if not path.is_file():
        raise UsageError(f"archive {path} does not exist or is not a file")
    signature = backup_signing.signature_path(path)
    if signature.exists():
        raise UsageError(
            f"{path} is already signed ({signature.name}): check it with 'callysto backup verify'"
        )
    as_read = backup_signing.Signed("", backup_signing.file_sha256(path))
    contents = _read_plain(
        path, key, as_read, lambda stream: _scan(path, stream, _hash_member, advance)
    )
    if backup_signing.file_sha256(path) != as_read.sha256:
        raise _replaced(path)
    written = backup_signing.sign(path, signing_key)
    return Summary(path, len(contents.files), contents.bytes, time.monotonic() - started), written


def restore(
    path: Path,
    to: Path,
    key: Key,
    signers: backup_signing.Signers,
    force: bool = False,
    advance: Advance = no_progress,
) -> Summary:
    """Check PATH's signature, then write its files under TO (as envs/<ENV>/...).

    Files are extracted into a private folder beside the targets (tarfile's 'data' filter, after
    our own check of every member) and moved into place only once the whole archive matched its
    manifest, holding the lock of every environment written. Existing files are never
    overwritten without FORCE; then every written file is read back against the manifest."""
    started = time.monotonic()
    signed = backup_signing.check(path, signers)
    if to.exists() and not to.is_dir():
        raise UsageError(f"restore target {to} is not a folder")
    _check_key_kind(path, key)
    made = not to.exists()
    try:
        to.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=to, prefix=".callysto-restore-"))
    except OSError as exc:
        raise OperationError(f"cannot restore into {to}: {exc.strerror}") from None
    try:

        def stage(tar: tarfile.TarFile, info: tarfile.TarInfo, name: str) -> str:
            tar.extract(info, staging, set_attrs=True, filter="data")
            return _file_sha256(staging / name)

        contents = _read_plain(
            path, key, signed, lambda stream: _scan(path, stream, stage, advance)
        )
        _refuse_existing(to, contents, force)
        with contextlib.ExitStack() as locks:
            for env_name in sorted({name.split("/")[1] for name in contents.files}):
                env_dir = _make_folders(to, Path("envs", env_name))
                locks.enter_context(locking.hold(env_dir, env_name, "backup restore"))
            _refuse_existing(to, contents, force)  # again, now that nobody else may write
            for name in sorted(contents.files):
                _make_folders(to, Path(name).parent)
                os.replace(staging / name, to / name)
            for name, (_info, digest) in contents.files.items():
                if _file_sha256(to / name) != digest:
                    raise OperationError(f"{to / name} differs from the archive after writing it")
    except OSError as exc:
        raise OperationError(f"cannot restore into {to}: {exc.strerror} ({exc.filename})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                to.rmdir()  # only when nothing was restored into it
    return Summary(to, len(contents.files), contents.bytes, time.monotonic() - started)


def _refuse_existing(to: Path, contents: Contents, force: bool) -> None:
    existing = [name for name in contents.files if (to / name).exists()]
    if existing and not force:
        raise UsageError(
            f"{len(existing)} file(s) already exist under {to} (first: {existing[0]}): nothing "
            "was restored; use --force to overwrite them, or restore into an empty folder"
        )


def _make_folders(root: Path, relative: Path) -> Path:
    """ROOT/RELATIVE and the folders above it; secrets' and state copies' folders private, like
    the ones environments.create makes."""
    folder = root
    for part in relative.parts:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise OperationError(f"cannot restore into {folder}: it is not a folder")
        if not folder.exists():
            folder.mkdir(mode=0o700 if part in PRIVATE_FOLDERS else 0o755)
    return folder


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
