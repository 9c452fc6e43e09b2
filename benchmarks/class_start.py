"""A class signing in at once: 25 and then 50 students sign in on one local hub at the same
moment and each opens their server. Measured for our spawner (a container per student, the
home's ZFS work in a thread) against the previous one (the servers as one Unix user, the ZFS
calls in the hub's event loop; its code taken from git), on the same hub in the same run:

- the slowest sign-in (the POST to /hub/login), target under 1 s;
- time to the first and to the last running server, targets 5 s and (of 25) 25 s;
- the CPU each spawn costs (all of this machine's CPU time during the run, per student).

Run as root on a machine with the system packages of scripts/bootstrap-system:
    .venv/bin/python benchmarks/class_start.py [COUNTS...]     (default: 25 50)
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.cookiejar
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.localhub import PROJECT, LocalHub

PREVIOUS = "fe43dd1"  # the last commit whose spawner ran every server as one Unix user
PREVIOUS_USER = "jupyter"


def cpu_seconds() -> float:
    """CPU time of the whole machine so far (user + system of every core), in seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system = (int(x) for x in fields[:3])
    return (user + nice + system) / 100


def sign_in(hub: LocalHub, user: str) -> tuple[float, urllib.request.OpenerDirector]:
    """Seconds the sign-in POST took, and the student's browser-like opener (cookies kept)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{hub.url}hub/login", timeout=120).read()
    xsrf = urllib.parse.unquote(next(c.value for c in jar if c.name == "_xsrf"))
    form = urllib.parse.urlencode({"username": user, "_xsrf": xsrf}).encode()
    started = time.monotonic()
    login = urllib.request.Request(f"{hub.url}hub/login?next=", data=form)  # noqa: S310
    opener.open(login, timeout=120)
    return time.monotonic() - started, opener


def ready(hub: LocalHub, user: str) -> bool:
    _, model = hub.api(f"users/{user}")
    server = (model.get("servers") or {}).get("")
    return bool(server and server.get("ready"))


def one_student(hub: LocalHub, user: str, start: float) -> tuple[float, float]:
    """(sign-in seconds, seconds from the class's start to this student's running server)."""
    took, opener = sign_in(hub, user)
    # The hub's own spawn page starts the server, as the browser's redirect after sign-in does.
    opener.open(f"{hub.url}hub/spawn", timeout=300).read()
    deadline = time.monotonic() + 300
    while not ready(hub, user):
        if time.monotonic() > deadline:
            return took, float("inf")  # never started: counted as a failure
        time.sleep(0.2)
    return took, time.monotonic() - start


def class_starts(hub: LocalHub, count: int, tag: str) -> dict:
    users = [hashlib.sha1(f"{tag}{count}-{i}".encode()).hexdigest() for i in range(count)]  # noqa: S324
    cpu = cpu_seconds()
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda u: one_student(hub, u, start), users))
    cpu_used = cpu_seconds() - cpu
    for user in users:
        hub.api(f"users/{user}/server", method="DELETE")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        _, active = hub.api("users?state=active")
        if not active:
            break
        time.sleep(1)
    return {
        "students": count,
        "slowest_sign_in_s": round(max(r[0] for r in results), 2),
        "first_server_s": round(min(r[1] for r in results), 1),
        "last_server_s": round(max(r[1] for r in results), 1),
        "not_started": sum(1 for r in results if r[1] == float("inf")),
        "cpu_per_spawn_s": round(cpu_used / count, 2),
    }


def use_previous_spawner(hub: LocalHub) -> None:
    """The previous spawner on the same hub: its code from git, the servers' Unix user, and
    JupyterLab in the hub's own virtual environment (which it ran the servers from)."""
    previous = subprocess.run(
        ["git", "show", f"{PREVIOUS}:playbooks/roles/jupyterhub/files/callysto_hub.py"],
        cwd=PROJECT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (hub.prefix / "etc" / "callysto_hub_previous.py").write_text(previous)
    subprocess.run(["useradd", "--system", "--no-create-home", PREVIOUS_USER], check=False)
    venv = hub.prefix / "venv"
    for directory in (hub.root, hub.data_dir, hub.prefix):
        directory.chmod(0o755)  # the servers' user runs them from the hub's virtual environment
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "jupyterlab==4.6.6"], check=True
    )
    config = hub.prefix / "etc" / "jupyterhub_config.py"
    config.write_text(
        config.read_text() + "\nimport callysto_hub_previous\n"
        "c.JupyterHub.spawner_class = callysto_hub_previous.ZfsHomeSpawner\n"
        f"c.ZfsHomeSpawner.home_parent = '{hub.pool}/home'\n"
        f"c.ZfsHomeSpawner.run_as_user = '{PREVIOUS_USER}'\n"
        "c.Spawner.pre_spawn_hook = callysto_hub_previous.ensure_home\n"
        f"c.Spawner.cmd = ['{venv}/bin/jupyterhub-singleuser']\n"
        "c.Spawner.args = []\n"
    )
    restart_hub(hub)


def restart_hub(hub: LocalHub) -> None:
    pidfile = hub.prefix / "run" / "jupyterhub.pid"
    subprocess.run(
        ["start-stop-daemon", "--stop", "--oknodo", "--pidfile", str(pidfile),
         "--retry", "TERM/30/KILL/5", "--remove-pidfile"],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile",
         str(pidfile), "--output", str(hub.prefix / "log" / "jupyterhub.log"),
         "--startas", str(hub.prefix / "bin" / "jupyterhub")],
        check=True,
    )  # fmt: skip
    for _ in range(120):
        try:
            if hub.api("")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit("the hub did not come back")


def main() -> None:
    counts = [int(x) for x in sys.argv[1:]] or [25, 50]
    hub = LocalHub("bench", 18170, {"servers": {"memory": "512M", "idle_timeout": 0}})
    rows = []
    try:
        hub.up()
        for count in counts:
            rows.append({"spawner": "containers (ours)", **class_starts(hub, count, "o")})
        use_previous_spawner(hub)
        for count in counts:
            rows.append({"spawner": "one Unix user (previous)", **class_starts(hub, count, "p")})
    finally:
        hub.destroy()
    print(json.dumps(rows, indent=2))
    for count in counts:
        ours, theirs = (r for r in rows if r["students"] == count)
        print(
            f"{count} students: last server {ours['last_server_s']} s against "
            f"{theirs['last_server_s']} s ({theirs['last_server_s'] / ours['last_server_s']:.2f}x), "
            f"slowest sign-in {ours['slowest_sign_in_s']} s against {theirs['slowest_sign_in_s']} s"
        )


if __name__ == "__main__":
    main()
