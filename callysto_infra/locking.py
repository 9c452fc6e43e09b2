"""Guards for commands that change an environment: a per-environment lock naming its holder, and
timestamped copies of a file (the Terraform state) taken before each change."""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from callysto_infra.errors import OperationError

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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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


def backup(path: Path, keep: int = KEEP_BACKUPS) -> Path | None:
    """Copy PATH into state-backups/ beside it under a UTC timestamp, keeping the newest KEEP.

    Returns the copy, or None when PATH does not exist yet (nothing to lose). Copies are private:
    a Terraform state can hold secrets.
    """
    path = Path(path)
    if not path.exists():
        return None
    directory = path.parent / BACKUP_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    copy = directory / f"{path.name}.{stamp}"
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
        shutil.copyfileobj(src, out)
    copies = sorted(directory.glob(f"{path.name}.*"))
    for old in copies[:-keep]:
        old.unlink()
    return copy


def backups(path: Path) -> list[Path]:
    """The copies of PATH, oldest first."""
    path = Path(path)
    return sorted((path.parent / BACKUP_DIR).glob(f"{path.name}.*"))
