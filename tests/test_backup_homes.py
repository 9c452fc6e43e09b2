"""`callysto backup homes` on real ZFS (zfs-fuse): snapshots of a local hub's homes sent to a
second pool or to stream files, pruned, and a deleted student's file restored from the backup
after the hub's own snapshots are gone."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from callysto_infra import environments
from tests.conftest import destroy_pool, make_pool

# Two students, known to the hub only by their 40-hex hashes.
ALICE = "522b276a356bdf39013dfabea2cd43e141ecc9e8"
BOB = "48181acd22b3edaebc8a447868a7df7ce629920a"


def zfs(*args: str) -> str:
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=True).stdout


def names(kind: str, root: str) -> list[str]:
    out = subprocess.run(
        ["zfs", "list", "-H", "-o", "name", "-t", kind, "-r", root],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return sorted(out.split())


def our_snapshots(dataset: str) -> list[str]:
    return [n.split("@")[1] for n in names("snapshot", dataset) if n.startswith(f"{dataset}@")]


def pools() -> list[str]:
    out = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True)
    return out.stdout.split()


def destroy_soon(pool) -> None:
    """zfs-fuse reports a pool busy for a moment after its files were written or received."""
    for attempt in range(30):
        destroy_pool(pool)
        if pool.name not in pools():
            return
        time.sleep(0.2 * min(attempt + 1, 5))


@pytest.fixture
def backup_pool(zfs_daemon, tmp_path):
    """A second pool: the backup host's, received into on this machine."""
    folder = tmp_path / "backup-host"
    folder.mkdir()
    pool = make_pool(folder)
    yield pool
    destroy_soon(pool)


@pytest.fixture
def hub(envs_dir, zfs_pool):
    """A local environment whose hub is this machine with zfs_pool as its pool, and two students."""
    env = environments.create("local")
    config = yaml.safe_load((env.path / "env.yaml").read_text())
    config["hub"]["pool"] = zfs_pool.name
    config["homes_backup"] = {"keep": 2}
    (env.path / "env.yaml").write_text(yaml.safe_dump(config))
    home = zfs_pool.mountpoint / "home"
    for user in (ALICE, BOB):
        zfs("create", "-o", "refquota=20M", f"{zfs_pool.name}/home/{user}")
        (home / user / "notebook.ipynb").write_bytes(os.urandom(200_000))
        (home / user / "data").mkdir()
        (home / user / "data" / "results.csv").write_text("x,y\n1,2\n")
    yield {"env": env, "pool": zfs_pool, "home": home, "dataset": f"{zfs_pool.name}/home"}
    destroy_soon(zfs_pool)  # before the zfs_pool fixture's single attempt


def run_backup(callysto, *args: str) -> str:
    result = callysto("backup", "homes", "--env", "local", *args)
    assert result.returncode == 0, result.stderr
    host, snapshot = result.stdout.strip().split("\t")
    assert host == "localhost"
    return snapshot.split("@")[1]


def forget_hub_snapshots(dataset: str) -> None:
    for snap in our_snapshots(dataset):
        zfs("destroy", "-r", f"{dataset}@{snap}")


def test_deleted_file_comes_back_from_the_replica_pool(callysto, hub, backup_pool):
    target = f"{backup_pool.name}/homes"
    lost = hub["home"] / ALICE / "notebook.ipynb"
    original = lost.read_bytes()

    first = run_backup(callysto, "--to-dataset", target)
    replica = f"{target}/localhost"
    assert f"{replica}/{ALICE}@{first}" in names("snapshot", replica)
    assert (
        backup_pool.mountpoint / "homes" / "localhost" / ALICE / "notebook.ipynb"
    ).read_bytes() == original

    newer = hub["home"] / ALICE / "after-first-backup.txt"
    newer.write_text("work done later\n")
    result = callysto("backup", "homes", "--env", "local", "--to-dataset", target)
    assert result.returncode == 0, result.stderr
    assert f"incremental from {first}" in result.stderr
    second = result.stdout.strip().split("@")[1]
    assert our_snapshots(replica) == [first, second]

    lost.unlink()
    forget_hub_snapshots(hub["dataset"])  # the hub's own snapshots are gone too
    result = callysto(
        "backup",
        "homes",
        "restore",
        "--env",
        "local",
        "--to-dataset",
        target,
        "--from",
        first,
        ALICE,
    )
    assert result.returncode == 0, result.stderr
    assert lost.read_bytes() == original
    assert newer.read_text() == "work done later\n"  # newer work is kept
    assert names("filesystem", f"{hub['pool'].name}/restored") == [f"{hub['pool'].name}/restored"]
    assert (hub["home"] / BOB / "notebook.ipynb").exists()


def test_deleted_file_comes_back_from_stream_files(callysto, hub, tmp_path):
    folder = tmp_path / "streams"
    folder.mkdir()
    lost = hub["home"] / BOB / "data" / "results.csv"
    original = lost.read_bytes()
    first = run_backup(callysto, "--to", str(folder))
    (hub["home"] / BOB / "later.txt").write_text("later\n")
    second = run_backup(callysto, "--to", str(folder))
    streams = sorted(p.name for p in (folder / "localhost").iterdir())
    assert streams == [f"{first}.full.zfs", f"{second}.from-{first}.zfs"]

    lost.write_text("overwritten by mistake\n")
    (hub["home"] / BOB / "notebook.ipynb").unlink()
    forget_hub_snapshots(hub["dataset"])
    result = callysto(
        "backup",
        "homes",
        "restore",
        "--env",
        "local",
        "--to",
        str(folder),
        "--from",
        second,
        BOB,
        "--force",
    )
    assert result.returncode == 0, result.stderr
    assert lost.read_bytes() == original
    assert (hub["home"] / BOB / "notebook.ipynb").is_file()


def test_restore_without_force_keeps_the_students_current_files(callysto, hub, tmp_path):
    folder = tmp_path / "streams"
    folder.mkdir()
    snap = run_backup(callysto, "--to", str(folder))
    current = hub["home"] / ALICE / "data" / "results.csv"
    current.write_text("the student's newer version\n")
    (hub["home"] / ALICE / "notebook.ipynb").unlink()
    result = callysto(
        "backup", "homes", "restore", "--env", "local", "--to", str(folder), "--from", snap, ALICE
    )
    assert result.returncode == 0, result.stderr
    assert current.read_text() == "the student's newer version\n"
    assert (hub["home"] / ALICE / "notebook.ipynb").is_file()


def test_retention_prunes_old_snapshots_and_status_shows_newest_and_oldest(callysto, hub, tmp_path):
    folder = tmp_path / "streams"
    folder.mkdir()
    taken = [run_backup(callysto, "--to", str(folder)) for _ in range(3)]
    assert our_snapshots(hub["dataset"]) == taken[1:]  # keep: 2 in env.yaml
    for user in (ALICE, BOB):
        assert our_snapshots(f"{hub['dataset']}/{user}") == taken[1:]

    result = callysto("backup", "homes", "status", "--env", "local", "--to", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["hub"], row["count"], row["newest"], row["oldest"]) == (
        "localhost",
        2,
        taken[2],
        taken[1],
    )
    assert row["at_destination"] == {"count": 3, "newest": taken[2], "oldest": taken[0]}
    text = callysto("backup", "homes", "status", "--env", "local", "--to", str(folder))
    assert f"newest {taken[2]}, oldest {taken[1]}" in text.stdout


def test_restoring_a_snapshot_the_backup_does_not_hold_changes_nothing(
    callysto, hub, tmp_path, one_line_error
):
    folder = tmp_path / "streams"
    folder.mkdir()
    snap = run_backup(callysto, "--to", str(folder))
    before = names("all", hub["pool"].name), sorted((folder / "localhost").iterdir())
    result = callysto(
        "backup",
        "homes",
        "restore",
        "--env",
        "local",
        "--to",
        str(folder),
        "--from",
        "callysto-20200101T000000Z",
        ALICE,
    )
    line = one_line_error(result, code=2)
    assert "callysto-20200101T000000Z is not in the backup" in line and snap in line
    assert (names("all", hub["pool"].name), sorted((folder / "localhost").iterdir())) == before

    bad = callysto(
        "backup",
        "homes",
        "restore",
        "--env",
        "local",
        "--to",
        str(folder),
        "--from",
        "yesterday",
        ALICE,
    )
    assert "invalid snapshot name" in one_line_error(bad, code=2)


def test_a_failed_send_leaves_the_hub_as_it_was(callysto, hub, one_line_error):
    before = names("all", hub["pool"].name)
    result = callysto("backup", "homes", "--env", "local", "--to-dataset", "cynosuchpool/homes")
    one_line_error(result, code=1)
    assert names("all", hub["pool"].name) == before


def test_homes_backup_without_a_destination_says_how_to_set_one(callysto, hub, one_line_error):
    result = callysto("backup", "homes", "--env", "local")
    assert "homes_backup.directory" in one_line_error(result, code=2)
    assert our_snapshots(hub["dataset"]) == []


def test_homes_backup_destination_comes_from_env_yaml(callysto, hub, backup_pool):
    path = hub["env"].path / "env.yaml"
    config = yaml.safe_load(path.read_text())
    config["homes_backup"]["dataset"] = f"{backup_pool.name}/homes"
    path.write_text(yaml.safe_dump(config))
    snap = run_backup(callysto)
    assert our_snapshots(f"{backup_pool.name}/homes/localhost") == [snap]


def test_stream_folder_prunes_whole_chains_and_keeps_the_newest_restorable(hub, tmp_path):
    """With keep_at_destination N, a new full stream starts every N snapshots and older chains go."""
    from callysto_infra import homes_backup, hubs

    env = environments.load("local")
    (tmp_path / "streams").mkdir()
    dest = homes_backup.DirectoryDestination(tmp_path / "streams", keep=2)
    (local,) = hubs.hubs(env)
    taken = [homes_backup.backup_hub(env, local, dest, keep=5).snapshot for _ in range(5)]
    files = sorted(p.name for p in (tmp_path / "streams" / "localhost").iterdir())
    assert files == [
        f"{taken[2]}.full.zfs",
        f"{taken[3]}.from-{taken[2]}.zfs",
        f"{taken[4]}.full.zfs",
    ]
    assert dest.snapshots(local) == taken[2:]


def test_homes_restore_refuses_a_user_that_is_not_a_hash(callysto, hub, tmp_path, one_line_error):
    result = callysto(
        "backup",
        "homes",
        "restore",
        "--env",
        "local",
        "--to",
        str(tmp_path),
        "--from",
        "callysto-20200101T000000Z",
        "x;reboot",
    )
    assert "invalid user hash" in one_line_error(result, code=2)


def test_restore_of_a_whole_snapshot_leaves_it_mounted_for_the_operator(callysto, hub, tmp_path):
    folder = tmp_path / "streams"
    folder.mkdir()
    snap = run_backup(callysto, "--to", str(folder))
    result = callysto(
        "backup", "homes", "restore", "--env", "local", "--to", str(folder), "--from", snap
    )
    assert result.returncode == 0, result.stderr
    _host, dataset, mounted = result.stdout.strip().split("\t")
    assert dataset == f"{hub['pool'].name}/restored/{snap}"
    assert (Path(mounted) / ALICE / "notebook.ipynb").read_bytes() == (
        hub["home"] / ALICE / "notebook.ipynb"
    ).read_bytes()
    assert "zfs destroy -r" in result.stderr


def test_a_deleted_home_is_recreated_with_the_environments_quota(callysto, hub, tmp_path):
    folder = tmp_path / "streams"
    folder.mkdir()
    original = (hub["home"] / ALICE / "notebook.ipynb").read_bytes()
    snap = run_backup(callysto, "--to", str(folder))
    from callysto_infra import hubs
    from callysto_infra import zfs as zfs_adapter

    # The whole home goes, snapshots and all (as `user delete-home` would leave it).
    zfs_adapter.destroy(hubs.Hub("localhost", None), f"{hub['dataset']}/{ALICE}", recursive=True)
    assert not (hub["home"] / ALICE / "notebook.ipynb").exists()
    result = callysto(
        "backup", "homes", "restore", "--env", "local", "--to", str(folder), "--from", snap, ALICE
    )
    assert result.returncode == 0, result.stderr
    assert (hub["home"] / ALICE / "notebook.ipynb").read_bytes() == original
    refquota = zfs("get", "-H", "-p", "-o", "value", "refquota", f"{hub['dataset']}/{ALICE}")
    assert int(refquota) == 1 << 30  # env.yaml's hub.refquota: 1G


def test_status_names_a_hub_that_cannot_be_reached(callysto, envs_dir, one_line_error):
    env = environments.create("dev", "brave-otter")
    row = {"name": "hub-01", "address": "127.0.0.1", "ssh_user": "root", "groups": ["hub"]}
    row["ssh_port"] = 18549  # nothing listens there
    env.state_file.write_text(
        json.dumps({"version": 4, "outputs": {"hosts": {"value": {"hub-01": row}}}})
    )
    result = callysto("backup", "homes", "status", "--env", "brave-otter")
    assert result.returncode == 1
    assert "hub-01: hub 'hub-01' (127.0.0.1) is unreachable" in result.stdout
    assert "could not be asked" in one_line_error(result, code=1)


def test_options_given_to_homes_count_for_its_subcommands(callysto, envs_dir, one_line_error):
    environments.create("dev", "brave-otter")
    status = callysto("backup", "homes", "--env", "brave-otter", "status")
    assert "has no Terraform state yet" in one_line_error(status, code=2)  # the env was found
    restore = callysto(
        "backup", "homes", "--env", "nope", "restore", "--from", "callysto-20200101T000000Z"
    )
    assert "unknown environment 'nope'" in one_line_error(restore, code=2)
