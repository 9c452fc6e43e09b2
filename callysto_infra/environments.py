"""Environments: one directory per environment under envs/, whose env.yaml is validated by the
models here before any tool runs."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from callysto_infra import validate
from callysto_infra.errors import UsageError

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = "env.yaml"
SALT_FILE = "saml-salt"

EnvType = Literal["dev", "prod", "local"]
M = TypeVar("M", bound="BaseModel")


def envs_dir() -> Path:
    """Where environments live: $CALLYSTO_ENVS_DIR, else envs/ in the project."""
    override = os.environ.get("CALLYSTO_ENVS_DIR")
    return Path(override) if override else PROJECT_DIR / "envs"


# --- the schema of env.yaml -------------------------------------------------------------------


def _dns_label(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ValueError("must be a DNS label: lower-case letters, digits and '-'")
    return value


def _domain(value: str) -> str:
    labels = value.rstrip(".").split(".")
    if len(labels) < 2 or not all(
        re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", x) for x in labels
    ):
        raise ValueError("must be a DNS domain such as callysto.ca")
    return value.rstrip(".")


def _zfs_size(value: str) -> str:
    try:
        return validate.zfs_size(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _volume_id(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
        raise ValueError("must be a Cinder volume UUID")
    return value


def _uuid(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
        raise ValueError("must be an OpenStack UUID such as 0a1b2c3d-0000-4000-8000-000000000000")
    return value


def _ip(value: str) -> str:
    ipaddress.ip_address(value)
    return value


def _email(value: str) -> str:
    try:
        return validate.email(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Domain = Annotated[str, AfterValidator(_domain)]
ZfsSize = Annotated[str, AfterValidator(_zfs_size)]
VolumeId = Annotated[str, AfterValidator(_volume_id)]
Uuid = Annotated[str, AfterValidator(_uuid)]
IpAddress = Annotated[str, AfterValidator(_ip)]
Email = Annotated[str, AfterValidator(_email)]
Text = Annotated[str, Field(min_length=1, max_length=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSettings(_Strict):
    """The hub's name: <name>.<domain>."""

    name: DnsLabel
    domain: Domain

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.domain}"


class CloudSettings(_Strict):
    """Where a cloud hub runs: an entry of clouds.yaml and the names Terraform and Packer need."""

    cloud: Text = "openstack"
    region: Text
    network: Text
    flavor: Text
    image: Text = Field(description="image the hub boots from; the newest one of this name")
    source_image: Text = Field(
        default="Debian 12", description="stock image Packer builds the hub image from"
    )
    key_pair: Text
    dns_zone: Domain
    ssh_user: DnsLabel = "ptty2u"
    disk_id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]*$", max_length=64)] = "virtio-"
    # Packer's build VM (packer/hub.pkr.hcl): the stock image's own login, and how Packer reaches it.
    source_image_user: DnsLabel = Field(
        default="debian", description="login of the stock image Packer builds from"
    )
    build_network_id: Uuid | None = Field(
        default=None,
        description="network (UUID: Packer's builder takes no names) of the build VM; "
        "none: the cloud's default network",
    )
    build_floating_ip_network: Text | None = Field(
        default=None, description="external network of a floating IP for the build VM, if needed"
    )
    build_security_groups: list[Text] = Field(
        default_factory=list, description="security groups of the build VM; one must allow SSH"
    )
    build_ssh_ip_version: Literal[4, 6] = Field(
        default=4, description="IP version Packer uses to reach the build VM over SSH"
    )
    floating_ip_pool: Text | None = Field(
        default=None,
        description="pool a dev hub's new floating IP comes from; none: no floating IP "
        "(a prod hub adopts hub.floating_ip instead)",
    )
    ipv6: bool = Field(default=True, description="publish an AAAA record and open IPv6")


class HubSettings(_Strict):
    """The hub's ZFS pool and its students' homes."""

    pool: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")] = "tank"
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 25
    existing_volumes: list[VolumeId] = Field(default_factory=list)
    floating_ip: IpAddress | None = None
    refquota: ZfsSize = "1G"

    @model_validator(mode="after")
    def _two_or_no_volumes(self) -> HubSettings:
        if len(self.existing_volumes) not in (0, 2):
            raise ValueError("existing_volumes must list exactly two volume IDs (the ZFS mirror)")
        return self


class SamlSettings(_Strict):
    """Entity IDs that enter every user hash; the defaults follow the hub's name."""

    idp_entity_id: Text | None = None
    sp_entity_id: Text | None = None


class LocalSettings(_Strict):
    """A local environment: this machine is the hub."""

    port: Annotated[int, Field(ge=1024, le=65535)] = 8000
    data_dir: Text = Field(
        default="data", description="where the pool's file vdevs live; relative to the environment"
    )
    vdev_size: ZfsSize = "512M"


_DATASET_SPEC = r"^(?:(?:[a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}:)?[A-Za-z][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.:-]+)+$"


class HomesBackupSettings(_Strict):
    """Where `callysto backup homes` sends students' homes, and how many snapshots stay."""

    directory: Text | None = Field(
        default=None, description="folder of zfs send streams; relative to the environment"
    )
    dataset: Annotated[str, Field(pattern=_DATASET_SPEC, max_length=255)] | None = Field(
        default=None, description="[user@]host:pool/dataset (or pool/dataset here) to receive into"
    )
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=22, description="SSH port of the dataset's host"
    )
    ssh_key: Text | None = Field(
        default=None, description="private key for the dataset's host; relative to the environment"
    )
    keep: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=7, description="callysto-* snapshots of home kept on each hub"
    )
    keep_at_destination: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=30, description="snapshots whose streams a directory destination keeps"
    )

    @model_validator(mode="after")
    def _one_destination(self) -> HomesBackupSettings:
        if self.directory is not None and self.dataset is not None:
            raise ValueError("give the homes backup a directory or a dataset, not both")
        return self


class EnvConfig(_Strict):
    """The whole of env.yaml."""

    type: EnvType
    host: HostSettings
    cloud: CloudSettings | None = None
    hub: HubSettings = Field(default_factory=HubSettings)
    saml: SamlSettings = Field(default_factory=SamlSettings)
    support_email: Email = "support@callysto.ca"
    local: LocalSettings | None = None
    homes_backup: HomesBackupSettings = Field(default_factory=HomesBackupSettings)

    @model_validator(mode="after")
    def _matches_type(self) -> EnvConfig:
        if self.type in ("dev", "prod") and self.cloud is None:
            raise ValueError(f"a {self.type} environment needs a 'cloud' section")
        if self.type == "local" and self.cloud is not None:
            raise ValueError("a local environment has no 'cloud' section (this machine is the hub)")
        if self.type != "local" and self.local is not None:
            raise ValueError("only a local environment has a 'local' section")
        return self


# --- environments on disk ---------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
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
    def secrets_dir(self) -> Path:
        return self.path / "secrets"

    @property
    def salt_file(self) -> Path:
        return self.secrets_dir / SALT_FILE

    @property
    def ssh_key_file(self) -> Path:
        """The private key operators use for this environment's hubs (its .pub is the key pair)."""
        return self.secrets_dir / "ssh-key"

    @property
    def known_hosts_file(self) -> Path:
        return self.secrets_dir / "known_hosts"

    @property
    def state_file(self) -> Path:
        """Terraform's state for this environment; its 'hosts' output lists the hubs."""
        return self.path / "terraform.tfstate"

    @property
    def group_vars_dir(self) -> Path:
        return self.path / "group_vars"

    @cached_property
    def local(self) -> LocalSettings:
        return self.config.local or LocalSettings()

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
    return sorted(p.name for p in root.iterdir() if (p / ENV_FILE).is_file())


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_validation_error(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown field (check the spelling; see 'callysto env show' for the fields)"
    elif first["type"] == "missing":
        reason = "required field is missing"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{_display(path)}: {field}: {reason}{suffix}"


def read_settings(path: Path, model: type[M], *, empty_ok: bool = False) -> M:
    """The YAML file PATH validated by MODEL; every problem is one UsageError line naming the
    file, the field and the reason. With EMPTY_OK, an empty file gives the model's defaults."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{_display(path)}:{where} is not valid YAML") from None
    except OSError as exc:
        raise UsageError(f"{_display(path)}: cannot be read ({exc.strerror})") from None
    if raw is None and empty_ok:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(f"{_display(path)}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(format_validation_error(path, exc)) from None


def parse_config(path: Path) -> EnvConfig:
    return read_settings(path, EnvConfig)


def load(name: str | None) -> Environment:
    """The environment NAME, validated; UsageError for a missing, unknown or invalid one."""
    if not name:
        raise UsageError(
            "no environment given: use --env NAME (make: ENV=NAME) or set CALLYSTO_ENV"
        )
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


def _initial_config(env_type: EnvType, name: str) -> dict[str, Any]:
    if env_type == "local":
        return {
            "type": "local",
            "host": {"name": name, "domain": "localhost.localdomain"},
            "hub": {"pool": "tank", "refquota": "1G"},
            "support_email": "support@callysto.ca",
            "local": {"port": 8000, "data_dir": "data", "vdev_size": "512M"},
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


def create(env_type: EnvType, name: str | None = None) -> Environment:
    """Make envs/NAME with env.yaml, secrets/saml-salt and group_vars/. Never touches an existing one."""
    root = envs_dir()
    taken = set(list_names()) | ({p.name for p in root.iterdir()} if root.is_dir() else set())
    if name is None:
        if env_type == "prod":
            raise UsageError("a prod environment needs a name: callysto env new prod NAME")
        if env_type == "local":
            name = "local"
        else:
            from callysto_infra.petname import pet_name

            name = pet_name(taken)
    validate.env_name(name)
    path = root / name
    if path.exists():
        raise UsageError(
            f"environment '{name}' already exists at {_display(path)}: it was left untouched"
        )
    config = _initial_config(env_type, name)
    EnvConfig.model_validate(config)  # what we write must be valid

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.creating"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir()
    (tmp / "secrets").mkdir(mode=0o700)
    (tmp / "group_vars").mkdir()
    (tmp / "group_vars" / ".gitkeep").touch()
    salt = tmp / "secrets" / SALT_FILE
    fd = os.open(salt, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    text = _HEADER.format(name=name, type=env_type) + yaml.safe_dump(
        config, sort_keys=False, default_flow_style=False
    )
    (tmp / ENV_FILE).write_text(text, encoding="utf-8")
    # Appear all at once: a half-made environment is never seen under its real name.
    tmp.rename(path)
    return load(name)


def read_salt(path: Path) -> str:
    """The SAML salt from PATH (one line); the file must not be readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"salt file {_display(path)} does not exist") from None
    except OSError as exc:
        raise UsageError(f"salt file {_display(path)} cannot be read ({exc.strerror})") from None
    if mode & 0o077:
        raise UsageError(
            f"salt file {_display(path)} is readable by others: run 'chmod 600 {_display(path)}'"
        )
    salt = text.strip()
    if not salt or "\n" in salt:
        raise UsageError(f"salt file {_display(path)} must hold the salt on one line")
    return salt
