"""The hub's own pieces: each student's server in a container of its own with only their ZFS home
mounted (created at first login with the default refquota, refused with HTTP 507 when full or
read-only), or, in an environment whose storage is object, with their notebooks in the
environment's Swift container under their hash, reached through the hub's object gateway
(callysto_objects.py); and limits raised for the members of a group.

Installed by Ansible next to jupyterhub_config.py, which imports it."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
import subprocess

from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from tornado import web
from traitlets import Dict, Integer, Unicode, default

USER_HASH = re.compile(r"^[0-9a-f]{40}$")


def read_secret(path: str) -> str:
    """One line from a secret file (written 0600 by Ansible)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


class HomeUnavailable(web.HTTPError):
    """The student's home cannot take a server: 507 Insufficient Storage, with a clear page."""

    def __init__(self, message: str):
        super().__init__(507, message)
        self.jupyterhub_message = message


def _zfs(*args: str) -> subprocess.CompletedProcess:
    command = shutil.which("zfs") or "/usr/sbin/zfs"
    return subprocess.run([command, *args], capture_output=True, text=True, check=False, timeout=60)


# Where a student's home is inside their container, and who they are there.
CONTAINER_HOME = "/home/student"
# Kernels talk to their server over Unix sockets in the container's own /tmp, never over TCP
# ports of the host's network that every container shares.
RUNTIME_DIR = "/tmp/jupyter-runtime"  # noqa: S108 - the container's private tmpfs


class ZfsHomeSpawner(DockerSpawner):
    """A container per student, from the students' image, with only their ZFS dataset mounted.

    Containers share the host's network (no bridge): each server listens on 127.0.0.1 on a port
    of its own. Everything else is the container's: processes, /tmp, users, mounts."""

    home_parent = Unicode("tank/home", config=True, help="Dataset holding one dataset per student.")
    refquota = Unicode("1G", config=True, help="refquota of a newly created home.")
    container_uid = Integer(1000, config=True, help="The student's uid and gid in the container.")
    min_free_bytes = Integer(
        0, config=True, help="Refuse to spawn below this free space (set by jupyterhub_config.py)."
    )
    limits = Dict(
        config=True,
        help="memory (bytes), cpu, processes for every server, and 'groups': {name: the same "
        "keys} for members of the hub's groups, who get the largest of their groups' values.",
    )

    @default("network_name")
    def _host_network(self) -> str:
        return "host"

    @default("use_internal_ip")
    def _no_port_bindings(self) -> bool:
        # On the host's network there is nothing to publish: the server's port is the host's.
        return True

    @property
    def dataset(self) -> str:
        if not USER_HASH.fullmatch(self.user.name):
            raise web.HTTPError(403, "user names on this hub are 40-hex user hashes")
        return f"{self.home_parent}/{self.user.name}"

    def home_properties(self) -> dict[str, str]:
        """available, readonly, mounted and mountpoint of the home dataset ('zfs get -H -p')."""
        probe = _zfs("get", "-H", "-p", "-o", "property,value",
                     "available,readonly,mounted,mountpoint", self.dataset)  # fmt: skip
        if probe.returncode != 0:
            raise HomeUnavailable(f"Your home cannot be read: {probe.stderr.strip()}")
        return dict(line.split("\t", 1) for line in probe.stdout.splitlines() if "\t" in line)

    def ensure_home(self) -> str:
        """Create the home at first login; refuse when it is read-only or (nearly) full."""
        dataset = self.dataset
        if _zfs("list", "-H", "-o", "name", dataset).returncode != 0:
            created = _zfs("create", "-o", f"refquota={self.refquota}", dataset)
            if created.returncode != 0:
                raise HomeUnavailable(f"Your home could not be created: {created.stderr.strip()}")
            self.log.info("created %s with refquota %s", dataset, self.refquota)
        props = self.home_properties()
        home = props["mountpoint"]
        readonly = HomeUnavailable(
            "Your home is read-only at the moment, so your server cannot start"
        )
        if props.get("readonly") == "on":
            raise readonly
        if props.get("mounted") != "yes":
            # A server started now would write into the directory under the mountpoint, where
            # the student would never see those files again once the home is mounted.
            self.log.error("%s is not mounted: no server starts until it is", dataset)
            raise HomeUnavailable(
                "Your home is not available at the moment, so your server cannot start: "
                "please try again later or contact support"
            )
        if int(props.get("available", "0")) < self.min_free_bytes:
            raise HomeUnavailable(
                "Your home is full: delete some files (or ask for more space) before starting again"
            )
        try:
            # zfs-fuse reports readonly=off for a read-only mount; the write says the truth.
            os.chown(home, self.container_uid, self.container_uid)
            os.chmod(home, 0o700)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise readonly from None
            raise
        self.volumes = {home: {"bind": CONTAINER_HOME, "mode": "rw"}}
        return home

    def user_limits(self) -> dict:
        """This student's memory, cpu and processes: the base values, raised by their groups."""
        limits = {key: value for key, value in self.limits.items() if key != "groups"}
        groups = self.limits.get("groups", {})
        for group in self.user.groups:
            for key, value in groups.get(group.name, {}).items():
                if value is not None and value > limits.get(key, 0):
                    limits[key] = value
        return limits

    def tmpfs(self) -> dict[str, str]:
        return {"/tmp": "rw,nosuid,nodev,size=256m,mode=1777"}  # noqa: S108

    async def start(self):
        limits = self.user_limits()
        self.mem_limit = limits.get("memory")
        self.cpu_limit = limits.get("cpu")
        self.port = random_port()
        self.extra_host_config = {
            "pids_limit": limits.get("processes", -1),
            # The memory limit is the limit: no swap beyond it.
            "memswap_limit": limits.get("memory", -1),
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": self.tmpfs(),
            "init": True,
        }
        # A server's start is mostly CPU (Python and JupyterLab loading). Started all at once, a
        # class's servers share the CPUs and every student waits as long as the last; started a
        # few at a time, the first is ready in seconds and the last no later.
        async with self._starting():
            ip, port = await super().start()
            await self._until_listening(ip, port)
        return ip, port

    async def _until_listening(self, ip: str, port: int) -> None:
        """Until the server accepts connections, its container has stopped, or http_timeout has
        passed (then the hub's own wait says what went wrong)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        tries = 0
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection(ip, port)
            except OSError:
                tries += 1
                if tries % 10 == 0 and await self.poll() is not None:
                    return
                await asyncio.sleep(0.1)
            else:
                writer.close()
                return

    starting_at_once = Integer(
        0, config=True, help="Servers starting at the same moment; 0: one per CPU of the hub."
    )
    _start_slots: asyncio.Semaphore | None = None

    def _starting(self) -> asyncio.Semaphore:
        cls = type(self)
        if cls._start_slots is None:
            cls._start_slots = asyncio.Semaphore(self.starting_at_once or os.cpu_count() or 1)
        return cls._start_slots

    async def get_ip_and_port(self):
        return "127.0.0.1", self.port

    def get_env(self):
        env = super().get_env()
        env["HOME"] = CONTAINER_HOME
        env["JUPYTER_RUNTIME_DIR"] = RUNTIME_DIR
        limits = self.user_limits()
        # jupyter-resource-usage shows the student their memory against the limit.
        if limits.get("memory"):
            env["MEM_LIMIT"] = str(limits["memory"])
        if limits.get("cpu"):
            env["CPU_LIMIT"] = str(limits["cpu"])
        return env


async def ensure_home(spawner: ZfsHomeSpawner) -> None:
    """The pre-spawn hook: the home exists, is writable and has room, or the spawn is refused.

    Its zfs commands run in a thread, so a class signing in at once never waits on them in the
    hub's event loop."""
    await asyncio.to_thread(spawner.ensure_home)


# Where the contents manager (callysto_contents.py) is mounted in an object-storage container.
CONTENTS_DIR = "/opt/callysto"


class ObjectHomeSpawner(ZfsHomeSpawner):
    """A container per student whose notebooks and files live in the environment's Swift
    container under '<hash>/', saved and opened by s3contents through the hub's object gateway
    with a key of the student's own. Nothing of the student's is on the hub: their home in the
    container is a scratch tmpfs, for what kernels write while they run."""

    gateway_url = Unicode(config=True, help="The object gateway, http://127.0.0.1:PORT.")
    swift_endpoint = Unicode(config=True, help="Swift's S3 endpoint (for the hub itself).")
    bucket = Unicode(config=True, help="The environment's container.")
    region = Unicode("RegionOne", config=True, help="The S3 region of the endpoint.")
    credentials_file = Unicode(config=True, help="The environment's Swift credentials (0600).")
    gateway_key_file = Unicode(config=True, help="The secret students' keys derive from (0600).")
    contents_module = Unicode(config=True, help="callysto_contents.py on the hub.")
    quota_bytes = Integer(0, config=True, help="Quota of a new home in bytes; 0: none.")
    _store = None

    def store(self):
        import callysto_objects

        cls = type(self)
        if cls._store is None:
            access, secret = callysto_objects.read_credentials(self.credentials_file)
            cls._store = callysto_objects.Store(
                self.swift_endpoint.rstrip("/"), self.bucket, access, secret, self.region
            )
        return cls._store

    def ensure_home(self) -> str:
        """The home's record exists (made at first login with the default quota); a banned
        student, or one whose home is (nearly) full, gets the 507 page."""
        user_hash = self.dataset.rsplit("/", 1)[-1]  # validates the name
        store = self.store()
        try:
            record = store.ensure_home(user_hash, self.quota_bytes or None)
            quota = record.get("quota")
            used = store.usage(user_hash) if quota is not None else 0
        except OSError as exc:
            self.log.error("object storage unavailable for %s: %s", user_hash, exc)
            raise HomeUnavailable(
                "Your files are not available at the moment, so your server cannot start: "
                "please try again later or contact support"
            ) from None
        if record.get("banned"):
            raise HomeUnavailable(
                "Your home is read-only at the moment, so your server cannot start"
            )
        if quota is not None and quota - used < self.min_free_bytes:
            raise HomeUnavailable(
                "Your home is full: delete some files (or ask for more space) before starting again"
            )
        self.volumes = {self.contents_module: {"bind": f"{CONTENTS_DIR}/callysto_contents.py",
                                               "mode": "ro"}}  # fmt: skip
        return CONTAINER_HOME

    def tmpfs(self) -> dict[str, str]:
        uid = self.container_uid
        return {
            **super().tmpfs(),
            CONTAINER_HOME: f"rw,nosuid,nodev,size=256m,mode=0700,uid={uid},gid={uid}",
        }

    def get_args(self):
        return [
            *super().get_args(),
            "--ServerApp.contents_manager_class=callysto_contents.CallystoContentsManager",
        ]

    def get_env(self):
        import callysto_objects

        env = super().get_env()
        user_hash = self.dataset.rsplit("/", 1)[-1]
        env.update(
            PYTHONPATH=CONTENTS_DIR,
            CALLYSTO_OBJECTS_ENDPOINT=self.gateway_url,
            CALLYSTO_OBJECTS_BUCKET=self.bucket,
            CALLYSTO_OBJECTS_PREFIX=user_hash,
            CALLYSTO_OBJECTS_REGION=self.region,
            # The student's own key: the gateway takes it for their files only.
            CALLYSTO_OBJECTS_ACCESS_KEY=user_hash,
            CALLYSTO_OBJECTS_SECRET_KEY=callysto_objects.student_secret(
                read_secret(self.gateway_key_file), user_hash
            ),
            AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
            AWS_RESPONSE_CHECKSUM_VALIDATION="when_required",
        )
        return env
