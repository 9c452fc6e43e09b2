"""The ZFS adapter on a real pool (zfs-fuse): what it reads is what zfs holds, what it changes is
checked with zfs itself, and zfs's errors come back as Missing, Busy or ZfsError."""

from __future__ import annotations

import subprocess

import pytest

from callysto_infra import hubs, runner, zfs
from callysto_infra.sizes import human_size

HERE = hubs.Hub("localhost", None)


def zfs_value(dataset: str, prop: str) -> str:
    argv = ["zfs", "get", "-H", "-p", "-o", "value", prop, dataset]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_properties_of_many_datasets_come_from_one_get_as_data(zfs_pool):
    home = f"{zfs_pool.name}/home"
    zfs.create(HERE, f"{home}/a", {"refquota": "1M"})
    zfs.create(HERE, f"{home}/b")
    table = zfs.get_properties(HERE, [home], ["refquota", "type"], depth=1)
    assert table[f"{home}/a"] == {"refquota": str(1024 * 1024), "type": "filesystem"}
    assert table[f"{home}/b"]["refquota"] == "0"
    assert set(table) == {home, f"{home}/a", f"{home}/b"}
    assert zfs.get_property(HERE, f"{home}/a", "refquota") == str(1024 * 1024)


def test_a_missing_dataset_is_an_answer_not_a_fault(zfs_pool):
    name = f"{zfs_pool.name}/home/nobody"
    assert not zfs.exists(HERE, name)
    assert zfs.snapshots(HERE, name) == []
    with pytest.raises(zfs.Missing, match=f"'zfs get' failed on hub 'localhost'.*{name}"):
        zfs.get_properties(HERE, [name], ["used"])
    zfs.destroy(HERE, name)  # already gone is done


def test_errors_are_read_in_one_place():
    def result(code: int, stderr: str) -> runner.Result:
        return runner.Result(("zfs", "x"), code, "", stderr)

    argv = ["zfs", "destroy", "tank/home/x"]
    assert zfs.error_of(HERE, argv, result(0, "")) is None
    missing = zfs.error_of(HERE, argv, result(1, "cannot open 'tank/x': dataset does not exist"))
    assert isinstance(missing, zfs.Missing)
    assert isinstance(
        zfs.error_of(HERE, argv, result(1, "cannot open 'x': no such pool")), zfs.Missing
    )
    busy = zfs.error_of(HERE, argv, result(1, "cannot destroy 'tank/x': dataset is busy"))
    assert isinstance(busy, zfs.Busy)
    other = zfs.error_of(HERE, argv, result(2, "permission denied"))
    assert type(other) is zfs.ZfsError
    assert str(other) == "'zfs destroy' failed on hub 'localhost': permission denied"


def test_set_inherit_snapshot_rename_and_destroy_change_the_pool(zfs_pool):
    home = f"{zfs_pool.name}/home"
    zfs.create(HERE, f"{home}/a")
    zfs.set_property(HERE, f"{home}/a", "callysto:test", "yes")
    assert zfs_value(f"{home}/a", "callysto:test") == "yes"
    zfs.inherit(HERE, f"{home}/a", "callysto:test")
    assert zfs_value(f"{home}/a", "callysto:test") == "-"
    zfs.create(HERE, f"{home}/a/child")
    zfs.snapshot(HERE, f"{home}/a@one", recursive=True)
    assert zfs.snapshots(HERE, f"{home}/a") == [f"{home}/a@one"]
    assert zfs.snapshots(HERE, f"{home}/a", recursive=True) == [
        f"{home}/a@one",
        f"{home}/a/child@one",
    ]
    zfs.rename(HERE, f"{home}/a", f"{home}/b")
    assert not zfs.exists(HERE, f"{home}/a") and zfs.exists(HERE, f"{home}/b/child")
    where, mounted = zfs.mount_state(HERE, f"{home}/b")
    assert mounted and where == zfs.mountpoint(HERE, f"{home}/b")
    zfs.destroy(HERE, f"{home}/b", recursive=True)
    assert not zfs.exists(HERE, f"{home}/b")


def test_a_clone_of_a_snapshot_holds_its_files(zfs_pool):
    home = f"{zfs_pool.name}/home"
    zfs.create(HERE, f"{home}/a")
    (zfs_pool.mountpoint / "home" / "a" / "notes.txt").write_text("kept")
    zfs.snapshot(HERE, f"{home}/a@one")
    beside = zfs_pool.mountpoint / "elsewhere"
    zfs.clone(HERE, f"{home}/a@one", f"{zfs_pool.name}/copy", {"mountpoint": str(beside)})
    assert (beside / "notes.txt").read_text() == "kept"
    zfs.destroy(HERE, f"{zfs_pool.name}/copy", force=True)
    assert not zfs.exists(HERE, f"{zfs_pool.name}/copy")


def test_pools_are_read_as_data(zfs_pool):
    assert zfs_pool.name in zfs.pool_names(HERE)
    assert zfs.pool_health(HERE, zfs_pool.name) == "ONLINE"
    assert zfs.pool_health(HERE, "cynosuchpool") is None
    assert zfs.pool_vdevs(HERE, zfs_pool.name) == [str(v) for v in zfs_pool.vdevs]
    assert zfs.pool_vdevs(HERE, "cynosuchpool") is None


def test_send_and_receive_argv():
    assert zfs.send_argv("tank/home", "new", replicate=True, base="old") == [
        "zfs", "send", "-R", "-I", "tank/home@old", "tank/home@new"
    ]  # fmt: skip
    assert zfs.send_argv("tank/home/u", "new") == ["zfs", "send", "tank/home/u@new"]
    flags = zfs.receive_flags(HERE)
    assert zfs.receive_argv(HERE, "backup/h", force=True) == [
        "zfs", "receive", *flags, "-F", "backup/h"
    ]  # fmt: skip
    assert "-u" not in zfs.receive_flags(HERE, mount=True)


def test_one_size_format_the_way_zfs_prints_sizes():
    assert human_size(None) == "none"
    assert human_size(512) == "512B"
    assert human_size(512 * 1024) == "512K"
    assert human_size(1.5 * 1024**3) == "1.5G"
    assert human_size(3 * 1024**2 + 1) == "3M"
