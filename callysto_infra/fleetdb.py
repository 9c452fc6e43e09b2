"""The fleet's database (PostgreSQL `callysto` beside the front door) as operators' commands
reach it: directly on this machine for a local fleet, through an SSH tunnel to the front door
for a cloud one. Its password comes from a 0600 file and goes to psycopg as a parameter only."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from callysto_infra import hubs, runner, secretfiles
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.paths import display

if TYPE_CHECKING:
    import psycopg

    from callysto_infra.environments import Environment

DATABASE = "callysto"
USER = "callysto"
PASSWORD_FILE = "frontdoor-db-password"  # noqa: S105 - a file name, not a secret
# Where the front door's PostgreSQL listens, on the front door itself (never on a public port).
FRONTDOOR_DB_PORT = 5432
CONNECT_SECONDS = 10
TUNNEL_SECONDS = 20


def require_fleet(env: Environment) -> None:
    """Refuse (exit 2) an environment that has no fleet database: one hub without a front door."""
    if env.type == "local":
        if not hubs.is_local_fleet(env):
            raise UsageError(
                f"environment '{env.name}' is one hub, with no fleet database: list its hubs "
                f"under 'hubs:' in env.yaml, then 'callysto local up --env {env.name}'"
            )
    elif env.config.frontdoor is None:
        raise UsageError(
            f"environment '{env.name}' has no front door, so no fleet database: add "
            f"'frontdoor:' and 'hubs:' to env.yaml, then 'callysto terraform apply --env {env.name}'"
        )


def how_to_start(env: Environment) -> str:
    if env.type == "local":
        return (
            f"start the fleet with 'make local ENV={env.name}' (callysto local up --env {env.name})"
        )
    return (
        f"set up the front door with its playbook ('callysto ansible playbook --env {env.name} "
        "hub.yml')"
    )


def read_password(env: Environment) -> str:
    path = env.secrets_dir / PASSWORD_FILE
    if not path.exists():
        raise UsageError(
            f"the fleet database's password file {display(path)} does not exist: the fleet's "
            f"setup writes it; {how_to_start(env)}"
        )
    return secretfiles.read_line(path, "fleet database password file")


def frontdoor(env: Environment) -> hubs.Hub:
    """The front door of a cloud fleet, from the Terraform state (inventory group frontdoor),
    reached over SSH like a hub: the environment's key and known_hosts."""
    found = hubs.hubs(env, group="frontdoor")
    if not found:
        raise OperationError(
            f"the Terraform state of '{env.name}' lists no front door: run "
            f"'callysto terraform apply --env {env.name}'"
        )
    return found[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# What the tunnel's ssh runs on the front door: it ends at the end of its input, so the tunnel
# ends when the pipe to its stdin closes, which it does when this command ends in any way.
TUNNEL_COMMAND = "cat"


def tunnel_argv(door: hubs.Hub, local_port: int, remote_port: int) -> list[str]:
    """ssh forwarding 127.0.0.1:LOCAL_PORT here to 127.0.0.1:REMOTE_PORT on DOOR while
    TUNNEL_COMMAND runs there; a port it cannot forward ends it (ExitOnForwardFailure) rather
    than leaving a tunnel that goes nowhere."""
    argv = door.ssh_argv([TUNNEL_COMMAND])
    forward = ["-T", "-o", "ExitOnForwardFailure=yes"]
    forward += ["-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"]
    at = argv.index("--")  # options before the target (see Hub.ssh_argv)
    return [*argv[:at], *forward, *argv[at:]]


@contextlib.contextmanager
def tunnel(door: hubs.Hub, remote_port: int = FRONTDOOR_DB_PORT) -> Iterator[int]:
    """A port on 127.0.0.1 here that leads to DOOR's 127.0.0.1:REMOTE_PORT while the block
    runs; the ssh process is stopped by its pid afterwards, and ends by itself if this process
    is killed first (its stdin is a pipe that dies with us)."""
    local_port = _free_port()
    argv = tunnel_argv(door, local_port, remote_port)
    with runner.background(argv, hold_stdin=True) as ssh:
        deadline = time.monotonic() + TUNNEL_SECONDS
        while not _accepts(local_port):
            if ssh.exited() is not None:
                raise OperationError(
                    f"the SSH tunnel to the front door {door.name} ({door.address}) failed: "
                    f"{runner.last_line(ssh.result())}"
                )
            if time.monotonic() > deadline:
                raise OperationError(
                    f"the SSH tunnel to the front door {door.name} ({door.address}) did not "
                    f"open within {TUNNEL_SECONDS}s"
                )
            time.sleep(0.1)
        yield local_port


@contextlib.contextmanager
def _endpoint(env: Environment) -> Iterator[tuple[str, int, str]]:
    """(host, port) to connect to, and how to name the database in an error."""
    if env.type == "local":
        port = env.local.port + hubs.FRONTDOOR_DB_OFFSET
        yield "127.0.0.1", port, f"127.0.0.1:{port}"
        return
    door = frontdoor(env)
    with tunnel(door) as port:
        yield "127.0.0.1", port, f"{door.name}:{FRONTDOOR_DB_PORT} (through an SSH tunnel)"


def _reason(exc: Exception) -> str:
    """The telling part of libpq's message: its first line, without the 'connection to server
    at ... failed:' preamble that the error names already."""
    first = (str(exc).strip().splitlines() or ["no answer"])[0]
    return first.rsplit("failed: ", 1)[-1].strip() or "no answer"


def open_connection(
    env: Environment, host: str, port: int, where: str, password: str
) -> psycopg.Connection:
    import psycopg

    try:
        return psycopg.connect(
            host=host,
            port=port,
            dbname=DATABASE,
            user=USER,
            password=password,
            require_auth="scram-sha-256",  # the password never goes out in clear
            connect_timeout=CONNECT_SECONDS,
            application_name="callysto fleet",
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        reason = _reason(exc)
        if "password authentication failed" in reason:
            raise OperationError(
                f"the fleet database at {where} refused the password in "
                f"{display(env.secrets_dir / PASSWORD_FILE)}: it is not the one the fleet's "
                f"setup gave user {USER}"
            ) from None
        if "authentication method requirement" in str(exc):  # libpq refused, sent nothing
            raise OperationError(
                f"the fleet database at {where} asked for the password by a weaker method than "
                "SCRAM, so it was not sent: that server is not the one the fleet's setup made "
                "(it sets scram-sha-256)"
            ) from None
        raise OperationError(
            f"the fleet database at {where} does not answer ({reason}): {how_to_start(env)}"
        ) from None


def failed(env: Environment, conn: psycopg.Connection, where: str, exc: Exception) -> str:
    """What to tell the operator when a query of a connection that did open failed: the
    server went away (a restart, the network, the tunnel), or it refused that query."""
    if conn.broken:
        return (
            f"the connection to the fleet database at {where} was lost ({_reason(exc)}): "
            f"run the command again once it answers; {how_to_start(env)}"
        )
    return f"the fleet database at {where} refused a query: {_reason(exc)}"


@contextlib.contextmanager
def connect(env: Environment) -> Iterator[psycopg.Connection]:
    """A connection (autocommit) to ENV's fleet database, open while the block runs. A database
    error in the block (the server gone, a query refused) ends as one OperationError line."""
    import psycopg

    require_fleet(env)
    password = read_password(env)
    with _endpoint(env) as (host, port, where):
        conn = open_connection(env, host, port, where, password)
        try:
            with conn:
                # The front door makes the tables at its start (assignments.SCHEMA); one set
                # up before moves were journaled there makes the moves table at its next start.
                found = conn.execute("SELECT to_regclass('hubs'), to_regclass('moves')")
                hubs_table, moves_table = found.fetchone()
                if hubs_table is None:
                    raise OperationError(
                        f"the fleet database at {where} has no hubs table yet: the front door "
                        f"makes it when it starts; {how_to_start(env)}"
                    )
                if moves_table is None:
                    raise OperationError(
                        f"the fleet database at {where} has no moves table yet: the front door "
                        f"makes it when it starts, so restart it; {how_to_start(env)}"
                    )
                yield conn
        except psycopg.Error as exc:
            raise OperationError(failed(env, conn, where, exc)) from None
