"""Moving a student between two hubs (two real zfs-fuse pools on this machine) with the
assignment and the journal in a real PostgreSQL: every file byte-identical, the assignment
switched, never two writable copies; a move killed half-way resumes with nothing lost; one
aborted before the switch leaves the student where they were."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callysto_infra import assignments, hubs, moves, zfs
from tests import postgres
from tests.conftest import destroy_pool, make_pool

PORT = 18812
LOCAL = hubs.Hub(name="localhost", address=None)


@pytest.fixture(scope="module")
def server():
    with postgres.running(PORT) as running:
        yield running


@pytest.fixture
def fleet(server, zfs_daemon, tmp_path):
    """Hubs 'hub-a' and 'hub-b', each a pool with <pool>/home, and the fleet's tables."""
    made = []
    try:
        for _ in range(2):
            pool = make_pool(tmp_path, size="160M")
            made.append(pool)
            subprocess.run(["zfs", "create", f"{pool.name}/home"], check=True)
        with server.connect(autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS moves, assignments, hubs")
            assignments.create_schema(conn)
            assignments.set_hubs(conn, [("hub-a", 10, "accepting"), ("hub-b", 10, "draining")])
            places = tuple(
                moves.Place(name, LOCAL, pool.name)
                for name, pool in zip(("hub-a", "hub-b"), made, strict=True)
            )
            yield conn, places, made
    finally:
        for pool in made:
            destroy_pool(pool)


def student(n: int) -> str:
    return hashlib.sha1(f"mover-{n}".encode(), usedforsecurity=False).hexdigest()


def write_home(place: moves.Place, user: str, big: int = 0) -> dict[str, str]:
    """A home with a few files (and a big one of BIG bytes), as a student's; their digests."""
    zfs.create(LOCAL, place.home(user), {"refquota": "100M"})
    root = Path(zfs.mountpoint(LOCAL, place.home(user)))
    (root / "notebooks").mkdir()
    (root / "notebooks" / "hello.ipynb").write_text('{"cells": [], "nbformat": 4}\n')
    (root / "data.csv").write_bytes(os.urandom(200_000))
    if big:
        (root / "big.bin").write_bytes(os.urandom(big))
    return digests(root)


def digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def props(place: moves.Place, user: str) -> dict[str, str]:
    return zfs.get_properties(
        LOCAL, [place.home(user)], ["readonly", "refquota", "callysto:banned"]
    )[place.home(user)]


def writable(place: moves.Place, user: str) -> bool:
    """Whether a student's code could write to their home there now (zfs-fuse reports a
    mounted dataset's readonly as the mount's, so the home is tried)."""
    probe = Path(zfs.mountpoint(LOCAL, place.home(user))) / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


def test_a_move_keeps_every_byte_and_switches_the_assignment(fleet):
    conn, (a, b), _ = fleet
    user = student(1)
    assert assignments.assign(conn, user) == ("hub-a", True)
    before = write_home(a, user)
    stopped, steps = [], []
    done = moves.move(conn, user, a, b, stop_server=stopped.append, on_step=steps.append)
    assert done.step == "done" and stopped == [user]
    assert steps == list(moves.STEPS[1:])
    assert assignments.find(conn, user) == "hub-b"
    assert digests(Path(zfs.mountpoint(LOCAL, b.home(user)))) == before
    new, old = props(b, user), props(a, user)
    assert new["readonly"] == "off" and new["callysto:banned"] == "-"
    assert new["refquota"] == str(100 * 1024 * 1024), "the quota travels with the home"
    assert old["callysto:banned"] != "-", "the old copy stays frozen until cleanup"
    assert writable(b, user) and not writable(a, user)
    assert zfs.exists(LOCAL, done.snapshot)
    # Running it again changes nothing; cleanup then removes the old copy.
    assert moves.move(conn, user, a, b, stop_server=stopped.append).step == "done"
    assert stopped == [user]
    moves.cleanup(conn, user, a)
    assert not zfs.exists(LOCAL, a.home(user))
    assert moves.journal(conn, user) is None
    assert digests(Path(zfs.mountpoint(LOCAL, b.home(user)))) == before


def test_a_move_killed_half_way_resumes_with_nothing_lost(fleet, server):
    conn, (a, b), made = fleet
    user = student(2)
    assignments.assign(conn, user)
    before = write_home(a, user, big=60_000_000)
    # The move runs in a process of its own, killed (SIGKILL: nothing can tidy up) as soon as
    # the journal says the home is frozen, that is while the stream is being sent.
    code = (
        "import sys; from callysto_infra import hubs, moves; from tests import postgres\n"
        f"server = postgres.Server({PORT}, {server.password!r}, None)\n"
        "local = hubs.Hub(name='localhost', address=None)\n"
        f"a = moves.Place('hub-a', local, {made[0].name!r})\n"
        f"b = moves.Place('hub-b', local, {made[1].name!r})\n"
        "with server.connect(autocommit=True) as conn:\n"
        f"    moves.move(conn, {user!r}, a, b, stop_server=lambda u: None)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
    try:
        for _ in range(600):
            current = moves.journal(conn, user)
            if current is not None and current.step == "frozen":
                break
            assert child.poll() is None, "the move ended before it could be interrupted"
            time.sleep(0.01)
        else:
            pytest.fail("the move never froze the home")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert moves.journal(conn, user).step in ("frozen", "sent")
    assert assignments.find(conn, user) == "hub-a", "not switched before the copy is verified"
    assert props(a, user)["callysto:banned"] != "-", "the old home stays frozen meanwhile"
    assert not writable(a, user)
    assert not zfs.exists(LOCAL, b.home(user)), "no second home while the move is unfinished"

    finished = moves.move(conn, user, a, b, stop_server=lambda u: None)
    assert finished.step == "done"
    assert assignments.find(conn, user) == "hub-b"
    assert digests(Path(zfs.mountpoint(LOCAL, b.home(user)))) == before


def test_an_aborted_move_leaves_the_student_where_they_were(fleet):
    conn, (a, b), _ = fleet
    user = student(3)
    assignments.assign(conn, user)
    before = write_home(a, user)

    def stop_after_placed(step: str) -> None:
        if step == "placed":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        moves.move(conn, user, a, b, stop_server=lambda u: None, on_step=stop_after_placed)
    assert props(b, user)["callysto:banned"] != "-"
    assert not writable(b, user), "the copy is not writable before the switch"
    moves.abort(conn, user, a, b)
    assert assignments.find(conn, user) == "hub-a"
    assert not zfs.exists(LOCAL, b.home(user)) and not zfs.exists(LOCAL, b.incoming(user))
    assert props(a, user)["callysto:banned"] == "-" and writable(a, user)
    assert digests(Path(zfs.mountpoint(LOCAL, a.home(user)))) == before
    assert moves.journal(conn, user) is None


def test_moves_that_cannot_be_are_refused_and_change_nothing(fleet):
    conn, (a, b), _ = fleet
    from callysto_infra.errors import UsageError

    with pytest.raises(UsageError, match="has no hub yet"):
        moves.move(conn, student(4), a, b, stop_server=lambda u: None)
    assignments.assign(conn, student(4))
    write_home(a, student(4))
    with pytest.raises(UsageError, match="not 'hub-b'"):
        moves.move(conn, student(4), b, a, stop_server=lambda u: None)
    with pytest.raises(UsageError, match="already"):
        moves.move(conn, student(4), a, a, stop_server=lambda u: None)
    assert moves.journal(conn, student(4)) is None
    assert writable(a, student(4))


@pytest.mark.parametrize("then", ["resume", "abort"])
def test_a_move_cut_short_right_after_the_rename_resumes_or_aborts(fleet, then):
    """Killed between placing the copy and journaling it: the home on the new hub is the
    move's own copy (it holds the sent snapshot), not a stranger's home."""
    conn, (a, b), _ = fleet
    user = student(6 if then == "resume" else 7)
    assignments.assign(conn, user)
    before = write_home(a, user)

    def stop_after_verified(step: str) -> None:
        if step == "verified":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        moves.move(conn, user, a, b, stop_server=lambda u: None, on_step=stop_after_verified)
    zfs.rename(LOCAL, b.incoming(user), b.home(user))  # what the cut-short run had done
    assert moves.journal(conn, user).step == "verified"
    if then == "resume":
        assert moves.move(conn, user, a, b, stop_server=lambda u: None).step == "done"
        assert assignments.find(conn, user) == "hub-b"
        assert digests(Path(zfs.mountpoint(LOCAL, b.home(user)))) == before
        assert writable(b, user)
    else:
        moves.abort(conn, user, a, b)
        assert not zfs.exists(LOCAL, b.home(user))
        assert assignments.find(conn, user) == "hub-a" and writable(a, user)
