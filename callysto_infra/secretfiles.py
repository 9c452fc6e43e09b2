"""Files that hold a secret (the SAML salt, the hub's API token, backup passphrases and identities):
read only when nobody but their owner can read them, written 0600 inside a 0700 folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from callysto_infra.errors import UsageError
from callysto_infra.paths import display

# Keys, tokens and passphrases are a few lines; a larger "secret" is some other file.
MAX_BYTES = 1 << 20


def read_text(path: Path, what: str) -> str:
    """The text of the secret file PATH (WHAT names it in errors, e.g. 'salt file'). A file that
    others can read is refused: its secret may have leaked, and using it would hide that."""
    try:
        mode = path.stat().st_mode
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {display(path)} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not text"
        raise UsageError(f"{what} {display(path)} cannot be read ({reason})") from None
    if len(data) > MAX_BYTES or "\x00" in text:
        raise UsageError(f"{what} {display(path)} cannot be read (not a small text file)")
    if mode & 0o077:
        raise UsageError(
            f"{what} {display(path)} is readable by others: run 'chmod 600 {display(path)}'"
        )
    return text


def read_line(path: Path, what: str) -> str:
    """The one-line secret in PATH, without surrounding blanks."""
    secret = read_text(path, what).strip()
    if not secret or any(ord(c) < 0x20 or ord(c) == 0x7F for c in secret):
        raise UsageError(
            f"{what} {display(path)} must hold its secret on one line, without control characters"
        )
    return secret


def write(path: Path, text: str) -> None:
    """Write TEXT to PATH with mode 0600, its folder made 0700 when missing. The file appears
    whole (written beside it, then renamed) and is never readable by others, not even briefly."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)


def make_private(paths: Iterable[Path]) -> None:
    """Close PATHS to everyone but their owner: files 0600, folders 0700. For files written by
    programs that do not know they hold secrets (Terraform's states and plans): made private
    after each run, so one left readable by an older version is fixed on the next. Missing paths
    and symbolic links are left alone (a link's mode is not its target's)."""
    for path in paths:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) != wanted:
            os.chmod(path, wanted)
