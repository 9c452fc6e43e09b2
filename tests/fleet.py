"""A real local fleet for end-to-end tests: `make local` on a test environment whose env.yaml
lists several hubs (each with its own pool and ports), the front door with its PostgreSQL and the
sign-in proxy; and a student's browser, as an HTTP client, signing in at the front door."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from tests.localhub import ARTIFACTS, LocalHub
from tests.signin import Student

PORT_STRIDE = 20  # hubs.LOCAL_HUB_PORTS: the Nth hub's ports start at port + 20 * N


class Fleet(LocalHub):
    """A local fleet of HUBS ({name: capacity}) behind a front door at 127.0.0.1:PORT (the
    environment's own address, as for one local hub)."""

    def __init__(self, name: str, port: int, hubs: dict[str, int]):
        capacities = [{"name": hub, "capacity": capacity} for hub, capacity in hubs.items()]
        super().__init__(name, port, {"hubs": capacities})
        self.capacities = dict(hubs)
        self.proxy_url = f"http://127.0.0.1:{port + 3}/simplesaml/"
        self.hub_urls = {
            hub: f"http://127.0.0.1:{port + PORT_STRIDE * number}/"
            for number, hub in enumerate(hubs, 1)
        }

    def pool_of(self, hub: str) -> str:
        return f"{self.pool}-{hub}"

    def destroy(self) -> None:
        # The logs of every hub and of the front door, then what LocalHub removes.
        ARTIFACTS.mkdir(exist_ok=True)
        for log in self.data_dir.glob("**/log/*.log"):
            shutil.copy(log, ARTIFACTS / f"{self.name}-{log.parent.parent.name}-{log.name}")
        super().destroy()
        for hub in self.capacities:  # what destroy could not remove, if it failed
            pool = self.pool_of(hub)
            listed = subprocess.run(["zpool", "list", "-H", pool], capture_output=True, check=False)
            if listed.returncode == 0:
                subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True, check=False)
            shutil.rmtree(Path("/") / pool, ignore_errors=True)

    # --- reaching it ----------------------------------------------------------------------
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


class DoorStudent(Student):
    """One browser at the front door: it signs in through the proxy's stand-in Google source
    (the sign-in tests' Student, started at the front door instead of a hub)."""

    next_path = "/hub/"

    def start(self, source: str) -> None:
        sent = self.session.get(f"{self.hub.url}frontdoor/login/{source}",
                                params={"next": self.next_path}, allow_redirects=False)  # fmt: skip
        assert sent.status_code == 302, sent.text[:300]
        self._proxy_location = sent.headers["Location"]
        assert self._proxy_location.startswith(self.hub.proxy_url)

    def sign_in(self, address: str, path: str = "/hub/") -> str:
        """Sign in at the front door, opening PATH; returns where it finally sends the browser
        (a hub's URL), or raises DoorPage with the page it showed instead."""
        return self.post(*self.door_response(address, path))

    def door_response(self, address: str, path: str) -> tuple[str, str]:
        """(ACS URL, SAMLResponse) for ADDRESS opening PATH, as the proxy would have the
        browser post them to the front door, without posting."""
        self.next_path = path
        acs, response = self.proxy_response("google", address)
        assert acs == f"{self.hub.url}frontdoor/saml/acs", acs
        return acs, response

    def post(self, acs: str, saml_response: str) -> str:
        back = self.session.post(acs, data={"SAMLResponse": saml_response}, allow_redirects=False)
        assert back.status_code == 302, back.text[:300]
        sent = self.session.get(self.hub.url.rstrip("/") + back.headers["Location"],
                                allow_redirects=False)  # fmt: skip
        if sent.status_code != 302:
            raise DoorPage(sent.status_code, sent.text)
        return sent.headers["Location"]


class DoorPage(Exception):
    """The front door answered with a page of its own (a hub down, every hub full)."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status
        self.text = text
