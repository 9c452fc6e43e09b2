"""The hub's own pieces: a ZFS home per student (created at first login with the default refquota,
refused with HTTP 507 when full or read-only), and sign-in from the SAML proxy's REMOTE_USER header.

Installed by Ansible next to jupyterhub_config.py, which imports it."""

from __future__ import annotations

import errno
import os
import pwd
import re
import shutil
import subprocess

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from tornado import web
from traitlets import Integer, Unicode

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


class ZfsHomeSpawner(LocalProcessSpawner):
    """Single-user servers as one unprivileged user, each in the student's own ZFS dataset."""

    home_parent = Unicode("tank/home", config=True, help="Dataset holding one dataset per student.")
    refquota = Unicode("1G", config=True, help="refquota of a newly created home.")
    run_as_user = Unicode("jupyter", config=True, help="System user of single-user servers.")
    min_free_bytes = Integer(
        0, config=True, help="Refuse to spawn below this free space (set by jupyterhub_config.py)."
    )

    @property
    def dataset(self) -> str:
        if not USER_HASH.match(self.user.name):
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
        user = pwd.getpwnam(self.run_as_user)
        try:
            # zfs-fuse reports readonly=off for a read-only mount; the write says the truth.
            os.chown(home, user.pw_uid, user.pw_gid)
            os.chmod(home, 0o700)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise readonly from None
            raise
        self.home_dir = home
        return home

    home_dir = Unicode("")

    def make_preexec_fn(self, name):
        become = set_user_setuid(self.run_as_user, chdir=False)
        home = self.home_dir

        def preexec():
            become()
            os.chdir(home)

        return preexec

    def user_env(self, env):
        env["USER"] = self.user.name
        env["HOME"] = self.home_dir
        env["SHELL"] = "/bin/bash"
        return env


def ensure_home(spawner: ZfsHomeSpawner) -> None:
    """The pre-spawn hook: the home exists, is writable and has room, or the spawn is refused."""
    spawner.ensure_home()
