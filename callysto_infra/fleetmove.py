"""`callysto fleet move`: one student's move between hubs of the fleet, as moves.py journals it,
with the checks that refuse a move that cannot be before anything changes, and one move of a
student at a time (a lock of the database session, gone with the command however it ends)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from callysto_infra import assignments, hubapi, moves, progress, zfs
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.fleet import Member, member

if TYPE_CHECKING:
    import psycopg

    from callysto_infra.environments import Environment

# What each step of moves.STEPS means to the operator watching it.
STEP_DONE = {
    "frozen": "the student's home is read-only and snapshotted",
    "sent": "the snapshot was received by the new hub",
    "verified": "the copy is the snapshot sent, block for block",
    "placed": "the copy is the student's home on the new hub, still read-only",
    "switched": "the front door now sends the student to the new hub",
    "done": "the new home is writable; the old one stays frozen until --cleanup",
}
# The first key of the session locks of moves (any constant of our own); the second is the
# student's hash.
_MOVE_LOCK = 0x6D6F7665  # "move"


@contextlib.contextmanager
def one_at_a_time(conn: psycopg.Connection, user_hash: str) -> Iterator[None]:
    """Hold the lock of USER_HASH's move; a second command for the same student is refused."""
    taken = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_MOVE_LOCK, user_hash)
    ).fetchone()[0]
    if not taken:
        raise OperationError(
            f"another 'callysto fleet move' of {user_hash} is running: wait for it to end"
        )
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the lock goes with the session anyway
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_MOVE_LOCK, user_hash))


def _known_to_database(conn: psycopg.Connection, hub: Member) -> None:
    if conn.execute("SELECT 1 FROM hubs WHERE name = %s", (hub.name,)).fetchone() is None:
        raise UsageError(
            f"hub '{hub.name}' is not in the fleet database yet: the front door adds env.yaml's "
            "hubs when it starts (restart it, or run the fleet's setup again)"
        )


def _listed(env: Environment, name: str, whose: str) -> Member:
    """The hub NAME of a student's assignment or move (WHOSE says which), as env.yaml lists it:
    a hub no longer listed cannot be reached, so nothing can be moved off or onto it."""
    try:
        return member(env, name)
    except UsageError:
        raise UsageError(
            f"{whose} hub {name!r}, which is no longer in env.yaml: list it under 'hubs:' again "
            "(with 'state: draining', so no new students go there) and run this again; "
            "nothing was changed"
        ) from None


def _has_home(place: moves.Place, user_hash: str) -> bool:
    root = f"{place.pool}/home"
    if not zfs.exists(place.hub, root):
        raise OperationError(
            f"hub '{place.name}' has no dataset {root}: is its pool '{place.pool}' imported?"
        )
    return zfs.exists(place.hub, place.home(user_hash))


def run(
    env: Environment,
    conn: psycopg.Connection,
    user_hash: str,
    to_name: str,
    say: progress.Say = progress.quiet,
) -> str:
    """Move USER_HASH to hub TO_NAME, or finish the move an earlier run began; returns what
    was done in one line. SAY hears of each step as it is reached."""
    target = member(env, to_name)  # an unknown hub is refused before anything
    with one_at_a_time(conn, user_hash):
        current = moves.journal(conn, user_hash)
        if current is not None and current.to_hub != target.name:
            undo = "" if moves.switched(current) else " or roll it back (--abort)"
            raise UsageError(
                f"a move of {user_hash} from '{current.from_hub}' to '{current.to_hub}' is "
                f"under way: finish it (--to {current.to_hub}){undo} first"
            )
        if current is not None and current.step == "done":
            return f"{user_hash} is on hub '{target.name}' already (run --cleanup to drop the old copy)"
        if current is None:
            assigned = assignments.find(conn, user_hash)
            if assigned is None:
                raise UsageError(
                    f"{user_hash} has no hub yet (they have never signed in at the front "
                    "door): there is nothing to move"
                )
            if assigned == target.name:
                raise UsageError(f"{user_hash} is on hub '{target.name}' already")
            source = _listed(env, assigned, f"{user_hash} is on")
        else:
            source = _listed(env, current.from_hub, f"the move of {user_hash} under way is from")
        _known_to_database(conn, target)
        here, there = source.place(env), target.place(env)
        if current is None:
            if _has_home(there, user_hash):
                raise UsageError(
                    f"hub '{there.name}' has a home {there.home(user_hash)} already: move it "
                    "away first (callysto user delete-home --env "
                    f"{env.name} --host {there.hub.name} {user_hash}); nothing was changed"
                )
            if not _has_home(here, user_hash):
                # Assigned, but never signed in at that hub: there are no files to carry.
                assignments.move(conn, user_hash, there.name)
                return (
                    f"{user_hash} had no home on hub '{here.name}' yet: only the assignment "
                    f"moved, to '{there.name}'"
                )
            say(f"==> moving {user_hash} from hub '{here.name}' to hub '{there.name}'")
        else:
            say(f"==> resuming the move of {user_hash} to hub '{there.name}' after step "
                f"'{current.step}'")  # fmt: skip

        def stop_server(user: str) -> None:
            say(f"    {hubapi.stop_server(env, here.hub, user)}")

        def on_step(step: str) -> None:
            say(f"==> {step}: {STEP_DONE.get(step, '')}")

        moves.move(conn, user_hash, here, there, stop_server=stop_server, on_step=on_step)
    return (
        f"{user_hash} is on hub '{there.name}' now; the old home on '{here.name}' stays frozen "
        f"until 'callysto fleet move --env {env.name} {user_hash} --to {there.name} --cleanup'"
    )


def _journaled(
    env: Environment, conn: psycopg.Connection, user_hash: str, to_name: str | None
) -> tuple[moves.Move, moves.Place, moves.Place]:
    if to_name is not None:
        member(env, to_name)  # an unknown hub is an unknown hub, journal or not
    current = moves.journal(conn, user_hash)
    if current is None:
        raise UsageError(f"no move of {user_hash} is under way")
    if to_name is not None and member(env, to_name).name != current.to_hub:
        raise UsageError(
            f"the move of {user_hash} under way is to '{current.to_hub}', not {to_name!r}"
        )
    source = _listed(env, current.from_hub, f"the move of {user_hash} under way is from")
    target = _listed(env, current.to_hub, f"the move of {user_hash} under way is to")
    return current, source.place(env), target.place(env)


def abort(env: Environment, conn: psycopg.Connection, user_hash: str, to_name: str | None) -> str:
    """Roll back USER_HASH's move that has not switched: they stay where they were."""
    with one_at_a_time(conn, user_hash):
        current, source, target = _journaled(env, conn, user_hash, to_name)
        moves.abort(conn, user_hash, source, target)
    return (
        f"the move of {user_hash} to '{current.to_hub}' was rolled back: they are on hub "
        f"'{current.from_hub}', their home writable there"
    )


def cleanup(env: Environment, conn: psycopg.Connection, user_hash: str, to_name: str | None) -> str:
    """After a finished move: destroy the frozen old home and forget the move."""
    with one_at_a_time(conn, user_hash):
        current, source, _ = _journaled(env, conn, user_hash, to_name)
        moves.cleanup(conn, user_hash, source)
    return f"the old home of {user_hash} on hub '{current.from_hub}' was destroyed"
