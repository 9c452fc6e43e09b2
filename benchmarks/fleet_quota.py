"""`callysto quota list` on a fleet of three hubs against one hub with as many homes per hub, as a
ratio measured in this run: the hubs are asked at once, so three should take about as long as one.

The fleet is a local environment of three hubs (hubs.local_hubs), each with its own zfs-fuse pool
<hub.pool>-<name> of HOMES student datasets; the single hub is a local environment with one pool
of as many (hub.pool allows no '-', so it cannot be one of the fleet's). Both go through the real
command (the CLI, --json) and through its code path in this process (homes.list_all_homes); the
hub-after-hub way (homes.list_homes on each hub in turn) and the bare `zfs get` on one pool and
on three at once (this machine's floor) are timed beside them. Medians of ROUNDS, the sides
alternating.

Needs zfs-fuse (or OpenZFS) and root. Makes its pools from sparse files in a temporary directory
and destroys them afterwards; a zfs-fuse daemon it had to start, it stops (by its pid file) once
no pool is left on it. Nothing is mounted, not even the pools: listing quotas reads properties
only. On this machine the three pools share one zfs-fuse daemon and two cores, which a real
fleet's hubs do not: each has its own.
Usage: benchmarks/fleet_quota.py [HOMES] [ROUNDS]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests import pools  # noqa: E402 - zfs-fuse's patient pool removal

CALLYSTO = str(Path(sys.executable).with_name("callysto"))
HUBS = ["hub-a", "hub-b", "hub-c"]
PORT = 18860  # local.port; nothing is started on it (quota list only reads ZFS)
TARGET = 1.5


def zfs_running() -> bool:
    return subprocess.run(["zpool", "list", "-H"], capture_output=True, check=False).returncode == 0


def start_zfs_fuse(directory: Path) -> Path | None:
    """The pid file of a zfs-fuse started here, or None when one already answers."""
    if zfs_running():
        return None
    pidfile = directory / "zfs-fuse.pid"
    subprocess.run(["/usr/sbin/zfs-fuse", "--pidfile", str(pidfile)], check=True)
    for _ in range(100):
        if zfs_running():
            return pidfile
        time.sleep(0.1)
    raise SystemExit("zfs-fuse did not start")


def stop_zfs_fuse(pidfile: Path) -> None:
    """Stop the zfs-fuse started here, unless someone has made a pool on it since."""
    left = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True)
    if left.stdout.split():
        print(f"zfs-fuse left running: pools {', '.join(left.stdout.split())} use it",
              file=sys.stderr)  # fmt: skip
        return
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def make_pool(work: Path, pool: str, homes: int) -> None:
    vdevs = [work / f"{pool}-{i}.img" for i in (1, 2)]
    for vdev in vdevs:
        subprocess.run(["truncate", "-s", "1G", str(vdev)], check=True)
    # Nothing is mounted, not even the pool itself: a mount other processes (a container's
    # namespace, a shell) still see would keep zfs-fuse from destroying the pool afterwards.
    subprocess.run(["zpool", "create", "-m", "none", pool, "mirror", *map(str, vdevs)],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["zfs", "create", "-o", "mountpoint=none", f"{pool}/home"], check=True)
    for number in range(1, homes + 1):
        subprocess.run(["zfs", "create", "-o", "canmount=off", "-o", "refquota=1G",
                        f"{pool}/home/{number:040x}"], check=True)  # fmt: skip


def new_env(envs: Path, name: str, pool: str, fleet: bool) -> None:
    subprocess.run([CALLYSTO, "env", "new", "local", name], check=True, capture_output=True,
                   env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)})  # fmt: skip
    env_file = envs / name / "env.yaml"
    config = yaml.safe_load(env_file.read_text())
    config["hub"]["pool"] = pool
    config["local"]["port"] = PORT
    if fleet:
        config["hubs"] = [{"name": hub} for hub in HUBS]
    env_file.write_text(yaml.safe_dump(config, sort_keys=False))


def cli_seconds(envs: Path, name: str, expected: int) -> float:
    start = time.perf_counter()
    listed = subprocess.run(
        [CALLYSTO, "quota", "list", "--env", name, "--json"],
        check=True, capture_output=True, text=True,
        env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)},
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if len(json.loads(listed.stdout)) != expected:
        raise SystemExit(f"quota list --env {name} did not list {expected} homes")
    return seconds


def raw_zfs_get(pools: list[str]) -> float:
    """Seconds for the `zfs get` quota list makes (zfs.py's argv) on each of POOLS at once."""
    from callysto_infra import homes

    argv = ["zfs", "get", "-H", "-p", "-r", "-d", "1", "-o", "name,property,value",
            ",".join(homes.PROPERTIES)]  # fmt: skip
    start = time.perf_counter()
    running = [subprocess.Popen([*argv, f"{pool}/home"], stdout=subprocess.DEVNULL)
               for pool in pools]  # fmt: skip
    if any(process.wait() != 0 for process in running):
        raise SystemExit("zfs get failed")
    return time.perf_counter() - start


def main() -> int:
    homes_per_hub = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="fleet-quota-bench-"))
    daemon = start_zfs_fuse(work)
    envs = work / "envs"
    os.environ["CALLYSTO_ENVS_DIR"] = str(envs)
    prefix = f"cyfleet{uuid.uuid4().hex[:6]}"
    made: list[str] = []
    try:
        new_env(envs, "fleet", prefix, fleet=True)
        from callysto_infra import environments, homes, hubs

        fleet_env = environments.load("fleet")
        fleet_hubs = hubs.local_hubs(fleet_env)
        pool_names = [hub.pool for hub in fleet_hubs]  # <prefix>-hub-a, ...
        new_env(envs, "single", f"{prefix}one", fleet=False)
        single_env = environments.load("single")
        pool_names.append(single_env.config.hub.pool)

        start = time.perf_counter()
        made += pool_names
        with ThreadPoolExecutor(len(pool_names)) as workers:
            list(workers.map(lambda pool: make_pool(work, pool, homes_per_hub), pool_names))
        print(f"made {len(pool_names)} pools of {homes_per_hub} homes each in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)  # fmt: skip

        keys = ("cli1", "cli3", "mod1", "mod3", "seq3", "raw1", "raw3")
        times: dict[str, list[float]] = {key: [] for key in keys}
        for _ in range(rounds):
            times["cli1"].append(cli_seconds(envs, "single", homes_per_hub))
            times["cli3"].append(cli_seconds(envs, "fleet", 3 * homes_per_hub))
            start = time.perf_counter()
            _, found = homes.list_all_homes(single_env, None)
            times["mod1"].append(time.perf_counter() - start)
            assert len(found) == homes_per_hub
            start = time.perf_counter()
            outcomes, found = homes.list_all_homes(fleet_env, None)
            times["mod3"].append(time.perf_counter() - start)
            assert len(found) == 3 * homes_per_hub and all(o.ok for o in outcomes)
            start = time.perf_counter()
            one_by_one = [homes.list_homes(hub, hub.pool) for hub in fleet_hubs]
            times["seq3"].append(time.perf_counter() - start)
            assert sum(map(len, one_by_one)) == 3 * homes_per_hub
            # The floor this machine sets: the same zfs get, without us, on one pool and on three
            # at once (one zfs-fuse daemon and two cores serve them all).
            times["raw1"].append(raw_zfs_get([single_env.config.hub.pool]))
            times["raw3"].append(raw_zfs_get([hub.pool for hub in fleet_hubs]))
    finally:
        left = []
        for pool in made:
            try:
                pools.destroy_pool(pool, [work / f"{pool}-{i}.img" for i in (1, 2)])
            except RuntimeError as exc:
                left.append(pool)
                print(exc, file=sys.stderr)
        if daemon is not None:
            stop_zfs_fuse(daemon)
        if left:  # their files are still in use: leave them, and say where
            print(f"pools {', '.join(left)} are left; their files are in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    med = {key: statistics.median(values) for key, values in times.items()}
    ratio = med["cli3"] / med["cli1"]
    print(f"{homes_per_hub} homes per hub, medians of {rounds}; load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    print(f"callysto quota list, 1 hub              {med['cli1']:6.2f} s")
    print(f"callysto quota list, 3 hubs at once     {med['cli3']:6.2f} s  ratio {ratio:.2f}x")
    print(f"homes.list_all_homes, 1 hub             {med['mod1']:6.2f} s")
    print(f"homes.list_all_homes, 3 hubs at once    {med['mod3']:6.2f} s  "
          f"ratio {med['mod3'] / med['mod1']:.2f}x")  # fmt: skip
    print(f"homes.list_homes, 3 hubs one by one     {med['seq3']:6.2f} s  "
          f"ratio {med['seq3'] / med['mod1']:.2f}x")  # fmt: skip
    print(f"zfs get alone, 1 pool                   {med['raw1']:6.2f} s")
    print(f"zfs get alone, 3 pools at once          {med['raw3']:6.2f} s  "
          f"ratio {med['raw3'] / med['raw1']:.2f}x (this machine's floor)")  # fmt: skip
    over = med["mod3"] / med["raw3"]
    print(f"list_all_homes / zfs get, 3 at once     {over:6.2f}x (what ours adds to the floor)")
    print(f"target: 3 hubs under {TARGET}x one hub: {'met' if ratio < TARGET else 'NOT met'}")
    return 0 if ratio < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
