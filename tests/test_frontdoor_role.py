"""The frontdoor role, run for real on this machine as a local fleet's front door would be: a
check run on a fresh prefix makes nothing; a real run gives it its own PostgreSQL on 127.0.0.1
(the controller's password, which no command line, environment or log ever holds) holding the
fleet's hubs, and the service, as its own user, answering on 127.0.0.1; its secrets are that
user's alone; a second run and a check run change nothing; a new password on the controller
reaches PostgreSQL and the service. And the cloud variant, rendered: its hardened unit, its
settings and the nginx site that sends / to it while /simplesaml/ stays the proxy's."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from callysto_infra import ansible

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PORT = 18850  # the front door; + 3 the sign-in proxy (only named in its metadata)
DB_PORT = PORT + 4
HUBS = [
    {"name": "hub-a", "url": "http://127.0.0.1:18856/", "capacity": 300, "state": "accepting"},
    {"name": "hub-b", "url": "http://127.0.0.1:18857/", "capacity": 120, "state": "draining"},
]
USER = "callysto-door"
PROXY = f"http://127.0.0.1:{PORT + 3}/simplesaml/"

# hub.yml's second play as it runs on a front door: keypair.yml (with the front door's prefix)
# and idp_proxy (here only the fact it publishes) come first.
PLAYBOOK = """\
- name: A local fleet's front door
  hosts: door
  pre_tasks:
    - name: Make the front door's SAML key pair
      ansible.builtin.include_role:
        name: callysto_login
        tasks_from: keypair.yml
      vars:
        callysto_login_prefix: "{{ hub_prefix }}"
    - name: Publish the sign-in proxy's metadata
      ansible.builtin.set_fact:
        idp_proxy_idp_metadata: "{{ lookup('ansible.builtin.file', test_idp_metadata) }}"
  roles:
    - frontdoor
"""

METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" \
xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{proxy}saml2/idp/metadata.php">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data>\
</ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" \
Location="{proxy}saml2/idp/SSOService.php"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""


def run_playbook(work: Path, inventory: Path, *args: str, watch: str | None = None):
    """ansible-playbook on the throwaway playbook: its output, the results callback's document,
    and (with WATCH) every process command line or environment that held WATCH meanwhile."""
    results = work / "results.json"
    results.unlink(missing_ok=True)
    env = {**os.environ, **ansible.environment(str(results)), "PATH": f"{BIN}:{os.environ['PATH']}"}
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(work / "door.yml"), *args]
    with ProcessWatch(watch) as seen:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1200)
    doc = json.loads(results.read_text()) if results.exists() else {}
    return proc, doc, seen


class ProcessWatch:
    """Reads every process's command line and environment until the block ends, and collects
    those that hold the secret."""

    def __init__(self, secret: str | None):
        self.secret = secret.encode() if secret else None
        self.seen: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._done.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                for part in ("cmdline", "environ"):
                    try:
                        if self.secret in (proc / part).read_bytes():
                            self.seen.append(f"{proc.name}/{part}")
                    except OSError:
                        pass
            time.sleep(0.02)

    def __enter__(self) -> list[str]:
        if self.secret:
            self._thread.start()
        return self.seen

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self.secret:
            self._thread.join()


def ok(outcome):
    proc, doc, _ = outcome
    assert proc.returncode == 0 and not doc.get("failed"), (
        doc.get("failed"),
        proc.stdout[-4000:],
        proc.stderr[-2000:],
    )
    return outcome


def changed(doc) -> int:
    return doc["stats"]["door"]["changed"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not re.search(r"^State:\s+Z", state, re.M)  # a zombie left for init to reap is gone


def pid_of(pidfile: Path) -> int:
    return int(pidfile.read_text().split()[0])


def stop_by_pidfile(pidfile: Path, schedule: str) -> None:
    if pidfile.exists():
        subprocess.run(
            ["start-stop-daemon", "--stop", "--oknodo", "--pidfile", str(pidfile),
             "--retry", schedule, "--remove-pidfile"],
            check=False, capture_output=True, timeout=120,
        )  # fmt: skip


def get(url: str):
    """One request, redirects not followed: (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def connect(password: str, user: str = "callysto"):
    import psycopg

    return psycopg.connect(
        host="127.0.0.1", port=DB_PORT, dbname="callysto", user=user, password=password,
        connect_timeout=10, autocommit=True,
    )  # fmt: skip


class Door:
    def __init__(self, root: Path):
        self.root = root
        self.prefix = root / "frontdoor"
        self.secrets = root / "env-secrets"
        self.inventory = root / "inventory.yml"
        self.outcomes: dict[str, tuple] = {}
        self.passwords: set[str] = set()  # every one the database has had

    @property
    def password_file(self) -> Path:
        return self.secrets / "frontdoor-db-password"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def run(self, label: str, *args: str, watch: str | None = None):
        self.outcomes[label] = run_playbook(self.root, self.inventory, *args, watch=watch)
        return self.outcomes[label]


def write_inventory(door: Door) -> None:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "callysto_env_type": "local",
        "callysto_env_name": "doortest",
        "callysto_secrets_dir": str(door.secrets),
        "hub_prefix": str(door.prefix),
        "hub_fqdn": "frontdoor.doortest.invalid",
        "local_port": PORT,
        "fleet_hubs": HUBS,
        "support_email": "support@example.org",
        "test_idp_metadata": str(door.root / "idp-metadata.xml"),
    }
    groups = {"frontdoor": {"hosts": {"door": host}}, "idp_proxy": {"hosts": {"door": None}}}
    door.inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))


@pytest.fixture(scope="module")
def door():
    if not Path("/usr/lib/postgresql/15/bin/initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/bootstrap-system (or make test)")
    for port in (PORT, DB_PORT):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is taken: this test needs 127.0.0.1:{PORT}-{DB_PORT}")
    # Not pytest's own tmp folder: the service's user and postgres must pass through to theirs.
    root = Path(tempfile.mkdtemp(prefix="callysto-frontdoor-role-"))
    root.chmod(0o711)
    door = Door(root)
    try:
        door.secrets.mkdir(mode=0o700)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=test sign-in proxy", "-keyout", str(root / "idp.key"),
             "-out", str(root / "idp.crt")],
            check=True, capture_output=True,
        )  # fmt: skip
        cert = "".join((root / "idp.crt").read_text().split("-----")[2].split())
        (root / "idp-metadata.xml").write_text(METADATA.format(proxy=PROXY, cert=cert))
        (root / "door.yml").write_text(PLAYBOOK)
        write_inventory(door)

        door.run("check-fresh", "--check")
        door.made_by_check = sorted(p.name for p in door.secrets.iterdir())
        door.prefix_after_check = door.prefix.exists()
        ok(door.run("first"))
        ok(door.run("second", watch=door.password()))
        yield door
    finally:
        stop_by_pidfile(door.prefix / "run/frontdoor.pid", "TERM/10/KILL/5")
        stop_by_pidfile(door.prefix / "run/frontdoor-postgres.pid", "INT/60")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_check_run_on_a_fresh_prefix_makes_nothing(door):
    proc, doc, _ = door.outcomes["check-fresh"]
    assert proc.returncode == 0 and not doc["failed"], (doc["failed"], proc.stdout[-3000:])
    assert changed(doc) > 0, "it tells what the first run will do"
    assert door.made_by_check == [] and not door.prefix_after_check


@pytest.mark.slow
def test_postgres_answers_on_its_port_with_the_controllers_password_and_holds_the_hubs(door):
    mode = door.password_file.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600 and re.fullmatch(r"[0-9a-f]{64}", door.password())
    with connect(door.password()) as conn:
        rows = conn.execute("SELECT name, capacity, state FROM hubs ORDER BY name").fetchall()
        assert rows == [(h["name"], h["capacity"], h["state"]) for h in HUBS]
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'callysto'"
        ).fetchone()
        assert owner == ("callysto",)
    socket_name = f".s.PGSQL.{DB_PORT}"
    assert (door.prefix / "postgres/run" / socket_name).is_socket(), "its sockets are its own"
    assert not (Path("/var/run/postgresql") / socket_name).exists()
    import psycopg

    for user, password in (("callysto", "not-the-password"), ("postgres", door.password())):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(password, user=user)


@pytest.mark.slow
def test_the_service_answers_as_its_own_user_and_signs_in_through_the_proxy(door):
    status, _, body = get(f"http://127.0.0.1:{PORT}/")
    assert status == 200 and "Welcome to Callysto!" in body and "source-google" in body
    # The SAML client starts: the key (its user's alone) and the proxy's metadata are readable.
    status, headers, _ = get(f"http://127.0.0.1:{PORT}/frontdoor/login/google?next=/hub/")
    assert status == 302, status
    assert headers["Location"].startswith(f"{PROXY}saml2/idp/SSOService.php?SAMLRequest=")
    run = door.prefix / "run"
    service, database = pid_of(run / "frontdoor.pid"), pid_of(run / "frontdoor-postgres.pid")
    uids = {
        pid: int(re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)[1])
        for pid in (service, database)
    }
    assert uids == {service: pwd.getpwnam(USER).pw_uid, database: pwd.getpwnam("postgres").pw_uid}
    postmaster = door.prefix / "postgres/data/postmaster.pid"
    assert pid_of(postmaster) == database, "the pid file names the server, for a SIGINT"


@pytest.mark.slow
def test_secrets_are_the_service_users_alone(door):
    secrets = door.prefix / "secrets"
    uid = pwd.getpwnam(USER).pw_uid
    info = secrets.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, uid)
    names = {"saml-sp.key", "saml-sp.crt", "db-password", "cookie-secret", "fleet-api-token"}
    assert {p.name for p in secrets.iterdir()} == names
    for path in secrets.iterdir():
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, uid), path.name
    assert (secrets / "db-password").read_text().strip() == door.password()
    assert re.fullmatch(r"[0-9a-f]{64}\n", (secrets / "cookie-secret").read_text())
    refused = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(secrets / "db-password")],
        capture_output=True,
    )
    assert refused.returncode != 0 and not refused.stdout
    module = door.prefix / "src/callysto_login/callysto_login/assignments.py"
    assert module.is_file() and not module.is_symlink()


@pytest.mark.slow
def test_a_second_run_changes_nothing_and_no_command_line_holds_the_password(door):
    proc, doc, seen = door.outcomes["second"]
    assert changed(doc) == 0, doc["changed"]
    assert seen == []
    assert door.password() not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_check_run_after_the_real_ones_changes_nothing(door):
    _, doc, _ = ok(door.run("check-again", "--check"))
    assert changed(doc) == 0, doc["changed"]


@pytest.mark.slow
def test_a_new_password_on_the_controller_reaches_postgres_and_the_service(door):
    old = door.password()
    new = "0123456789abcdef" * 4
    door.passwords |= {old, new}
    door.password_file.write_text(new + "\n")
    before = pid_of(door.prefix / "run/frontdoor.pid")
    proc, doc, seen = ok(door.run("new-password", watch=new))
    tasks = {entry["task"].removeprefix("frontdoor : ") for entry in doc["changed"]}
    assert "Give the front door its database password" in tasks, tasks
    assert any(task.startswith("Make the role and database callysto") for task in tasks), tasks
    assert "Stop the local front door" in tasks, "the service is restarted with it"
    assert seen == [] and new not in proc.stdout + proc.stderr
    import psycopg

    with connect(new) as conn:
        assert conn.execute("SELECT count(*) FROM hubs").fetchone() == (2,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(old)
    assert not alive(before) and pid_of(door.prefix / "run/frontdoor.pid") != before
    assert get(f"http://127.0.0.1:{PORT}/")[0] == 200, "the service took the new password"


@pytest.mark.slow
def test_no_file_under_the_prefix_but_its_own_holds_the_password(door):
    own = door.prefix / "secrets/db-password"
    secrets = {password.encode() for password in door.passwords | {door.password()}}
    for path in door.prefix.rglob("*"):
        if path == own or not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        assert not any(s in data for s in secrets), path
    logs = sorted(p.name for p in (door.prefix / "log").iterdir())
    assert logs == ["frontdoor-postgres.log", "frontdoor.log"]


# --- the cloud variant, rendered --------------------------------------------------------------

CLOUD_PLAYBOOK = """\
- name: A cloud front door's files, from the roles' own defaults and templates
  hosts: door
  gather_facts: false
  tasks:
    # Imported for their defaults only: their tasks are skipped, nothing is installed.
    - name: Load the frontdoor role's defaults
      ansible.builtin.import_role:
        name: frontdoor
      when: false
    - name: Load the tls_proxy role's defaults
      ansible.builtin.import_role:
        name: tls_proxy
      when: false
    - name: Render the files
      ansible.builtin.template:
        src: "{{ playbook_dir_roles }}/{{ item.src }}"
        dest: "{{ out }}/{{ item.dest }}"
        mode: "0644"
      loop:
        - {src: frontdoor/templates/frontdoor.service.j2, dest: callysto-frontdoor.service}
        - {src: frontdoor/templates/frontdoor.json.j2, dest: frontdoor.json}
        - {src: frontdoor/templates/frontdoor.j2, dest: bin/frontdoor}
        - {src: frontdoor/templates/postgresql.conf.j2, dest: callysto-frontdoor.conf}
        - {src: tls_proxy/templates/hub.conf.j2, dest: callysto-hub.conf}
"""


def test_the_cloud_variant_renders_a_hardened_unit_and_nginx_sends_root_to_the_service(tmp_path):
    hub_yml = yaml.safe_load((PROJECT / "playbooks/hub.yml").read_text())
    proxy_play = next(play for play in hub_yml if play["hosts"] == "idp_proxy")
    roles = [r["role"] for r in proxy_play["roles"]]
    assert roles.index("frontdoor") == roles.index("idp_proxy") + 1
    tls = next(r for r in proxy_play["roles"] if r["role"] == "tls_proxy")
    prefix = tmp_path / "opt"
    (prefix / "bin").mkdir(parents=True)
    # hub.yml's own vars for tls_proxy, so that its wiring is what is rendered.
    play = yaml.safe_load(CLOUD_PLAYBOOK)
    play[0]["vars"] = tls["vars"]
    (tmp_path / "cloud.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "callysto_env_type": "dev",
        "callysto_env_name": "brave-otter",
        "callysto_secrets_dir": str(tmp_path / "secrets"),
        "hub_prefix": str(prefix),
        "hub_fqdn": "brave-otter.callysto.farm",
        "idp_proxy_fqdn": "door.callysto.farm",
        "idp_proxy_served_socket": "/run/php/callysto-simplesamlphp.sock",
        "fleet_hubs": HUBS,
        "out": str(prefix),
        "playbook_dir_roles": str(PROJECT / "playbooks/roles"),
    }
    groups = {"frontdoor": {"hosts": {"door": host}}, "idp_proxy": {"hosts": {"door": None}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"children": groups}}))
    env = {**os.environ, **ansible.environment(), "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [BIN / "ansible-playbook", "-i", tmp_path / "inventory.yml", tmp_path / "cloud.yml"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    unit = (prefix / "callysto-frontdoor.service").read_text()
    for line in (f"User={USER}", f"ExecStart={prefix}/bin/frontdoor", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "CapabilityBoundingSet="):  # fmt: skip
        assert f"\n{line}\n" in unit, line
    (prefix / "bin/frontdoor").chmod(0o755)
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(prefix / "callysto-frontdoor.service")],
            capture_output=True,
            text=True,
        )
        complaints = [
            line for line in verify.stderr.splitlines() if "callysto-frontdoor.service:" in line
        ]
        assert verify.returncode == 0 and complaints == [], verify.stderr

    config = json.loads((prefix / "frontdoor.json").read_text())
    assert config["public_url"] == "https://door.callysto.farm/"
    assert (config["listen_address"], config["listen_port"]) == ("127.0.0.1", 8100)
    assert config["database"].startswith("host=127.0.0.1 port=5432 dbname=callysto user=callysto")
    assert "password" not in config["database"] and config["hubs"] == HUBS
    assert "listen_addresses = 'localhost'" in (prefix / "callysto-frontdoor.conf").read_text()

    site = (prefix / "callysto-hub.conf").read_text()
    assert "server_name door.callysto.farm;" in site
    assert "location ^~ /simplesaml/ {" in site
    assert "proxy_pass http://127.0.0.1:8100;" in site and "return 302" not in site
