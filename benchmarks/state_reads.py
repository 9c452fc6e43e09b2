"""The commands that only read a Terraform state (`callysto ansible hosts`, `get-ipv4`,
`get-ssh-user`, `ssh shell --print`) on a 50-hub state, against `ansible all --list-hosts` on the
same inventory (the project's inventory plugin over the same state), in one run, as a ratio
(target: ours at least 5x faster)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
HUBS = 50
BIN = Path(sys.executable).parent
CALLYSTO = str(BIN / "callysto")
PROJECT = Path(__file__).resolve().parent.parent
ENV = "bench"


def state(hubs: int) -> dict:
    rows = {}
    for number in range(1, hubs + 1):
        name = f"hub-{number:02d}.callysto.farm"
        rows[name] = {
            "name": name,
            "address": f"203.0.113.{number}",
            "ssh_user": "ptty2u",
            "groups": ["hub", "dev", ENV],
            "zfs_disk_1": f"/dev/disk/by-id/virtio-{number:02d}-1",
            "zfs_disk_2": f"/dev/disk/by-id/virtio-{number:02d}-2",
        }
    return {"version": 4, "serial": 1, "resources": [], "outputs": {"hosts": {"value": rows}}}


def median_seconds(argv: list[str], env: dict[str, str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env, cwd=PROJECT)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    sys.path.insert(0, str(PROJECT))
    from callysto_infra import ansible, inventory

    with tempfile.TemporaryDirectory(prefix="callysto-bench-") as tmp:
        envs = Path(tmp) / "envs"
        env = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs), "CALLYSTO_ENV": ENV}
        subprocess.run(
            [CALLYSTO, "env", "new", "dev", ENV], check=True, env=env, capture_output=True
        )
        (envs / ENV / "terraform.tfstate").write_text(json.dumps(state(HUBS)))
        (envs / ENV / inventory.SOURCE_NAME).write_text(inventory.SOURCE_TEXT)
        ansible_env = {**env, **ansible.environment()}
        theirs_argv = [
            shutil.which("ansible", path=str(BIN)) or "ansible",
            "all", "--list-hosts", "-i", str(envs / ENV / inventory.SOURCE_NAME),
        ]  # fmt: skip
        listed = subprocess.run(theirs_argv, capture_output=True, text=True, env=ansible_env)
        assert f"hosts ({HUBS})" in listed.stdout, listed.stdout + listed.stderr
        ours = {
            "ansible hosts": [CALLYSTO, "ansible", "hosts"],
            "get-ipv4": [CALLYSTO, "ansible", "get-ipv4", "hub-50.callysto.farm"],
            "get-ssh-user": [CALLYSTO, "ansible", "get-ssh-user", "hub-50.callysto.farm"],
            "ssh shell --print": [CALLYSTO, "ssh", "shell", "--print", "hub-50.callysto.farm"],
        }
        hosts = subprocess.run(ours["ansible hosts"], capture_output=True, text=True, env=env)
        assert len(hosts.stdout.split()) == HUBS, hosts.stdout + hosts.stderr
        theirs = median_seconds(theirs_argv, ansible_env)
        print(f"ansible all --list-hosts ({HUBS} hosts)  {theirs * 1000:7.1f} ms")
        worst = float("inf")
        for label, argv in ours.items():
            seconds = median_seconds(argv, env)
            ratio = theirs / seconds
            worst = min(worst, ratio)
            print(f"callysto {label:<24}  {seconds * 1000:7.1f} ms  {ratio:.1f}x faster")
    print(f"slowest of ours: {worst:.1f}x faster (target >= 5x)")
    return 0 if worst >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
