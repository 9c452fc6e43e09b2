"""Guards for commands that change an environment: a per-environment lock naming its holder, and
timestamped copies of a file (the Terraform state) taken before each change."""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from callysto_infra.errors import OperationError
from callysto_infra.paths import display

LOCK_FILE = ".lock"
BACKUP_DIR = "state-backups"
KEEP_BACKUPS = 10


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} of user {holder.get('user', '?')} on "
        f"{holder.get('host', '?')}, running '{holder.get('command', '?')}' since "
        f"{holder.get('started', '?')}"
    )


@contextmanager
def hold(env_dir: Path, env_name: str, command: str) -> Iterator[None]:
    """Hold ENV_DIR's lock while the block runs; a second holder fails at once, naming the first.

    The lock is an flock on envs/<ENV>/.lock: the kernel drops it when its process ends, however
    it ends, so a crashed command never leaves an environment locked.
    """
    path = Path(env_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        what = "a directory" if path.is_dir() else (exc.strerror or "unusable").lower()
        raise OperationError(
            f"the lock file {display(path)} of environment '{env_name}' is {what}: remove it once no "
            "command runs on the environment (nothing was changed)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            holder = {}
        os.close(fd)
        raise OperationError(
            f"environment '{env_name}' is busy: {_describe(holder)}; wait for it to finish "
            "(nothing was changed)"
        ) from None
    try:
        holder = {
            "pid": os.getpid(),
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "command": command,
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def backup(
    path: Path, keep: int = KEEP_BACKUPS, *, good: Callable[[bytes], bool] | None = None
) -> Path | None:
    """Copy PATH into state-backups/ beside it under a UTC timestamp, keeping the newest KEEP.

    Returns the newest copy, or None when PATH does not exist yet (nothing to lose) or fails GOOD
    (a copy of a broken file is no backup, and would push a good one out). The same content as the
    newest copy is not copied again, so retries of a failing command keep every older copy.
    Copies are private (0600 in a 0700 folder): a Terraform state can hold secrets.
    """
    from callysto_infra import secretfiles

    path = Path(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    directory = path.parent / BACKUP_DIR
    copies = backups(path)
    if good is not None and not good(content):
        return None
    if copies and copies[-1].read_bytes() == content:
        secretfiles.make_private([directory, copies[-1]])
        return copies[-1]
    directory.mkdir(mode=0o700, exist_ok=True)
    secretfiles.make_private([directory])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    copy = directory / f"{path.name}.{stamp}"
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    copies = backups(path)
    for old in copies[:-keep]:
        old.unlink()
    return copy


def backups(path: Path) -> list[Path]:
    """The copies of PATH, oldest first."""
    path = Path(path)
    return sorted((path.parent / BACKUP_DIR).glob(f"{path.name}.*"))
