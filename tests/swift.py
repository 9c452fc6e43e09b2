"""A real OpenStack Swift for tests: Debian's swift-proxy, -account, -container and -object servers
with the S3 API, one replica on files under a temporary folder, all on 127.0.0.1. Its configuration
is rendered from the swift_local role's own templates, so the tests run the Swift a local hub
runs. Started and stopped by pid."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from tests.conftest import PROJECT

ROLE = PROJECT / "playbooks" / "roles" / "swift_local"
SERVERS = ("account", "container", "object", "proxy")
MEMCACHED = "/usr/bin/memcached"
RING_BUILDER = "/usr/bin/swift-ring-builder"


@dataclass
class Swift:
    """A running Swift: its S3 endpoint and the one user's S3 credentials (tempauth)."""

    root: Path
    port: int
    access_key: str
    secret_key: str
    region: str = "RegionOne"
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def s3(self):
        import boto3
        from botocore.config import Config

        from callysto_infra import objectstore

        return objectstore.with_content_md5(
            boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
                config=Config(
                    s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        )

    def credentials_text(self) -> str:
        """What an environment's secrets/object-credentials holds for this Swift."""
        return f"access_key: {self.access_key}\nsecret_key: {self.secret_key}\n"

    def stop(self) -> None:
        for name in ("proxy", "object", "container", "account", "memcached"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    finished, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    finished = pid
                if finished == pid:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def render(directory: Path, port: int, user: str, key: str) -> None:
    """The role's configuration files for a Swift in DIRECTORY: proxy on PORT, the account,
    container and object servers on the next three."""
    values = {
        "swift_local_dir": str(directory),
        "swift_local_port": port,
        "swift_local_account_port": port + 1,
        "swift_local_container_port": port + 2,
        "swift_local_object_port": port + 3,
        "swift_local_memcache_port": port + 4,
        "swift_local_user": user,
        "swift_local_account": "callysto",
        "swift_local_user_name": "operator",
        "swift_local_key": key,
        "swift_local_region": "RegionOne",
        "swift_local_hash_suffix": secrets.token_hex(16),
        "swift_local_hash_prefix": secrets.token_hex(16),
    }
    loader = jinja2.Environment(  # noqa: S701 - configuration files, not HTML
        loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined
    )
    etc = directory / "etc"
    etc.mkdir(parents=True, mode=0o700, exist_ok=True)
    for name in ("swift", *(f"{s}-server" for s in SERVERS)):
        target = etc / f"{name}.conf"
        target.write_text(loader.get_template(f"{name}.conf.j2").render(values))
        target.chmod(0o600)
    (directory / "srv" / "d1").mkdir(parents=True, exist_ok=True)
    for ring, offset in (("account", 1), ("container", 2), ("object", 3)):
        builder = str(etc / f"{ring}.builder")
        subprocess.run([RING_BUILDER, builder, "create", "6", "1", "1"], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run(
            [RING_BUILDER, builder, "add", f"r1z1-127.0.0.1:{port + offset}/d1", "1"],
            check=True,
            capture_output=True,
        )
        # 'rebalance' exits 1 with a warning for a ring of one device; the ring is made.
        subprocess.run([RING_BUILDER, builder, "rebalance"], capture_output=True, check=False)
        assert (etc / f"{ring}.ring.gz").exists(), ring


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start(directory: Path, port: int) -> Swift:
    """A Swift in DIRECTORY, listening on 127.0.0.1 at PORT..PORT+3, ready to answer."""
    for offset in range(5):
        assert not _listening(port + offset), f"port {port + offset} is taken"
    key = secrets.token_hex(20)
    import pwd

    render(directory, port, pwd.getpwuid(os.getuid()).pw_name, key)
    swift = Swift(root=directory, port=port, access_key="callysto:operator", secret_key=key)
    logs = directory / "log"
    logs.mkdir(exist_ok=True)
    try:
        # Tokens and account/container information; tempauth needs it.
        memcached = subprocess.Popen(
            [MEMCACHED, "-l", "127.0.0.1", "-p", str(port + 4), "-U", "0", "-m", "16",
             "-u", pwd.getpwuid(os.getuid()).pw_name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        swift.pids["memcached"] = memcached.pid
        for name in SERVERS:
            with open(logs / f"{name}.log", "wb") as log:
                process = subprocess.Popen(
                    [shutil.which(f"swift-{name}-server") or f"/usr/bin/swift-{name}-server",
                     str(directory / "etc" / f"{name}-server.conf"), "--verbose"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            swift.pids[name] = process.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{swift.endpoint}/healthcheck", timeout=2) as r:  # noqa: S310
                    if r.status == 200 and all(_listening(port + i) for i in range(1, 4)):
                        return swift
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(
            "Swift did not start: " + (logs / "proxy.log").read_text(errors="replace")[-2000:]
        )
    except BaseException:
        swift.stop()
        raise
