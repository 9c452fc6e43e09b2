"""What the sign-in tests and benchmark share: a whole local hub brought up by `make local` on a
test environment, a student's browser as an HTTP client going through the real sign-in proxy,
and SAML responses forged with the proxy's own key (to prove the hub refuses the wrong ones)."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import requests
import yaml

from tests.conftest import CALLYSTO, PROJECT

ARTIFACTS = PROJECT / "test-artifacts"


class Hub:
    """A local hub `make local` brought up, and how tests reach it."""

    def __init__(self, root: Path, name: str, port: int, pool: str):
        self.root = root
        self.name = name
        self.envs = root / "envs"
        self.env_dir = self.envs / name
        self.data_dir = root / "data"
        self.pool = pool
        self.port = port
        self.mountpoint = Path("/") / pool
        self.url = f"http://127.0.0.1:{port}/"
        self.proxy_url = f"http://127.0.0.1:{port + 3}/simplesaml/"
        self.make_output = ""

    def callysto(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CALLYSTO), *args],
            capture_output=True,
            text=True,
            input=input,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(self.envs)},
            cwd=PROJECT,
            timeout=900,
            check=False,
        )

    def make(self, target: str = "local") -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "--no-print-directory", target, f"ENV={self.name}"],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(self.envs)},
            timeout=1800,
            check=False,
        )

    def api(self, path: str, method: str = "GET") -> dict:
        token = (self.env_dir / "secrets" / "hub-api-token").read_text().strip()
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}hub/api/{path}", method=method, headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body = response.read()
            return json.loads(body) if body else {}

    def users(self) -> set[str]:
        return {u["name"] for u in self.api("users")}

    def findhash(self, *args: str) -> str:
        result = self.callysto("user", "findhash", "--env", self.name, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[0]

    def dataset(self, user_hash: str) -> str | None:
        probe = subprocess.run(
            ["zfs", "get", "-H", "-p", "-o", "value", "name", f"{self.pool}/home/{user_hash}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return probe.stdout.strip() if probe.returncode == 0 else None

    @property
    def proxy_secrets(self) -> Path:
        return self.data_dir / "simplesamlphp" / "secrets"

    @property
    def hub_secrets(self) -> Path:
        return self.data_dir / "jupyterhub" / "secrets"

    def findhash_env(self):
        """The environment as `callysto user findhash` reads it."""
        from callysto_infra import environments

        config = environments.parse_config(self.env_dir / "env.yaml")
        return environments.Environment(name=self.name, path=self.env_dir, config=config)

    def entity_ids(self) -> tuple[str, str]:
        """The proxy's entity ID and the hub's own as an SP (not the pinned one hashes use)."""
        return self.findhash_env().idp_entity_id, f"{self.url}hub/saml/metadata"


def _zpool_exists(name: str) -> bool:
    probe = subprocess.run(["zpool", "list", "-H", name], capture_output=True, check=False)
    return probe.returncode == 0


@contextlib.contextmanager
def local_hub(name: str, port: int, prefix: str) -> Iterator[Hub]:
    """`make local` for real on a test environment of its own (unique pool, PORT and the three
    ports after it); everything it made is destroyed afterwards."""
    # Outside pytest's 0700 temporary tree: students' servers and the proxy run as unprivileged
    # users, which must reach the hub's files under the environment's data directory.
    root = Path(tempfile.mkdtemp(prefix=f"callysto-{prefix}-"))
    root.chmod(0o755)
    hub = Hub(root, name, port, f"cy{prefix}{uuid.uuid4().hex[:8]}")
    try:
        created = hub.callysto("env", "new", "local", name)
        assert created.returncode == 0, created.stderr
        config_file = hub.env_dir / "env.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["hub"]["pool"] = hub.pool
        config["local"].update(port=port, data_dir=str(hub.data_dir), vdev_size="256M")
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        made = hub.make()
        hub.make_output = made.stdout
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"make-local-{prefix}.log").write_text(made.stdout + made.stderr)
        assert made.returncode == 0, made.stderr[-3000:]
        yield hub
    finally:
        for log in [
            *hub.data_dir.glob("jupyterhub/log/*.log"),
            *hub.data_dir.glob("simplesamlphp/log/*.log"),
        ]:
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(log, ARTIFACTS / f"{prefix}-{log.name}")
        if hub.env_dir.exists():
            hub.callysto("local", "destroy", "--env", name, "--yes")
        if _zpool_exists(hub.pool):
            subprocess.run(["zpool", "destroy", "-f", hub.pool], capture_output=True, check=False)
        if hub.mountpoint.is_dir():
            shutil.rmtree(hub.mountpoint, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


# --- a student's browser, as an HTTP client ------------------------------------------------------


def _form(page: str, base: str) -> tuple[str, dict[str, str]]:
    """The first form of PAGE: its absolute action and its hidden fields."""
    action = html.unescape(re.search(r'<form[^>]*action="([^"]*)"', page).group(1))
    fields = {
        html.unescape(m.group(1)): html.unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)
    }
    return urljoin(base, action), fields


class Student:
    """One browser: its cookies, the proxy's pages and the hub's."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.session = requests.Session()

    def start(self, source: str) -> str:
        """Click the button of SOURCE; returns the ID of the AuthnRequest the hub sent."""
        sent = self.session.get(f"{self.hub.url}hub/saml/login/{source}", allow_redirects=False)
        assert sent.status_code == 302, sent.status_code
        location = sent.headers["Location"]
        assert location.startswith(self.hub.proxy_url)
        request = parse_qs(urlparse(location).query)["SAMLRequest"][0]
        xml = zlib.decompress(base64.b64decode(request), -15).decode()
        self._proxy_location = location
        return re.search(r' ID="([^"]+)"', xml).group(1)

    def proxy_response(self, source: str, email: str, **fields: str) -> tuple[str, str]:
        """Sign in at the proxy's stand-in source; returns (ACS URL, SAMLResponse) as the proxy
        would have the browser post them, without posting."""
        self.start(source)
        page = self.session.get(self._proxy_location)
        assert page.status_code == 200 and 'id="email_input"' in page.text, page.text[:500]
        action, _ = _form(page.text, page.url)
        done = self.session.post(action, data={"email": email, **fields})
        assert done.status_code == 200, done.text[:500]
        acs, hidden = _form(done.text, done.url)
        assert "SAMLResponse" in hidden, done.text[:2000]
        return acs, hidden["SAMLResponse"]

    def post_response(self, saml_response: str) -> requests.Response:
        return self.session.post(
            f"{self.hub.url}hub/saml/acs",
            data={"SAMLResponse": saml_response},
            allow_redirects=False,
        )

    def sign_in(self, source: str, email: str, **fields: str) -> requests.Response:
        acs, response = self.proxy_response(source, email, **fields)
        assert acs == f"{self.hub.url}hub/saml/acs"
        return self.post_response(response)

    def signed_in_as(self) -> str | None:
        """The user the hub sees in this browser, or None when it shows the sign-in page."""
        home = self.session.get(f"{self.hub.url}hub/home", allow_redirects=True)
        if "/hub/login" in home.url:
            return None
        xsrf = self.session.cookies.get("_xsrf", path="/hub/") or ""
        me = self.session.get(f"{self.hub.url}hub/api/user", headers={"X-XSRFToken": xsrf})
        return me.json().get("name") if me.status_code == 200 else f"? ({me.status_code})"


# --- forged responses --------------------------------------------------------------------------


def forge_response(
    hub: Hub,
    in_response_to: str,
    name_id: str,
    *,
    audience: str | None = None,
    lifetime_minutes: int = 5,
    sign: bool = True,
    encrypt: bool = True,
) -> str:
    """A SAML response for IN_RESPONSE_TO naming NAME_ID, made with the proxy's own key (as a
    stolen key or a misconfigured proxy would), base64 as the browser posts it."""
    from saml2 import saml
    from saml2.config import IdPConfig
    from saml2.server import Server

    idp_entity_id, sp_entity_id = hub.entity_ids()
    audience = audience or sp_entity_id
    acs = f"{hub.url}hub/saml/acs"
    sp_cert = (hub.hub_secrets / "saml-sp.crt").read_text()
    body = "".join(sp_cert.split("-----")[2].split())
    work = Path(tempfile.mkdtemp(prefix="callysto-forge-"))
    try:
        metadata = work / "sp.xml"
        metadata.write_text(
            f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{audience}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
      Location="{acs}" index="0"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"""
        )
        key = hub.proxy_secrets / "idp.key"
        cert = hub.proxy_secrets / "idp.crt"
        config = IdPConfig()
        config.load(
            {
                "entityid": idp_entity_id,
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "key_file": str(key),
                "cert_file": str(cert),
                "metadata": {"local": [str(metadata)]},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (
                                    f"{hub.proxy_url}sso",
                                    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                                )
                            ]
                        },
                        "policy": {"default": {"lifetime": {"minutes": lifetime_minutes}}},
                    }
                },
            }
        )
        server = Server(config=config)
        response = server.create_authn_response(
            identity={},
            in_response_to=in_response_to,
            destination=acs,
            sp_entity_id=audience,
            name_id=saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, text=name_id),
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED},
            sign_response=sign,
            sign_assertion=sign,
            encrypt_assertion=encrypt,
            encrypt_cert_assertion=sp_cert if encrypt else None,
        )
        return base64.b64encode(str(response).encode()).decode()
    finally:
        shutil.rmtree(work, ignore_errors=True)
