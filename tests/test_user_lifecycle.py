"""A student's account lifecycle on a real ZFS pool: ban, unban, delete-home and restore-home."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from typing import ClassVar

import pytest
import yaml

from callysto_infra import environments, userhash
from tests.homes import (
    A,
    B,
    exists,
    home_dir,
    local_env_on,
    make_home,
    snapshots,
    write_bytes,
    zfs_value,
)

API_PORT = 18431  # nothing listens here
FAKE_API_PORT = 18432


@pytest.fixture
def env(envs_dir, zfs_pool):
    return local_env_on(zfs_pool.name)


def files(path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir()) if p.is_file()}


def set_local_port(env, port: int) -> None:
    path = env.path / environments.ENV_FILE
    config = yaml.safe_load(path.read_text())
    config["local"]["port"] = port
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_token(env, token: str = "operator-token") -> None:  # noqa: S107 - a test token
    path = env.secrets_dir / "hub-api-token"
    path.write_text(token + "\n")
    path.chmod(0o600)


# --- ban and unban -----------------------------------------------------------------------------


def test_ban_makes_the_home_read_only_and_unban_writable(callysto, env, zfs_pool):
    path = make_home(zfs_pool, A, "4M")
    dataset = f"{zfs_pool.name}/home/{A}"
    banned = callysto("user", "ban", "--env", "local", A)
    assert banned.returncode == 0, banned.stderr
    assert not write_bytes(path / "after-ban", 10)
    assert zfs_value(dataset, "callysto:banned").endswith("Z")
    # No API token: the ban holds, and says plainly that the server was not stopped.
    assert "server not stopped" in banned.stdout and "hub-api-token" in banned.stdout
    unbanned = callysto("user", "unban", "--env", "local", A)
    assert unbanned.returncode == 0, unbanned.stderr
    assert write_bytes(path / "after-unban", 10)
    assert zfs_value(dataset, "callysto:banned") == "-"


def test_ban_succeeds_when_the_hub_api_is_down_and_names_it(callysto, env, zfs_pool):
    make_home(zfs_pool, A)
    set_local_port(env, API_PORT)
    write_token(env)
    done = callysto("user", "ban", "--env", "local", "--json", A)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["banned"]
    assert f"http://127.0.0.1:{API_PORT}/hub/api" in document["server"]
    assert "not reachable" in document["server"]
    assert "operator-token" not in done.stdout + done.stderr


class RecordingAPI(http.server.BaseHTTPRequestHandler):
    """Records the requests it gets and answers as JupyterHub does when it stops a server."""

    seen: ClassVar[list] = []

    def do_DELETE(self):
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_ban_stops_the_running_server_through_the_hub_api(callysto, env, zfs_pool):
    make_home(zfs_pool, A)
    set_local_port(env, FAKE_API_PORT)
    write_token(env)
    RecordingAPI.seen = []
    server = http.server.HTTPServer(("127.0.0.1", FAKE_API_PORT), RecordingAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = callysto("user", "ban", "--env", "local", A)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert RecordingAPI.seen == [("DELETE", f"/hub/api/users/{A}/server", "token operator-token")]
    assert "server stopped" in done.stdout


# --- delete-home and restore-home --------------------------------------------------------------


def test_delete_home_refuses_a_wrong_confirmation_and_changes_nothing(
    callysto, env, zfs_pool, one_line_error
):
    make_home(zfs_pool, A)
    before = snapshots(zfs_pool)
    typed = callysto("user", "delete-home", "--env", "local", A, input=B + "\n")
    assert typed.returncode == 2 and one_line_error(typed) and "nothing was changed" in typed.stderr
    given = callysto("user", "delete-home", "--env", "local", "--yes", B, A)
    assert given.returncode == 2 and one_line_error(given)
    assert exists(f"{zfs_pool.name}/home/{A}") and snapshots(zfs_pool) == before


def test_deleted_home_comes_back_from_its_snapshot(callysto, env, zfs_pool):
    path = make_home(zfs_pool, A, "6M")
    (path / "essay.md").write_text("my essay")
    (path / "data.csv").write_text("1,2,3")
    done = callysto("user", "delete-home", "--env", "local", A, input=A + "\n")
    assert done.returncode == 0, done.stderr
    assert not exists(f"{zfs_pool.name}/home/{A}")
    kept = [s for s in snapshots(zfs_pool) if "@callysto-delete-" in s]
    assert len(kept) == 1 and kept[0].startswith(f"{zfs_pool.name}/deleted/{A}/")
    assert f"kept: {kept[0]}" in done.stdout
    assert zfs_value(f"{zfs_pool.name}/deleted", "mounted") == "no"

    restored = callysto("user", "restore-home", "--env", "local", "--from", kept[0], A)
    assert restored.returncode == 0, restored.stderr
    dataset = f"{zfs_pool.name}/home/{A}"
    assert files(home_dir(zfs_pool, A)) == {"data.csv": "1,2,3", "essay.md": "my essay"}
    assert zfs_value(dataset, "refquota") == str(6 * 1024 * 1024)  # the quota it had
    assert kept[0] in snapshots(zfs_pool)  # still there, for another restore
    assert not [s for s in snapshots(zfs_pool) if "restoring" in s]


def test_delete_home_with_yes_takes_the_hash_of_an_email(callysto, env, zfs_pool):
    salt = environments.read_salt(env.salt_file)
    user_hash = userhash.targeted_id(salt, env.idp_entity_id, env.sp_entity_id, "ada@school.ca")
    make_home(zfs_pool, user_hash)
    done = callysto("user", "delete-home", "--env", "local", "--yes", user_hash, "ada@school.ca")
    assert done.returncode == 0, done.stderr
    assert not exists(f"{zfs_pool.name}/home/{user_hash}")


def test_restore_from_a_backup_snapshot_touches_only_that_user(callysto, env, zfs_pool):
    a_path, b_path = make_home(zfs_pool, A), make_home(zfs_pool, B)
    (a_path / "keep.txt").write_text("v1")
    (b_path / "b.txt").write_text("b1")
    # What the backup command takes: one recursive snapshot of every home.
    subprocess.run(["zfs", "snapshot", "-r", f"{zfs_pool.name}/home@callysto-20260101T000000Z"],
                   check=True)  # fmt: skip
    (a_path / "keep.txt").unlink()
    (a_path / "new.txt").write_text("after the backup")
    (b_path / "b2.txt").write_text("b2")

    done = callysto("user", "restore-home", "--env", "local", "--from",
                    "callysto-20260101T000000Z", A)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert files(a_path) == {"keep.txt": "v1"}
    assert files(b_path) == {"b.txt": "b1", "b2.txt": "b2"}
    # What A held before the restore is itself kept.
    prerestore = [
        s
        for s in snapshots(zfs_pool)
        if s.startswith(f"{zfs_pool.name}/home/{A}@callysto-prerestore-")
    ]
    assert len(prerestore) == 1 and prerestore[0] in done.stdout


def test_restore_refuses_another_users_snapshot(callysto, env, zfs_pool, one_line_error):
    make_home(zfs_pool, A)
    make_home(zfs_pool, B)
    subprocess.run(["zfs", "snapshot", f"{zfs_pool.name}/home/{B}@callysto-1"], check=True)
    before = snapshots(zfs_pool)
    done = callysto("user", "restore-home", "--env", "local", "--from",
                    f"{zfs_pool.name}/home/{B}@callysto-1", A)  # fmt: skip
    assert done.returncode == 2 and one_line_error(done) and "not of" in done.stderr
    assert snapshots(zfs_pool) == before


@pytest.mark.parametrize("spec", ["callysto-404", "$(reboot)", "a@b@c", "-rf"])
def test_restore_refuses_an_unknown_or_malformed_snapshot(
    callysto, env, zfs_pool, spec, one_line_error
):
    make_home(zfs_pool, A)
    subprocess.run(["zfs", "snapshot", f"{zfs_pool.name}/home/{A}@callysto-1"], check=True)
    before = snapshots(zfs_pool)
    done = callysto("user", "restore-home", "--env", "local", f"--from={spec}", A)
    assert done.returncode == 2 and one_line_error(done)
    assert snapshots(zfs_pool) == before


def test_restore_into_a_banned_home_asks_to_unban_first(callysto, env, zfs_pool):
    make_home(zfs_pool, A)
    subprocess.run(["zfs", "snapshot", f"{zfs_pool.name}/home/{A}@callysto-1"], check=True)
    assert callysto("user", "ban", "--env", "local", A).returncode == 0
    done = callysto("user", "restore-home", "--env", "local", "--from", "callysto-1", A)
    assert done.returncode == 2 and "unban" in done.stderr


def test_findhash_names_the_hub_that_holds_the_home(callysto, env, zfs_pool):
    salt = environments.read_salt(env.salt_file)
    user_hash = userhash.targeted_id(salt, env.idp_entity_id, env.sp_entity_id, "ada@school.ca")
    make_home(zfs_pool, user_hash)
    done = callysto("user", "findhash", "--env", "local", "Ada@School.ca")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        user_hash,
        f"hub: localhost holds {zfs_pool.name}/home/{user_hash}",
    ]


def test_a_home_deleted_twice_keeps_both_and_an_ambiguous_name_is_refused(callysto, env, zfs_pool):
    dataset = f"{zfs_pool.name}/home/{A}"
    kept = {}  # former home -> the version it held
    for version in ("first", "second"):
        path = make_home(zfs_pool, A)
        (path / "v.txt").write_text(version)
        subprocess.run(["zfs", "snapshot", f"{dataset}@callysto-1"], check=True)
        done = callysto("user", "delete-home", "--env", "local", "--yes", A, A)
        assert done.returncode == 0, done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("kept: "))
        kept[line.removeprefix("kept: ").split("@")[0]] = version
    assert len(kept) == 2
    ambiguous = callysto("user", "restore-home", "--env", "local", "--from", "callysto-1", A)
    assert ambiguous.returncode == 2 and "ambiguous" in ambiguous.stderr and not exists(dataset)
    for former, version in kept.items():
        done = callysto("user", "restore-home", "--env", "local", "--from",
                        f"{former}@callysto-1", A)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert files(home_dir(zfs_pool, A)) == {"v.txt": version}
