"""Moving a student's home from one hub of a fleet to another, safely and resumably.

A move is a journal row in the fleet's PostgreSQL (table `moves`, one per student, made with
the assignments' schema: assignments.SCHEMA) and a fixed
sequence of steps, each recorded when done, so a move interrupted anywhere (Ctrl-C, the network,
either hub failing, kill -9) resumes at the next run, or is rolled back with `abort` until the
switch:

  started   the student's server is stopped and their home frozen: read-only and marked
            banned, so they cannot sign in or write (the hub answers 507)
  frozen    a snapshot of the frozen home exists (its name is in the journal)
  sent      `zfs send -p` of it was received as <pool>/incoming/<hash> on the new hub (never
            mounted, read-only as sent); an interrupted receive is destroyed and sent again
  verified  the received snapshot has the sent one's guid and size (ZFS checks every block of a
            stream, so the same guid is the same bytes)
  placed    it was renamed to <pool>/home/<hash> on the new hub, still read-only and banned
  switched  the assignment names the new hub (in the same transaction as this step)
  done      the new home is writable and the ban lifted; the old one stays frozen in place,
            with its snapshot, until `cleanup`

So the files are never in two writable places (the old home is frozen before anything is sent
and stays frozen) nor in none (the old home is destroyed only by `cleanup`, after `done`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callysto_infra import assignments, homes, runner, zfs
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.homes_backup import on_hub

if TYPE_CHECKING:
    import psycopg

    from callysto_infra.hubs import Hub

STEPS = ("started", "frozen", "sent", "verified", "placed", "switched", "done")


@dataclass(frozen=True)
class Place:
    """A hub of the fleet as a move sees it: its name in the assignment table, how to run
    commands there, and its pool."""

    name: str
    hub: Hub
    pool: str

    def home(self, user_hash: str) -> str:
        return homes.home_of(self.pool, user_hash)

    def incoming(self, user_hash: str) -> str:
        return f"{self.pool}/incoming/{user_hash}"


@dataclass(frozen=True)
class Move:
    user_hash: str
    from_hub: str
    to_hub: str
    step: str
    snapshot: str


def under_way(conn: psycopg.Connection) -> list[Move]:
    """Every move in the journal (a finished one stays until its cleanup), oldest first."""
    rows = conn.execute(
        "SELECT user_hash, from_hub, to_hub, step, snapshot FROM moves "
        "ORDER BY started_at, user_hash"
    ).fetchall()
    return [Move(*row) for row in rows]


def switched(move: Move) -> bool:
    """Whether MOVE has switched the student over to the new hub: it can only be finished now,
    no longer aborted."""
    return STEPS.index(move.step) >= STEPS.index("switched")


def journal(conn: psycopg.Connection, user_hash: str) -> Move | None:
    row = conn.execute(
        "SELECT user_hash, from_hub, to_hub, step, snapshot FROM moves WHERE user_hash = %s",
        (user_hash,),
    ).fetchone()
    return None if row is None else Move(*row)


def _record(conn: psycopg.Connection, user_hash: str, step: str) -> None:
    conn.execute("UPDATE moves SET step = %s WHERE user_hash = %s", (step, user_hash))


def _begin(conn, user_hash: str, source: Place, target: Place, stamp: str) -> Move:
    with conn.transaction():
        assigned = conn.execute(
            "SELECT hub FROM assignments WHERE user_hash = %s FOR UPDATE", (user_hash,)
        ).fetchone()
        if assigned is None:
            raise UsageError(f"{user_hash} has no hub yet: there is nothing to move")
        if assigned[0] != source.name:
            raise UsageError(f"{user_hash} is on hub '{assigned[0]}', not '{source.name}'")
        if source.name == target.name:
            raise UsageError(f"{user_hash} is on hub '{target.name}' already")
        snapshot = f"{source.home(user_hash)}@callysto-move-{stamp}"
        conn.execute(
            "INSERT INTO moves (user_hash, from_hub, to_hub, step, snapshot) "
            "VALUES (%s, %s, %s, 'started', %s)",
            (user_hash, source.name, target.name, snapshot),
        )
    return Move(user_hash, source.name, target.name, "started", snapshot)


def _freeze(place: Place, user_hash: str) -> None:
    home = place.home(user_hash)
    zfs.set_property(place.hub, home, homes.BANNED, homes.timestamp())
    zfs.set_property(place.hub, home, "readonly", "on")


def _thaw(place: Place, dataset: str) -> None:
    zfs.set_property(place.hub, dataset, "readonly", "off")
    zfs.inherit(place.hub, dataset, homes.BANNED)


def _ensure_incoming_root(place: Place) -> None:
    root = f"{place.pool}/incoming"
    if not zfs.exists(place.hub, root):
        # Never mounted: nothing under it is a live home.
        zfs.create(place.hub, root, {"mountpoint": "none"})


def _send(source: Place, target: Place, move: Move) -> None:
    incoming = target.incoming(move.user_hash)
    _ensure_incoming_root(target)
    if zfs.exists(target.hub, incoming):
        # What an interrupted receive left: a stream is received whole or not at all, so
        # anything here is sent again from the start.
        zfs.destroy(target.hub, incoming, recursive=True)
    send = zfs.send_argv(source.home(move.user_hash), move.snapshot.partition("@")[2])
    send.insert(2, "-p")  # the properties too: refquota, and read-only as it was frozen
    receive = zfs.receive_argv(target.hub, incoming)
    runner.transfer(on_hub(source.hub, send), on_hub(target.hub, receive))


def _verify(source: Place, target: Place, move: Move) -> None:
    name = move.snapshot.partition("@")[2]
    sent = zfs.get_properties(source.hub, [move.snapshot], ["guid", "referenced"])
    received_name = f"{target.incoming(move.user_hash)}@{name}"
    received = zfs.get_properties(target.hub, [received_name], ["guid", "referenced"])
    if sent[move.snapshot] != received[received_name]:
        raise OperationError(
            f"the copy of {move.user_hash} on hub '{target.name}' is not the snapshot sent "
            f"({sent[move.snapshot]} against {received[received_name]}): run the move again"
        )


def _holds_the_copy(source: Place, target: Place, move: Move) -> bool:
    """Whether the home on TARGET is this move's copy: a run cut short between the rename and
    its journal entry left it there, with the sent snapshot (the same guid) as its own."""
    name = move.snapshot.partition("@")[2]
    placed = f"{target.home(move.user_hash)}@{name}"
    if not (zfs.exists(source.hub, move.snapshot) and zfs.exists(target.hub, placed)):
        return False
    sent = zfs.get_property(source.hub, move.snapshot, "guid")
    return sent == zfs.get_property(target.hub, placed, "guid")


def _place(source: Place, target: Place, move: Move) -> None:
    home = target.home(move.user_hash)
    if not zfs.exists(target.hub, home):
        zfs.rename(target.hub, target.incoming(move.user_hash), home)
    elif not _holds_the_copy(source, target, move):
        raise OperationError(
            f"hub '{target.name}' has a home {home} already: move it away "
            "(callysto user delete-home) and run the move again"
        )
    # Received under an unmounted parent; the home mounts where the hub's homes are.
    with contextlib.suppress(zfs.ZfsError):
        zfs.inherit(target.hub, home, "mountpoint")
    if not zfs.mount_state(target.hub, home)[1]:
        zfs.mount(target.hub, home)


def move(
    conn: psycopg.Connection,
    user_hash: str,
    source: Place,
    target: Place,
    *,
    stop_server: Callable[[str], None],
    on_step: Callable[[str], None] | None = None,
) -> Move:
    """Move USER_HASH's home from SOURCE to TARGET, or finish the move an earlier run began.
    STOP_SERVER(user_hash) asks SOURCE to stop the student's server and does not wait for it
    to stop: the home is frozen (read-only, banned) next, so a server still stopping can no
    longer write to it."""
    assignments.check_hash(user_hash)
    current = journal(conn, user_hash)
    if current is None:
        current = _begin(conn, user_hash, source, target, homes.timestamp())
    elif (current.from_hub, current.to_hub) != (source.name, target.name):
        undo = "" if switched(current) else " (or abort it)"
        raise UsageError(
            f"a move of {user_hash} from '{current.from_hub}' to '{current.to_hub}' is under "
            f"way: finish that one first{undo}"
        )

    def reached(step: str) -> bool:
        return STEPS.index(current.step) >= STEPS.index(step)

    def advance(step: str) -> None:
        nonlocal current
        _record(conn, user_hash, step)
        current = Move(user_hash, current.from_hub, current.to_hub, step, current.snapshot)
        if on_step is not None:
            on_step(step)

    if not reached("frozen"):
        stop_server(user_hash)
        _freeze(source, user_hash)
        if not zfs.exists(source.hub, current.snapshot):
            zfs.snapshot(source.hub, current.snapshot)
        advance("frozen")
    if not reached("sent"):
        _send(source, target, current)
        advance("sent")
    if not reached("verified"):
        _verify(source, target, current)
        advance("verified")
    if not reached("placed"):
        _place(source, target, current)
        advance("placed")
    if not reached("switched"):
        with conn.transaction():
            conn.execute(
                "UPDATE assignments SET hub = %s WHERE user_hash = %s", (target.name, user_hash)
            )
            _record(conn, user_hash, "switched")
        current = Move(user_hash, current.from_hub, current.to_hub, "switched", current.snapshot)
        if on_step is not None:
            on_step("switched")
    if not reached("done"):
        _thaw(target, target.home(user_hash))
        advance("done")
    return current


def abort(conn: psycopg.Connection, user_hash: str, source: Place, target: Place) -> None:
    """Roll back a move that has not switched: the copy on TARGET goes, the home on SOURCE is
    writable again, the journal row is removed."""
    current = journal(conn, user_hash)
    if current is None:
        raise UsageError(f"no move of {user_hash} is under way")
    if switched(current):
        raise UsageError(
            f"the move of {user_hash} has switched to '{current.to_hub}': finish it instead"
        )
    copies = [target.incoming(user_hash)]
    # At 'placed' the home on TARGET is the copy (_place made sure); before it, only when a run
    # was cut short right after the rename.
    if current.step == "placed" or _holds_the_copy(source, target, current):
        copies.append(target.home(user_hash))
    for dataset in copies:
        if zfs.exists(target.hub, dataset):
            zfs.destroy(target.hub, dataset, recursive=True)
    home = source.home(user_hash)
    if zfs.exists(source.hub, current.snapshot):
        zfs.destroy(source.hub, current.snapshot)
    _thaw(source, home)
    with conn.transaction():
        conn.execute("DELETE FROM moves WHERE user_hash = %s", (user_hash,))


def cleanup(conn: psycopg.Connection, user_hash: str, source: Place) -> None:
    """After a move is done: destroy the frozen old home (and its snapshot) and the journal row."""
    current = journal(conn, user_hash)
    if current is None or current.step != "done":
        raise UsageError(f"no finished move of {user_hash} to clean up")
    zfs.destroy(source.hub, source.home(user_hash), recursive=True)
    with conn.transaction():
        conn.execute("DELETE FROM moves WHERE user_hash = %s", (user_hash,))
