"""A whole fleet on this machine, as `make local` brings it up from an env.yaml that lists three
hubs: each hub its own pool and ports, the front door with its real PostgreSQL, and the sign-in
proxy. Students sign in at the front door through the proxy's stand-in source (an HTTP client
going through every real page), and the outcomes are read from the assignment table, the hubs'
pools and the front door's answers."""

from __future__ import annotations

import collections
import hashlib
import subprocess
import threading
from pathlib import Path

import pytest

from tests.fleet import DoorPage, DoorStudent, Fleet

pytestmark = pytest.mark.slow

PORT = 18900  # the front door; its proxy +3, PostgreSQL +4; hubs from 18920, 18940, 18960
CAPACITIES = {"hub-a": 40, "hub-b": 20, "hub-c": 20}


@pytest.fixture(scope="module")
def fleet():
    made = Fleet("fleet", PORT, CAPACITIES)
    try:
        made.up()
        yield made
    finally:
        made.destroy()


def address(number: int, tag: str = "s") -> str:
    return f"{tag}{number}@school.example.org"


def test_each_hub_has_its_own_pool_and_the_front_door_its_database(fleet):
    pools = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    assert {fleet.pool_of(hub) for hub in CAPACITIES} <= set(pools)
    with fleet.db() as conn:
        rows = conn.execute("SELECT name, capacity, state FROM hubs ORDER BY name").fetchall()
    assert rows == [(hub, cap, "accepting") for hub, cap in sorted(CAPACITIES.items())]
    health = fleet.callysto("health", "--env", fleet.name)
    assert health.returncode == 0, health.stdout + health.stderr
    assert "frontdoor" in health.stdout


def test_sixty_students_spread_by_capacity_and_keep_their_hub(fleet):
    landed = {}
    for number in range(60):
        url = DoorStudent(fleet).sign_in(address(number), "/hub/")
        landed[number] = fleet.hub_of_url(url)
        assert url.endswith("/hub/"), url
    counts = collections.Counter(landed.values())
    assert counts == {"hub-a": 30, "hub-b": 15, "hub-c": 15}
    table = fleet.assignments()
    for number, hub in landed.items():
        assert table[fleet.findhash(address(number))] == hub
    # A second sign-in, from another browser, lands on the same hub.
    for number in (0, 1, 2, 17, 42, 59):
        assert fleet.hub_of_url(DoorStudent(fleet).sign_in(address(number))) == landed[number]
    assert len(fleet.assignments()) == 60
    # The table holds hashes only: no address reaches it.
    with fleet.db() as conn:
        dump = repr(conn.execute("SELECT * FROM assignments").fetchall())
    assert "school.example.org" not in dump


def test_twenty_simultaneous_first_sign_ins_of_one_student_give_one_hub(fleet):
    who = address(1, "twin")
    students = [DoorStudent(fleet) for _ in range(20)]
    responses = [s.door_response(who, "/hub/") for s in students]
    gate = threading.Barrier(len(students))
    landed: list[str] = []

    def go(student, response):
        gate.wait()
        landed.append(fleet.hub_of_url(student.post(*response)))

    threads = [
        threading.Thread(target=go, args=pair) for pair in zip(students, responses, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(landed) == 20 and len(set(landed)) == 1
    with fleet.db() as conn:
        rows = conn.execute(
            "SELECT hub FROM assignments WHERE user_hash = %s", (fleet.findhash(who),)
        ).fetchall()
    assert rows == [(landed[0],)]


def test_an_nbgitpuller_link_keeps_working_through_the_front_door(fleet):
    link = "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fcallysto%2Fnotebooks&urlpath=lab"
    url = DoorStudent(fleet).sign_in(address(1, "link"), link)
    hub = fleet.hub_of_url(url)
    assert url == fleet.hub_urls[hub] + link.lstrip("/")


def test_draining_a_hub_sends_no_new_student_there(fleet):
    drained = fleet.callysto("fleet", "drain", "--env", fleet.name, "hub-b")
    assert drained.returncode == 0, drained.stderr
    try:
        landed = {fleet.hub_of_url(DoorStudent(fleet).sign_in(address(n, "d"))) for n in range(8)}
        assert "hub-b" not in landed
        # Its own students still go there.
        assert fleet.hub_of_url(DoorStudent(fleet).sign_in(_first_on(fleet, "hub-b"))) == "hub-b"
    finally:
        accepted = fleet.callysto("fleet", "accept", "--env", fleet.name, "hub-b")
        assert accepted.returncode == 0, accepted.stderr


def _first_on(fleet: Fleet, hub: str) -> str:
    """The address of one of the sixty students whose hub is HUB."""
    table = fleet.assignments()
    for number in range(60):
        if table.get(fleet.findhash(address(number))) == hub:
            return address(number)
    raise AssertionError(f"no student on {hub}")


def _tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_move_keeps_every_file_and_sends_the_student_to_the_new_hub(fleet):
    who = _first_on(fleet, "hub-c")
    user_hash = fleet.findhash(who)
    home = Path("/") / fleet.pool_of("hub-c") / "home" / user_hash
    if not home.is_dir():  # the student never started a server: make the home as the hub does
        dataset = f"{fleet.pool_of('hub-c')}/home/{user_hash}"
        subprocess.run(["zfs", "create", "-o", "refquota=1G", dataset], check=True)
    (home / "work").mkdir(exist_ok=True)
    (home / "work" / "notebook.ipynb").write_text('{"cells": []}\n')
    (home / "data.bin").write_bytes(bytes(range(256)) * 4096)
    before = _tree(home)
    moved = fleet.callysto("fleet", "move", "--env", fleet.name, who, "--to", "hub-a")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    after = Path("/") / fleet.pool_of("hub-a") / "home" / user_hash
    assert _tree(after) == before
    assert fleet.assignments()[user_hash] == "hub-a"
    assert fleet.hub_of_url(DoorStudent(fleet).sign_in(who)) == "hub-a"


def test_a_stopped_hub_is_named_and_the_others_finish(fleet):
    """Last: hub-c stays stopped."""
    run = fleet.data_dir / "hubs" / "hub-c" / "run"
    for service in ("jupyterhub", "jupyterhub-proxy"):
        subprocess.run(["start-stop-daemon", "--stop", "--oknodo", "--pidfile",
                        str(run / f"{service}.pid"), "--retry", "TERM/30/KILL/5"],
                       check=True)  # fmt: skip
    servers = fleet.callysto("hub", "servers", "--env", fleet.name)
    assert servers.returncode != 0 and "hub-c" in servers.stderr, servers.stderr
    health = fleet.callysto("health", "--env", fleet.name)
    assert health.returncode != 0 and "18960" in health.stdout + health.stderr
    # The front door shows its page to hub-c's students only.
    on_c = _first_on(fleet, "hub-c")
    with pytest.raises(DoorPage) as page:
        DoorStudent(fleet).sign_in(on_c)
    assert page.value.status == 503 and "hub-c" in page.value.text and "hub-down" in page.value.text
    assert fleet.hub_of_url(DoorStudent(fleet).sign_in(_first_on(fleet, "hub-a"))) == "hub-a"
    # A pool that is still there answers: quota list goes on past the stopped hub's web side.
    quota = fleet.callysto("quota", "list", "--env", fleet.name)
    assert quota.returncode == 0, quota.stderr
