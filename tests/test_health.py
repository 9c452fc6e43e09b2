"""`callysto health`: each check on the real thing it names (a zfs-fuse pool, a port where nothing
listens), and the one-line failure an operator sees."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading

import yaml

from callysto_infra import environments, health
from tests.conftest import make_pool
from tests.pools import destroy_pool

# A port of the test range where nothing listens.
SILENT_PORT = 18140


def local_env(envs_dir, name="site", pool="tank"):
    env = environments.create("local", name)
    path = env.path / "env.yaml"
    config = yaml.safe_load(path.read_text())
    config["hub"]["pool"] = pool
    config["local"]["port"] = SILENT_PORT
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return environments.load(name)


def test_pool_check_reads_health_and_free_space_of_a_real_pool(envs_dir, zfs_pool):
    env = local_env(envs_dir, pool=zfs_pool.name)
    checks = {c.name: c for c in health.check_pool(env, timeout=5)}
    assert checks["pool"].ok, checks["pool"].detail
    assert "ONLINE" in checks["pool"].detail
    assert checks["free-space"].ok
    # Sizes read the way zfs prints them, as everywhere else (e.g. '98.5M free').
    assert re.match(r"\d+(\.\d+)?[KMGT] free for homes", checks["free-space"].detail)


def test_pool_check_fails_when_the_home_dataset_is_missing(envs_dir, zfs_daemon, tmp_path):
    pool = make_pool(tmp_path)  # no home dataset
    try:
        env = local_env(envs_dir, pool=pool.name)
        checks = {c.name: c for c in health.check_pool(env, timeout=5)}
        assert checks["pool"].ok
        assert not checks["free-space"].ok
        assert "home' is missing" in checks["free-space"].detail
    finally:
        destroy_pool(pool.name)


def test_pool_check_fails_when_the_homes_are_not_mounted(envs_dir, zfs_pool):
    # As after zfs-fuse restarts from its cache: the pool is there, its datasets are not mounted.
    subprocess.run(["zfs", "unmount", f"{zfs_pool.name}/home"], check=True)
    env = local_env(envs_dir, pool=zfs_pool.name)
    checks = {c.name: c for c in health.check_pool(env, timeout=5)}
    assert checks["pool"].ok
    assert not checks["free-space"].ok
    assert "is not mounted" in checks["free-space"].detail


def test_pool_check_fails_for_a_pool_that_is_not_imported(envs_dir, zfs_daemon):
    env = local_env(envs_dir, pool="cynosuchpool")
    (check,) = health.check_pool(env, timeout=5)
    assert not check.ok
    assert "not imported" in check.detail


def test_unhealthy_hub_fails_in_one_line_naming_the_proxy(envs_dir, callysto):
    local_env(envs_dir)
    result = callysto("health", "--env", "site", "--timeout", "1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the hub of 'site' is not healthy: proxy:")
    assert f"127.0.0.1:{SILENT_PORT}" in lines[0]
    assert "Traceback" not in result.stderr


def test_json_report_lists_every_check_and_still_exits_1(envs_dir, callysto, zfs_pool):
    local_env(envs_dir, pool=zfs_pool.name)
    result = callysto("health", "--env", "site", "--json", "--attempts", "2", "--timeout", "0.5")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert report["attempts"] == 2
    by_name = {c["name"]: c for c in report["checks"]}
    assert set(by_name) == {"proxy", "hub-api", "sign-in", "pool", "free-space"}
    assert by_name["sign-in"]["ok"] is False
    assert f"127.0.0.1:{SILENT_PORT + 3}/simplesaml/" in by_name["sign-in"]["detail"]
    assert by_name["pool"]["ok"] is True
    assert by_name["proxy"]["ok"] is False
    assert "hub-api-token" in by_name["hub-api"]["detail"]


def test_health_of_an_unknown_environment_is_bad_input(envs_dir, callysto):
    result = callysto("health", "--env", "nowhere")
    assert result.returncode == 2
    assert "unknown environment 'nowhere'" in result.stderr


def test_hub_url_is_the_local_port_or_the_hubs_https_name(envs_dir):
    env = local_env(envs_dir)
    assert health.hub_url(env) == f"http://127.0.0.1:{SILENT_PORT}/"
    dev = environments.create("dev", "brave-otter")
    assert health.hub_url(dev) == "https://brave-otter.callysto.farm/"


class _Metadata(http.server.BaseHTTPRequestHandler):
    """What a sign-in proxy of another environment answers: its own IdP's metadata."""

    entity_id = "https://elsewhere.example.org/simplesaml/saml2/idp/metadata.php"

    def do_GET(self):
        body = (
            '<?xml version="1.0"?>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:'
            f'metadata" entityID="{self.entity_id}"><md:IDPSSODescriptor/></md:EntityDescriptor>'
        ).encode()
        self.send_response(200 if self.path == "/simplesaml/saml2/idp/metadata.php" else 404)
        self.send_header("Content-Type", "application/samlmetadata+xml")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_sign_in_check_wants_the_pinned_idp_from_the_proxy(envs_dir):
    env = local_env(envs_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", SILENT_PORT + 3), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wrong = health.check_sign_in(env, timeout=5)
        assert not wrong.ok
        assert _Metadata.entity_id in wrong.detail and env.idp_entity_id in wrong.detail
        _Metadata.entity_id = env.idp_entity_id
        right = health.check_sign_in(env, timeout=5)
        assert right.ok, right.detail
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    gone = health.check_sign_in(env, timeout=1)
    assert not gone.ok and "no answer" in gone.detail


def test_sign_in_url_is_the_proxys_port_the_front_door_or_the_hub(envs_dir):
    assert health.sign_in_url(local_env(envs_dir)) == (
        f"http://127.0.0.1:{SILENT_PORT + 3}/simplesaml/"
    )
    dev = environments.create("dev", "brave-otter")
    assert health.sign_in_url(dev) == "https://brave-otter.callysto.farm/simplesaml/"
    path = dev.path / "env.yaml"
    path.write_text(path.read_text() + "frontdoor:\n  name: door\n")
    door = environments.load("brave-otter")
    assert health.sign_in_url(door) == "https://door.callysto.farm/simplesaml/"
    assert door.idp_entity_id == dev.idp_entity_id, "a front door changes no student's hash"


def test_a_fleet_is_checked_hub_by_hub_and_each_failure_names_its_hub(envs_dir, callysto):
    env = environments.create("dev", "brave-otter")
    rows = {
        name: {"name": name, "address": "127.0.0.1", "ssh_user": "root", "ssh_port": SILENT_PORT,
               "groups": ["hub", "dev", "brave-otter"]}
        for name in ("hub-a.invalid", "hub-b.invalid")
    }  # fmt: skip
    env.state_file.write_text(json.dumps({"version": 4, "outputs": {"hosts": {"value": rows}}}))
    result = callysto("health", "--env", "brave-otter", "--json", "--timeout", "1")
    assert result.returncode == 1
    checks = json.loads(result.stdout)["checks"]
    assert [c["name"] for c in checks] == [
        "proxy", "hub-api", "pool", "proxy", "hub-api", "pool", "sign-in"
    ]  # fmt: skip
    assert "https://hub-a.invalid/hub/api" in checks[0]["detail"]
    assert "https://hub-b.invalid/hub/api" in checks[3]["detail"]
    assert "hub-a.invalid" in checks[2]["detail"] and "hub-b.invalid" in checks[5]["detail"]
    assert not any(c["ok"] for c in checks)
    # Nothing on either hub answered and SSH could not reach it: a line each says so, last.
    refused = f"UNREACHABLE: ssh: connect to host 127.0.0.1 port {SILENT_PORT}: Connection refused"
    assert result.stderr.splitlines()[-3:-1] == [
        f"hub-a.invalid: {refused}", f"hub-b.invalid: {refused}"
    ]  # fmt: skip
    assert result.stderr.splitlines()[-1] == (
        f"error: 2 of 2 hubs of 'brave-otter' are not healthy: hub-a.invalid: {refused}"
    )
