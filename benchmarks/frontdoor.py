"""First sign-ins at the front door over HTTP, 50 clients at once: ours (callysto_login.frontdoor,
a real process with its connection pool, in front of three hubs that answer) against a sharder
made as the original was (one Tornado thread that opens a new database connection and creates
its tables on every request, then assigns the hub with the fewest students ever assigned), on
the same PostgreSQL, in one run: assignments per second and p99 latency.

Each request carries a front door cookie for a new student, signed with the front door's secret
as its SAML sign-in would have left it, so what is measured is the assignment and the redirect,
not the proxy's sign-in (the same for both).

Usage: benchmarks/frontdoor.py [STUDENTS]   (needs root and PostgreSQL 15; default 1500)
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests import postgres  # noqa: E402

CLIENTS = 50
DB_PORT = 18814
DOOR_PORT = 18815
SHARDER_PORT = 18816
HUBS_PORT = 18817
PACKAGE = PROJECT / "playbooks/roles/callysto_login/files/callysto_login"

SHARDER = r'''
import sys, psycopg
from tornado import ioloop, web
conninfo, password, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
SCHEMA = """CREATE TABLE IF NOT EXISTS shard_hubs (name text PRIMARY KEY, count integer NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS shard_users (user_hash text PRIMARY KEY, hub text NOT NULL)"""
class Shard(web.RequestHandler):
    def get(self):
        user = self.get_argument("user")
        with psycopg.connect(conninfo, password=password) as conn:  # an engine per request
            conn.execute(SCHEMA)  # create_all per request
            conn.commit()
            row = conn.execute("SELECT hub FROM shard_users WHERE user_hash = %s", (user,)).fetchone()
            if row is None:
                (hub,) = conn.execute("SELECT name FROM shard_hubs ORDER BY count, name LIMIT 1 FOR UPDATE").fetchone()
                conn.execute("UPDATE shard_hubs SET count = count + 1 WHERE name = %s", (hub,))
                conn.execute("INSERT INTO shard_users VALUES (%s, %s)", (user, hub))
                conn.commit()
            else:
                hub = row[0]
        self.redirect(f"http://127.0.0.1:{port + 1}/{hub}/hub/")
web.Application([(r"/shard", Shard)]).listen(port, address="127.0.0.1")
ioloop.IOLoop.current().start()
'''


class Hubs(http.server.BaseHTTPRequestHandler):
    """Three hubs that answer the front door's check."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def wait_for(port: int, process: subprocess.Popen) -> None:
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise SystemExit(f"a server on port {port} exited")
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def run(port: int, requests: list[tuple[str, dict]]) -> tuple[float, float]:
    """Requests per second and p99 (ms) of REQUESTS (path, headers), CLIENTS at once."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(requests)
    start = threading.Barrier(CLIENTS + 1)
    failures = []

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while True:
            with lock:
                if not queue:
                    return
                path, headers = queue.pop()
            began = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            took = time.perf_counter() - began
            if response.status != 302:
                failures.append(response.status)
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return len(requests) / elapsed, statistics.quantiles(latencies, n=100)[98] * 1000


def main() -> None:
    from tornado.web import create_signed_value

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    work = Path(tempfile.mkdtemp(prefix="callysto-bench-door-"))
    hubs = http.server.ThreadingHTTPServer(("127.0.0.1", HUBS_PORT), Hubs)
    threading.Thread(target=hubs.serve_forever, daemon=True).start()
    processes: list[subprocess.Popen] = []
    try:
        with postgres.running(DB_PORT) as database:
            with database.connect(autocommit=True) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS shard_hubs (name text PRIMARY KEY, "
                             "count integer NOT NULL DEFAULT 0)")  # fmt: skip
                conn.execute("INSERT INTO shard_hubs (name) VALUES ('a'), ('b'), ('c')")
            secret = os.urandom(32).hex()
            (work / "secret").write_text(secret)
            (work / "password").write_text(database.password)
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", "/CN=bench", "-keyout", str(work / "sp.key"), "-out",
                 str(work / "sp.crt")], check=True, capture_output=True,
            )  # fmt: skip
            config = {
                "public_url": f"http://127.0.0.1:{DOOR_PORT}/",
                "listen_port": DOOR_PORT,
                "idp_metadata_file": str(work / "unused.xml"),
                "key_file": str(work / "sp.key"),
                "cert_file": str(work / "sp.crt"),
                "database": database.conninfo,
                "database_password_file": str(work / "password"),
                "cookie_secret_file": str(work / "secret"),
                "hubs": [
                    {"name": name, "url": f"http://127.0.0.1:{HUBS_PORT}/{name}/",
                     "capacity": 100_000}
                    for name in ("a", "b", "c")
                ],
            }  # fmt: skip
            (work / "door.json").write_text(json.dumps(config))
            door = subprocess.Popen(
                [sys.executable, "-m", "callysto_login.frontdoor", str(work / "door.json")],
                cwd=PACKAGE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(door)
            sharder = subprocess.Popen(
                [sys.executable, "-c", SHARDER, database.conninfo, database.password,
                 str(SHARDER_PORT)], stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(sharder)
            wait_for(DOOR_PORT, door)
            wait_for(SHARDER_PORT, sharder)

            def student(kind: str, n: int) -> str:
                return hashlib.sha1(f"{kind}-{n}".encode(), usedforsecurity=False).hexdigest()

            ours = [
                ("/", {"Cookie": "callysto-frontdoor-user="
                       + create_signed_value(secret, "callysto-frontdoor-user",
                                             student("door", n)).decode()})
                for n in range(count)
            ]  # fmt: skip
            theirs = [(f"/shard?user={student('shard', n)}", {}) for n in range(count)]
            ours_rate, ours_p99 = run(DOOR_PORT, ours)
            theirs_rate, theirs_p99 = run(SHARDER_PORT, theirs)
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        hubs.shutdown()
        hubs.server_close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{count} first sign-ins over HTTP, {CLIENTS} clients at once, one PostgreSQL 15:")
    print(f"  ours (front door, pooled):            {ours_rate:7.0f}/s  p99 {ours_p99:7.1f} ms")
    print(f"  original (connect + create_all each): {theirs_rate:7.0f}/s  p99 {theirs_p99:7.1f} ms")
    print(f"  ratio: {ours_rate / theirs_rate:.1f}x the sign-ins per second, "
          f"p99 {theirs_p99 / ours_p99:.1f}x lower")  # fmt: skip


if __name__ == "__main__":
    main()
