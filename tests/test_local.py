"""`callysto local`: what it refuses before anything runs, and that destroy removes only what is
the local environment's own (a real zfs-fuse pool)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import yaml

from callysto_infra import environments
from tests.conftest import PROJECT, make_pool
from tests.pools import destroy_pool


def _zpool_exists(name: str) -> bool:
    return subprocess.run(["zpool", "list", "-H", name], capture_output=True).returncode == 0


def local_env_on(pool_name: str, data_dir: str, name: str = "site"):
    env = environments.create("local", name)
    path = env.path / "env.yaml"
    config = yaml.safe_load(path.read_text())
    config["hub"]["pool"] = pool_name
    config["local"]["data_dir"] = data_dir
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return environments.load(name)


def test_up_refuses_a_cloud_environment(envs_dir, callysto):
    environments.create("dev", "brave-otter")
    result = callysto("local", "up", "--env", "brave-otter", "--no-install")
    assert result.returncode == 2
    assert "is a dev environment, not a local one" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_stop_and_destroy_need_an_existing_local_environment(envs_dir, callysto):
    for command in ("stop", "destroy"):
        result = callysto("local", command, "--env", "site")
        assert result.returncode == 2
        assert "there is no local environment 'site': 'make local' creates it" in result.stderr
    assert not (envs_dir / "site").exists()


def test_stop_without_running_services_changes_nothing(envs_dir, callysto):
    environments.create("local", "site")
    result = callysto("local", "stop", "--env", "site")
    assert result.returncode == 0, result.stderr
    assert "is stopped" in result.stdout


def test_destroy_asks_and_a_wrong_answer_keeps_everything(envs_dir, callysto, zfs_daemon, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pool = make_pool(data)
    try:
        local_env_on(pool.name, str(data))
        result = callysto("local", "destroy", "--env", "site", input="tank\n")
        assert result.returncode == 1
        assert "aborted: nothing was changed" in result.stderr
        assert _zpool_exists(pool.name)
        assert all(v.exists() for v in pool.vdevs)
    finally:
        destroy_pool(pool.name)


def test_destroy_removes_the_environments_own_pool_and_files(
    envs_dir, callysto, zfs_daemon, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    pool = make_pool(data)
    try:
        local_env_on(pool.name, str(data))
        result = callysto("local", "destroy", "--env", "site", input=f"{pool.name}\n")
        assert result.returncode == 0, result.stderr
        assert not _zpool_exists(pool.name)
        assert not data.exists()
        assert (envs_dir / "site" / "env.yaml").exists()
        assert (envs_dir / "site" / "secrets" / "saml-salt").exists()
    finally:
        destroy_pool(pool.name)


def test_destroy_leaves_a_pool_that_is_not_made_of_its_files(
    envs_dir, callysto, zfs_pool, tmp_path
):
    elsewhere = tmp_path / "other-data"
    elsewhere.mkdir()
    local_env_on(zfs_pool.name, str(elsewhere))
    result = callysto("local", "destroy", "--env", "site", "--yes")
    assert result.returncode == 1
    assert f"pool '{zfs_pool.name}' is not made of the files in" in result.stderr
    assert "it was left alone" in result.stderr
    assert _zpool_exists(zfs_pool.name)
    assert elsewhere.exists()


def test_up_refuses_a_data_directory_the_sign_in_proxy_cannot_reach(envs_dir, callysto, tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    environments.create("local", "site")
    local_env_path = envs_dir / "site" / "env.yaml"
    config = yaml.safe_load(local_env_path.read_text())
    config["local"]["data_dir"] = str(closed / "data")
    local_env_path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = callysto("local", "up", "--env", "site", "--no-install")
    assert result.returncode == 2
    assert f"{closed} is closed to other users" in result.stderr
    assert "local.data_dir" in result.stderr
    assert not (closed / "data").exists()


def test_a_clone_others_cannot_reach_gets_its_data_directory_outside(tmp_path, monkeypatch):
    # A newcomer's clone under /root (mode 0700): the first 'make local' must still work there.
    closed = tmp_path / "home-of-root"
    closed.mkdir(mode=0o700)
    monkeypatch.setenv("CALLYSTO_ENVS_DIR", str(closed / "clone" / "envs"))
    env = environments.create("local", "site")
    assert env.data_dir == environments.SHARED_DATA_ROOT / "site"
    assert environments.closed_to_others(env.data_dir.parent) is None
    assert not env.data_dir.exists()  # made by the playbook, not by creating the environment


def test_a_reachable_clone_keeps_its_data_beside_env_yaml(monkeypatch):
    # pytest's own temporary folders are closed to others, so this clone lives beside them.
    with tempfile.TemporaryDirectory(prefix="callysto-clone-") as clone:
        Path(clone).chmod(0o755)
        monkeypatch.setenv("CALLYSTO_ENVS_DIR", f"{clone}/envs")
        env = environments.create("local", "site")
        assert env.config.local.data_dir == "data"
        assert env.data_dir == Path(clone) / "envs" / "site" / "data"


def test_destroy_of_a_fleet_removes_every_pool_of_its_data_even_of_a_hub_no_longer_listed(
    envs_dir, callysto, zfs_daemon, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    base = f"cy{uuid.uuid4().hex[:6]}"
    made = [make_pool(data, f"{base}-{hub}") for hub in ("hub-a", "hub-b", "gone")]
    try:
        env = local_env_on(base, str(data))
        path = env.path / "env.yaml"
        config = yaml.safe_load(path.read_text())
        config["hubs"] = [{"name": "hub-a"}, {"name": "hub-b"}]  # 'gone' was taken out
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        asked = callysto("local", "destroy", "--env", "site", input="no\n")
        assert asked.returncode == 1 and all(_zpool_exists(p.name) for p in made)
        assert (
            f"{base}-gone" in asked.stderr and "Type the environment's name (site)" in asked.stderr
        )
        result = callysto("local", "destroy", "--env", "site", input="site\n")
        assert result.returncode == 0, result.stderr
        assert not any(_zpool_exists(p.name) for p in made)
        assert not data.exists()
    finally:
        for pool in made:
            destroy_pool(pool.name)


def test_make_local_hubs_refuses_a_bad_count_or_an_environment_of_another_size(
    envs_dir, callysto, one_line_error
):
    """HUBS reaches `local up --hubs` as typed; a bad one, or one that does not match the
    environment already there, is refused before anything is installed or created."""

    def make(*variables: str):
        return subprocess.run(
            ["make", "--no-print-directory", "local", "ENV=site", *variables],
            capture_output=True, text=True, cwd=PROJECT, check=False, timeout=120,
            env={**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)},
        )  # fmt: skip

    for bad in ("0", "3\n", "3_0", "$(shell touch x)"):
        refused = make(f"HUBS={bad}")
        assert refused.returncode == 2 and "--hubs" in refused.stderr, refused.stderr
        assert not (envs_dir / "site").exists() and not (PROJECT / "x").exists()
    environments.create("local", "site")
    before = (envs_dir / "site" / "env.yaml").read_text()
    one_line_error(make("HUBS=3"), "has 1 hub(s), not 3", "hubs: 3", code=2, alone=False)
    assert (envs_dir / "site" / "env.yaml").read_text() == before


def test_destroy_leaves_zfs_fuse_to_pools_of_others_and_keeps_its_pid_file_outside_the_data(
    envs_dir, callysto, zfs_daemon, tmp_path
):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    ours, theirs = make_pool(data), make_pool(elsewhere)
    # A pid file as the playbook leaves it when it started zfs-fuse for this environment; it
    # names a process that is not zfs-fuse, which nothing may signal.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        env = local_env_on(ours.name, str(data))
        (data / "zfs-fuse.pid").write_text(f"{bystander.pid}\n")
        result = callysto("local", "destroy", "--env", "site", input=f"{ours.name}\n")
        assert result.returncode == 0, result.stderr
        assert not _zpool_exists(ours.name) and _zpool_exists(theirs.name)
        assert not data.exists(), "the data directory goes even while zfs-fuse stays"
        kept = env.path / "zfs-fuse.pid"
        assert kept.read_text() == f"{bystander.pid}\n"
        said = [line for line in result.stderr.splitlines() if "leaving zfs-fuse running" in line]
        assert len(said) == 1 and theirs.name in said[0] and ours.name not in said[0]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        destroy_pool(theirs.name)
        if _zpool_exists(ours.name):
            destroy_pool(ours.name)
