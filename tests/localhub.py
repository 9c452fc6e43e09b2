"""A real local hub for end-to-end tests: `make local` on a test environment in a private envs/
directory (its own pool name and port, so an operator's `local` hub and `tank` are never
touched), and the ways tests reach it: the CLI, the hub's API, its Docker daemon, and code run
in a student's own kernel through headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.conftest import CALLYSTO, PROJECT

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

# Runs CODE in a kernel of the student's server and returns what it printed (or its error):
# the browser holds the student's session, so this is exactly what the student's own code can do.
KERNEL_JS = """
async ([base, kernelId, code, timeoutMs]) => {
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
  if (!kernelId) {
    const made = await fetch(base + "api/kernels", {method: "POST",
      headers: {"X-XSRFToken": decodeURIComponent(xsrf), "Content-Type": "application/json"},
      body: JSON.stringify({name: "python3"})});
    if (!made.ok) { return {error: "kernel not started: " + made.status}; }
    kernelId = (await made.json()).id;
  }
  const url = base.replace(/^http/, "ws") + "api/kernels/" + kernelId + "/channels";
  const ws = new WebSocket(url);
  const msgId = crypto.randomUUID();
  return await new Promise((resolve) => {
    let out = "";
    const timer = setTimeout(() => { ws.close(); resolve({kernelId, out, timeout: true}); }, timeoutMs);
    ws.onerror = () => { clearTimeout(timer); resolve({kernelId, out, error: "websocket error"}); };
    ws.onclose = () => { clearTimeout(timer); resolve({kernelId, out, closed: true}); };
    ws.onopen = () => ws.send(JSON.stringify({
      header: {msg_id: msgId, msg_type: "execute_request", username: "", session: msgId,
               version: "5.3", date: new Date().toISOString()},
      parent_header: {}, metadata: {}, channel: "shell",
      content: {code, silent: false, store_history: false, user_expressions: {},
                allow_stdin: false, stop_on_error: true}}));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.parent_header.msg_id !== msgId) {
        if (msg.msg_type === "status" && msg.content.execution_state === "restarting") {
          clearTimeout(timer); ws.close(); resolve({kernelId, out, restarting: true});
        }
        return;
      }
      if (msg.msg_type === "stream") { out += msg.content.text; }
      if (msg.msg_type === "error") { out += msg.content.ename + ": " + msg.content.evalue; }
      if (msg.msg_type === "status" && msg.content.execution_state === "idle") {
        clearTimeout(timer); ws.onclose = null; ws.close(); resolve({kernelId, out});
      }
    };
  });
}
"""


class LocalHub:
    """The hub `make local` brought up for a test module, and how the tests reach it."""

    def __init__(self, name: str, port: int, settings: dict | None = None):
        self.name = name
        self.port = port
        self.settings = settings or {}
        self.root = Path(tempfile.mkdtemp(prefix=f"callysto-{name}-"))
        # The sign-in proxy's unprivileged user must pass through to its folder in the data
        # directory, so not under a folder closed to others.
        self.root.chmod(0o755)
        self.envs = self.root / "envs"
        self.pool = f"cy{name[:4]}{uuid.uuid4().hex[:8]}"
        self.env_dir = self.envs / name
        self.data_dir = self.root / "data"
        self.prefix = self.data_dir / "jupyterhub"
        self.mountpoint = Path("/") / self.pool
        self.url = f"http://127.0.0.1:{port}/"
        self.make_output = ""

    # --- life -----------------------------------------------------------------------------
    def configure(self, **sections) -> None:
        """Merge SECTIONS into env.yaml (creating the environment first if needed)."""
        config_file = self.env_dir / "env.yaml"
        if not config_file.exists():
            created = self.callysto("env", "new", "local", self.name)
            assert created.returncode == 0, created.stderr
        config = yaml.safe_load(config_file.read_text())
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def make_local(self) -> subprocess.CompletedProcess:
        make = subprocess.run(
            ["make", "--no-print-directory", "local", f"ENV={self.name}"],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(self.envs)},
            timeout=1800,
            check=False,
        )
        self.make_output = make.stdout
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"make-local-{self.name}.log").write_text(make.stdout + make.stderr)
        return make

    def up(self) -> None:
        self.configure(
            hub={"pool": self.pool},
            local={"port": self.port, "data_dir": str(self.data_dir), "vdev_size": "256M"},
            **self.settings,
        )
        make = self.make_local()
        assert make.returncode == 0, make.stderr[-3000:]

    def destroy(self) -> None:
        for log in (self.prefix / "log").glob("*.log"):
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(log, ARTIFACTS / f"{self.name}-{log.name}")
        if self.env_dir.exists():
            self.callysto("local", "destroy", "--env", self.name, "--yes")
        probe = subprocess.run(["zpool", "list", "-H", self.pool], capture_output=True, check=False)
        if probe.returncode == 0:
            subprocess.run(["zpool", "destroy", "-f", self.pool], capture_output=True, check=False)
        if self.mountpoint.is_dir():
            shutil.rmtree(self.mountpoint, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- reaching it ----------------------------------------------------------------------
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

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
        token = (self.env_dir / "secrets" / "hub-api-token").read_text().strip()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a test hub on 127.0.0.1
            f"{self.url}hub/api/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                text = response.read()
                return response.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text) if text else {}
            except ValueError:
                return exc.code, {"message": text.decode(errors="replace")}

    def docker(self, *args: str) -> subprocess.CompletedProcess:
        socket = self.prefix / "run" / "docker.sock"
        return subprocess.run(
            ["docker", "--host", f"unix://{socket}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def home(self, user: str) -> Path:
        return self.mountpoint / "home" / user

    def hub_log(self) -> str:
        return (self.prefix / "log" / "jupyterhub.log").read_text(errors="replace")


class Student:
    """A student signed in in their own browser context, with one kernel of their server."""

    def __init__(self, hub: LocalHub, context, user: str):
        self.hub = hub
        self.user = user
        self.page = context.new_page()
        self.page.set_default_timeout(120_000)
        self.kernel: str | None = None

    def sign_in(self) -> None:
        """A local hub takes a 40-hex hash posted as the user name (the operators' way in)."""
        self.page.goto(f"{self.hub.url}hub/login")
        cookies = {c["name"]: c["value"] for c in self.page.context.cookies()}
        xsrf = urllib.parse.unquote(cookies["_xsrf"])
        response = self.page.request.post(
            f"{self.hub.url}hub/login", form={"username": self.user, "_xsrf": xsrf}
        )
        assert response.ok, response.status

    @property
    def server_url(self) -> str:
        return f"{self.hub.url}user/{self.user}/"

    def open_server(self) -> None:
        """Start (if needed) and open the student's JupyterLab, as a browser does."""
        self.page.goto(f"{self.hub.url}hub/spawn")
        self.page.wait_for_url(f"{self.server_url}lab**", timeout=180_000)

    def run(self, code: str, timeout: float = 60) -> dict:
        """CODE run in the student's kernel: {'out': printed text, ...}."""
        result = self.page.evaluate(
            KERNEL_JS, [self.server_url, self.kernel, code, int(timeout * 1000)]
        )
        self.kernel = result.get("kernelId") or self.kernel
        return result


@contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
