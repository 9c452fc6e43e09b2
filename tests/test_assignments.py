"""The fleet's assignment table on a real PostgreSQL: students spread by capacity, a student's
later sign-ins find the same hub, simultaneous first sign-ins of one student give one hub, a
draining or full hub takes no one, and a move gives the room back."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter

import pytest

from callysto_infra import assignments
from tests import postgres

PORT = 18810


@pytest.fixture(scope="module")
def server():
    with postgres.running(PORT) as running:
        yield running


@pytest.fixture
def conn(server):
    with server.connect(autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS moves, assignments, hubs")
        assignments.create_schema(connection)
        yield connection


def student(n: int) -> str:
    return hashlib.sha1(f"student-{n}".encode(), usedforsecurity=False).hexdigest()


def test_students_spread_by_capacity_and_keep_their_hub(conn):
    assignments.set_hubs(conn, [("hub-a", 40, "accepting"), ("hub-b", 20, "accepting"),
                                ("hub-c", 20, "accepting")])  # fmt: skip
    first = {}
    for n in range(60):
        hub, new = assignments.assign(conn, student(n))
        assert new
        first[student(n)] = hub
    assert Counter(first.values()) == {"hub-a": 30, "hub-b": 15, "hub-c": 15}
    for user, hub in first.items():
        assert assignments.assign(conn, user) == (hub, False)
        assert assignments.find(conn, user) == hub
    loads = {load.name: load.students for load in assignments.loads(conn)}
    assert loads == {"hub-a": 30, "hub-b": 15, "hub-c": 15}


def test_simultaneous_first_sign_ins_of_one_student_give_one_hub(server, conn):
    assignments.set_hubs(conn, [(f"hub-{n}", 100, "accepting") for n in range(3)])
    user = student(1000)
    start = threading.Barrier(20)
    got, errors = [], []

    def sign_in():
        try:
            with server.connect(autocommit=True) as own:
                start.wait()
                got.append(assignments.assign(own, user))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign_in) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len({hub for hub, _ in got}) == 1
    assert sum(new for _, new in got) == 1
    rows = conn.execute("SELECT count(*) FROM assignments WHERE user_hash = %s", (user,))
    assert rows.fetchone()[0] == 1


def test_no_new_student_goes_to_a_draining_or_full_hub(conn):
    assignments.set_hubs(conn, [("hub-a", 2, "accepting"), ("hub-b", 2, "accepting")])
    kept = {student(n): assignments.assign(conn, student(n))[0] for n in range(4)}
    assert Counter(kept.values()) == {"hub-a": 2, "hub-b": 2}
    with pytest.raises(assignments.FleetFull):
        assignments.assign(conn, student(98))
    # More room on hub-b, but it is draining now.
    assignments.set_hubs(conn, [("hub-a", 2, "accepting"), ("hub-b", 50, "draining")])
    with pytest.raises(assignments.FleetFull):
        assignments.assign(conn, student(99))
    assert assignments.find(conn, student(99)) is None, "a refused student is written nowhere"
    for user, hub in kept.items():
        assert assignments.assign(conn, user) == (hub, False), "a draining hub keeps its own"


def test_a_move_switches_the_hub_and_gives_the_room_back(conn):
    assignments.set_hubs(conn, [("hub-a", 1, "accepting"), ("hub-b", 1, "accepting")])
    first, _ = assignments.assign(conn, student(1))
    other = "hub-b" if first == "hub-a" else "hub-a"
    assert assignments.assign(conn, student(2))[0] == other
    with pytest.raises(assignments.FleetFull):
        assignments.assign(conn, student(3))
    assignments.set_hubs(conn, [(first, 1, "accepting"), (other, 2, "accepting")])
    assert assignments.move(conn, student(1), other) == first
    assert assignments.find(conn, student(1)) == other
    assert assignments.assign(conn, student(3)) == (first, True), "the room came back"
    with pytest.raises(LookupError):
        assignments.move(conn, student(4), other)
    with pytest.raises(LookupError):
        assignments.move(conn, student(1), "hub-z")


def test_a_hub_removed_from_the_list_keeps_its_students_until_they_move(conn):
    assignments.set_hubs(conn, [("hub-a", 5, "accepting"), ("hub-b", 5, "accepting")])
    assignments.assign(conn, student(1))
    assignments.assign(conn, student(2))
    assignments.set_hubs(conn, [("hub-a", 5, "accepting")])
    states = {load.name: load.state for load in assignments.loads(conn)}
    assert states == {"hub-a": "accepting", "hub-b": "draining"}
    (on_b,) = [user for user in (student(1), student(2)) if assignments.find(conn, user) == "hub-b"]
    assignments.move(conn, on_b, "hub-a")
    assignments.set_hubs(conn, [("hub-a", 5, "accepting")])
    assert [load.name for load in assignments.loads(conn)] == ["hub-a"]


@pytest.mark.parametrize("bad", ["", "A" * 40, "a" * 39, "a" * 40 + "\n", "alice@school.ca"])
def test_only_user_hashes_are_stored(conn, bad):
    assignments.set_hubs(conn, [("hub-a", 5, "accepting")])
    with pytest.raises(ValueError, match="not a user hash"):
        assignments.assign(conn, bad)
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO assignments (user_hash, hub) VALUES (%s, 'hub-a')", (bad,))
    assert conn.execute("SELECT count(*) FROM assignments").fetchone()[0] == 0
