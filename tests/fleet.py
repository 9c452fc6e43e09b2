"""A real local fleet for end-to-end tests: `make local` on a test environment whose env.yaml
lists several hubs (each with its own pool and ports), the front door with its PostgreSQL and the
sign-in proxy; and a student's browser, as an HTTP client, signing in at the front door."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import requests
import yaml

from tests.conftest import CALLYSTO, PROJECT
from tests.signin import _form

ARTIFACTS = PROJECT / "test-artifacts"
PORT_STRIDE = 20  # hubs.LOCAL_HUB_PORTS: the Nth hub's ports start at port + 20 * N


class Fleet:
    """A local fleet of HUBS ({name: capacity}) behind a front door at 127.0.0.1:PORT."""

    def __init__(self, name: str, port: int, hubs: dict[str, int]):
        self.name = name
        self.port = port
        self.capacities = dict(hubs)
        self.root = Path(tempfile.mkdtemp(prefix=f"callysto-{name}-"))
        self.root.chmod(0o755)  # the proxy's user passes through to its folder
        self.envs = self.root / "envs"
        self.env_dir = self.envs / name
        self.data_dir = self.root / "data"
        self.pool = f"cy{name[:3]}{uuid.uuid4().hex[:6]}"
        self.url = f"http://127.0.0.1:{port}/"
        self.proxy_url = f"http://127.0.0.1:{port + 3}/simplesaml/"
        self.hub_urls = {
            hub: f"http://127.0.0.1:{port + PORT_STRIDE * number}/"
            for number, hub in enumerate(hubs, 1)
        }

    # --- life -----------------------------------------------------------------------------
    def pool_of(self, hub: str) -> str:
        return f"{self.pool}-{hub}"

    def up(self) -> subprocess.CompletedProcess:
        created = self.callysto("env", "new", "local", self.name)
        assert created.returncode == 0, created.stderr
        config_file = self.env_dir / "env.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["hub"]["pool"] = self.pool
        config["local"] = {"port": self.port, "data_dir": str(self.data_dir), "vdev_size": "256M"}
        config["hubs"] = [{"name": n, "capacity": c} for n, c in self.capacities.items()]
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.make("local")

    def make(self, *args: str) -> subprocess.CompletedProcess:
        made = subprocess.run(
            ["make", "--no-print-directory", *args, f"ENV={self.name}"],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(self.envs)},
            timeout=2400,
            check=False,
        )
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"make-{args[0].replace('/', '-')}-{self.name}.log").write_text(
            made.stdout + made.stderr
        )
        return made

    def destroy(self) -> None:
        for log in self.data_dir.glob("**/log/*.log"):
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(log, ARTIFACTS / f"{self.name}-{log.parent.parent.name}-{log.name}")
        if self.env_dir.exists():
            self.callysto("local", "destroy", "--env", self.name, "--yes")
        for hub in self.capacities:
            pool = self.pool_of(hub)
            listed = subprocess.run(["zpool", "list", "-H", pool], capture_output=True, check=False)
            if listed.returncode == 0:
                subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True, check=False)
            shutil.rmtree(Path("/") / pool, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- reaching it ----------------------------------------------------------------------
    def callysto(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CALLYSTO), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(self.envs)},
            cwd=PROJECT,
            timeout=timeout,
            check=False,
        )

    def db(self) -> psycopg.Connection:
        password = (self.env_dir / "secrets" / "frontdoor-db-password").read_text().strip()
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port + 4,
            dbname="callysto",
            user="callysto",
            password=password,
            autocommit=True,
        )

    def assignments(self) -> dict[str, str]:
        with self.db() as conn:
            return dict(conn.execute("SELECT user_hash, hub FROM assignments").fetchall())

    def hub_of_url(self, url: str) -> str | None:
        """The hub whose address URL is on, or None (not a hub's)."""
        netloc = urlparse(url).netloc
        return next((h for h, u in self.hub_urls.items() if urlparse(u).netloc == netloc), None)

    def findhash(self, address: str) -> str:
        found = self.callysto("user", "findhash", "--env", self.name, "--source", "google", address)
        assert found.returncode == 0, found.stderr
        return found.stdout.strip()


class DoorStudent:
    """One browser at the front door: it signs in through the proxy's stand-in source."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.session = requests.Session()

    def sign_in(self, address: str, path: str = "/hub/", source: str = "google") -> str:
        """Sign in at the front door, opening PATH; returns where it finally sends the browser
        (a hub's URL), or raises with the page it showed instead."""
        acs, response = self.proxy_response(address, path, source)
        return self.post(acs, response)

    def proxy_response(self, address: str, path: str, source: str = "google"):
        door = self.fleet.url
        start = self.session.get(f"{door}frontdoor/login/{source}", params={"next": path},
                                 allow_redirects=False)  # fmt: skip
        assert start.status_code == 302, start.text[:300]
        assert start.headers["Location"].startswith(self.fleet.proxy_url)
        page = self.session.get(start.headers["Location"])
        assert page.status_code == 200 and 'id="email_input"' in page.text, page.text[:300]
        action, _ = _form(page.text, page.url)
        done = self.session.post(action, data={"email": address})
        assert done.status_code == 200, done.text[:300]
        acs, hidden = _form(done.text, done.url)
        assert acs == f"{door}frontdoor/saml/acs", acs
        return acs, hidden["SAMLResponse"]

    def post(self, acs: str, saml_response: str) -> str:
        back = self.session.post(acs, data={"SAMLResponse": saml_response}, allow_redirects=False)
        assert back.status_code == 302, back.text[:300]
        return self.follow(back.headers["Location"])

    def follow(self, location: str) -> str:
        """Open LOCATION (a path of the front door); returns the hub URL it redirects to."""
        sent = self.session.get(self.fleet.url.rstrip("/") + location, allow_redirects=False)
        if sent.status_code != 302:
            raise DoorPage(sent.status_code, sent.text)
        return sent.headers["Location"]


class DoorPage(Exception):
    """The front door answered with a page of its own (a hub down, every hub full)."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status
        self.text = text
