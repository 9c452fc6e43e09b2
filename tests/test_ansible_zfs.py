"""hub.yml's ZFS part (--tags zfs) on a local environment: an exported pool is imported with its
data, and a pool is never created over devices that hold something else."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from callysto_infra import environments
from tests.pools import destroy_pool


@pytest.fixture
def local_env(envs_dir, zfs_daemon, tmp_path):
    env = environments.create("local", "zfstest")
    pool = f"cyzfs{uuid.uuid4().hex[:8]}"
    data = tmp_path / "data"
    config = yaml.safe_load(env.path.joinpath("env.yaml").read_text())
    config["hub"] = {"pool": pool, "refquota": "16M"}
    config["local"] = {"port": 18090, "data_dir": str(data), "vdev_size": "128M"}
    env.path.joinpath("env.yaml").write_text(yaml.safe_dump(config))
    yield pool, data
    destroy_pool(pool)
    # The role starts zfs-fuse itself when no daemon answers (another test run's stopped): stop
    # the one it started for this environment, by its pid file.
    pidfile = data / "zfs-fuse.pid"
    if pidfile.exists():
        stop = ["start-stop-daemon", "--stop", "--oknodo", "--pidfile", str(pidfile)]
        subprocess.run([*stop, "--retry", "TERM/30"], check=True, capture_output=True)


def zfs_only(callysto, *extra):
    return callysto("ansible", "playbook", "--env", "zfstest", "--tags", "zfs", *extra, "hub")


def health(pool: str) -> list[str]:
    probe = subprocess.run(
        ["zpool", "list", "-H", "-o", "name,health", pool], capture_output=True, text=True
    )
    return probe.stdout.split()


def test_exported_pool_is_imported_with_its_data(callysto, local_env):
    pool, _data = local_env
    first = zfs_only(callysto)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr
    assert health(pool) == [pool, "ONLINE"]
    kept = Path(f"/{pool}/home/kept.txt")
    kept.write_text("a student's work\n")
    subprocess.run(["zpool", "export", pool], check=True, capture_output=True)
    assert health(pool) == []
    again = zfs_only(callysto)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr
    assert health(pool) == [pool, "ONLINE"]
    assert kept.read_text() == "a student's work\n"


def test_pool_is_never_created_over_data(callysto, local_env):
    pool, data = local_env
    data.mkdir()
    devices = [data / f"{pool}-1.img", data / f"{pool}-2.img"]
    for device in devices:
        subprocess.run(["truncate", "-s", "128M", device], check=True)
    # Something that is not ZFS: a swap signature on the first device.
    subprocess.run(["mkswap", devices[0]], check=True, capture_output=True)
    before = [hashlib.sha256(d.read_bytes()).hexdigest() for d in devices]
    proc = zfs_only(callysto)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: task 'zfs : Refuse to create")
    assert "hold data (swap)" in proc.stderr
    assert health(pool) == []
    assert [hashlib.sha256(d.read_bytes()).hexdigest() for d in devices] == before
    assert os.path.getsize(devices[1]) == 128 * 1024 * 1024
