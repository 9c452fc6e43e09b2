"""Shared fixtures: an empty envs/ directory per test, and the real `callysto` program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import pools

PROJECT = Path(__file__).resolve().parent.parent
CALLYSTO = Path(sys.executable).with_name("callysto")


@pytest.fixture
def envs_dir(tmp_path, monkeypatch) -> Path:
    """A private envs/ directory for the test; the project's own envs/ is never touched."""
    path = tmp_path / "envs"
    path.mkdir()
    monkeypatch.setenv("CALLYSTO_ENVS_DIR", str(path))
    monkeypatch.delenv("CALLYSTO_ENV", raising=False)
    return path


@pytest.fixture
def callysto(envs_dir):
    """Run the installed `callysto` script as an operator would, returning the CompletedProcess."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None, **kw):
        full_env = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir), **(env or {})}
        full_env.pop("CALLYSTO_ENV", None) if "CALLYSTO_ENV" not in (env or {}) else None
        return subprocess.run(
            [str(CALLYSTO), *args],
            capture_output=True,
            text=True,
            input=input,
            env=full_env,
            cwd=kw.pop("cwd", PROJECT),
            timeout=kw.pop("timeout", 600),
            check=False,
        )

    return run


def _one_line_error(result, *fragments: str, code: int | None = None, alone: bool = True) -> str:
    """Assert RESULT failed as every command must: exit CODE (1 or 2 when not given), exactly
    one 'error: ' on stderr, its line holding every FRAGMENT, no traceback; with ALONE, nothing else
    on stderr (progress lines before it are allowed otherwise). Returns the line."""
    assert result.returncode == code if code is not None else result.returncode in (1, 2), (
        result.returncode,
        result.stdout,
        result.stderr,
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    # An answered prompt ends without a newline, so its error shares the prompt's line.
    errors = [line for line in lines if "error: " in line]
    assert len(errors) == 1, result.stderr
    if alone:
        assert lines == errors, result.stderr
    line = errors[0][errors[0].index("error: ") :]
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def one_line_error():
    """The check of a refused or failed command: see _one_line_error."""
    return _one_line_error


# --- real ZFS (zfs-fuse) --------------------------------------------------------------------------

ZFS_FUSE = "/usr/sbin/zfs-fuse"


def _zfs_daemon_alive() -> bool:
    probe = subprocess.run(["zpool", "list", "-H"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def zfs_daemon(tmp_path_factory):
    """A running zfs-fuse daemon. One already running is reused and left alone; otherwise one is
    started here and stopped afterwards by its pid."""
    if _zfs_daemon_alive():
        yield None
        return
    if not os.path.exists(ZFS_FUSE):
        pytest.fail("zfs-fuse is not installed: run scripts/bootstrap-system (or make test)")
    pidfile = tmp_path_factory.mktemp("zfs-fuse") / "zfs-fuse.pid"
    subprocess.run([ZFS_FUSE, "--pidfile", str(pidfile)], check=True)
    for _ in range(100):
        if _zfs_daemon_alive():
            break
        time.sleep(0.1)
    else:
        pytest.fail("zfs-fuse did not start")
    pid = int(pidfile.read_text().strip())
    yield pid
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)


@dataclass
class Pool:
    name: str
    mountpoint: Path
    vdevs: tuple[Path, Path]


def make_pool(directory: Path, name: str | None = None, size: str = "128M") -> Pool:
    """A pool NAME as a mirror of two files under DIRECTORY, mounted there too."""
    name = name or f"cy{uuid.uuid4().hex[:10]}"
    vdevs = (directory / f"{name}-1.img", directory / f"{name}-2.img")
    for vdev in vdevs:
        subprocess.run(["truncate", "-s", size, str(vdev)], check=True)
    mountpoint = directory / name
    subprocess.run(
        ["zpool", "create", "-m", str(mountpoint), name, "mirror", *map(str, vdevs)],
        check=True,
        capture_output=True,
    )
    return Pool(name, mountpoint, vdevs)


def destroy_pool(pool: Pool) -> None:
    pools.destroy_pool(pool.name, pool.vdevs, pool.mountpoint)


@pytest.fixture
def zfs_pool(zfs_daemon, tmp_path):
    """A fresh pool (uniquely named, so tests never meet another's pool) with dataset home."""
    pool = make_pool(tmp_path)
    subprocess.run(["zfs", "create", f"{pool.name}/home"], check=True)
    yield pool
    destroy_pool(pool)
