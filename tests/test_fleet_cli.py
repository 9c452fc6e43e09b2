"""`callysto fleet` against a real local fleet: three hubs on this machine, each a zfs-fuse pool of
its own (named as hubs.local_hubs names them), and the fleet's database in a real PostgreSQL, as
the front door leaves it. The hubs' JupyterHub is not running (but where a test starts a stand-in
for one), so stopping a student's server says it could not reach the hub and the move goes on."""

from __future__ import annotations

import difflib
import hashlib
import http.server
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from callysto_infra import assignments, environments, hubs, moves, secretfiles, userhash, zfs
from tests import postgres
from tests.conftest import CALLYSTO, PROJECT, Pool, destroy_pool, make_pool

# The fleet's front door on local.port; its database on local.port + 4 (hubs.FRONTDOOR_DB_OFFSET).
DOOR_PORT = 18830
DB_PORT = DOOR_PORT + hubs.FRONTDOOR_DB_OFFSET  # 18834
DEAD_DOOR_PORT = 18835  # its database port, 18839, has nothing listening
LOCAL = hubs.Hub(name="localhost", address=None)

ENV_YAML = """\
# A fleet of three hubs on this machine (a test's).
type: local
host:
  name: fleet
  domain: localhost.localdomain
hub:
  pool: {pool}   # each hub's pool is <pool>-<name>
  refquota: 1G
support_email: support@callysto.ca
local:
  port: {port}
  data_dir: data
  vdev_size: 512M
hubs:
  # north and south take most new students
  - name: north   # the big one
    capacity: 10
  - name: south
    capacity: 10
  - name: east
    capacity: 5   # a small hub
"""


@pytest.fixture(scope="module")
def database():
    """The fleet's database `callysto` of user `callysto`, with its password."""
    with postgres.running(DB_PORT) as server:
        password = secrets.token_urlsafe(24)
        with server.connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE callysto LOGIN PASSWORD {}").format(sql.Literal(password))
            )
            conn.execute("CREATE DATABASE callysto OWNER callysto")
        yield password


def fleet_db(password: str) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=DB_PORT, dbname="callysto", user="callysto", password=password,
        autocommit=True,
    )  # fmt: skip


def write_env(envs_dir: Path, name: str, text: str, password: str | None):
    """Environment NAME with TEXT as env.yaml, its salt, the fleet database's password file and
    a hub API token (so stopping a server really asks the hub)."""
    env = environments.create("local", name)
    (env.path / environments.ENV_FILE).write_text(text)
    env = environments.load(name)
    if password is not None:
        secretfiles.write(env.secrets_dir / "frontdoor-db-password", password + "\n")
    secretfiles.write(env.secrets_dir / "hub-api-token", secrets.token_hex(16) + "\n")
    return env


def reset_tables(password: str, env) -> None:
    """The tables as the front door leaves them at its start: hubs synced from env.yaml."""
    with fleet_db(password) as conn:
        conn.execute("DROP TABLE IF EXISTS moves, assignments, hubs")
        assignments.create_schema(conn)
        assignments.set_hubs(conn, [(h.name, h.capacity, h.state) for h in env.config.fleet])


@dataclass
class Fleet:
    env: environments.Environment
    conn: psycopg.Connection
    pools: dict[str, Pool]
    password: str

    @property
    def env_yaml(self) -> Path:
        return self.env.path / environments.ENV_FILE

    def place(self, hub: str) -> moves.Place:
        return moves.Place(hub, LOCAL, self.pools[hub].name)


@pytest.fixture
def fleet(envs_dir, database, zfs_daemon, tmp_path):
    pool = f"cf{uuid.uuid4().hex[:8]}"
    env = write_env(envs_dir, "fleet", ENV_YAML.format(pool=pool, port=DOOR_PORT), database)
    made: dict[str, Pool] = {}
    try:
        for hub in hubs.local_hubs(env):
            made[hub.name] = make_pool(tmp_path, name=hub.pool, size="256M")
            subprocess.run(["zfs", "create", f"{hub.pool}/home"], check=True)
        reset_tables(database, env)
        with fleet_db(database) as conn:
            yield Fleet(env, conn, made, database)
    finally:
        for made_pool in made.values():
            destroy_pool(made_pool)


def student(n: int) -> str:
    return hashlib.sha1(f"fleet-student-{n}".encode(), usedforsecurity=False).hexdigest()


def enrol(fleet: Fleet, user: str, hub: str, *, home: bool = True, big: int = 0) -> dict:
    """USER assigned to HUB (as the front door would), with a home of a few files there; the
    files' digests."""
    fleet.conn.execute("INSERT INTO assignments (user_hash, hub) VALUES (%s, %s)", (user, hub))
    if not home:
        return {}
    place = fleet.place(hub)
    zfs.create(LOCAL, place.home(user), {"refquota": "100M"})
    root = Path(zfs.mountpoint(LOCAL, place.home(user)))
    (root / "notebooks").mkdir()
    (root / "notebooks" / "hello.ipynb").write_text('{"cells": [], "nbformat": 4}\n')
    (root / "data.csv").write_bytes(os.urandom(300_000))
    if big:
        (root / "big.bin").write_bytes(os.urandom(big))
    return digests(fleet, hub, user)


def digests(fleet: Fleet, hub: str, user: str) -> dict[str, str]:
    root = Path(zfs.mountpoint(LOCAL, fleet.place(hub).home(user)))
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def writable(fleet: Fleet, hub: str, user: str) -> bool:
    probe = Path(zfs.mountpoint(LOCAL, fleet.place(hub).home(user))) / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


def hub_of(fleet: Fleet, user: str) -> str | None:
    return assignments.find(fleet.conn, user)


def journal(fleet: Fleet, user: str) -> moves.Move | None:
    return moves.journal(fleet.conn, user)


def states(fleet: Fleet) -> dict[str, str]:
    return {load.name: load.state for load in assignments.loads(fleet.conn)}


class StandInHub(http.server.BaseHTTPRequestHandler):
    """JupyterHub's API root, as a running hub answers it."""

    def do_GET(self):
        body = json.dumps({"version": "5.2.1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


# --- fleet list and find ---------------------------------------------------------------------------


def test_fleet_list_counts_each_hubs_students_and_says_which_answer(fleet, callysto):
    for n in range(3):
        enrol(fleet, student(n), "north", home=False)
    enrol(fleet, student(3), "south", home=False)
    north = next(h for h in hubs.local_hubs(fleet.env) if h.name == "north")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", north.port), StandInHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = callysto("fleet", "list", "--env", "fleet", "--json")
        text = callysto("fleet", "list", "--env", "fleet")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {row["name"]: row for row in document["hubs"]}
    assert [row["name"] for row in document["hubs"]] == ["north", "south", "east"]
    assert {name: row["students"] for name, row in rows.items()} == {
        "north": 3, "south": 1, "east": 0,
    }  # fmt: skip
    assert {name: row["capacity"] for name, row in rows.items()} == {
        "north": 10, "south": 10, "east": 5,
    }  # fmt: skip
    assert all(row["state"] == "accepting" for row in rows.values())
    assert rows["north"]["answers"] and rows["north"]["answer"] == "JupyterHub 5.2.1"
    for down in ("south", "east"):
        assert not rows[down]["answers"] and "not reachable" in rows[down]["answer"]
    assert document["moves"] == []
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["HUB", "STATE", "CAPACITY", "STUDENTS", "ANSWERS"]
    assert lines[1].split()[:5] == ["north", "accepting", "10", "3", "yes,"]
    assert lines[2].split()[:5] == ["south", "accepting", "10", "1", "no:"]
    assert lines[-1] == "no move under way"


def test_fleet_find_of_an_address_gives_the_hub_of_its_hash(fleet, callysto):
    address = "Ada.Lovelace@School.ca"
    user = userhash.hash_of_user(fleet.env, address)
    enrol(fleet, user, "south", home=False)
    result = callysto("fleet", "find", "--env", "fleet", address, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"user": user, "hub": "south", "move": None}
    assert address.lower() not in result.stdout.lower(), "only the hash is printed"
    text = callysto("fleet", "find", "--env", "fleet", user)
    assert text.stdout == f"{user}  south\n"
    nobody = callysto("fleet", "find", "--env", "fleet", student(99))
    assert nobody.returncode == 0 and nobody.stdout == f"{student(99)}  no hub yet\n"


# --- fleet move -------------------------------------------------------------------------------------


def test_fleet_move_keeps_every_byte_and_switches_the_assignment(fleet, callysto):
    user = student(1)
    before = enrol(fleet, user, "north")
    result = callysto("fleet", "move", "--env", "fleet", user, "--to", "south")
    assert result.returncode == 0, result.stderr
    assert "server not stopped: hub API at http://127.0.0.1:" in result.stderr
    assert "is not reachable" in result.stderr, "a hub that is down has no server running"
    progress = [line for line in result.stderr.splitlines() if line.startswith("==> ")]
    assert progress[0] == f"==> moving {user} from hub 'north' to hub 'south'"
    assert [line[4:].split(":")[0] for line in progress[1:]] == list(moves.STEPS[1:])
    assert f"{user} is on hub 'south' now" in result.stdout
    assert hub_of(fleet, user) == "south"
    assert digests(fleet, "south", user) == before
    assert writable(fleet, "south", user) and not writable(fleet, "north", user)
    assert journal(fleet, user).step == "done"

    listed = json.loads(callysto("fleet", "list", "--env", "fleet", "--json").stdout)
    assert listed["moves"] == [{"user": user, "from": "north", "to": "south", "step": "done"}]
    found = json.loads(callysto("fleet", "find", "--env", "fleet", user, "--json").stdout)
    assert found["hub"] == "south" and found["move"]["step"] == "done"

    cleaned = callysto("fleet", "move", "--env", "fleet", user, "--cleanup")
    assert cleaned.returncode == 0, cleaned.stderr
    assert not zfs.exists(LOCAL, fleet.place("north").home(user))
    assert journal(fleet, user) is None
    assert digests(fleet, "south", user) == before


def test_fleet_move_of_a_student_without_a_home_moves_only_the_assignment(fleet, callysto):
    user = student(2)
    enrol(fleet, user, "north", home=False)
    result = callysto("fleet", "move", "--env", "fleet", user, "--to", "east")
    assert result.returncode == 0, result.stderr
    assert "only the assignment moved" in result.stdout
    assert hub_of(fleet, user) == "east"
    assert journal(fleet, user) is None


def start_move(fleet: Fleet, user: str, to: str) -> subprocess.Popen:
    env = {**os.environ, "CALLYSTO_ENVS_DIR": str(fleet.env.path.parent)}
    argv = [str(CALLYSTO), "fleet", "move", "--env", "fleet", user, "--to", to]
    return subprocess.Popen(
        argv, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until_frozen(fleet: Fleet, user: str, child: subprocess.Popen) -> None:
    """Until the journal says the home is frozen, that is while its stream is being sent."""
    for _ in range(3000):
        current = journal(fleet, user)
        if current is not None and current.step == "frozen":
            return
        assert child.poll() is None, "the move ended before it could be interrupted"
        time.sleep(0.01)
    pytest.fail("the move never froze the home")


def test_a_move_killed_half_way_is_resumed_by_the_same_command(fleet, callysto):
    user = student(3)
    before = enrol(fleet, user, "north", big=60_000_000)
    child = start_move(fleet, user, "south")
    try:
        wait_until_frozen(fleet, user, child)
        os.kill(child.pid, signal.SIGKILL)  # nothing can tidy up
    finally:
        child.communicate()
    assert journal(fleet, user).step in ("frozen", "sent")
    assert hub_of(fleet, user) == "north", "not switched before the copy is verified"
    assert not writable(fleet, "north", user), "the old home stays frozen meanwhile"
    assert not zfs.exists(LOCAL, fleet.place("south").home(user))
    listed = json.loads(callysto("fleet", "list", "--env", "fleet", "--json").stdout)
    assert [(m["user"], m["to"]) for m in listed["moves"]] == [(user, "south")]
    # Another target is refused while this move is unfinished, and changes nothing.
    other = callysto("fleet", "move", "--env", "fleet", user, "--to", "east")
    assert other.returncode == 2 and "is under way" in other.stderr

    again = callysto("fleet", "move", "--env", "fleet", user, "--to", "south")
    assert again.returncode == 0, again.stderr
    assert "==> resuming the move of" in again.stderr
    assert hub_of(fleet, user) == "south"
    assert digests(fleet, "south", user) == before
    assert writable(fleet, "south", user)


def test_an_interrupted_move_says_how_to_resume_and_abort_puts_it_back(fleet, callysto):
    user = student(4)
    before = enrol(fleet, user, "north", big=60_000_000)
    child = start_move(fleet, user, "east")
    try:
        wait_until_frozen(fleet, user, child)
        os.kill(child.pid, signal.SIGINT)  # Ctrl-C
    finally:
        _, stderr = child.communicate()
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    resume = f"run 'callysto fleet move --env fleet {user} --to east' to resume it"
    assert resume in stderr.splitlines()[-1] and "--abort" in stderr.splitlines()[-1]
    current = journal(fleet, user)
    assert current is not None and current.step in ("frozen", "sent")
    assert not zfs.exists(LOCAL, fleet.place("east").home(user))

    aborted = callysto("fleet", "move", "--env", "fleet", user, "--abort")
    assert aborted.returncode == 0, aborted.stderr
    assert "rolled back" in aborted.stdout
    assert journal(fleet, user) is None
    assert hub_of(fleet, user) == "north"
    assert writable(fleet, "north", user)
    assert digests(fleet, "north", user) == before
    east = fleet.place("east")
    assert not zfs.exists(LOCAL, east.incoming(user)) and not zfs.exists(LOCAL, east.home(user))
    # Nothing to abort or clean up now.
    for flag in ("--abort", "--cleanup"):
        refused = callysto("fleet", "move", "--env", "fleet", user, flag)
        assert refused.returncode == 2 and "no move of" in refused.stderr


def test_abort_is_refused_once_the_move_has_switched(fleet, callysto, one_line_error):
    user = student(5)
    enrol(fleet, user, "north")
    assert callysto("fleet", "move", "--env", "fleet", user, "--to", "south").returncode == 0
    refused = callysto("fleet", "move", "--env", "fleet", user, "--abort")
    one_line_error(refused, "has switched to 'south'", code=2)
    assert hub_of(fleet, user) == "south" and writable(fleet, "south", user)
    # Nor is --abort suggested for it any more: only finishing it.
    elsewhere = callysto("fleet", "move", "--env", "fleet", user, "--to", "east")
    line = one_line_error(elsewhere, "finish it (--to south) first", code=2)
    assert "--abort" not in line
    listed = callysto("fleet", "list", "--env", "fleet")
    assert "--abort" not in listed.stdout and "awaits --cleanup" in listed.stdout


# --- fleet drain / accept -----------------------------------------------------------------------------


def test_drain_records_the_state_in_env_yaml_and_the_database(fleet, callysto):
    before = fleet.env_yaml.read_text()
    result = callysto("fleet", "drain", "--env", "fleet", "north")
    assert result.returncode == 0, result.stderr
    assert "hub 'north' is draining" in result.stdout
    after = fleet.env_yaml.read_text()
    # One line more, the state under north; every comment and every other line as it was.
    diff = [
        line
        for line in difflib.ndiff(before.splitlines(), after.splitlines())
        if line[:2] in ("+ ", "- ")
    ]
    assert diff == ["+     state: draining"], diff
    assert after.index("state: draining") < after.index("- name: south")
    config = environments.load("fleet").config
    assert [(h.name, h.state) for h in config.fleet] == [
        ("north", "draining"), ("south", "accepting"), ("east", "accepting"),
    ]  # fmt: skip
    assert states(fleet)["north"] == "draining"
    # No new student goes to north from now on; all fit elsewhere.
    placed = [assignments.assign(fleet.conn, student(100 + n))[0] for n in range(15)]
    assert "north" not in placed and len(placed) == 15

    again = callysto("fleet", "drain", "--env", "fleet", "north")
    assert again.returncode == 0 and "(it was already)" in again.stdout
    assert fleet.env_yaml.read_text() == after

    undone = callysto("fleet", "accept", "--env", "fleet", "north")
    assert undone.returncode == 0, undone.stderr
    assert "accepting" in fleet.env_yaml.read_text().split("- name: south")[0]
    assert states(fleet)["north"] == "accepting"
    assert environments.load("fleet").config.fleet[0].state == "accepting"
    assert assignments.assign(fleet.conn, student(200))[0] == "north", "the emptiest hub again"


COUNTED = """\
type: local
host:
  name: counted
  domain: localhost.localdomain
hub:
  pool: {pool}
local:
  port: {port}
# two hubs, named for us
hubs: 2   # grow when term starts
support_email: support@callysto.ca   # who students write to
"""


def test_drain_turns_a_count_of_hubs_into_their_list(envs_dir, database, callysto):
    env = write_env(envs_dir, "counted", COUNTED.format(pool="cfcount", port=DOOR_PORT), database)
    names = [hub.name for hub in env.config.fleet]
    reset_tables(database, env)
    result = callysto("fleet", "drain", "--env", "counted", names[1])
    assert result.returncode == 0, result.stderr
    text = (env.path / environments.ENV_FILE).read_text()
    assert "# two hubs, named for us" in text and "# grow when term starts" in text
    assert "support_email: support@callysto.ca   # who students write to" in text
    config = environments.load("counted").config
    assert isinstance(config.hubs, list)
    assert [(h.name, h.state) for h in config.fleet] == [
        (names[0], "accepting"), (names[1], "draining"),
    ]  # fmt: skip
    with fleet_db(database) as conn:
        assert {load.name: load.state for load in assignments.loads(conn)}[names[1]] == "draining"


# --- fleet rebalance ------------------------------------------------------------------------------------


def test_rebalance_dry_run_plans_even_ratios_and_changes_nothing(fleet, callysto):
    for n in range(6):
        enrol(fleet, student(n), "north", home=False)
    result = callysto("fleet", "rebalance", "--env", "fleet", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    # 6 students over capacities 10, 10 and 5: 2.4, 2.4 and 1.2, so 3, 2 and 1.
    assert plan["students_after"] == {"north": 3, "south": 2, "east": 1}
    assert sorted(m["to"] for m in plan["moves"]) == ["east", "south", "south"]
    assert {m["from"] for m in plan["moves"]} == {"north"}
    assert len({m["user"] for m in plan["moves"]}) == 3
    assert all(hub_of(fleet, student(n)) == "north" for n in range(6)), "a plan only"
    text = callysto("fleet", "rebalance", "--env", "fleet", "--dry-run")
    assert text.stdout.startswith("callysto fleet move --env fleet ")
    # A draining hub keeps its students: nothing to balance among the others.
    fleet.conn.execute("UPDATE hubs SET state = 'draining' WHERE name = 'north'")
    drained = json.loads(
        callysto("fleet", "rebalance", "--env", "fleet", "--dry-run", "--json").stdout
    )
    assert drained["moves"] == []


# --- bad input -------------------------------------------------------------------------------------------


def refusals(user: str, stranger: str) -> list[tuple[list[str], str]]:
    return [
        (["move", user, "--to", "nowhere"], "unknown hub 'nowhere' in environment 'fleet' "
         "(known: north, south, east)"),
        (["move", "not-a-hash", "--to", "south"], "invalid user"),
        (["move", "a" * 39, "--to", "south"], "invalid user"),
        (["move", user], "--to HUB"),
        (["move", user, "--to", "south", "--abort", "--cleanup"], "not both"),
        (["move", stranger, "--to", "south"], "has no hub yet"),
        (["move", user, "--to", "north"], "is on hub 'north' already"),
        (["move", user, "--cleanup"], "no move of"),
        (["find", "nobody"], "invalid user"),
        (["drain", "nowhere"], "unknown hub 'nowhere'"),
        (["drain", "north\n"], "invalid host name 'north\\n'"),
        (["accept", "north south"], "invalid host name 'north south'"),
        (["move", user, "--to", "south\n"], "invalid host name 'south\\n'"),
        (["accept", "NORTH"], "unknown hub 'NORTH'"),
        (["rebalance"], "move the students it lists one by one"),
    ]  # fmt: skip


def test_bad_input_is_one_line_exit_2_and_changes_nothing(fleet, callysto, one_line_error):
    user = student(7)
    before = enrol(fleet, user, "north")
    yaml_before = fleet.env_yaml.read_text()
    for args, fragment in refusals(user, student(8)):
        result = callysto("fleet", args[0], "--env", "fleet", *args[1:])
        one_line_error(result, fragment, code=2)
        assert fleet.env_yaml.read_text() == yaml_before, args
        assert hub_of(fleet, user) == "north" and journal(fleet, user) is None, args
        assert hub_of(fleet, student(8)) is None, args
        assert writable(fleet, "north", user), args
    assert states(fleet) == {"north": "accepting", "south": "accepting", "east": "accepting"}
    assert digests(fleet, "north", user) == before


def test_a_move_onto_a_hub_that_has_a_home_already_is_refused_first(
    fleet, callysto, one_line_error
):
    user = student(9)
    enrol(fleet, user, "north")
    zfs.create(LOCAL, fleet.place("south").home(user), {"refquota": "100M"})
    result = callysto("fleet", "move", "--env", "fleet", user, "--to", "south")
    one_line_error(result, "has a home", "nothing was changed", code=2)
    assert journal(fleet, user) is None and writable(fleet, "north", user)


def test_a_move_off_a_hub_gone_from_env_yaml_says_to_list_it_again(fleet, callysto, one_line_error):
    user = student(10)
    before = enrol(fleet, user, "east")
    text = fleet.env_yaml.read_text()
    gone = "  - name: east\n    capacity: 5   # a small hub\n"
    assert gone in text
    fleet.env_yaml.write_text(text.replace(gone, ""))
    result = callysto("fleet", "move", "--env", "fleet", user, "--to", "south")
    one_line_error(
        result, f"{user} is on hub 'east', which is no longer in env.yaml", "'hubs:'", code=2
    )
    assert hub_of(fleet, user) == "east" and journal(fleet, user) is None
    assert writable(fleet, "east", user) and digests(fleet, "east", user) == before


def test_an_environment_without_a_fleet_database_is_refused(envs_dir, callysto, one_line_error):
    environments.create("local", "single")
    for args in (["list"], ["find", student(1)], ["drain", "single"], ["rebalance", "--dry-run"]):
        result = callysto("fleet", args[0], "--env", "single", *args[1:])
        one_line_error(result, "environment 'single' is one hub, with no fleet database", code=2)


def test_a_database_that_does_not_answer_names_it_and_how_to_start_it(
    envs_dir, callysto, one_line_error
):
    text = ENV_YAML.format(pool="cfdead", port=DEAD_DOOR_PORT).replace("name: fleet", "name: dead")
    write_env(envs_dir, "dead", text, "not-the-password")
    result = callysto("fleet", "list", "--env", "dead")
    line = one_line_error(result, f"127.0.0.1:{DEAD_DOOR_PORT + 4} does not answer", code=1)
    assert "make local ENV=dead" in line
    assert "not-the-password" not in result.stderr + result.stdout
    # A drain that cannot reach the database writes nothing to env.yaml either.
    env_yaml = envs_dir / "dead" / environments.ENV_FILE
    before = env_yaml.read_text()
    one_line_error(callysto("fleet", "drain", "--env", "dead", "north"), "does not answer", code=1)
    assert env_yaml.read_text() == before


def test_a_missing_or_open_password_file_is_refused(fleet, callysto, one_line_error):
    path = fleet.env.secrets_dir / "frontdoor-db-password"
    path.chmod(0o644)
    result = callysto("fleet", "list", "--env", "fleet")
    one_line_error(result, "readable by others", code=2)
    assert fleet.password not in result.stderr + result.stdout
    path.unlink()
    result = callysto("fleet", "list", "--env", "fleet")
    one_line_error(result, "frontdoor-db-password", "does not exist", code=2)


def test_a_wrong_password_is_named_without_being_shown(fleet, callysto, one_line_error):
    path = fleet.env.secrets_dir / "frontdoor-db-password"
    secretfiles.write(path, "a-wrong-password\n")
    result = callysto("fleet", "list", "--env", "fleet")
    one_line_error(result, "refused the password", code=1)
    assert "a-wrong-password" not in result.stderr + result.stdout
