"""Removing a test's pool for good: zfs-fuse may call a pool busy for a while after its last use."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

# zfs-fuse keeps answering "pool is busy" until it has let go of the pool's datasets, which takes
# longer the busier the machine is (a minute and more was seen with two test runs at once).
PATIENCE_SECONDS = 180


def _exists(name: str) -> bool:
    probe = ["zpool", "list", "-H", "-o", "name", name]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def destroy_pool(name: str, vdevs: Iterable[Path] = (), mountpoint: Path | None = None) -> None:
    """Destroy pool NAME (only ever one the test created), then its file VDEVS and its empty
    MOUNTPOINT directory (default /NAME)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    pause = 0.2
    while _exists(name):
        done = subprocess.run(["zpool", "destroy", "-f", name], capture_output=True, check=False)
        if done.returncode == 0 or not _exists(name):
            break
        if time.monotonic() > deadline:
            reason = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"pool {name} could not be destroyed: {reason}")
        # Unmounting first lets zfs-fuse release the datasets sooner.
        subprocess.run(["zfs", "unmount", "-f", name], capture_output=True, check=False)
        time.sleep(pause)
        pause = min(pause * 1.5, 3.0)
    for vdev in vdevs:
        vdev.unlink(missing_ok=True)
    mountpoint = mountpoint or Path(f"/{name}")
    if mountpoint.is_dir() and not any(mountpoint.iterdir()):
        mountpoint.rmdir()
