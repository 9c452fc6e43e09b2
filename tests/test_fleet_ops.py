"""Fleet operations: `quota list`, `health`, `hub servers`, `backup homes` and `ansible playbook`
work on every hub at once, go on past a hub that is down, and end with a line per hub on stderr
naming it, exiting 1. Cloud hubs are reached over a real sshd on 127.0.0.1 with a fake Terraform
state; a local fleet's hubs are this machine, each with a zfs-fuse pool of its own."""

from __future__ import annotations

import contextlib
import getpass
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from callysto_infra import environments, hubs
from tests.conftest import destroy_pool, make_pool
from tests.homes import A, make_home, set_pool

SSHD_PORT = 18862
DEAD_PORT = 18863  # nothing listens here
# A local fleet on FLEET_PORT: the sign-in proxy at +3 (18860), hub-a at +20 (18877, a stand-in
# for its JupyterHub), hub-b at +40, where nothing of this test listens: the hub that is down.
FLEET_PORT = 18857
SSHD = "/usr/sbin/sshd"
HUB_A, HUB_B, HUB_C = "hub-a.callysto.farm", "hub-b.callysto.farm", "hub-c.callysto.farm"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 that lets in the key it returns; stopped by its pid afterwards."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is not installed: run scripts/bootstrap-system (or make test)")
    base = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)],
                       check=True)  # fmt: skip
    shutil.copy(base / "client.pub", base / "authorized_keys")
    (base / "sshd_config").write_text(
        f"Port {SSHD_PORT}\nListenAddress 127.0.0.1\nHostKey {base / 'host'}\n"
        f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
        "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\n"
        "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "LogLevel ERROR\nMaxStartups 50\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")])
    for _ in range(100):
        if _listening(SSHD_PORT):
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("sshd did not start")
    yield base / "client"
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


def cloud_env(pool, client_key: Path, hosts: dict[str, int]):
    """A dev environment on POOL whose Terraform state lists HOSTS (name -> SSH port)."""
    env = set_pool(environments.create("dev", "brave-otter"), pool.name)
    rows = {
        name: {
            "name": name,
            "address": "127.0.0.1",
            "ssh_user": getpass.getuser(),
            "ssh_port": port,
            "groups": ["hub", "dev", "brave-otter"],
            "zfs_disk_1": "/dev/disk/by-id/virtio-0000",
            "zfs_disk_2": "/dev/disk/by-id/virtio-0001",
        }
        for name, port in hosts.items()
    }
    env.state_file.write_text(
        json.dumps({"version": 4, "outputs": {"hosts": {"value": rows, "type": "map"}}})
    )
    shutil.copy(client_key, env.ssh_key_file)
    env.ssh_key_file.chmod(0o600)
    return env


def summary_of(stderr: str, hub_names) -> dict[str, str]:
    """The per-hub lines of STDERR: hub -> what follows 'hub: '."""
    found = {}
    for line in stderr.splitlines():
        name, _, rest = line.partition(": ")
        if name in hub_names:
            found[name] = rest
    return found


# --- quota list over SSH --------------------------------------------------------------------------


def test_quota_list_lists_the_hubs_that_answer_and_names_the_one_that_is_down(
    callysto, envs_dir, zfs_pool, sshd, one_line_error
):
    # Both live hubs reach this machine's pool, so each lists the same home.
    cloud_env(zfs_pool, sshd, {HUB_A: SSHD_PORT, HUB_B: DEAD_PORT, HUB_C: SSHD_PORT})
    make_home(zfs_pool, A, "1M")
    listed = callysto("quota", "list", "--env", "brave-otter")
    one_line_error(listed, f"1 of 3 hubs failed: {HUB_B}: UNREACHABLE: ", code=1, alone=False)
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["USER", "USED", "QUOTA", "AVAILABLE", "BANNED", "HUB"]
    assert sorted((row[0], row[-1]) for row in rows[1:]) == [(A, HUB_A), (A, HUB_C)]
    assert summary_of(listed.stderr, (HUB_A, HUB_B, HUB_C)) == {
        HUB_A: "ok: 1 home",
        HUB_B: f"UNREACHABLE: ssh: connect to host 127.0.0.1 port {DEAD_PORT}: Connection refused",
        HUB_C: "ok: 1 home",
    }
    as_json = callysto("quota", "list", "--env", "brave-otter", "--json")
    assert as_json.returncode == 1 and HUB_B in as_json.stderr.splitlines()[-1]
    assert sorted(h["hub"] for h in json.loads(as_json.stdout)) == [HUB_A, HUB_C]


# --- ansible playbook over SSH --------------------------------------------------------------------


def test_ansible_playbook_runs_every_host_and_names_the_unreachable_one(
    callysto, envs_dir, zfs_pool, sshd, tmp_path, one_line_error
):
    cloud_env(zfs_pool, sshd, {HUB_A: SSHD_PORT, HUB_B: DEAD_PORT, HUB_C: SSHD_PORT})
    results = tmp_path / "results.json"
    # Only what is tagged 'always' (the plays' facts and checks), in check mode: nothing changes
    # on this machine. No sudo here (root needs no become), and Debian's own Python, not the
    # first one a login shell's PATH offers.
    run = callysto(
        "ansible", "playbook", "--env", "brave-otter", "--check", "--tags", "always",
        "-e", "ansible_become=false", "-e", "ansible_python_interpreter=/usr/bin/python3", "hub",
        env={"CALLYSTO_ANSIBLE_RESULTS": str(results)},
    )  # fmt: skip
    line = one_line_error(run, f"host '{HUB_B}' is unreachable", code=1, alone=False)
    stats = json.loads(results.read_text())["stats"]
    for live in (HUB_A, HUB_C):  # both went through every play while hub-b was down
        assert stats[live]["ok"] >= 3 and stats[live]["failures"] == 0, line
    assert stats[HUB_B]["unreachable"] == 1
    lines = run.stderr.splitlines()
    recap = next(i for i, text in enumerate(lines) if text.startswith("recap: "))
    assert lines[recap + 1 : recap + 4] == [
        f"{HUB_A}: ok: ok={stats[HUB_A]['ok']} changed=0",
        f"{HUB_B}: UNREACHABLE: {lines[recap + 2].split('UNREACHABLE: ', 1)[1]}",
        f"{HUB_C}: ok: ok={stats[HUB_C]['ok']} changed=0",
    ]
    assert f"port {DEAD_PORT}: Connection refused" in lines[recap + 2]


# --- a local fleet: a pool per hub ----------------------------------------------------------------


def local_fleet(names: list[str]):
    """A local fleet environment 'fleet' of hubs NAMES, and its hubs by name."""
    env = environments.create("local", "fleet")
    path = env.path / environments.ENV_FILE
    config = yaml.safe_load(path.read_text())
    config["hub"]["pool"] = f"cyfo{os.urandom(4).hex()}"
    config["local"]["port"] = FLEET_PORT
    config["hubs"] = [{"name": name} for name in names]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = environments.load("fleet")
    return env, {hub.name: hub for hub in hubs.local_hubs(env)}


@contextlib.contextmanager
def pools_of(directory: Path, fleet_hubs):
    """A pool with a home dataset (holding A's home) for each of FLEET_HUBS; destroyed after."""
    made = []
    try:
        for hub in fleet_hubs:
            made.append(make_pool(directory, hub.pool))
            subprocess.run(["zfs", "create", f"{hub.pool}/home"], check=True)
            make_home(made[-1], A, "1M")
        yield
    finally:
        for pool in made:
            destroy_pool(pool)


@pytest.fixture
def fleet(envs_dir, zfs_daemon, tmp_path):
    """A local fleet of hub-a, hub-b and hub-c; hub-a and hub-c have their pools, hub-b has
    none: it is down."""
    _env, by_name = local_fleet(["hub-a", "hub-b", "hub-c"])
    with pools_of(tmp_path, [by_name["hub-a"], by_name["hub-c"]]):
        yield by_name


def test_backup_homes_sends_every_hub_at_once_and_names_the_one_that_failed(
    callysto, fleet, tmp_path, one_line_error
):
    by_name = fleet
    backups = tmp_path / "backups"
    backups.mkdir()
    run = callysto("backup", "homes", "--env", "fleet", "--to", str(backups))
    one_line_error(run, "1 of 3 hubs not backed up: hub-b: FAILED: ", code=1, alone=False)
    sent = dict(line.split("\t") for line in run.stdout.splitlines())
    assert sorted(sent) == ["hub-a", "hub-c"]
    for name in ("hub-a", "hub-c"):
        snapshot = sent[name].split("@")[1]
        assert sent[name] == f"{by_name[name].pool}/home@{snapshot}"
        assert [p.name for p in (backups / name).iterdir()] == [f"{snapshot}.full.zfs"]
    assert not (backups / "hub-b").exists()
    summary = summary_of(run.stderr, by_name)
    assert summary["hub-a"] == f"ok: backed up {sent['hub-a'].split('@')[1]}"
    assert summary["hub-b"] == (
        f"FAILED: hub 'hub-b' has no dataset {by_name['hub-b'].pool}/home: is its pool set up?"
    )
    assert summary["hub-c"] == f"ok: backed up {sent['hub-c'].split('@')[1]}"
    assert "backed up 2 of 3 hubs" in run.stderr


def test_quota_list_of_a_local_fleet_reads_each_hubs_own_pool(callysto, fleet, one_line_error):
    by_name = fleet
    listed = callysto("quota", "list", "--env", "fleet", "--json")
    one_line_error(listed, "1 of 3 hubs failed: hub-b: FAILED: ", code=1, alone=False)
    assert sorted((h["hub"], h["name"]) for h in json.loads(listed.stdout)) == [
        ("hub-a", f"{by_name['hub-a'].pool}/home/{A}"),
        ("hub-c", f"{by_name['hub-c'].pool}/home/{A}"),
    ]
    assert summary_of(listed.stderr, by_name)["hub-c"] == "ok: 1 home"


# --- a local fleet with one hub serving: health and running servers -------------------------------

TOKEN = "operator-token-" + "0" * 24
STARTED = "2026-12-04T08:00:00.000000Z"


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """What hub-a's JupyterHub and the fleet's sign-in proxy answer, as far as the commands ask:
    the API's root, the operator's own user, the active users (one running server), the IdP's
    metadata."""

    entity_id = ""

    def do_GET(self):
        authorized = self.headers.get("Authorization") == f"token {TOKEN}"
        if self.path == "/hub/api":
            self._json({"version": "5.2.1"})
        elif self.path == "/hub/api/user" and authorized:
            self._json({"name": "callysto-operator", "kind": "service"})
        elif self.path.startswith("/hub/api/users?state=active") and authorized:
            server = {"started": STARTED, "last_activity": STARTED, "ready": True}
            self._json({"items": [{"name": A, "servers": {"": server}}],
                        "_pagination": {"offset": 0, "limit": 200, "total": 1, "next": None}})  # fmt: skip
        elif self.path == "/simplesaml/saml2/idp/metadata.php":
            self._send(200, "application/samlmetadata+xml", (
                '<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0'
                f':metadata" entityID="{self.entity_id}"><md:IDPSSODescriptor/>'
                "</md:EntityDescriptor>"
            ).encode())  # fmt: skip
        else:
            self._json({"message": "not here"}, 403 if self.path.startswith("/hub/api") else 404)

    def _json(self, doc, status=200):
        self._send(status, "application/json", json.dumps(doc).encode())

    def _send(self, status, kind, body):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def half_fleet(envs_dir, zfs_daemon, tmp_path):
    """A local fleet of hub-a, serving (its pool, a stand-in JupyterHub, the sign-in proxy) and
    hub-b, down (nothing at its port, no pool)."""
    env, by_name = local_fleet(["hub-a", "hub-b"])
    token = env.secrets_dir / "hub-api-token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    _FakeHub.entity_id = env.idp_entity_id
    servers = [
        http.server.ThreadingHTTPServer(("127.0.0.1", port), _FakeHub)
        for port in (by_name["hub-a"].port, FLEET_PORT + 3)
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        with pools_of(tmp_path, [by_name["hub-a"]]):
            yield by_name
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join()


def test_health_checks_every_hub_and_names_the_one_that_is_down(
    callysto, half_fleet, one_line_error
):
    by_name = half_fleet
    down = f"http://127.0.0.1:{by_name['hub-b'].port}/hub/api"
    run = callysto("health", "--env", "fleet", "--timeout", "2")
    one_line_error(
        run, "1 of 2 hubs of 'fleet' are not healthy: hub-b: FAILED: proxy: ", code=1, alone=False
    )
    checks = [line.split(None, 2) for line in run.stdout.splitlines()]
    assert [(ok, name) for ok, name, _ in checks] == [
        ("ok", "proxy"), ("ok", "hub-api"), ("ok", "pool"), ("ok", "free-space"),
        ("FAIL", "proxy"), ("FAIL", "hub-api"), ("FAIL", "pool"),
        ("FAIL", "frontdoor"),  # a local fleet's front door: nothing runs it here
        ("ok", "sign-in"),
    ]  # fmt: skip
    summary = summary_of(run.stderr, by_name)
    assert summary["hub-a"] == "ok"
    assert summary["hub-b"].startswith(f"FAILED: proxy: {down}: no answer (")
    assert summary["hub-b"].endswith(" (also failed: hub-api, pool)")


def test_hub_servers_lists_the_hubs_that_answer_and_names_the_one_that_is_down(
    callysto, half_fleet, one_line_error
):
    by_name = half_fleet
    run = callysto("hub", "servers", "--env", "fleet", "--json")
    one_line_error(run, "1 of 2 hubs failed: hub-b: FAILED: hub API at ", code=1, alone=False)
    (server,) = json.loads(run.stdout)
    assert (server["hub"], server["user"], server["ready"]) == ("hub-a", A, True)
    summary = summary_of(run.stderr, by_name)
    assert summary["hub-a"] == "ok: 1 server"
    assert summary["hub-b"].startswith(
        f"FAILED: hub API at http://127.0.0.1:{by_name['hub-b'].port}/hub/api is not reachable"
    )
