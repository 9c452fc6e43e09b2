"""Helpers for tests on students' homes: a local environment on a test pool, and its datasets read
straight from zfs (never through the code under test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from callysto_infra import environments

A = "a" * 40
B = "b" * 40
C = "c" * 40


def set_pool(env: environments.Environment, pool_name: str) -> environments.Environment:
    """Point ENV's hub.pool at POOL_NAME, as an operator would edit env.yaml."""
    path = env.path / environments.ENV_FILE
    config = yaml.safe_load(path.read_text())
    config["hub"]["pool"] = pool_name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return environments.load(env.name)


def local_env_on(pool_name: str, name: str = "local") -> environments.Environment:
    """A local environment (this machine is its hub) on the pool POOL_NAME."""
    return set_pool(environments.create("local", name), pool_name)


def make_home(pool, user_hash: str, refquota: str = "none") -> Path:
    subprocess.run(
        ["zfs", "create", "-o", f"refquota={refquota}", f"{pool.name}/home/{user_hash}"],
        check=True,
        capture_output=True,
    )
    return home_dir(pool, user_hash)


def home_dir(pool, user_hash: str) -> Path:
    return Path(zfs_value(f"{pool.name}/home/{user_hash}", "mountpoint"))


def zfs_value(dataset: str, prop: str) -> str:
    return subprocess.run(
        ["zfs", "get", "-H", "-p", "-o", "value", prop, dataset],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def exists(dataset: str) -> bool:
    probe = ["zfs", "get", "-H", "-o", "value", "type", dataset]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def snapshots(pool) -> list[str]:
    listed = subprocess.run(
        ["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", pool.name],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def write_bytes(path: Path, size: int) -> bool:
    """Write SIZE bytes to PATH and sync; False when the filesystem refused (quota, read-only)."""
    try:
        with open(path, "wb") as handle:
            handle.write(b"x" * size)
            handle.flush()
            import os

            os.fsync(handle.fileno())
    except OSError:
        return False
    return True
