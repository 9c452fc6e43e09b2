"""`make local` end to end: the real hub playbook on this machine, then a student in headless
Chromium signs in on the Callysto page, saves a notebook, hits the quota, is banned; operators
see the user in `quota list`; and the student's e-mail address is stored nowhere.

One `make local` for the whole module (it installs JupyterHub into a fresh virtual environment).
It runs against a test environment in a private envs/ directory whose pool has a unique name
and whose port comes from the test range, so an operator's own `local` hub and `tank` are never
touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import CALLYSTO, PROJECT

pytestmark = pytest.mark.slow

ENV_NAME = "e2e"
PORT = 18110
SUPPORT = "help-desk@school.example.ca"
STUDENT = "Ana.Student@Example.org"
# An apostrophe and a plus, as school addresses have: the local sign-in takes them.
INSTITUTION_STUDENT = "o'brien+math@district-3.ca"
INSTITUTION_IDP = "https://idp.ecole.example.ca/idp/shibboleth"
ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Hub:
    """The hub `make local` brought up, and how the tests reach it."""

    def __init__(self, root: Path, envs: Path, pool: str):
        self.root = root
        self.envs = envs
        self.pool = pool
        self.env_dir = envs / ENV_NAME
        self.data_dir = root / "data"
        self.mountpoint = Path("/") / pool
        self.url = f"http://127.0.0.1:{PORT}/"
        self.make_output = ""

    def callysto(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CALLYSTO), *args],
            capture_output=True,
            text=True,
            input=input,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(self.envs)},
            cwd=PROJECT,
            timeout=600,
            check=False,
        )

    def api(self, path: str) -> dict:
        token = (self.env_dir / "secrets" / "hub-api-token").read_text().strip()
        url = f"{self.url}hub/api/{path}"
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def user_hash(self, email: str, source: str, idp: str | None = None) -> str:
        from callysto_infra import environments, userhash

        os.environ["CALLYSTO_ENVS_DIR"] = str(self.envs)
        env = environments.load(ENV_NAME)
        salt = environments.read_salt(env.salt_file)
        uid = userhash.user_id(email, source, idp)
        return userhash.targeted_id(salt, env.idp_entity_id, env.sp_entity_id, uid)


def save_logs(hub: Hub) -> None:
    """The hub's logs, to read a failure after the hub is gone (they hold no address)."""
    for log in (hub.data_dir / "jupyterhub" / "log").glob("*.log"):
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / f"e2e-{log.name}")


def _zpool_exists(name: str) -> bool:
    probe = subprocess.run(["zpool", "list", "-H", name], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def hub(zfs_daemon):
    """`make local` for real, on a test environment; destroyed (pool and files) afterwards."""
    # Outside pytest's 0700 temporary tree: the students' servers run as an unprivileged user,
    # which must reach the hub's virtual environment under the environment's data directory.
    root = Path(tempfile.mkdtemp(prefix="callysto-e2e-"))
    root.chmod(0o755)
    envs = root / "envs"
    pool = f"cye2e{uuid.uuid4().hex[:8]}"
    hub = Hub(root, envs, pool)
    previous = os.environ.get("CALLYSTO_ENVS_DIR")
    try:
        created = hub.callysto("env", "new", "local", ENV_NAME)
        assert created.returncode == 0, created.stderr
        config_file = hub.env_dir / "env.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["hub"]["pool"] = pool
        config["support_email"] = SUPPORT
        config["local"].update(port=PORT, data_dir=str(hub.data_dir), vdev_size="256M")
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))

        make = subprocess.run(
            ["make", "--no-print-directory", "local", f"ENV={ENV_NAME}"],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs)},
            timeout=1800,
            check=False,
        )
        hub.make_output = make.stdout
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "make-local.log").write_text(make.stdout + make.stderr)
        assert make.returncode == 0, make.stderr[-3000:]
        yield hub
    finally:
        save_logs(hub)
        if hub.env_dir.exists():
            hub.callysto("local", "destroy", "--env", ENV_NAME, "--yes")
        if _zpool_exists(pool):
            subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True, check=False)
        if hub.mountpoint.is_dir():
            shutil.rmtree(hub.mountpoint, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        if previous is None:
            os.environ.pop("CALLYSTO_ENVS_DIR", None)
        else:
            os.environ["CALLYSTO_ENVS_DIR"] = previous


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def student(hub, browser):
    """A browser session of one student, kept across the tests of the module."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def sign_in(page, hub: Hub, source: str, email: str, idp: str | None = None) -> None:
    page.goto(f"{hub.url}hub/login")
    page.click(f"#source-{source}")
    page.fill("#email_input", email)
    if idp is not None:
        page.fill("#idp_input", idp)
    page.click("#login_submit")


def test_make_local_prints_the_url_and_how_to_sign_in(hub):
    assert f"running at {hub.url}" in hub.make_output
    assert "e-mail address" in hub.make_output
    assert "make local/stop" in hub.make_output


def test_health_reports_every_check_healthy(hub):
    result = hub.callysto("health", "--env", ENV_NAME, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"proxy", "hub-api", "sign-in", "pool", "free-space"}
    assert "/simplesaml/ publishes the IdP http" in checks["sign-in"]["detail"]


def test_sign_in_page_lists_the_three_sources_in_both_languages(hub, browser):
    page = browser.new_page()
    page.goto(f"{hub.url}hub/login")
    english = page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "sign-in-en.png"), full_page=True)
    for text in (
        "Welcome to Callysto!",
        "How would you like to sign in? Please select an authentication source",
        "Login with Institution account",
        "Login with Google account",
        "Login with Microsoft account",
        "to be notified of any upcoming service changes, and maintenance and outage windows",
        f"Email Callysto's technical support: {SUPPORT}",
    ):
        assert text in english
    assert "Bienvenue" not in english

    page.click("#lang-fr")
    french = page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "sign-in-fr.png"), full_page=True)
    for text in (
        "Bienvenue sur Callysto",
        "Veuillez choisir une source d'authentification",
        "Se connecter avec un compte d'établissement",
        "Se connecter avec un compte Google",
        "Se connecter avec un compte Microsoft",
        SUPPORT,
    ):
        assert text in french
    assert "Welcome to Callysto!" not in french
    page.close()


def test_student_signs_in_as_the_saml_hash_and_the_server_starts(hub, student):
    expected = hub.user_hash(STUDENT, "google")
    sign_in(student, hub, "google", STUDENT)
    student.wait_for_url(f"**/user/{expected}/**", timeout=180_000)
    user = hub.api(f"users/{expected}")
    assert user["name"] == expected
    assert user["servers"][""]["ready"] is True
    student.wait_for_selector(".jp-LabShell", timeout=120_000)  # JupyterLab itself is up
    student.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
    student.screenshot(path=str(ARTIFACTS / "server-started.png"))


def test_institution_sign_in_hashes_email_with_the_idp(hub, browser):
    expected = hub.user_hash(INSTITUTION_STUDENT, "saml", INSTITUTION_IDP)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    sign_in(page, hub, "institution", INSTITUTION_STUDENT, INSTITUTION_IDP)
    page.wait_for_url(f"**/user/{expected}/**", timeout=180_000)
    assert expected in {u["name"] for u in hub.api("users")}
    context.close()


def _put(page, path: str, body: dict) -> int:
    """PUT through the contents API of the student's own server, from inside their browser."""
    return page.evaluate(
        """async ([path, body]) => {
            const xsrf = decodeURIComponent((document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "");
            const base = window.location.pathname.replace(/\\/lab.*$/, "/");
            const response = await fetch(base + "api/contents/" + path, {
                method: "PUT",
                headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf},
                body: JSON.stringify(body),
            });
            return response.status;
        }""",
        [path, body],
    )


def test_saved_notebook_lands_in_the_students_zfs_home(hub, student):
    name = hub.user_hash(STUDENT, "google")
    notebook = {
        "type": "notebook",
        "format": "json",
        "content": {
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": "Bonjour"}],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }
    assert _put(student, "hello.ipynb", notebook) in (200, 201)
    saved = hub.mountpoint / "home" / name / "hello.ipynb"
    cell = json.loads(saved.read_text())["cells"][0]
    assert "".join(cell["source"]) == "Bonjour"  # nbformat may store lines as a list
    dataset = subprocess.run(
        ["zfs", "get", "-H", "-p", "-o", "value", "name", f"{hub.pool}/home/{name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert dataset.stdout.strip() == f"{hub.pool}/home/{name}"


def test_quota_list_shows_the_student(hub):
    name = hub.user_hash(STUDENT, "google")
    result = hub.callysto("quota", "list", "--env", ENV_NAME, "--json")
    assert result.returncode == 0, result.stderr
    assert name in result.stdout


def test_write_beyond_a_small_quota_fails_inside_the_notebook_server(hub, student):
    name = hub.user_hash(STUDENT, "google")
    result = hub.callysto("quota", "set", "--env", ENV_NAME, name, "2M")
    assert result.returncode == 0, result.stderr
    refquota = subprocess.run(
        ["zfs", "get", "-H", "-p", "-o", "value", "refquota", f"{hub.pool}/home/{name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(refquota.stdout) == 2 * 1024 * 1024
    big = {"type": "file", "format": "text", "content": "x" * (6 * 1024 * 1024)}
    status = _put(student, "big.txt", big)
    assert status >= 400
    written = hub.mountpoint / "home" / name / "big.txt"
    assert not written.exists() or written.stat().st_size < 6 * 1024 * 1024
    # Room again, so that what stops the next spawn is the ban alone.
    written.unlink(missing_ok=True)
    assert hub.callysto("quota", "set", "--env", ENV_NAME, name, "1G").returncode == 0


def test_banned_student_gets_the_507_page_on_the_next_spawn(hub, student):
    name = hub.user_hash(STUDENT, "google")
    result = hub.callysto("user", "ban", "--env", ENV_NAME, name)
    assert result.returncode == 0, result.stderr
    hub.api(f"users/{name}")  # the hub still knows the student
    student.goto(f"{hub.url}hub/spawn/{name}")
    student.wait_for_selector("text=507", timeout=120_000)
    student.screenshot(path=str(ARTIFACTS / "banned-507.png"))
    page = student.inner_text("body")
    assert "507" in page
    assert "read-only" in page
    assert not hub.api(f"users/{name}")["servers"]


def test_email_is_stored_nowhere(hub):
    """Not in the hub's database, its logs, the pool or any file of the environment."""
    needles = [
        e.encode()
        for address in (STUDENT, INSTITUTION_STUDENT)
        for e in {address, address.lower(), address.split("@")[0]}
    ]
    roots = [hub.root, hub.mountpoint]
    seen = 0
    for root in roots:
        for directory, dirs, files in os.walk(root):
            if Path(directory).name == "jupyterhub":
                # The Docker daemon's runtime state: namespace handles and sockets, not files.
                dirs[:] = [d for d in dirs if d != "run"]
            for name in files:
                path = Path(directory) / name
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                seen += 1
                for needle in needles:
                    assert needle not in data, f"{needle!r} found in {path}"
                    assert needle.decode() not in str(path)
    assert seen > 100  # the database, the logs, the homes and the virtual environment were read
    databases = list(hub.data_dir.rglob("jupyterhub.sqlite"))
    logs = list(hub.data_dir.rglob("*.log"))
    assert databases and logs


def test_stop_keeps_the_students_files(hub):
    name = hub.user_hash(STUDENT, "google")
    result = hub.callysto("local", "stop", "--env", ENV_NAME)
    assert result.returncode == 0, result.stderr
    down = hub.callysto("health", "--env", ENV_NAME)
    assert down.returncode == 1
    assert "proxy" in down.stderr
    assert (hub.mountpoint / "home" / name / "hello.ipynb").exists()


def test_destroy_removes_the_pool_and_its_files(hub):
    save_logs(hub)
    refused = hub.callysto("local", "destroy", "--env", ENV_NAME, input="no\n")
    assert refused.returncode == 1
    assert _zpool_exists(hub.pool)
    result = hub.callysto("local", "destroy", "--env", ENV_NAME, input=f"{hub.pool}\n")
    assert result.returncode == 0, result.stderr
    assert not _zpool_exists(hub.pool)
    assert not hub.data_dir.exists()
    assert not hub.mountpoint.exists()
    assert (hub.env_dir / "env.yaml").exists()
