"""Makes the front door's PostgreSQL role and its database, and gives the role its password.

Run by the frontdoor role as the cluster's owner (peer sign-in on the unix socket), with the
front door's own Python (psycopg). The password comes on stdin, never on a command line, and
the server gets only its SCRAM verifier, computed here by libpq, so no server log can hold the
password. Whether the role has it already is learnt the way the service will use it: by
signing in with it over TCP. Prints {"changed": [...]}, what was made or set (with --check:
what would be).
"""

from __future__ import annotations

import argparse
import json
import sys

import psycopg
from psycopg import sql


def exists(conn: psycopg.Connection, query: str, value: str) -> bool:
    return conn.execute(query, [value]).fetchone() is not None


def signs_in(host: str, port: int, name: str, password: str) -> bool:
    try:
        with psycopg.connect(
            host=host,
            port=port,
            dbname=name,
            user=name,
            password=password,
            connect_timeout=10,
            require_auth="scram-sha-256",
        ):
            return True
    except psycopg.OperationalError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket-dir", required=True, help="the cluster's unix socket folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tcp-host", default="127.0.0.1", help="where the service connects")
    parser.add_argument("--name", required=True, help="the role, and the database it owns")
    parser.add_argument("--check", action="store_true", help="change nothing, only tell")
    args = parser.parse_args()
    password = sys.stdin.readline().strip()
    if not password:
        sys.exit("frontdoor-database: expected the password on stdin")
    name = sql.Identifier(args.name)
    changed: list[str] = []
    with psycopg.connect(
        host=args.socket_dir, port=args.port, dbname="postgres", autocommit=True
    ) as admin:

        def change(what: str, statement: sql.Composable) -> None:
            changed.append(what)
            if not args.check:
                admin.execute(statement)

        if not exists(admin, "SELECT 1 FROM pg_roles WHERE rolname = %s", args.name):
            change("role", sql.SQL("CREATE ROLE {} LOGIN").format(name))
        if not exists(admin, "SELECT 1 FROM pg_database WHERE datname = %s", args.name):
            change("database", sql.SQL("CREATE DATABASE {} OWNER {}").format(name, name))
        if changed or not signs_in(args.tcp_host, args.port, args.name, password):
            verifier = admin.pgconn.encrypt_password(
                password.encode(), args.name.encode(), b"scram-sha-256"
            )
            change(
                "password",
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(verifier.decode())),
            )
    print(json.dumps({"changed": changed}))


if __name__ == "__main__":
    main()
