"""`callysto quota list` on a hub with 2,000 student datasets (one `zfs get -H -p -r` call) against
the original's way, one `zfs get` per user, as a ratio measured in this run.

Needs zfs-fuse (or OpenZFS) and root. Makes its own uniquely named pool from two sparse files in a
temporary directory and destroys it afterwards; a zfs-fuse daemon it had to start, it stops. The
datasets are never mounted: zfs-fuse serves at most about 1,000 mounts for all pools together, and
listing quotas reads properties only.
Over SSH the per-user way would also pay one round trip per user; here both run on this machine.
Usage: benchmarks/quota_list.py [USERS]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

CALLYSTO = str(Path(sys.executable).with_name("callysto"))


def zfs_running() -> bool:
    return subprocess.run(["zpool", "list", "-H"], capture_output=True, check=False).returncode == 0


def start_zfs_fuse(directory: Path) -> int | None:
    if zfs_running():
        return None
    pidfile = directory / "zfs-fuse.pid"
    subprocess.run(["/usr/sbin/zfs-fuse", "--pidfile", str(pidfile)], check=True)
    for _ in range(100):
        if zfs_running():
            return int(pidfile.read_text())
        time.sleep(0.1)
    raise SystemExit("zfs-fuse did not start")


def main() -> int:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    work = Path(tempfile.mkdtemp(prefix="quota-bench-"))
    daemon = start_zfs_fuse(work)
    pool = f"cybench{uuid.uuid4().hex[:8]}"
    vdevs = [work / f"{pool}-{i}.img" for i in (1, 2)]
    try:
        for vdev in vdevs:
            subprocess.run(["truncate", "-s", "2G", str(vdev)], check=True)
        subprocess.run(["zpool", "create", "-m", str(work / pool), pool, "mirror",
                        *map(str, vdevs)], check=True, capture_output=True)  # fmt: skip
        subprocess.run(["zfs", "create", "-o", "mountpoint=none", f"{pool}/home"], check=True)
        hashes = [f"{i:040x}" for i in range(1, users + 1)]
        start = time.perf_counter()
        for user_hash in hashes:
            subprocess.run(["zfs", "create", "-o", "canmount=off", "-o", "refquota=1G",
                            f"{pool}/home/{user_hash}"], check=True)  # fmt: skip
        print(f"made {users} datasets in {time.perf_counter() - start:.0f} s", file=sys.stderr)

        envs = work / "envs"
        subprocess.run([CALLYSTO, "env", "new", "local"], check=True, capture_output=True,
                       env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)})  # fmt: skip
        env_file = envs / "local" / "env.yaml"
        config = yaml.safe_load(env_file.read_text())
        config["hub"]["pool"] = pool
        env_file.write_text(yaml.safe_dump(config))

        start = time.perf_counter()
        listed = subprocess.run(
            [CALLYSTO, "quota", "list", "--env", "local", "--json"],
            check=True, capture_output=True, text=True,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)},
        )  # fmt: skip
        ours = time.perf_counter() - start
        assert listed.stdout.count('"user"') == users

        start = time.perf_counter()
        for user_hash in hashes:
            subprocess.run(
                ["zfs", "get", "-H", "-p", "-o", "property,value", "used,refquota",
                 f"{pool}/home/{user_hash}"],
                check=True, capture_output=True,
            )  # fmt: skip
        theirs = time.perf_counter() - start
    finally:
        destroyed = False
        for _ in range(60):  # zfs-fuse calls a pool busy for a while after heavy use
            probe = ["zpool", "destroy", "-f", pool]
            if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
                destroyed = True
                break
            time.sleep(2)
        if daemon is not None:
            os.kill(daemon, signal.SIGTERM)
        if destroyed or daemon is not None:
            shutil.rmtree(work, ignore_errors=True)
        else:  # the pool still uses its files: leave them, and say where
            print(f"pool {pool} could not be destroyed; its files are in {work}", file=sys.stderr)

    print(f"{users} user datasets; load average {os.getloadavg()[0]:.1f}")
    print(f"callysto quota list (one zfs get -r)  {ours:8.2f} s")
    print(f"one zfs get per user                  {theirs:8.2f} s  ratio {theirs / ours:.1f}x")
    return 0 if ours < theirs else 1


if __name__ == "__main__":
    sys.exit(main())
