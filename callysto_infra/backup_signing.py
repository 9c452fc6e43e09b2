"""Signatures of backup archives: the operator's own Ed25519 key signs an archive's name and SHA-256
in ARCHIVE.sig, and an archive is read only when a key in the trusted signers file signed it.

Age recipients only encrypt: anyone holding the public recipients file can make an archive. The
signature is what says an operator made it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from callysto_infra import secretfiles
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.settings import display

SUFFIX = ".sig"
HEADER = "callysto-backup-signature 1"
SIGNER_COMMENT = "callysto-backup-signer"
MAX_SIGNATURE_BYTES = 4096

SIGNER_RE = re.compile(r"ssh-ed25519 ([A-Za-z0-9+/]{68})(?: [\x21-\x7e][\x20-\x7e]*)?")
SIGNATURE_RE = re.compile(
    re.escape(HEADER) + r"\n"
    r"archive (?P<archive>[\x21-\x7e]{1,255})\n"
    r"sha256 (?P<sha256>[0-9a-f]{64})\n"
    r"signer ssh-ed25519 (?P<signer>[A-Za-z0-9+/]{68})\n"
    r"signature (?P<signature>[A-Za-z0-9+/]{86}==)\n"
)


def signature_path(archive: Path) -> Path:
    return archive.with_name(archive.name + SUFFIX)


def file_sha256(path: Path) -> str:
    """The SHA-256 of PATH, read in pieces: an archive is never held in memory to be checked."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _statement(archive_name: str, sha256: str, signer: str) -> bytes:
    return (
        f"{HEADER}\narchive {archive_name}\nsha256 {sha256}\nsigner ssh-ed25519 {signer}\n".encode()
    )


def _public_text(public_key) -> str:
    """The base64 of an Ed25519 public key as OpenSSH writes it (after 'ssh-ed25519 ')."""
    from cryptography.hazmat.primitives import serialization

    line = public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return line.split(" ")[1]


# --- keys ---------------------------------------------------------------------------------------


def generate() -> tuple[str, str]:
    """A new Ed25519 key: (private key in OpenSSH's format, its public line for trusted signers)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return private, f"ssh-ed25519 {_public_text(key.public_key())} {SIGNER_COMMENT}"


def keygen(signing_key: Path, signers_file: Path) -> str:
    """Write a new signing key to SIGNING_KEY (0600, never over an existing file) and add its
    public line to SIGNERS_FILE. Returns that line."""
    if signing_key.exists() or signing_key.is_symlink():
        raise UsageError(
            f"signing key {display(signing_key)} already exists: nothing was changed "
            "(remove it first, or name another file)"
        )
    if signers_file.exists() and not signers_file.is_file():
        raise UsageError(f"trusted signers file {display(signers_file)} is not a file")
    if not signers_file.parent.is_dir():
        raise UsageError(f"the folder of {display(signers_file)} does not exist: create it first")
    private, public = generate()
    try:
        secretfiles.write(signing_key, private)
    except OSError as exc:
        raise UsageError(f"cannot write {display(signing_key)}: {exc.strerror}") from None
    try:
        before = signers_file.read_text(encoding="utf-8") if signers_file.exists() else ""
        separator = "" if not before or before.endswith("\n") else "\n"
        with signers_file.open("a", encoding="utf-8") as handle:
            handle.write(f"{separator}{public}\n")
    except (OSError, UnicodeDecodeError) as exc:
        signing_key.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or "not text"
        raise UsageError(f"cannot add to {display(signers_file)}: {reason}") from None
    return public


def read_signing_key(path: Path):
    """The Ed25519 private key in PATH (0600): OpenSSH's format (an operator's own id_ed25519
    will do, when it has no passphrase) or PKCS#8 PEM."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = secretfiles.read_text(path, "signing key")
    data = text.encode()
    try:
        if "-----BEGIN OPENSSH PRIVATE KEY-----" in text:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UsageError(
            f"signing key {display(path)} is protected by a passphrase, which callysto cannot "
            "ask for: make a key of its own with 'callysto backup keygen'"
        ) from None
    except (ValueError, UnsupportedAlgorithm, binascii.Error):
        raise UsageError(
            f"signing key {display(path)} is not a private key: make one with "
            "'callysto backup keygen'"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {display(path)} is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class Signers:
    """The public keys whose signatures are trusted, by their OpenSSH base64 text."""

    keys: dict
    source: str


def read_signers(path: Path) -> Signers:
    """The trusted signers in PATH: one 'ssh-ed25519 AAAA... [comment]' line each. The file is
    public but decides what is trusted, so one that others may write is refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        mode = path.stat().st_mode
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"trusted signers file {display(path)} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not text"
        raise UsageError(
            f"trusted signers file {display(path)} cannot be read ({reason})"
        ) from None
    if mode & 0o022:
        raise UsageError(
            f"trusted signers file {display(path)} may be changed by others: "
            f"run 'chmod go-w {display(path)}'"
        )
    keys = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = SIGNER_RE.fullmatch(line)
        raw = _decode_public(match.group(1)) if match else None
        if raw is None:
            raise UsageError(
                f"{display(path)} line {number}: expected an Ed25519 public key "
                "('ssh-ed25519 AAAA...')"
            )
        keys[match.group(1)] = Ed25519PublicKey.from_public_bytes(raw)  # type: ignore[union-attr]
    if not keys:
        raise UsageError(f"trusted signers file {display(path)} lists no public key")
    return Signers(keys, display(path))


def _decode_public(text: str) -> bytes | None:
    """The 32 bytes of an OpenSSH ssh-ed25519 public key blob, or None when it is not one."""
    try:
        blob = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    kind = b"ssh-ed25519"
    head = len(kind).to_bytes(4, "big") + kind + (32).to_bytes(4, "big")
    if len(blob) != len(head) + 32 or not blob.startswith(head):
        return None
    return blob[len(head) :]


def signing_key_path(given: Path | None, configured) -> Path:
    if given is not None:
        return given
    path = configured.resolve(configured.backup.signing_key_file) if configured else None
    if path is None:
        raise UsageError(
            "no signing key, so nothing was written (archives are signed by their maker): give "
            "--signing-key FILE or set backup.signing_key_file in callysto.yaml; make one with "
            "'callysto backup keygen'"
        )
    return path


def signers_path(given: Path | None, configured) -> Path:
    if given is not None:
        return given
    path = configured.resolve(configured.backup.trusted_signers) if configured else None
    if path is None:
        raise UsageError(
            "no trusted signers, so no archive can be trusted: give --signer-file FILE or set "
            "backup.trusted_signers in callysto.yaml (the public lines 'callysto backup keygen' "
            "wrote)"
        )
    return path


# --- signing and checking -----------------------------------------------------------------------


def sign(archive: Path, key, signed_name: str | None = None) -> Path:
    """Write ARCHIVE.sig (under SIGNED_NAME's, when the archive gets that name later)."""
    name = signed_name or archive.name
    signer = _public_text(key.public_key())
    statement = _statement(name, file_sha256(archive), signer)
    signature = base64.b64encode(key.sign(statement)).decode()
    target = signature_path(archive.with_name(name))
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(statement.decode() + f"signature {signature}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    return target


@dataclass(frozen=True)
class Signed:
    signer: str
    sha256: str


def check(archive: Path, signers: Signers) -> Signed:
    """Refuse ARCHIVE unless ARCHIVE.sig is a trusted signer's signature of its name and bytes.
    Reads nothing of the archive but its bytes' hash. Whoever then reads the archive compares
    the bytes it read with Signed.sha256 too, so a file replaced after this check is caught."""
    from cryptography.exceptions import InvalidSignature

    if not archive.is_file():
        raise UsageError(f"archive {archive} does not exist or is not a file")
    sig = signature_path(archive)
    try:
        with sig.open("rb") as handle:
            raw = handle.read(MAX_SIGNATURE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{archive} has no signature {sig.name}, so nothing was read: archives made before "
            "signing, or by anyone holding only the public key, are refused; if you know it is "
            f"yours, check and sign it with 'callysto backup sign {archive}'"
        ) from None
    except OSError as exc:
        raise UsageError(f"signature {sig} cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("ascii") if len(raw) <= MAX_SIGNATURE_BYTES else ""
    except UnicodeDecodeError:
        text = ""
    match = SIGNATURE_RE.fullmatch(text)
    if not match:
        raise OperationError(f"{sig} is not a callysto backup signature: refusing {archive}")
    if match["archive"] != archive.name:
        raise OperationError(
            f"{sig} signs an archive named {match['archive']}, not {archive.name}: give the "
            "archive its original name"
        )
    public = signers.keys.get(match["signer"])
    if public is None:
        raise OperationError(
            f"{archive} is signed by a key not in {signers.source}: refusing it (nothing was read)"
        )
    statement = _statement(archive.name, match["sha256"], match["signer"])
    try:
        public.verify(base64.b64decode(match["signature"]), statement)
    except InvalidSignature:
        raise OperationError(f"{sig} is not a valid signature: refusing {archive}") from None
    if file_sha256(archive) != match["sha256"]:
        raise OperationError(
            f"{archive} is damaged or was replaced: it differs from the archive that was signed "
            "(nothing was read); use another archive"
        )
    return Signed(match["signer"], match["sha256"])
