"""callysto quota on a real ZFS pool (zfs-fuse): what it reads and writes is checked with zfs."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from callysto_infra import environments, userhash
from tests.conftest import destroy_pool, make_pool
from tests.homes import A, B, C, exists, local_env_on, make_home, write_bytes, zfs_value


@pytest.fixture
def env(envs_dir, zfs_pool):
    return local_env_on(zfs_pool.name)


def wait_used(dataset: str, at_least: int) -> int:
    """ZFS accounts writes when a transaction group commits; wait for it rather than guess."""
    os.sync()
    for _ in range(300):
        used = int(zfs_value(dataset, "used"))
        if used >= at_least:
            return used
        time.sleep(0.1)
    raise AssertionError(f"{dataset} never reached {at_least} bytes used")


def pool_state(pool) -> str:
    """Everything a quota command could change, as zfs reports it."""
    return subprocess.run(
        ["zfs", "get", "-H", "-p", "-r", "-o", "name,property,value",
         "refquota,readonly,mounted", pool.name],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_quota_get_reports_used_quota_and_available(callysto, env, zfs_pool):
    make_home(zfs_pool, A, "3M")
    done = callysto("quota", "get", "--env", "local", "--json", A)
    assert done.returncode == 0, done.stderr
    home = json.loads(done.stdout)
    dataset = f"{zfs_pool.name}/home/{A}"
    assert home["name"] == dataset and home["user"] == A and home["hub"] == "localhost"
    assert home["refquota"] == 3 * 1024 * 1024
    assert home["used"] == int(zfs_value(dataset, "used"))
    assert home["available"] == int(zfs_value(dataset, "available"))
    human = callysto("quota", "get", "--env", "local", A)
    assert human.returncode == 0 and "3M" in human.stdout and dataset in human.stdout


def test_quota_get_hashes_an_email_address_first(callysto, env, zfs_pool):
    salt = environments.read_salt(env.salt_file)
    user_hash = userhash.targeted_id(salt, env.idp_entity_id, env.sp_entity_id, "ada@school.ca")
    make_home(zfs_pool, user_hash, "2M")
    done = callysto("quota", "get", "--env", "local", "--json", "Ada@School.ca")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["user"] == user_hash


def test_quota_set_writes_the_refquota(callysto, env, zfs_pool):
    make_home(zfs_pool, A, "1M")
    done = callysto("quota", "set", "--env", "local", A, "5m")
    assert done.returncode == 0, done.stderr
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == str(5 * 1024 * 1024)
    assert "5M" in done.stdout


def test_a_write_beyond_the_quota_fails(callysto, env, zfs_pool):
    path = make_home(zfs_pool, A)
    assert callysto("quota", "set", "--env", "local", A, "1M").returncode == 0
    assert write_bytes(path / "small", 200 * 1024)
    assert not write_bytes(path / "big", 3 * 1024 * 1024)


def test_quota_below_use_is_refused_unless_forced(callysto, env, zfs_pool, one_line_error):
    path = make_home(zfs_pool, A)
    dataset = f"{zfs_pool.name}/home/{A}"
    assert write_bytes(path / "work.ipynb", 2 * 1024 * 1024)
    wait_used(dataset, 2 * 1024 * 1024)
    refused = callysto("quota", "set", "--env", "local", A, "1M")
    assert refused.returncode == 2 and one_line_error(refused)
    assert "already uses" in refused.stderr and "--force" in refused.stderr
    assert zfs_value(dataset, "refquota") == "0"
    forced = callysto("quota", "set", "--env", "local", "--force", A, "1M")
    assert forced.returncode == 0, forced.stderr
    # ZFS allows no quota below the files' size: forced, the quota is exactly that size.
    assert zfs_value(dataset, "refquota") == zfs_value(dataset, "referenced")
    assert "smallest ZFS allows" in forced.stderr
    assert not write_bytes(path / "more", 1024 * 1024)


def test_quota_below_what_snapshots_hold_is_allowed(callysto, env, zfs_pool):
    # refquota limits the files, not the snapshots: a backup snapshot must not block a quota.
    path = make_home(zfs_pool, A)
    dataset = f"{zfs_pool.name}/home/{A}"
    assert write_bytes(path / "old", 2 * 1024 * 1024)
    wait_used(dataset, 2 * 1024 * 1024)
    subprocess.run(["zfs", "snapshot", f"{dataset}@callysto-1"], check=True)
    (path / "old").unlink()
    os.sync()
    for _ in range(300):
        if int(zfs_value(dataset, "referenced")) < 1024 * 1024:
            break
        time.sleep(0.1)
    done = callysto("quota", "set", "--env", "local", A, "1M")
    assert done.returncode == 0, done.stderr
    assert zfs_value(dataset, "refquota") == str(1024 * 1024)


def test_quota_none_lifts_the_limit(callysto, env, zfs_pool):
    make_home(zfs_pool, A, "1M")
    assert callysto("quota", "set", "--env", "local", A, "none").returncode == 0
    assert zfs_value(f"{zfs_pool.name}/home/{A}", "refquota") == "0"


def test_quota_list_shows_every_home_largest_first(callysto, env, zfs_pool):
    for user_hash, size in ((A, 100), (B, 900), (C, 400)):
        path = make_home(zfs_pool, user_hash, "8M")
        assert write_bytes(path / "data", size * 1024)
        wait_used(f"{zfs_pool.name}/home/{user_hash}", size * 1024)
    subprocess.run(["zfs", "create", f"{zfs_pool.name}/home/templates"], check=True)
    subprocess.run(["zfs", "snapshot", "-r", f"{zfs_pool.name}/home@callysto-1"], check=True)
    done = callysto("quota", "list", "--env", "local", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [h["user"] for h in listed] == [B, C, A]  # not templates, not snapshots
    for home in listed:
        assert home["used"] == int(zfs_value(home["name"], "used"))
        assert home["refquota"] == 8 * 1024 * 1024
    table = callysto("quota", "list", "--env", "local")
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["USER", B, C, A]


def test_quota_get_of_a_user_without_a_home_fails_naming_the_dataset(
    callysto, env, zfs_pool, one_line_error
):
    done = callysto("quota", "get", "--env", "local", A)
    assert done.returncode == 1 and one_line_error(done)
    assert f"{zfs_pool.name}/home/{A}" in done.stderr


# --- bad input never reaches zfs: exit 2, one line, the pool unchanged --------------------------


@pytest.fixture(scope="module")
def shared_pool(zfs_daemon, tmp_path_factory):
    """One pool for the many refusals below: none of them may change it, which each one checks."""
    pool = make_pool(tmp_path_factory.mktemp("refusals"))
    subprocess.run(["zfs", "create", f"{pool.name}/home"], check=True)
    make_home(pool, A, "1M")
    yield pool
    destroy_pool(pool)


@pytest.fixture
def refusing_env(envs_dir, shared_pool):
    return local_env_on(shared_pool.name)


BAD_USERS = ["bob", "a" * 39, "A" * 40, "$(reboot)", "x;reboot", "a@b", "-rf"]
BAD_SIZES = ["-1G", "10 G", "1e9", "$(reboot)", "1.5G", "G", "10GB", "", "1G;reboot"]


@pytest.mark.parametrize("user", BAD_USERS)
@pytest.mark.parametrize("command", ["get", "set"])
def test_a_bad_user_is_refused_before_zfs(
    callysto, refusing_env, shared_pool, user, command, one_line_error
):
    before = pool_state(shared_pool)
    args = ["quota", command, "--env", "local", "--", user] + (["2G"] if command == "set" else [])
    done = callysto(*args)
    assert done.returncode == 2 and one_line_error(done) and done.stdout == ""
    assert "invalid user" in done.stderr
    assert pool_state(shared_pool) == before


@pytest.mark.parametrize("size", BAD_SIZES)
def test_a_bad_size_is_refused_before_zfs(
    callysto, refusing_env, shared_pool, size, one_line_error
):
    before = pool_state(shared_pool)
    done = callysto("quota", "set", "--env", "local", "--", A, size)
    assert done.returncode == 2 and one_line_error(done) and done.stdout == ""
    assert "invalid size" in done.stderr
    assert pool_state(shared_pool) == before


@pytest.mark.parametrize("host", ["elsewhere.callysto.ca", "bad host!", "$(reboot)"])
@pytest.mark.parametrize("command", ["get", "set", "list"])
def test_a_host_not_in_the_environment_is_refused(
    callysto, refusing_env, shared_pool, host, command, one_line_error
):
    before = pool_state(shared_pool)
    tail = {"get": [A], "set": [A, "2G"], "list": []}[command]
    done = callysto("quota", command, "--env", "local", "--host", host, *tail)
    assert done.returncode == 2 and one_line_error(done) and done.stdout == ""
    assert "host" in done.stderr
    assert pool_state(shared_pool) == before
    assert exists(f"{shared_pool.name}/home/{A}")
