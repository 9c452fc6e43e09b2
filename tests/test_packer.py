"""The hub image: Debian's real `packer` validates and builds the template with an environment's
values, against a stand-in for the OpenStack cloud (Keystone, Nova, Glance, Neutron) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from callysto_infra import environments, packer
from tests.conftest import CALLYSTO, PROJECT

PORTS = range(18220, 18240)
REGION = "Calgary"
NETWORK_ID = "b0b12e8f-5f2c-4e55-9a57-6b3c3b1f0a11"
FLAVORS = {
    "m1.large": "f0000000-0000-4000-8000-00000000000b",
    "m1.small": "f0000000-0000-4000-8000-00000000000a",
}
IMAGES = {"Debian 12": "d0000000-0000-4000-8000-00000000000c"}
CREDENTIAL_ID = "app-cred-7f1e"
CREDENTIAL_SECRET = "s3cret-never-on-a-command-line"


class StandinCloud:
    """A stand-in for the OpenStack cloud: Keystone gives a token for one application credential,
    with a catalog pointing Nova, Glance and Neutron of one region back here; Nova refuses to start a
    server, so a build stops there. Every request is recorded as (method, path, query, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, dict | None]] = []
        self.server_requested = threading.Event()
        # When set to an Event, Nova answers the server creation only once the Event is set.
        self.server_gate: threading.Event | None = None
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest's output clean
                pass

            def _reply(self, status: int, document: dict | None, headers: dict | None = None):
                body = json.dumps(document).encode() if document is not None else b""
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                cloud.requests.append((method, url.path, parse_qs(url.query), body))
                self._reply(*cloud.answer(method, url.path, parse_qs(url.query), body))

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        for port in PORTS:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                continue
        else:
            pytest.fail(f"no free port in {PORTS}")
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def generated_key(self) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "key"
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "rsa",
                    "-b",
                    "2048",
                    "-m",
                    "PEM",
                    "-N",
                    "",
                    "-f",
                    str(key),
                ],
                check=True,
            )
            return {
                "private_key": key.read_text(),
                "public_key": key.with_suffix(".pub").read_text(),
            }

    def catalog(self) -> list[dict]:
        def service(kind: str, path: str) -> dict:
            endpoint = {"id": kind, "interface": "public", "region": REGION, "region_id": REGION}
            return {
                "type": kind,
                "id": kind,
                "name": kind,
                "endpoints": [{**endpoint, "url": self.url + path}],
            }

        return [
            service("identity", "/identity/v3/"),
            service("compute", "/compute/v2.1/"),
            service("image", "/image/"),
            service("network", "/network/"),
        ]

    def answer(self, method: str, path: str, query: dict, body: dict | None):
        if method == "POST" and path == "/identity/v3/auth/tokens":
            given = (
                (body or {}).get("auth", {}).get("identity", {}).get("application_credential", {})
            )
            if given != {"id": CREDENTIAL_ID, "secret": CREDENTIAL_SECRET}:
                error = {
                    "code": 401,
                    "title": "Unauthorized",
                    "message": "The request you have made requires authentication.",
                }
                return 401, {"error": error}
            token = {
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2026-01-01T00:00:00.000000Z",
                "methods": ["application_credential"],
                "user": {
                    "id": "u1",
                    "name": "operator",
                    "domain": {"id": "default", "name": "Default"},
                },
                "project": {
                    "id": "p1",
                    "name": "callysto",
                    "domain": {"id": "default", "name": "Default"},
                },
                "catalog": self.catalog(),
            }
            return 201, {"token": token}, {"X-Subject-Token": "standin-token"}
        if method == "GET" and path == "/compute/v2.1/flavors/detail":
            flavors = [
                {"id": i, "name": n, "vcpus": 4, "ram": 8192, "disk": 20}
                for n, i in FLAVORS.items()
            ]
            return 200, {"flavors": flavors}
        if method == "GET" and path == "/image/v2/images":
            wanted = query.get("name", [None])[0]
            images = [
                {
                    "id": i,
                    "name": n,
                    "status": "active",
                    "visibility": "public",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                }
                for n, i in IMAGES.items()
                if wanted in (None, n)
            ]
            return 200, {"images": images}
        if method == "POST" and path == "/compute/v2.1/os-keypairs":
            # Like Nova, make the key pair when no public key is given, and hand back its private key.
            keypair = {**body["keypair"], "fingerprint": "00:11", "user_id": "u1"}
            if "public_key" not in keypair:
                keypair.update(self.generated_key())
            return 200, {"keypair": keypair}
        if method == "DELETE" and path.startswith("/compute/v2.1/os-keypairs/"):
            return 202, None
        if method == "POST" and path == "/compute/v2.1/servers":
            self.server_requested.set()
            if self.server_gate is not None:
                self.server_gate.wait(timeout=60)
            return 400, {
                "badRequest": {"code": 400, "message": "stand-in cloud: no hypervisor here"}
            }
        return 404, {
            "itemNotFound": {"code": 404, "message": f"stand-in cloud: no {method} {path}"}
        }


@pytest.fixture
def cloud():
    standin = StandinCloud()
    yield standin
    standin.stop()


def clouds_yaml(path: Path, auth_url: str, secret: str = CREDENTIAL_SECRET) -> Path:
    entry = {
        "auth_type": "v3applicationcredential",
        "auth": {
            "auth_url": auth_url,
            "application_credential_id": CREDENTIAL_ID,
            "application_credential_secret": secret,
        },
        "region_name": REGION,
    }
    path.write_text(yaml.safe_dump({"clouds": {"openstack": entry}}))
    path.chmod(0o600)
    return path


@pytest.fixture
def image_env(envs_dir, monkeypatch):
    """A dev environment with every value the image build takes set in its env.yaml."""
    for name in [n for n in os.environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)
    env = environments.create("dev", "brave-otter")
    config = yaml.safe_load((env.path / "env.yaml").read_text())
    config["cloud"].update(
        {
            "region": REGION,
            "flavor": "m1.large",
            "image": "callysto-hub",
            "source_image": "Debian 12",
            "source_image_user": "debian",
            "build_network_id": NETWORK_ID,
            "build_security_groups": ["packer"],
        }
    )
    (env.path / "env.yaml").write_text(yaml.safe_dump(config))
    return environments.load("brave-otter")


@pytest.fixture
def credentials(tmp_path, cloud, monkeypatch):
    path = clouds_yaml(tmp_path / "clouds.yaml", f"{cloud.url}/identity/v3")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    return path


def test_packer_validates_the_hub_template_with_the_environments_values(
    callysto, image_env, credentials, cloud
):
    result = callysto("packer", "validate", "hub", "--env", "brave-otter")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    # Packer logged in with the credential of clouds.yaml.
    (login,) = [r for r in cloud.requests if r[1] == "/identity/v3/auth/tokens"]
    assert login[3]["auth"]["identity"]["application_credential"]["id"] == CREDENTIAL_ID


def test_packer_takes_the_credentials_of_an_openrc_from_the_os_variables(
    callysto, image_env, cloud, monkeypatch
):
    monkeypatch.setenv("OS_AUTH_URL", f"{cloud.url}/identity/v3")
    monkeypatch.setenv("OS_AUTH_TYPE", "v3applicationcredential")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", CREDENTIAL_ID)
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", CREDENTIAL_SECRET)
    monkeypatch.setenv("OS_REGION_NAME", REGION)
    result = callysto("packer", "validate", "hub", "--env", "brave-otter")
    assert result.returncode == 0, result.stderr
    (login,) = [r for r in cloud.requests if r[1] == "/identity/v3/auth/tokens"]
    assert login[3]["auth"]["identity"]["application_credential"]["id"] == CREDENTIAL_ID


def test_packer_validate_with_a_rejected_credential_fails_in_one_line(
    callysto, image_env, tmp_path, cloud, monkeypatch
):
    wrong = clouds_yaml(tmp_path / "clouds.yaml", f"{cloud.url}/identity/v3", secret="wrong")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(wrong))
    result = callysto("packer", "validate", "hub", "--env", "brave-otter")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "error: packer validate of 'hub' failed for environment 'brave-otter':"
    )
    assert "Authentication failed" in result.stderr


def test_packer_without_credentials_says_how_to_provide_them(
    callysto, image_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "missing" / "clouds.yaml"))
    for command in ("validate", "build"):
        result = callysto("packer", command, "hub", "--env", "brave-otter")
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "clouds.yaml" in result.stderr and "OS_AUTH_URL" in result.stderr


def test_packer_names_the_missing_cloud_entry(callysto, image_env, credentials):
    config = yaml.safe_load((image_env.path / "env.yaml").read_text())
    config["cloud"]["cloud"] = "arbutus"
    (image_env.path / "env.yaml").write_text(yaml.safe_dump(config))
    result = callysto("packer", "validate", "hub", "--env", "brave-otter")
    assert result.returncode == 2
    assert "no cloud 'arbutus' (it has: openstack)" in result.stderr


def test_packer_syntax_check_needs_no_cloud(callysto, image_env, tmp_path, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "missing" / "clouds.yaml"))
    result = callysto("packer", "validate", "--syntax-only", "hub", "--env", "brave-otter")
    assert result.returncode == 0, result.stderr


def test_missing_packer_says_how_to_install_it(callysto, image_env, credentials, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    for command in ("validate", "build"):
        result = callysto(
            "packer", command, "hub", "--env", "brave-otter", env={"PATH": str(empty)}
        )
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1
        assert "apt-get install packer" in result.stderr


def test_packer_refuses_a_local_environment(callysto, envs_dir):
    environments.create("local")
    result = callysto("packer", "validate", "hub", "--env", "local")
    assert result.returncode == 2
    assert "boots no cloud image" in result.stderr


def test_packer_variables_come_from_env_yaml_and_hold_no_secret(image_env, credentials, tmp_path):
    document = packer.variables(image_env, "hub", "openstack", tmp_path / "manifest.json")
    assert document["region"] == REGION
    assert document["networks"] == [NETWORK_ID]
    assert document["hub_ssh_user"] == "ptty2u"
    assert document["image_name"] == "callysto-hub"
    assert Path(document["playbook"]) == PROJECT / "playbooks" / "packer-hub.yml"
    assert CREDENTIAL_SECRET not in json.dumps(document)


def test_packer_build_sends_the_environments_values_to_the_cloud(
    callysto, image_env, credentials, cloud
):
    result = callysto("packer", "build", "hub", "--env", "brave-otter")
    # The stand-in cloud refuses to start the build VM: the build fails there, in one line of ours.
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: packer build of 'hub' failed")
    # Packer's own progress streamed through.
    assert "no hypervisor here" in result.stdout + result.stderr, result.stdout
    (create,) = [r[3] for r in cloud.requests if r[:2] == ("POST", "/compute/v2.1/servers")]
    server = create["server"]
    assert server["flavorRef"] == FLAVORS["m1.large"]
    assert server["imageRef"] == IMAGES["Debian 12"]
    assert server["networks"] == [{"uuid": NETWORK_ID}]
    assert server["security_groups"] == [{"name": "packer"}]
    # Packer cleaned up the temporary key pair it made.
    assert any(r[0] == "DELETE" and "/os-keypairs/" in r[1] for r in cloud.requests)


def test_interrupted_build_waits_for_packer_to_clean_up_the_cloud(image_env, credentials, cloud):
    cloud.server_gate = threading.Event()
    # As Ctrl-C at a terminal: SIGINT to callysto and Packer alike (their own process group).
    proc = subprocess.Popen(
        [str(CALLYSTO), "packer", "build", "hub", "--env", "brave-otter"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert cloud.server_requested.wait(timeout=60), "Packer never asked for its build VM"
        os.killpg(proc.pid, signal.SIGINT)
        # Nova answers late: Packer can clean up only if it was not killed meanwhile.
        time.sleep(2)
        cloud.server_gate.set()
        _out, err = proc.communicate(timeout=120)
    finally:
        cloud.server_gate.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert any(r[0] == "DELETE" and "/os-keypairs/" in r[1] for r in cloud.requests)


# --- the playbook Packer runs ---------------------------------------------------------------------

PLAYBOOK = PROJECT / "playbooks" / "packer-hub.yml"


def beside_python(program: str) -> str:
    return str(Path(sys.executable).with_name(program))


def test_packer_hub_playbook_passes_ansible_syntax_check():
    result = subprocess.run(
        [beside_python("ansible-playbook"), "--syntax-check", "-i", "localhost,", str(PLAYBOOK)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_packer_hub_playbook_passes_ansible_lint_production_profile():
    result = subprocess.run(
        [beside_python("ansible-lint"), "--offline", "--profile", "production", str(PLAYBOOK)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_reads_the_image_from_the_manifest_packer_writes(tmp_path):
    # The same manifest post-processor as the hub template, behind Packer's offline file builder.
    template = tmp_path / "file.pkr.hcl"
    template.write_text(
        'source "file" "x" {\n  content = "x"\n  target  = "out.txt"\n}\n'
        'build {\n  sources = ["source.file.x"]\n'
        '  post-processor "manifest" {\n    output = "manifest.json"\n    strip_path = true\n'
        '    custom_data = { image_name = "callysto-hub", build_date = "2026-01-02T03:04:05Z" }\n'
        "  }\n}\n"
    )
    subprocess.run(
        ["packer", "build", str(template)],
        cwd=tmp_path,
        env={**os.environ, **packer.PACKER_ENV},
        capture_output=True,
        check=True,
    )
    image = packer.read_manifest(tmp_path / "manifest.json")
    assert image == packer.Image(name="callysto-hub", id="File", build_date="2026-01-02T03:04:05Z")
