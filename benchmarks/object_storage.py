"""The price of Plan B: a student's server saving and opening a 1 MB notebook and listing a home of
500 files, with its notebooks in Swift (s3contents through the hub's object gateway, Swift's S3
API on 127.0.0.1) against a ZFS home (Jupyter Server's own FileContentsManager on a zfs-fuse
dataset), in one run, as ratios.

Both sides run the contents managers a student's server runs, in a virtual environment of the
students' image's versions (made once under .cache/). Needs root, zfs-fuse and Debian's swift
packages (scripts/bootstrap-system). Makes its own pool, Swift and gateway on 127.0.0.1 (ports
18780-18789) in a temporary folder and removes them afterwards.
Usage: benchmarks/object_storage.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests import pools  # noqa: E402 - zfs-fuse's patient pool removal
from tests import swift as swift_server  # noqa: E402 - the tests' own Swift, from the role

FILES = PROJECT / "playbooks" / "roles" / "jupyterhub" / "files"
VENV = PROJECT / ".cache" / "bench-plan-b"
# The students' image's versions (playbooks/roles/jupyterhub/defaults/main.yml).
PACKAGES = ["jupyterlab==4.6.6", "s3contents==0.11.2"]
SWIFT_PORT, GATEWAY_PORT = 18780, 18786
USER = "f0" * 20
GATEWAY_KEY = "ab" * 32

# Runs in the virtual environment: times each contents manager the same way.
WORKER = r"""
import json, os, statistics, sys, time
import nbformat
from jupyter_server.services.contents.largefilemanager import LargeFileManager
sys.path.insert(0, os.environ["CALLYSTO_FILES"])
from callysto_contents import CallystoContentsManager

rounds = int(sys.argv[2])
which = sys.argv[1]
manager = (LargeFileManager(root_dir=os.environ["ZFS_HOME"]) if which == "zfs"
           else CallystoContentsManager())
nb = nbformat.v4.new_notebook()
# About 1 MB: a plot's worth of output in a code cell.
cell = nbformat.v4.new_code_cell("plot()")
cell.outputs = [nbformat.v4.new_output("display_data", {"image/png": "A" * (1 << 20)})]
nb.cells = [cell]
model = {"type": "notebook", "content": json.loads(nbformat.writes(nb))}

def median(action):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

save = median(lambda: manager.save(model, "big.ipynb"))
opened = median(lambda: manager.get("big.ipynb", content=True))
manager.save({"type": "directory"}, "many")
for i in range(500):
    manager.save({"type": "file", "format": "text", "content": f"file {i}\n"}, f"many/f{i:03}.txt")
listing = median(lambda: manager.get("many", content=True))
assert len(manager.get("many", content=True)["content"]) >= 500
print(json.dumps({"save": save, "open": opened, "list": listing}))
"""


def venv_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print("making the benchmark's virtual environment (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
             *PACKAGES], check=True,
        )  # fmt: skip
    return python


def zfs_running() -> bool:
    return subprocess.run(["zpool", "list", "-H"], capture_output=True, check=False).returncode == 0


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    python = venv_python()
    work = Path(tempfile.mkdtemp(prefix="plan-b-bench-"))
    daemon = None
    if not zfs_running():
        pidfile = work / "zfs-fuse.pid"
        subprocess.run(["/usr/sbin/zfs-fuse", "--pidfile", str(pidfile)], check=True)
        for _ in range(100):
            if zfs_running():
                break
            time.sleep(0.1)
        daemon = int(pidfile.read_text())
    pool = f"cybench{uuid.uuid4().hex[:8]}"
    vdevs = [work / f"{pool}-{i}.img" for i in (1, 2)]
    swift = gateway = None
    try:
        for vdev in vdevs:
            subprocess.run(["truncate", "-s", "512M", str(vdev)], check=True)
        subprocess.run(["zpool", "create", "-m", str(work / pool), pool, "mirror",
                        *map(str, vdevs)], check=True, capture_output=True)  # fmt: skip
        subprocess.run(["zfs", "create", "-p", "-o", "refquota=1G", f"{pool}/home/{USER}"],
                       check=True)  # fmt: skip
        zfs_home = work / pool / "home" / USER

        swift = swift_server.start(work / "swift", SWIFT_PORT)
        swift.s3().create_bucket(Bucket="callysto-bench")
        secrets = work / "secrets"
        secrets.mkdir(mode=0o700)
        (secrets / "credentials").write_text(swift.credentials_text())
        (secrets / "key").write_text(GATEWAY_KEY)
        for file in secrets.iterdir():
            file.chmod(0o600)
        gateway = subprocess.Popen(
            [str(python), str(FILES / "callysto_objects.py"), "serve", str(GATEWAY_PORT),
             swift.endpoint, "callysto-bench", "RegionOne", str(secrets / "credentials"),
             str(secrets / "key")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", GATEWAY_PORT)) == 0:
                    break
            time.sleep(0.1)
        sys.path.insert(0, str(FILES))
        import callysto_objects

        store = callysto_objects.Store(swift.endpoint, "callysto-bench", swift.access_key,
                                       swift.secret_key)  # fmt: skip
        store.ensure_home(USER, 1 << 30)
        env = {
            **os.environ,
            "CALLYSTO_FILES": str(FILES),
            "ZFS_HOME": str(zfs_home),
            "CALLYSTO_OBJECTS_ENDPOINT": f"http://127.0.0.1:{GATEWAY_PORT}",
            "CALLYSTO_OBJECTS_BUCKET": "callysto-bench",
            "CALLYSTO_OBJECTS_PREFIX": USER,
            "CALLYSTO_OBJECTS_ACCESS_KEY": USER,
            "CALLYSTO_OBJECTS_SECRET_KEY": callysto_objects.student_secret(GATEWAY_KEY, USER),
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        }
        results = {}
        for which in ("zfs", "object"):
            run = subprocess.run(
                [str(python), "-c", WORKER, which, str(rounds)],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            results[which] = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"median of {rounds} rounds; ZFS: FileContentsManager on zfs-fuse; object: "
              "s3contents -> gateway -> Swift (S3 API), all on this machine")  # fmt: skip
        print(f"{'':28}{'ZFS':>10}{'object':>10}{'ratio':>9}")
        names = {"save": "save a 1 MB notebook", "open": "open it",
                 "list": "list a 500-file folder"}  # fmt: skip
        for key, label in names.items():
            zfs_s, obj_s = results["zfs"][key], results["object"][key]
            print(f"{label:28}{zfs_s * 1000:>8.1f}ms{obj_s * 1000:>8.1f}ms{obj_s / zfs_s:>8.1f}x")
        return 0
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(timeout=10)
        if swift is not None:
            swift.stop()
        pools.destroy_pool(pool, vdevs, work / pool)
        if daemon is not None:
            os.kill(daemon, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
