"""Removing a test's pool for good: zfs-fuse may call a pool busy for a moment after its last use."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def destroy_pool(name: str, attempts: int = 60) -> None:
    """Destroy pool NAME (only ever one the test created) and its empty mountpoint directory."""
    for _ in range(attempts):
        gone = subprocess.run(["zpool", "destroy", "-f", name], capture_output=True, check=False)
        if (
            gone.returncode == 0
            or subprocess.run(
                ["zpool", "list", "-H", "-o", "name", name], capture_output=True, check=False
            ).returncode
            != 0
        ):
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"pool {name} could not be destroyed: {gone.stderr.decode().strip()}")
    mountpoint = Path(f"/{name}")
    if mountpoint.is_dir() and not any(mountpoint.iterdir()):
        mountpoint.rmdir()
