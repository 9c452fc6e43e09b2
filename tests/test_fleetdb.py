"""Reaching a cloud fleet's database: an SSH tunnel (a real sshd on 127.0.0.1 stands in for the
front door) to the PostgreSQL beside it, stopped when done; and the one-line errors when the
tunnel or the database behind it fails."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time

import psycopg
import pytest
import yaml
from psycopg import sql

from callysto_infra import assignments, environments, fleetdb, secretfiles
from callysto_infra.errors import OperationError
from tests import postgres

DB_PORT = 18833
SSHD_PORTS = range(18836, 18839)
SSHD = "/usr/sbin/sshd"
DOOR = "door.callysto.farm"


def free_port() -> int:
    for port in SSHD_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {SSHD_PORTS}")


def keygen(path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True
    )


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on 127.0.0.1 letting the current user in with the keys of authorized_keys;
    stopped by its pid."""
    if not os.path.exists(SSHD):
        pytest.fail("sshd is not installed: run scripts/bootstrap-system (or make test)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    root = tmp_path / "sshd"
    root.mkdir()
    keygen(root / "host_key")
    authorized = root / "authorized_keys"
    authorized.touch(mode=0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {root / 'sshd.pid'}\nStrictModes no\n"
        "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nAllowTcpForwarding local\n"
    )
    log = open(root / "sshd.log", "w")  # noqa: SIM115 -- sshd owns it until it stops
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield {"port": port, "authorized_keys": authorized}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def database():
    with postgres.running(DB_PORT) as server:
        yield server


def cloud_fleet(ssh_port: int, authorized=None):
    """A dev fleet with a front door whose state row points at 127.0.0.1:SSH_PORT."""
    env = environments.create("dev", "brave-otter")
    path = env.path / environments.ENV_FILE
    config = yaml.safe_load(path.read_text())
    config["frontdoor"] = {"name": "door"}
    config["hubs"] = [{"name": "brave-otter"}, {"name": "calm-heron"}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    keygen(env.ssh_key_file)
    if authorized is not None:
        authorized.write_text(env.ssh_key_file.with_suffix(".pub").read_text())
    door = {
        "name": DOOR, "address": "127.0.0.1", "ssh_user": getpass.getuser(),
        "ssh_port": ssh_port, "groups": ["frontdoor", "dev", "brave-otter"],
    }  # fmt: skip
    state = {"version": 4, "outputs": {"hosts": {"value": {"door": door}}}}
    env.state_file.write_text(json.dumps(state))
    secretfiles.write(env.secrets_dir / fleetdb.PASSWORD_FILE, "a-fleet-password\n")
    return environments.load("brave-otter")


def test_the_tunnel_reaches_the_database_beside_the_front_door_and_stops(envs_dir, sshd, database):
    env = cloud_fleet(sshd["port"], sshd["authorized_keys"])
    door = fleetdb.frontdoor(env)
    assert door.name == DOOR and door.ssh_port == sshd["port"]
    argv = fleetdb.tunnel_argv(door, 40000, 5432)
    assert argv[-3:] == ["--", f"{getpass.getuser()}@127.0.0.1", fleetdb.TUNNEL_COMMAND]
    assert argv[argv.index("-L") + 1] == "127.0.0.1:40000:127.0.0.1:5432"
    assert "ExitOnForwardFailure=yes" in argv and "-N" not in argv
    with (
        fleetdb.tunnel(door, remote_port=DB_PORT) as port,
        psycopg.connect(
            host="127.0.0.1", port=port, dbname="postgres", user=postgres.OWNER,
            password=database.password, connect_timeout=10,
        ) as conn,
    ):  # fmt: skip
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the tunnel is gone"


HOLDER = """\
import os, sys, time
from callysto_infra import environments, fleetdb
env = environments.load(sys.argv[1])
with fleetdb.tunnel(fleetdb.frontdoor(env), remote_port=int(sys.argv[2])) as port:
    me = os.getpid()
    children = open(f"/proc/{me}/task/{me}/children").read().split()
    print(port, *children, flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_tunnel_dies_with_a_process_killed_with_sigkill(envs_dir, sshd, database):
    env = cloud_fleet(sshd["port"], sshd["authorized_keys"])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, env.name, str(DB_PORT)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)},
    )  # fmt: skip
    ssh_pids: list[int] = []
    try:
        port, *children = holder.stdout.readline().split()
        ssh_pids = [int(pid) for pid in children]
        assert len(ssh_pids) == 1, "the tunnel is one ssh process"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) == 0, "the tunnel is open"
        holder.kill()  # SIGKILL: no finally, no atexit
        holder.wait(timeout=10)
        deadline = time.monotonic() + 15
        while alive(ssh_pids[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(ssh_pids[0]), "ssh outlived the process that opened the tunnel"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) != 0, "the tunnel is gone"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        for pid in ssh_pids:  # only what this test started
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_front_door_that_ssh_cannot_reach_is_one_line(envs_dir, callysto, one_line_error):
    env = cloud_fleet(free_port())  # nothing listens there
    result = callysto("fleet", "list", "--env", env.name)
    one_line_error(result, f"the SSH tunnel to the front door {DOOR} (127.0.0.1) failed", code=1)
    assert "a-fleet-password" not in result.stderr + result.stdout


def test_a_database_that_does_not_answer_behind_the_tunnel_is_one_line(
    envs_dir, sshd, callysto, one_line_error
):
    env = cloud_fleet(sshd["port"], sshd["authorized_keys"])
    result = callysto("fleet", "list", "--env", env.name)
    # Whatever port 5432 of the front door holds here, the command fails in one line.
    one_line_error(result, f"the fleet database at {DOOR}:5432 (through an SSH tunnel)", code=1)
    assert "a-fleet-password" not in result.stderr + result.stdout


def test_a_cloud_environment_without_a_front_door_has_no_fleet_database(
    envs_dir, one_line_error, callysto
):
    environments.create("dev", "lone-hub")
    result = callysto("fleet", "list", "--env", "lone-hub")
    one_line_error(result, "has no front door, so no fleet database", code=2)


# --- a connection that opened, and then a query failed -------------------------------------------

FLEET_PASSWORD = "a-local-fleet-password"

LOCAL_FLEET = f"""\
type: local
host:
  name: near
  domain: localhost.localdomain
local:
  port: {DB_PORT - 4}  # its database on port + 4, this module's server
hubs:
  - name: north
  - name: south
"""


def make_local_fleet(database, tables_by: str, password: str):
    """A local fleet whose database `callysto` is this module's server's, its tables made by
    TABLES_BY (PASSWORD) and synced as the front door syncs them: env.yaml's north and south,
    and east, no longer in env.yaml but still holding a student, so kept draining."""
    with database.connect(autocommit=True) as owner:
        owner.execute("DROP DATABASE IF EXISTS callysto WITH (FORCE)")
        owner.execute("DROP ROLE IF EXISTS callysto")
        owner.execute(
            sql.SQL("CREATE ROLE callysto LOGIN PASSWORD {}").format(sql.Literal(FLEET_PASSWORD))
        )
        owner.execute("CREATE DATABASE callysto OWNER callysto")
    with psycopg.connect(
        host="127.0.0.1", port=DB_PORT, dbname="callysto", user=tables_by, password=password,
        autocommit=True,
    ) as tables:  # fmt: skip
        assignments.create_schema(tables)
        assignments.set_hubs(tables, [("east", 5, "accepting")])
        tables.execute("INSERT INTO assignments (user_hash, hub) VALUES (%s, 'east')", (ON_EAST,))
        assignments.set_hubs(tables, [("north", 10, "accepting"), ("south", 10, "accepting")])
    env = environments.create("local", "near")
    (env.path / environments.ENV_FILE).write_text(LOCAL_FLEET)
    secretfiles.write(env.secrets_dir / fleetdb.PASSWORD_FILE, FLEET_PASSWORD + "\n")
    return environments.load("near")


ON_EAST = "e" * 40


@pytest.fixture
def local_fleet(envs_dir, database):
    """The fleet's tables made by `callysto`, as the front door makes them."""
    return make_local_fleet(database, "callysto", FLEET_PASSWORD)


@pytest.fixture
def foreign_tables_fleet(envs_dir, database):
    """The fleet's tables made by the server's owner (as a database set up by hand might be),
    so `callysto` may connect and find them but not read them."""
    return make_local_fleet(database, postgres.OWNER, database.password)


def tables_of(database) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=DB_PORT, dbname="callysto", user=postgres.OWNER,
        password=database.password, autocommit=True,
    )  # fmt: skip


def test_a_query_the_database_refuses_is_one_line(foreign_tables_fleet, callysto, one_line_error):
    result = callysto("fleet", "find", "--env", "near", "a" * 40)
    one_line_error(
        result,
        f"the fleet database at 127.0.0.1:{DB_PORT} refused a query",
        "permission denied",
        code=1,
    )
    assert FLEET_PASSWORD not in result.stderr + result.stdout


def test_a_database_the_front_door_made_before_moves_were_journaled_says_to_restart_it(
    local_fleet, callysto, one_line_error
):
    with psycopg.connect(
        host="127.0.0.1", port=DB_PORT, dbname="callysto", user="callysto",
        password=FLEET_PASSWORD, autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute("DROP TABLE moves")
    result = callysto("fleet", "find", "--env", "near", ON_EAST)
    one_line_error(result, "has no moves table yet", "restart it", code=1)


def test_drain_writes_env_yaml_and_the_database_and_nothing_beside_them(
    local_fleet, database, callysto
):
    result = callysto("fleet", "drain", "--env", "near", "south")
    assert result.returncode == 0, result.stderr
    assert "hub 'south' is draining" in result.stdout
    assert [(h.name, h.state) for h in environments.load("near").config.fleet] == [
        ("north", "accepting"), ("south", "draining"),
    ]  # fmt: skip
    left = [p.name for p in local_fleet.path.iterdir() if p.name.startswith(".env.yaml")]
    assert left == [], "no temporary copy of env.yaml is left beside it"
    with tables_of(database) as tables:
        assert {load.name: load.state for load in assignments.loads(tables)}["south"] == "draining"


def test_a_database_that_goes_away_after_the_connect_is_one_error(local_fleet, database):
    with (
        pytest.raises(OperationError) as raised,
        fleetdb.connect(local_fleet) as conn,
    ):
        pid = conn.info.backend_pid
        with database.connect(autocommit=True) as owner:
            assert owner.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        conn.execute("SELECT count(*) FROM hubs")
    message = str(raised.value)
    assert message.startswith(
        f"the connection to the fleet database at 127.0.0.1:{DB_PORT} was lost"
    )
    assert "run the command again" in message and "\n" not in message


def test_a_hub_name_with_more_than_the_name_is_refused_before_anything(
    local_fleet, database, callysto, one_line_error
):
    env_yaml = local_fleet.path / environments.ENV_FILE
    before = env_yaml.read_text()
    for args in (
        ["drain", "north\n"],
        ["accept", "south\n"],
        ["drain", "north;south"],
        ["move", "a" * 40, "--to", "south\n"],
    ):
        result = callysto("fleet", args[0], "--env", "near", *args[1:])
        bad = next(arg for arg in args if arg.startswith(("north", "south")))
        one_line_error(result, f"invalid host name {bad!r}", code=2)
        assert env_yaml.read_text() == before, args
    with tables_of(database) as tables:
        assert {load.name: load.state for load in assignments.loads(tables)} == {
            "east": "draining", "north": "accepting", "south": "accepting",
        }  # fmt: skip


def test_a_move_off_a_hub_gone_from_env_yaml_says_to_list_it_again(
    local_fleet, database, callysto, one_line_error
):
    result = callysto("fleet", "move", "--env", "near", ON_EAST, "--to", "south")
    one_line_error(
        result, f"{ON_EAST} is on hub 'east', which is no longer in env.yaml", "'hubs:'", code=2
    )
    with tables_of(database) as tables:
        assert assignments.find(tables, ON_EAST) == "east"
        assert tables.execute("SELECT count(*) FROM moves").fetchone() == (0,)
    found = callysto("fleet", "find", "--env", "near", ON_EAST)
    assert found.returncode == 0 and found.stdout == f"{ON_EAST}  east\n", found.stderr


def test_the_tunnel_names_a_front_door_that_refuses_the_key(envs_dir, sshd):
    env = cloud_fleet(sshd["port"])  # its key is not authorized there
    with (
        pytest.raises(OperationError, match=r"SSH tunnel to the front door .* failed"),
        fleetdb.tunnel(fleetdb.frontdoor(env), remote_port=DB_PORT),
    ):
        pass


CLEARTEXT_DB_PORT = 18832  # a server that asks for the password in clear


def test_a_database_asking_for_the_password_in_clear_never_gets_it(
    envs_dir, callysto, one_line_error
):
    with postgres.running(CLEARTEXT_DB_PORT, host_auth="password") as server:
        with server.connect(autocommit=True) as owner:
            owner.execute(
                sql.SQL("CREATE ROLE callysto LOGIN PASSWORD {}").format(
                    sql.Literal(FLEET_PASSWORD)
                )
            )
            owner.execute("CREATE DATABASE callysto OWNER callysto")
        # The password is right: a client that sends it in clear is let in ...
        with psycopg.connect(
            host="127.0.0.1", port=CLEARTEXT_DB_PORT, dbname="callysto", user="callysto",
            password=FLEET_PASSWORD,
        ) as conn:  # fmt: skip
            assert conn.execute("SELECT current_user").fetchone() == ("callysto",)
        env = environments.create("local", "near")
        (env.path / environments.ENV_FILE).write_text(
            LOCAL_FLEET.replace(f"port: {DB_PORT - 4}", f"port: {CLEARTEXT_DB_PORT - 4}")
        )
        secretfiles.write(env.secrets_dir / fleetdb.PASSWORD_FILE, FLEET_PASSWORD + "\n")
        # ... and `callysto` does not send it.
        result = callysto("fleet", "list", "--env", "near")
    one_line_error(
        result,
        f"the fleet database at 127.0.0.1:{CLEARTEXT_DB_PORT} asked for the password by a "
        "weaker method than SCRAM, so it was not sent",
        code=1,
    )
    assert FLEET_PASSWORD not in result.stderr + result.stdout
