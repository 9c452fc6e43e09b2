"""Which hub of a fleet each student belongs to, kept in PostgreSQL.

A student is assigned once, at their first sign-in at the front door, to the accepting hub with
the most room for its capacity; every later sign-in finds the same hub. The assignment is one
transaction: new assignments take a transaction-level advisory lock, so two first sign-ins of
one student at the same moment get one hub and no hub is filled beyond its capacity, while
students already assigned are read without waiting on any lock. Counts are those of the table,
so a student moved away or deleted gives their hub the room back.

Only user hashes are stored (40 hex digits, checked by the database too), never an address.
The schema holds the journal of students' moves between hubs too (table `moves`, moves.py's),
so the front door that makes the schema at its start makes it as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

ACCEPTING = "accepting"
DRAINING = "draining"
HUB_STATES = (ACCEPTING, DRAINING)
_HASH = re.compile(r"[0-9a-f]{40}")
# The key of the advisory lock that new assignments take (any constant of our own).
_ASSIGN_LOCK = 0x63616C6C7973  # "callys"

SCHEMA = """
CREATE TABLE IF NOT EXISTS hubs (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9.-]{0,252}$'),
    capacity integer NOT NULL CHECK (capacity >= 0),
    state text NOT NULL CHECK (state IN ('accepting', 'draining'))
);
CREATE TABLE IF NOT EXISTS assignments (
    user_hash text PRIMARY KEY CHECK (user_hash ~ '^[0-9a-f]{40}$'),
    hub text NOT NULL REFERENCES hubs (name),
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS assignments_hub ON assignments (hub);
CREATE TABLE IF NOT EXISTS moves (
    user_hash text PRIMARY KEY REFERENCES assignments (user_hash),
    from_hub text NOT NULL REFERENCES hubs (name),
    to_hub text NOT NULL REFERENCES hubs (name),
    step text NOT NULL,
    snapshot text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
"""


class FleetFull(Exception):
    """No accepting hub has room for a new student."""


@dataclass(frozen=True)
class HubLoad:
    name: str
    capacity: int
    state: str
    students: int

    @property
    def has_room(self) -> bool:
        return self.state == ACCEPTING and self.students < self.capacity


def check_hash(user_hash: str) -> str:
    if not _HASH.fullmatch(user_hash):
        raise ValueError(f"{user_hash!r} is not a user hash (40 lower-case hex digits)")
    return user_hash


def create_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(SCHEMA)


def set_hubs(conn: psycopg.Connection, hubs: Iterable[tuple[str, int, str]]) -> None:
    """Make the hubs table say HUBS (name, capacity, state), as env.yaml lists them. A hub that
    still has students is kept, draining, until they are moved."""
    wanted = {name: (capacity, state) for name, capacity, state in hubs}
    for capacity, state in wanted.values():
        if state not in HUB_STATES or capacity < 0:
            raise ValueError(f"a hub needs a capacity of 0 or more and a state in {HUB_STATES}")
    with conn.transaction():
        for name, (capacity, state) in wanted.items():
            conn.execute(
                "INSERT INTO hubs (name, capacity, state) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity, "
                "state = excluded.state",
                (name, capacity, state),
            )
        for (name,) in conn.execute("SELECT name FROM hubs").fetchall():
            if name in wanted:
                continue
            used = conn.execute("SELECT 1 FROM assignments WHERE hub = %s LIMIT 1", (name,))
            if used.fetchone() is None:
                conn.execute("DELETE FROM hubs WHERE name = %s", (name,))
            else:
                conn.execute("UPDATE hubs SET state = %s WHERE name = %s", (DRAINING, name))


def loads(conn: psycopg.Connection) -> list[HubLoad]:
    """Every hub with its capacity, state and number of students, by name."""
    rows = conn.execute(
        "SELECT h.name, h.capacity, h.state, count(a.user_hash) FROM hubs h "
        "LEFT JOIN assignments a ON a.hub = h.name GROUP BY h.name ORDER BY h.name"
    ).fetchall()
    return [HubLoad(*row) for row in rows]


def find(conn: psycopg.Connection, user_hash: str) -> str | None:
    """The hub USER_HASH is assigned to, or None."""
    row = conn.execute(
        "SELECT hub FROM assignments WHERE user_hash = %s", (check_hash(user_hash),)
    ).fetchone()
    return None if row is None else row[0]


def _least_loaded(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT h.name FROM hubs h LEFT JOIN assignments a ON a.hub = h.name "
        "WHERE h.state = 'accepting' AND h.capacity > 0 GROUP BY h.name, h.capacity "
        "HAVING count(a.user_hash) < h.capacity "
        "ORDER BY count(a.user_hash)::float8 / h.capacity, h.name LIMIT 1"
    ).fetchone()
    return None if row is None else row[0]


def assign(conn: psycopg.Connection, user_hash: str) -> tuple[str, bool]:
    """The hub of USER_HASH and whether it was assigned just now. Raises FleetFull when a new
    student fits nowhere (nothing is written then)."""
    check_hash(user_hash)
    found = find(conn, user_hash)
    if found is not None:
        return found, False
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ASSIGN_LOCK,))
        # Another sign-in of the same student may have assigned them while this one waited.
        found = find(conn, user_hash)
        if found is not None:
            return found, False
        hub = _least_loaded(conn)
        if hub is None:
            raise FleetFull("no accepting hub has room for a new student")
        conn.execute("INSERT INTO assignments (user_hash, hub) VALUES (%s, %s)", (user_hash, hub))
    return hub, True


def move(conn: psycopg.Connection, user_hash: str, to_hub: str) -> str:
    """Switch USER_HASH's assignment to TO_HUB in one transaction; returns the former hub."""
    check_hash(user_hash)
    with conn.transaction():
        row = conn.execute(
            "SELECT hub FROM assignments WHERE user_hash = %s FOR UPDATE", (user_hash,)
        ).fetchone()
        if row is None:
            raise LookupError(f"{user_hash} has no hub yet")
        if conn.execute("SELECT 1 FROM hubs WHERE name = %s", (to_hub,)).fetchone() is None:
            raise LookupError(f"there is no hub {to_hub!r}")
        conn.execute("UPDATE assignments SET hub = %s WHERE user_hash = %s", (to_hub, user_hash))
    return row[0]


def set_state(conn: psycopg.Connection, name: str, capacity: int, state: str) -> None:
    """Make hub NAME accepting or draining now, as env.yaml now says, without waiting for the
    front door's next start; a hub the table does not hold yet is added with CAPACITY."""
    if state not in HUB_STATES:
        raise ValueError(f"a hub's state is one of {HUB_STATES}")
    conn.execute(
        "INSERT INTO hubs (name, capacity, state) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET state = excluded.state",
        (name, capacity, state),
    )


def students(conn: psycopg.Connection, hub: str) -> list[str]:
    """The students of HUB, the most recently assigned first."""
    rows = conn.execute(
        "SELECT user_hash FROM assignments WHERE hub = %s ORDER BY assigned_at DESC, user_hash",
        (hub,),
    ).fetchall()
    return [row[0] for row in rows]
