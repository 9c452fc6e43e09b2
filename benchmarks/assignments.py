"""First sign-ins assigned a hub, 50 clients at once, on one real PostgreSQL (a cluster of its own,
started and stopped here): ours (callysto_infra.assignments over a connection pool) against the
original sharder's way (a new connection per request that first creates the tables, then assigns
the hub with the fewest students ever assigned), in one run: assignments per second and p99
latency. This is the assignment layer alone; the front door's HTTP and SAML come on top of both.

Usage: benchmarks/assignments.py [STUDENTS]   (needs root and PostgreSQL 15; default 2000)
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callysto_infra import assignments
from tests import postgres

CLIENTS = 50
PORT = 18811
HUBS = [("hub-a", 100_000, "accepting"), ("hub-b", 100_000, "accepting"),
        ("hub-c", 100_000, "accepting")]  # fmt: skip

ORIGINAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS shard_hubs (name text PRIMARY KEY, count integer NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS shard_users (user_hash text PRIMARY KEY, hub text NOT NULL);
"""


def original_assign(server, user: str) -> str:
    """As the original sharder did per request: a new engine (connection), create_all, then the
    least-ever-assigned hub, whose count only grows."""
    import psycopg

    with psycopg.connect(server.conninfo, password=server.password, autocommit=False) as conn:
        conn.execute(ORIGINAL_SCHEMA)
        conn.commit()
        row = conn.execute("SELECT hub FROM shard_users WHERE user_hash = %s", (user,)).fetchone()
        if row:
            return row[0]
        (hub,) = conn.execute(
            "SELECT name FROM shard_hubs ORDER BY count, name LIMIT 1 FOR UPDATE"
        ).fetchone()
        conn.execute("UPDATE shard_hubs SET count = count + 1 WHERE name = %s", (hub,))
        conn.execute("INSERT INTO shard_users VALUES (%s, %s)", (user, hub))
        conn.commit()
        return hub


def run(students: list[str], assign) -> tuple[float, float]:
    """Assignments per second and p99 latency (ms) with CLIENTS threads sharing STUDENTS."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(students)
    start = threading.Barrier(CLIENTS + 1)

    def client():
        start.wait()
        while True:
            with lock:
                if not queue:
                    return
                user = queue.pop()
            began = time.perf_counter()
            assign(user)
            took = time.perf_counter() - began
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
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    return len(students) / elapsed, p99


def main() -> None:
    from psycopg_pool import ConnectionPool

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with postgres.running(PORT) as server:
        with server.connect(autocommit=True) as conn:
            assignments.create_schema(conn)
            assignments.set_hubs(conn, HUBS)
            conn.execute(ORIGINAL_SCHEMA)
            conn.execute("INSERT INTO shard_hubs (name) VALUES ('hub-a'), ('hub-b'), ('hub-c')")
        ours_students = [
            hashlib.sha1(f"ours-{n}".encode(), usedforsecurity=False).hexdigest()
            for n in range(count)
        ]
        theirs_students = [
            hashlib.sha1(f"orig-{n}".encode(), usedforsecurity=False).hexdigest()
            for n in range(count)
        ]
        pool = ConnectionPool(
            server.conninfo,
            kwargs={"password": server.password, "autocommit": True},
            min_size=CLIENTS,
            max_size=CLIENTS,
            open=True,
        )
        try:

            def ours(user: str) -> None:
                with pool.connection() as conn:
                    assignments.assign(conn, user)

            ours_rate, ours_p99 = run(ours_students, ours)
        finally:
            pool.close()
        theirs_rate, theirs_p99 = run(theirs_students, lambda user: original_assign(server, user))
    print(f"{count} first sign-ins, {CLIENTS} clients at once, one PostgreSQL 15:")
    print(f"  ours (pooled, one transaction):  {ours_rate:8.0f}/s  p99 {ours_p99:7.1f} ms")
    print(f"  original (connect + create_all): {theirs_rate:8.0f}/s  p99 {theirs_p99:7.1f} ms")
    print(f"  ratio: {ours_rate / theirs_rate:.1f}x the assignments per second, "
          f"p99 {theirs_p99 / ours_p99:.1f}x lower")  # fmt: skip


if __name__ == "__main__":
    main()
