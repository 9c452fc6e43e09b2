"""Environments: one directory per environment under envs/ (its env.yaml, secrets/, Terraform
state, ...), and listing, loading and creating them. The rules of env.yaml are in env_schema."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from callysto_infra import paths, secretfiles, settings, validate
from callysto_infra.env_schema import NEW_PROD, EnvConfig, EnvType, LocalSettings
from callysto_infra.errors import UsageError
from callysto_infra.paths import PROJECT_DIR, display  # noqa: F401 (PROJECT_DIR: others use it)

ENV_FILE = "env.yaml"
SALT_FILE = "saml-salt"
CLOUD_HUB_PREFIX = Path("/opt/jupyterhub")
# Where local hubs keep their data when their environment's own folder is closed to others.
SHARED_DATA_ROOT = Path("/var/lib/callysto")


envs_dir = paths.envs_dir


# --- environments on disk ---------------------------------------------------------------------


@dataclass(frozen=True)
class Environment(paths.EnvPaths):
    """An environment directory with its validated configuration."""

    name: str
    path: Path
    config: EnvConfig

    @property
    def type(self) -> EnvType:
        return self.config.type

    @property
    def fqdn(self) -> str:
        return self.config.host.fqdn

    @property
    def frontdoor_fqdn(self) -> str | None:
        """The front door's name, when the environment has one (the sign-in proxy's host)."""
        frontdoor = self.config.frontdoor
        return None if frontdoor is None else f"{frontdoor.name}.{self.config.host.domain}"

    @property
    def idp_proxy_fqdn(self) -> str:
        """Where the sign-in proxy runs: the front door, else the hub itself."""
        return self.frontdoor_fqdn or self.fqdn

    @property
    def salt_file(self) -> Path:
        return self.secrets_dir / SALT_FILE

    @property
    def group_vars_dir(self) -> Path:
        return self.path / "group_vars"

    @cached_property
    def local(self) -> LocalSettings:
        return self.config.local or LocalSettings()

    @property
    def data_dir(self) -> Path:
        """A local hub's data directory (the pool's file vdevs, the hub's files): local.data_dir,
        relative to the environment."""
        path = Path(self.local.data_dir)
        return path if path.is_absolute() else self.path / path

    @property
    def hub_prefix(self) -> Path:
        """Where the hub keeps its own files (the jupyterhub role's jupyterhub_prefix): in a local
        hub's data directory, so two local hubs never share one; /opt/jupyterhub on a cloud hub."""
        return self.data_dir / "jupyterhub" if self.type == "local" else CLOUD_HUB_PREFIX

    @property
    def idp_entity_id(self) -> str:
        return self.config.saml.idp_entity_id or (
            f"https://{self.fqdn}/simplesaml/saml2/idp/metadata.php"
        )

    @property
    def sp_entity_id(self) -> str:
        return self.config.saml.sp_entity_id or f"https://{self.fqdn}/shibboleth"


def list_names() -> list[str]:
    root = envs_dir()
    if not root.is_dir():
        return []
    # Only real names: an environment being made ('.NAME.<id>.creating') is not one yet.
    return sorted(
        p.name
        for p in root.iterdir()
        if validate.ENV_NAME_RE.fullmatch(p.name) and (p / ENV_FILE).is_file()
    )


def parse_config(path: Path) -> EnvConfig:
    """The env.yaml at PATH, validated: one UsageError line naming the field for any problem."""
    return settings.read(path, EnvConfig)


def load(name: str | None) -> Environment:
    """The environment NAME, validated; UsageError for a missing, unknown or invalid one."""
    if not name:
        raise UsageError(
            "no environment given: use --env NAME (make: ENV=NAME) or set CALLYSTO_ENV"
        )
    validate.env_name(name)
    known = list_names()
    if name not in known:
        hint = f"known: {', '.join(known)}" if known else "none exist yet"
        raise UsageError(
            f"unknown environment '{name}' ({hint}); create one with 'callysto env new dev|prod|local'"
        )
    path = envs_dir() / name
    return Environment(name=name, path=path, config=parse_config(path / ENV_FILE))


# --- creating environments --------------------------------------------------------------------

_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {"domain": "callysto.farm", "volume_size_gb": 25, "flavor": "m1.large"},
    "prod": {"domain": "callysto.ca", "volume_size_gb": 250, "flavor": "m1.xlarge"},
}


def closed_to_others(path: Path) -> Path | None:
    """The first existing directory of PATH and its parents that other users cannot pass
    through (no o+x), or None. Students' servers run as an unprivileged user from a local hub's
    files, so its data directory must be reachable."""
    path = path.resolve()
    for directory in [path, *path.parents]:
        if directory.exists() and not directory.stat().st_mode & 0o001:
            return directory
    return None


def _local_data_dir(name: str) -> str:
    """'data' beside env.yaml; for a clone others cannot reach (under /root, say), a directory
    of this machine's instead, so a newcomer's first 'make local' works wherever they cloned."""
    if closed_to_others(envs_dir() / name) is None:
        return "data"
    return str(SHARED_DATA_ROOT / name)


def _initial_config(env_type: EnvType, name: str) -> dict[str, Any]:
    if env_type == "local":
        return {
            "type": "local",
            "host": {"name": name, "domain": "localhost.localdomain"},
            "hub": {"pool": "tank", "refquota": "1G"},
            "support_email": "support@callysto.ca",
            "local": {"port": 8000, "data_dir": _local_data_dir(name), "vdev_size": "512M"},
        }
    defaults = _DEFAULTS[env_type]
    host_name = name if env_type == "dev" else "hub"
    return {
        "type": env_type,
        "host": {"name": host_name, "domain": defaults["domain"]},
        "cloud": {
            "cloud": "openstack",
            "region": "RegionOne",
            "network": "default",
            "flavor": defaults["flavor"],
            "image": "callysto-hub",
            "source_image": "Debian 12",
            "key_pair": name,
            "dns_zone": defaults["domain"],
            "ssh_user": "ptty2u",
            "disk_id_prefix": "virtio-",
        },
        "hub": {
            "pool": "tank",
            "volume_size_gb": defaults["volume_size_gb"],
            "existing_volumes": [],
            "floating_ip": None,
            "refquota": "1G",
        },
        "saml": {"idp_entity_id": None, "sp_entity_id": None},
        "support_email": "support@callysto.ca",
    }


_HEADER = """\
# Environment '{name}' ({type}). This is the one hand-edited file of the environment:
# every tool reads its values from here, and 'callysto env show --env {name}' validates it.
# Secrets live in secrets/ beside this file and never in git.
"""
_PROD_HEADER = """\
# A prod hub adopts what outlives it: list its two existing ZFS volumes in hub.existing_volumes
# and its floating IP in hub.floating_ip; until then every command refuses this environment.
"""


def create(env_type: EnvType, name: str | None = None, *, hubs: int | None = None) -> Environment:
    """Make envs/NAME with env.yaml, secrets/saml-salt and group_vars/. Never touches an existing
    one: of several processes making one name at once, exactly one succeeds. HUBS: a fleet of
    that many hubs (env.yaml's `hubs:`)."""
    root = envs_dir()
    if name is None and env_type == "prod":
        raise UsageError("a prod environment needs a name: callysto env new prod NAME")
    # A pet name lost to another process making the same one at that moment is drawn again.
    tries = 5 if name is None and env_type == "dev" else 1
    lost: set[str] = set()
    for attempt in range(tries):
        chosen = name or _default_name(env_type, root, lost)
        try:
            return _create(env_type, validate.env_name(chosen), root, hubs)
        except _Taken:
            if attempt == tries - 1:
                path = root / chosen
                raise UsageError(
                    f"environment '{chosen}' already exists at {display(path)}: "
                    "it was left untouched"
                ) from None
            lost.add(chosen)
    raise AssertionError("unreachable")


class _Taken(Exception):
    """The environment's name was already taken, possibly a moment ago by another process."""


def _default_name(env_type: EnvType, root: Path, lost: set[str]) -> str:
    if env_type == "local":
        return "local"
    from callysto_infra.petname import pet_name

    taken = set(list_names()) | ({p.name for p in root.iterdir()} if root.is_dir() else set())
    return pet_name(taken | lost)


def _create(env_type: EnvType, name: str, root: Path, hubs: int | None) -> Environment:
    path = root / name
    if path.exists() or path.is_symlink():
        raise _Taken
    config = _initial_config(env_type, name)
    if hubs is not None:
        config["hubs"] = hubs
    # What we write must be valid, but for what only the operator knows: a prod hub's volumes
    # and address, which load() then asks for.
    validated = EnvConfig.model_validate(config, context=NEW_PROD if env_type == "prod" else None)

    # Each process builds in a folder of its own, so none can delete or half-fill another's.
    tmp = root / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.creating"
    made = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        made = True
        (tmp / "group_vars").mkdir()
        (tmp / "group_vars" / ".gitkeep").touch()
        secretfiles.write(tmp / "secrets" / SALT_FILE, secrets.token_urlsafe(32) + "\n")
        header = _HEADER.format(name=name, type=env_type)
        header += _PROD_HEADER if env_type == "prod" else ""
        text = header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
        (tmp / ENV_FILE).write_text(text, encoding="utf-8")
        # Appear all at once: a half-made environment is never seen under its real name. A
        # directory renames onto an existing one only when that one is empty, so the first
        # rename wins and every later one fails.
        try:
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise _Taken from None
            raise
        made = False  # it is the environment now
    except OSError as exc:
        raise UsageError(
            f"environment '{name}' could not be made in {display(root)} ({exc.strerror})"
        ) from None
    finally:
        if made:
            shutil.rmtree(tmp, ignore_errors=True)
    return Environment(name=name, path=path, config=validated)


def read_salt(path: Path) -> str:
    """The SAML salt from PATH (one line); the file must not be readable by others."""
    return secretfiles.read_line(path, "salt file")
