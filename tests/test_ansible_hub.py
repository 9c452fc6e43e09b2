"""hub.yml against this machine, as a local environment: a check run before anything exists, a real
run, a second real run and a check run that change nothing, and what the hub then does at a
student's first login (ZFS home with the default refquota, or the 507 page)."""

from __future__ import annotations

import fcntl
import hashlib
import http.cookiejar
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import CALLYSTO, PROJECT
from tests.pools import destroy_pool

pytestmark = pytest.mark.slow

ENV = "hubtest"
REFQUOTA = 64 * 1024 * 1024


def _reserve_ports(first: int = 18000, last: int = 18099, count: int = 4) -> tuple[int, int]:
    """COUNT consecutive free ports in our range, reserved for as long as the returned lock file
    descriptor stays open: test runs in parallel never pick the same block, although the hub
    binds its ports only minutes later."""
    blocks = list(range(first, last - count + 2, count))
    random.shuffle(blocks)
    for base in blocks:
        lock = os.open(Path(tempfile.gettempdir()) / f"callysto-test-ports-{base}.lock",
                       os.O_CREAT | os.O_RDWR, 0o600)  # fmt: skip
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base, lock
        except OSError:
            os.close(lock)
    raise RuntimeError(f"no free block of {count} ports in {first}-{last}")


class LocalHub:
    def __init__(self, envs: Path, data: Path, pool: str, port: int):
        self.envs, self.data, self.pool, self.port = envs, data, pool, port
        self.outcomes: dict[str, tuple[subprocess.CompletedProcess, dict]] = {}
        self.pool_after_first_check: bool | None = None

    @property
    def env_dir(self) -> Path:
        return self.envs / ENV

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def make(self, target: str, label: str) -> None:
        """`make TARGET PLAYBOOK=hub ENV=...`, as an operator types it; results from the JSON callback."""
        results = self.data.parent / f"{self.data.name}-{label}.json"
        env = {
            **os.environ,
            "CALLYSTO_ENVS_DIR": str(self.envs),
            "CALLYSTO_ANSIBLE_RESULTS": str(results),
        }
        env.pop("CALLYSTO_ENV", None)
        proc = subprocess.run(
            ["make", "--no-print-directory", target, "PLAYBOOK=hub", f"ENV={ENV}"],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        doc = json.loads(results.read_text()) if results.exists() else {}
        results.unlink(missing_ok=True)
        self.outcomes[label] = (proc, doc)

    def token(self) -> str:
        return (self.env_dir / "secrets" / "hub-api-token").read_text().strip()

    def api(self, method: str, path: str) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 (an http URL we build)
            f"{self.url}/hub/api{path}",
            method=method,
            headers={"Authorization": f"token {self.token()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (http only)
                body = response.read()
                return response.status, json.loads(body) if body else {}
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def _zfs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=False)


def _processes_under(path: Path) -> list[int]:
    """Processes started from PATH (the hub's single-user servers, if any outlived the hub)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def local_hub(zfs_daemon, tmp_path_factory):
    envs = tmp_path_factory.mktemp("envs")
    # The sign-in proxy's user must pass through to its folder: not under pytest's 0700 tmp.
    data = Path(tempfile.mkdtemp(prefix="callysto-ansible-"))
    data.chmod(0o755)
    port, port_lock = _reserve_ports()
    hub = LocalHub(envs, data, f"cyhub{uuid.uuid4().hex[:8]}", port)
    made = subprocess.run(
        [str(CALLYSTO), "env", "new", "local", ENV],
        env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert made.returncode == 0
    config = yaml.safe_load((hub.env_dir / "env.yaml").read_text())
    config["hub"] = {"pool": hub.pool, "refquota": "64M"}
    config["local"] = {"port": hub.port, "data_dir": str(data), "vdev_size": "128M"}
    (hub.env_dir / "env.yaml").write_text(yaml.safe_dump(config))
    try:
        hub.make("ansible/playbook/check", "first-check")
        hub.pool_after_first_check = _zfs("list", "-H", "-o", "name", hub.pool).returncode == 0
        hub.make("ansible/playbook", "first-run")
        hub.make("ansible/playbook", "second-run")
        hub.make("ansible/playbook/check", "last-check")
        yield hub
    finally:
        # The hub, the proxy and the students' Docker daemon, by their pid files.
        subprocess.run(
            [str(CALLYSTO), "local", "stop", "--env", ENV],
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)},
            capture_output=True, check=False,
        )  # fmt: skip
        # The sign-in proxy's sessions, in memory (what 'callysto local destroy' removes).
        prefix = data / "jupyterhub"
        memory = hashlib.sha1(str(prefix.resolve()).encode(), usedforsecurity=False).hexdigest()
        shutil.rmtree(Path("/dev/shm") / f"callysto-idp-{memory[:12]}", ignore_errors=True)
        for pid in _processes_under(data):
            os.kill(pid, signal.SIGKILL)
        destroy_pool(hub.pool)
        daemon = data / "zfs-fuse.pid"  # only when the playbook had to start zfs-fuse itself
        if daemon.exists():
            os.kill(int(daemon.read_text().strip()), signal.SIGTERM)
        shutil.rmtree(data, ignore_errors=True)
        os.close(port_lock)


def _pinned_jupyterhub() -> str:
    defaults = PROJECT / "playbooks" / "roles" / "jupyterhub" / "defaults" / "main.yml"
    return yaml.safe_load(defaults.read_text())["jupyterhub_version"]


def _recap(hub: LocalHub, label: str) -> dict[str, int]:
    proc, doc = hub.outcomes[label]
    assert proc.returncode == 0, f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    (stats,) = doc["stats"].values()
    return stats


def test_check_mode_passes_before_the_first_real_run_and_changes_nothing(local_hub):
    stats = _recap(local_hub, "first-check")
    assert (stats["failures"], stats["unreachable"]) == (0, 0)
    assert stats["changed"] > 0  # it does report what a real run would do
    assert local_hub.pool_after_first_check is False


def test_real_run_brings_up_the_pool_the_homes_and_the_hub(local_hub):
    stats = _recap(local_hub, "first-run")
    assert stats["failures"] == 0
    health = subprocess.run(
        ["zpool", "list", "-H", "-o", "name,health", local_hub.pool],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert health == [local_hub.pool, "ONLINE"]
    assert _zfs("list", "-H", "-o", "name", f"{local_hub.pool}/home").stdout.strip() == (
        f"{local_hub.pool}/home"
    )
    vdevs = sorted(p.name for p in local_hub.data.glob("*.img"))
    assert vdevs == [f"{local_hub.pool}-1.img", f"{local_hub.pool}-2.img"]
    with urllib.request.urlopen(f"{local_hub.url}/hub/api/", timeout=30) as response:  # noqa: S310
        assert json.loads(response.read())["version"] == _pinned_jupyterhub()
    token = local_hub.env_dir / "secrets" / "hub-api-token"
    assert token.stat().st_mode & 0o777 == 0o600


def test_second_real_run_changes_nothing(local_hub):
    stats = _recap(local_hub, "second-run")
    changed = local_hub.outcomes["second-run"][1]["changed"]
    assert (stats["changed"], stats["failures"]) == (0, 0), changed


def test_check_run_after_a_real_run_reports_no_change(local_hub):
    stats = _recap(local_hub, "last-check")
    changed = local_hub.outcomes["last-check"][1]["changed"]
    assert (stats["changed"], stats["failures"]) == (0, 0), changed


def _user_hash(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324 (the shape of a user hash)


def test_first_login_creates_the_home_with_the_default_refquota(local_hub):
    user = _user_hash("first-login")
    dataset = f"{local_hub.pool}/home/{user}"
    assert _zfs("list", "-H", "-o", "name", dataset).returncode != 0
    assert local_hub.api("POST", f"/users/{user}")[0] == 201
    status, _ = local_hub.api("POST", f"/users/{user}/server")
    assert status in (201, 202)
    for _ in range(120):
        if local_hub.api("GET", f"/users/{user}")[1]["servers"].get("", {}).get("ready"):
            break
        time.sleep(1)
    values = _zfs("get", "-H", "-p", "-o", "property,value", "refquota,mountpoint", dataset).stdout
    props = dict(line.split("\t") for line in values.splitlines())
    assert int(props["refquota"]) == REFQUOTA
    home = Path(props["mountpoint"])
    socket = local_hub.data / "jupyterhub" / "run" / "docker.sock"
    inspected = subprocess.run(
        ["docker", "--host", f"unix://{socket}", "inspect", f"callysto-{user}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert inspected.returncode == 0, "no container runs the student's server"
    container = json.loads(inspected.stdout)[0]
    assert [m["Source"] for m in container["Mounts"]] == [str(home)]
    server = Path(f"/proc/{container['State']['Pid']}")
    assert server.stat().st_uid == home.stat().st_uid != 0
    assert home.stat().st_mode & 0o777 == 0o700
    assert local_hub.api("DELETE", f"/users/{user}/server")[0] in (202, 204)


@pytest.fixture
def home(local_hub):
    """A student with a home dataset and no running server."""
    user = _user_hash(uuid.uuid4().hex)
    local_hub.api("POST", f"/users/{user}")
    dataset = f"{local_hub.pool}/home/{user}"
    assert _zfs("create", "-o", "refquota=64M", dataset).returncode == 0
    yield user, dataset
    _zfs("set", "readonly=off", dataset)


def test_read_only_home_is_refused_with_507(local_hub, home):
    user, dataset = home
    assert _zfs("set", "readonly=on", dataset).returncode == 0
    status, body = local_hub.api("POST", f"/users/{user}/server")
    assert status == 507
    assert "read-only" in body["message"]


def test_full_home_is_refused_with_507(local_hub, home):
    user, dataset = home
    used = int(_zfs("get", "-H", "-p", "-o", "value", "used", dataset).stdout)
    assert _zfs("set", f"refquota={used + 256 * 1024}", dataset).returncode == 0
    status, body = local_hub.api("POST", f"/users/{user}/server")
    assert status == 507
    assert "full" in body["message"]


def test_unmounted_home_is_refused_with_507_and_nothing_is_written_beneath(local_hub, home):
    user, dataset = home
    mountpoint = Path(_zfs("get", "-H", "-o", "value", "mountpoint", dataset).stdout.strip())
    assert _zfs("unmount", dataset).returncode == 0
    try:
        status, body = local_hub.api("POST", f"/users/{user}/server")
        assert status == 507
        assert "not available" in body["message"]
        assert not mountpoint.exists() or not any(mountpoint.iterdir())
    finally:
        assert _zfs("mount", dataset).returncode == 0


def _browser() -> urllib.request.OpenerDirector:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    opener.jar = jar  # type: ignore[attr-defined]
    return opener


def _sign_in(local_hub, browser, username: str) -> int:
    browser.open(f"{local_hub.url}/hub/login", timeout=30).read()
    xsrf = next(c.value for c in browser.jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": username, "password": "x", "_xsrf": xsrf})
    try:
        with browser.open(f"{local_hub.url}/hub/login", data=form.encode(), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sign_in_accepts_only_user_hashes(local_hub):
    assert _sign_in(local_hub, _browser(), "alice") == 403
    assert _sign_in(local_hub, _browser(), _user_hash("a student")) == 302


def test_student_with_a_read_only_home_sees_the_507_page(local_hub, home):
    user, dataset = home
    browser = _browser()
    assert _sign_in(local_hub, browser, user) == 302
    assert _zfs("set", "readonly=on", dataset).returncode == 0
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.open(f"{local_hub.url}/hub/spawn", timeout=60)
    assert refused.value.code == 507
    page = refused.value.read().decode()
    assert "Your home is read-only" in page and "support@callysto.ca" in page


def test_tokens_never_appear_in_the_output_even_with_diff(local_hub):
    secrets = [
        local_hub.token(),
        (local_hub.data / "jupyterhub" / "secrets" / "proxy-token").read_text().strip(),
    ]
    assert all(len(secret) == 64 for secret in secrets)
    for label, (proc, doc) in local_hub.outcomes.items():
        text = proc.stdout + proc.stderr + json.dumps(doc)
        assert not any(secret in text for secret in secrets), label
    proxy_token = local_hub.data / "jupyterhub" / "secrets" / "proxy-token"
    assert proxy_token.stat().st_mode & 0o777 == 0o600
