"""A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temporary folder
owned by the `postgres` user (the server refuses to run as root), listening on 127.0.0.1 only with
password authentication, and stopped by its pid afterwards."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


@dataclass(frozen=True)
class Server:
    port: int
    password: str
    socket_dir: Path

    @property
    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={OWNER} connect_timeout=10"

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.conninfo, password=self.password, **kwargs)


def _as_owner(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", OWNER, "--", *argv], check=True, **kwargs)


@contextmanager
def running(port: int, host_auth: str = "scram-sha-256") -> Iterator[Server]:
    """A new cluster, started; stopped and removed at the end. HOST_AUTH is how it asks TCP
    clients for the password."""
    if not (BIN / "postgres").exists():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/bootstrap-system (or make test)")
    root = Path(tempfile.mkdtemp(prefix="callysto-pg-"))
    root.chmod(0o755)  # the server's user passes through to its own folders
    data, sockets = root / "data", root / "run"
    password = secrets.token_urlsafe(24)
    pid = None
    try:
        for folder in (data, sockets):
            folder.mkdir(mode=0o700)
            shutil.chown(folder, OWNER, OWNER)
        pwfile = root / "pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, OWNER, OWNER)
        _as_owner(
            [str(BIN / "initdb"), "-D", str(data), "-U", OWNER, "--pwfile", str(pwfile),
             "--auth-local=scram-sha-256", f"--auth-host={host_auth}", "-E", "UTF8",
             "--no-instructions"],
            capture_output=True,
        )  # fmt: skip
        pwfile.unlink()
        server = subprocess.Popen(
            ["runuser", "-u", OWNER, "--", str(BIN / "postgres"), "-D", str(data),
             "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
             "-c", f"unix_socket_directories={sockets}", "-c", "max_connections=200",
             "-c", "fsync=off", "-c", "log_min_messages=warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        pidfile = data / "postmaster.pid"
        for _ in range(300):
            if server.poll() is not None:
                pytest.fail(f"PostgreSQL exited with status {server.returncode}")
            if pidfile.exists() and "ready" in pidfile.read_text():
                pid = int(pidfile.read_text().split()[0])
                break
            time.sleep(0.1)
        else:
            pytest.fail("PostgreSQL did not start")
        yield Server(port, password, sockets)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGINT)  # a fast shutdown
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        if "server" in locals():
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
