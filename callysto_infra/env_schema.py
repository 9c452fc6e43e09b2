"""The schema of env.yaml: every rule an environment's settings must follow, checked when the file
is read, before any tool (Terraform, Ansible, Packer) runs."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from callysto_infra import validate
from callysto_infra.errors import UsageError
from callysto_infra.settings import Strict
from callysto_infra.sizes import MIN_FREE_BYTES, human_size

EnvType = Literal["dev", "prod", "local"]


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


def _size_number(value: object) -> object:
    """A bare YAML number of bytes (`refquota: 1048576`) is a ZFS size too; a boolean is not."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# The smallest default quota a new home can work with. Measured on zfs-fuse: a new, empty home
# takes 112K of its refquota, a refquota under 128K cannot even be created ("out of space"), and
# the hub answers 507 to a home with less than MIN_FREE_BYTES free; so below twice that the
# student could not start a server at all.
MIN_REFQUOTA = 2 * MIN_FREE_BYTES
# zpool create refuses a device under 64M ("less than the minimum size").
MIN_VDEV_BYTES = 64 << 20


def _at_least(minimum: int, what: str):
    def check(value: str) -> str:
        size = validate.zfs_size_bytes(value)
        if size is not None and size < minimum:
            raise ValueError(
                f"{value} is below the smallest {what}, {human_size(minimum)}: give at least "
                f"{human_size(minimum)} (e.g. 1G)"
            )
        return value

    return check


def _no_none(value: str) -> str:
    if value == "none":
        raise ValueError("a file vdev needs a size such as 512M, not 'none'")
    return value


def _one_line(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must be one line of text, without control characters")
    return value


def _unix_user(value: str) -> str:
    # What cloud-init's useradd accepts, and what terraform/modules/hub checks again.
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise ValueError("must be a Unix user name: lower-case letters, digits, '_' and '-'")
    return value


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _volume_id(value: str) -> str:
    if not re.fullmatch(_UUID, value):
        raise ValueError("must be a Cinder volume UUID")
    return value


def _uuid(value: str) -> str:
    if not re.fullmatch(_UUID, value):
        raise ValueError("must be an OpenStack UUID such as 0a1b2c3d-0000-4000-8000-000000000000")
    return value


def _floating_ip(value: str) -> str:
    # Neutron's floating IPs are IPv4; the hub's IPv6 address comes from its port.
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be an IPv4 address (a floating IP)") from None
    return value


def _email(value: str) -> str:
    try:
        return validate.email(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _duration(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be a duration such as 30m, 2h or 0 (never)")
    try:
        return validate.duration_seconds(str(value))
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _memory(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be a size such as 512M or 2G")
    try:
        size = validate.zfs_size_bytes(str(value))
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    if size is None or size < 64 << 20:
        raise ValueError("must be at least 64M (a server needs that much to start)")
    return size


def _user_hash(value: str) -> str:
    try:
        return validate.user_hash(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Domain = Annotated[str, AfterValidator(_domain)]
ZfsSize = Annotated[str, BeforeValidator(_size_number), AfterValidator(_zfs_size)]
RefQuota = Annotated[ZfsSize, AfterValidator(_at_least(MIN_REFQUOTA, "quota a new home can use"))]
VdevSize = Annotated[
    ZfsSize, AfterValidator(_no_none), AfterValidator(_at_least(MIN_VDEV_BYTES, "ZFS device"))
]
VolumeId = Annotated[str, AfterValidator(_volume_id)]
Uuid = Annotated[str, AfterValidator(_uuid)]
UnixUser = Annotated[str, AfterValidator(_unix_user)]
FloatingIp = Annotated[str, AfterValidator(_floating_ip)]
Email = Annotated[str, AfterValidator(_email)]
Duration = Annotated[int, BeforeValidator(_duration)]
Memory = Annotated[int, BeforeValidator(_memory)]
Cpus = Annotated[float, Field(gt=0, le=256)]
Processes = Annotated[int, Field(ge=32, le=1_000_000)]
UserHash = Annotated[str, AfterValidator(_user_hash)]
GroupName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
Text = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_one_line)]


class HostSettings(Strict):
    """The hub's name: <name>.<domain>."""

    name: DnsLabel
    domain: Domain

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.domain}"


class CloudSettings(Strict):
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
    ssh_user: UnixUser = "ptty2u"
    disk_id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]*$", max_length=64)] = "virtio-"
    # Packer's build VM (packer/hub.pkr.hcl): the stock image's own login, and how Packer reaches it.
    source_image_user: UnixUser = Field(
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


class HubSettings(Strict):
    """The hub's ZFS pool and its students' homes."""

    pool: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")] = "tank"
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 25  # strict: `yes` is no size
    existing_volumes: list[VolumeId] = Field(default_factory=list)
    floating_ip: FloatingIp | None = None
    refquota: RefQuota = "1G"

    @model_validator(mode="after")
    def _two_or_no_volumes(self) -> HubSettings:
        if len(self.existing_volumes) not in (0, 2):
            raise ValueError("existing_volumes must list exactly two volume IDs (the ZFS mirror)")
        return self


class FleetHub(Strict):
    """One hub of a fleet, <name>.<host.domain>: how many students the front door sends it, and
    whether it takes new ones. A prod hub adopts its two volumes and its address."""

    name: DnsLabel
    capacity: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=500, description="students the front door assigns it at most"
    )
    state: Literal["accepting", "draining"] = Field(
        default="accepting", description="draining: no new students (its own stay)"
    )
    existing_volumes: list[VolumeId] = Field(default_factory=list)
    floating_ip: FloatingIp | None = None

    @model_validator(mode="after")
    def _two_or_no_volumes(self) -> FleetHub:
        if len(self.existing_volumes) not in (0, 2):
            raise ValueError("existing_volumes must list exactly two volume IDs (the ZFS mirror)")
        return self


HubCount = Annotated[int, Field(ge=1, le=100)]
# Names a hub of a local fleet cannot have: its front door's host, and inventory groups.
LOCAL_RESERVED = ("front-door", "frontdoor", "hub", "local", "idp_proxy")


def _metadata_source(value: str) -> str:
    if re.fullmatch(r"https://[^\s]+", value) or not re.match(r"[a-z][a-z0-9+.-]*:", value):
        return value
    raise ValueError("must be an https:// URL or a file (relative to the environment)")


_OAUTH_CLIENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


class SamlSettings(Strict):
    """Entity IDs that enter every user hash (the defaults follow the hub's name), and the
    sign-in proxy's sources."""

    idp_entity_id: Text | None = None
    sp_entity_id: Text | None = None
    institution_idp: Text | None = Field(
        default=None, description="entity ID of the institution's SAML IdP (the first button)"
    )
    institution_metadata: Annotated[Text, AfterValidator(_metadata_source)] | None = Field(
        default=None,
        description="that IdP's SAML metadata: a federation's https:// URL or a file; "
        "relative to the environment",
    )
    google_client_id: Annotated[str, Field(pattern=_OAUTH_CLIENT_ID)] | None = Field(
        default=None, description="OAuth2 client ID (its secret: secrets/google-client-secret)"
    )
    microsoft_client_id: Annotated[str, Field(pattern=_OAUTH_CLIENT_ID)] | None = Field(
        default=None,
        description="OAuth2 client ID (its secret: secrets/microsoft-client-secret)",
    )


class FrontdoorSettings(Strict):
    """A host of its own in front of the hubs, <name>.<host.domain>: the sign-in proxy runs there
    instead of on the hub. The entity IDs that enter every hash stay those of saml.*, so adding
    or removing it changes no student's hash."""

    name: DnsLabel
    floating_ip: FloatingIp | None = Field(
        default=None, description="an existing floating IP to adopt; none: cloud.floating_ip_pool"
    )


class LocalSettings(Strict):
    """A local environment: this machine is the hub. With `hubs:` it is a fleet: the front door
    takes `port` (the sign-in proxy port + 3, PostgreSQL port + 4) and the Nth hub (from 1)
    port + 20 * N onwards, each with a pool of its own (<hub.pool>-<name>)."""

    port: Annotated[int, Field(ge=1024, le=65535)] = 8000
    data_dir: Text = Field(
        default="data", description="where the pool's file vdevs live; relative to the environment"
    )
    vdev_size: VdevSize = "512M"


class GroupLimits(Strict):
    """More room for some users (teachers, say): its members get the larger of these values."""

    members: list[UserHash] = Field(default_factory=list, description="user hashes")
    memory: Memory | None = None
    cpu: Cpus | None = None
    processes: Processes | None = None


class ServerSettings(Strict):
    """Each student's server: its limits, and when an idle one is stopped."""

    memory: Memory = Field(
        validate_default=True, default="1G", description="memory of a server, kernels included"
    )
    cpu: Cpus = Field(default=1.0, description="CPUs a server may use")
    processes: Processes = Field(default=256, description="processes and threads of a server")
    idle_timeout: Duration = Field(
        validate_default=True, default="1h", description="stop a server idle this long; 0: never"
    )
    max_age: Duration = Field(
        validate_default=True, default=0, description="stop a server this old; 0: never"
    )
    kernel_idle_timeout: Duration = Field(
        validate_default=True, default="30m", description="stop a kernel idle this long; 0: never"
    )
    concurrent_spawns: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=100, description="servers waiting to start before the hub asks students to retry"
    )
    starting_at_once: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0,
        description="servers starting at the same moment (the others queue); 0: one per CPU",
    )
    groups: dict[GroupName, GroupLimits] = Field(default_factory=dict)


_DATASET_SPEC = r"^(?:(?:[a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}:)?[A-Za-z][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.:-]+)+$"


class HomesBackupSettings(Strict):
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


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/?", value):
        raise ValueError(
            "must be an http(s):// address of Swift's S3 API, such as https://swift.example.org"
        )
    return value.rstrip("/")


def _bucket(value: str) -> str:
    # What Swift's S3 API takes as a bucket name (DNS-compatible), so the container serves both.
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", value):
        raise ValueError(
            "must be 3-63 lower-case letters, digits and '-' (a Swift container usable over S3)"
        )
    return value


StorageKind = Literal["zfs", "object"]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
Bucket = Annotated[str, AfterValidator(_bucket)]


class ObjectSettings(Strict):
    """Plan B: students' notebooks in OpenStack Swift, one container per environment."""

    endpoint: Endpoint | None = Field(
        default=None,
        description="Swift's S3 API; unset in a local environment: the hub runs a Swift of its own",
    )
    container: Bucket | None = Field(
        default=None, description="the environment's container; default callysto-<environment>"
    )
    region: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] = Field(
        default="RegionOne", description="the S3 region Swift's s3api answers for"
    )


class EnvConfig(Strict):
    """The whole of env.yaml."""

    type: EnvType
    host: HostSettings
    cloud: CloudSettings | None = None
    hub: HubSettings = Field(default_factory=HubSettings)
    saml: SamlSettings = Field(default_factory=SamlSettings)
    support_email: Email = "support@callysto.ca"
    local: LocalSettings | None = None
    frontdoor: FrontdoorSettings | None = None
    hubs: list[FleetHub] | HubCount | None = Field(
        default=None,
        description="the fleet: its hubs, or how many (pet names); none: one hub, host.name",
    )
    homes_backup: HomesBackupSettings = Field(default_factory=HomesBackupSettings)
    servers: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageKind = Field(
        default="zfs", description="where students' files live: ZFS homes, or Swift (object)"
    )
    object: ObjectSettings | None = None

    @property
    def fleet(self) -> list[FleetHub]:
        """The environment's hubs: as listed, or host.name and pet names, or host.name alone
        (which adopts hub.existing_volumes and hub.floating_ip)."""
        if isinstance(self.hubs, list):
            return list(self.hubs)
        first = FleetHub(
            name=self.host.name,
            existing_volumes=list(self.hub.existing_volumes),
            floating_ip=self.hub.floating_ip,
        )
        from callysto_infra.petname import stable_names

        if self.type == "local" and isinstance(self.hubs, int):
            # Every hub of a local fleet has a pet name: host.name is the environment's group.
            taken = {self.host.name, *LOCAL_RESERVED}
            return [FleetHub(name=name) for name in stable_names(self.host.fqdn, self.hubs, taken)]
        if self.hubs is None or self.hubs == 1:
            return [first]
        taken = {self.host.name} | ({self.frontdoor.name} if self.frontdoor else set())
        others = stable_names(self.host.fqdn, self.hubs - 1, taken)
        return [first, *(FleetHub(name=name) for name in others)]

    @model_validator(mode="after")
    def _matches_type(self, info: ValidationInfo) -> EnvConfig:
        if (
            self.storage == "object"
            and self.type != "local"
            and (self.object is None or self.object.endpoint is None)
        ):
            raise ValueError(
                "a cloud environment with 'storage: object' needs object.endpoint (Swift's S3 API)"
            )
        if self.type in ("dev", "prod") and self.cloud is None:
            raise ValueError(f"a {self.type} environment needs a 'cloud' section")
        if self.type == "local" and self.cloud is not None:
            raise ValueError("a local environment has no 'cloud' section (this machine is the hub)")
        if self.type != "local" and self.local is not None:
            raise ValueError("only a local environment has a 'local' section")
        if self.type == "local" and self.frontdoor is not None:
            raise ValueError(
                "a local environment has no 'frontdoor' section (its sign-in proxy already "
                "runs beside the hub, on its own port)"
            )
        if self.type == "local" and self.hubs is not None and self.storage == "object":
            raise ValueError(
                "a local fleet keeps students' files in ZFS homes (a move sends a dataset): "
                "remove 'storage: object' or 'hubs'"
            )
        if self.type == "local" and isinstance(self.hubs, list):
            clash = [h.name for h in self.hubs if h.name in {*LOCAL_RESERVED, self.host.name}]
            if clash:
                raise ValueError(
                    f"hub name {clash[0]!r} is taken on a local fleet (its front door, an "
                    "inventory group or host.name): give the hub another name"
                )
            adopted = [h.name for h in self.hubs if h.existing_volumes or h.floating_ip]
            if adopted:
                raise ValueError(
                    f"hub {adopted[0]!r} of a local fleet runs on this machine: it has no "
                    "existing_volumes or floating_ip"
                )
        if isinstance(self.hubs, list):
            names = [hub.name for hub in self.hubs]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"hubs must name each hub once (twice: {', '.join(twice)})")
            if not names:
                raise ValueError("hubs lists no hub: name at least one, or remove the section")
        fleet = self.fleet
        addresses = [hub.floating_ip for hub in fleet if hub.floating_ip is not None]
        frontdoor = self.frontdoor
        if frontdoor is not None and frontdoor.floating_ip is not None:
            addresses.append(frontdoor.floating_ip)
        reused = sorted({address for address in addresses if addresses.count(address) > 1})
        if reused:
            raise ValueError(
                f"floating IP {reused[0]!r} is given to two hosts: each needs one of its own"
            )
        if frontdoor is not None and any(hub.name == frontdoor.name for hub in fleet):
            raise ValueError(
                f"frontdoor.name {frontdoor.name!r} is a hub's name: give the front door "
                "a name of its own"
            )
        if self.type == "prod":
            _prod_adopts(self, info.context or {})
        return self


PROD_ADOPTS = "prod_adopts"
# Validation context of a prod environment just made by 'callysto env new': it cannot know yet
# the volumes and the address it adopts, which the operator then lists in env.yaml.
NEW_PROD = {"new_prod": True}


def _prod_adopts(config: EnvConfig, context: dict) -> None:
    """A prod hub's students' homes and address outlive it: Terraform adopts its two volumes and
    its floating IP and never creates (so never destroys) either. All problems at once."""
    assert config.cloud is not None  # checked before
    listed_later = bool(context.get("new_prod"))
    problems: list[InitErrorDetails] = []

    def problem(loc: tuple[str | int, ...], value: object, message: str) -> None:
        problems.append(
            InitErrorDetails(type=PydanticCustomError(PROD_ADOPTS, message), loc=loc, input=value)
        )

    hub = config.hub
    if isinstance(config.hubs, int) and config.hubs > 1:
        problem(
            ("hubs",),
            config.hubs,
            "a prod fleet adopts each hub's volumes and address: list its hubs by name",
        )
    elif isinstance(config.hubs, list):
        if hub.existing_volumes or hub.floating_ip is not None:
            problem(
                ("hub", "existing_volumes"),
                hub.existing_volumes,
                "a prod fleet lists each hub's volumes and address under hubs: remove them here",
            )
        for number, member in enumerate(config.hubs):
            if len(member.existing_volumes) != 2 and not listed_later:
                problem(
                    ("hubs", number, "existing_volumes"),
                    member.existing_volumes,
                    f"prod hub {member.name!r} adopts its two existing ZFS volumes: list them",
                )
            if member.floating_ip is None and not listed_later:
                problem(
                    ("hubs", number, "floating_ip"),
                    member.floating_ip,
                    f"prod hub {member.name!r} adopts its existing floating IP: give it",
                )
    if not isinstance(config.hubs, list):
        if len(hub.existing_volumes) != 2 and not listed_later:
            problem(
                ("hub", "existing_volumes"),
                hub.existing_volumes,
                "a prod environment adopts its two existing ZFS volumes: list their IDs",
            )
        if hub.floating_ip is None and not listed_later:
            problem(
                ("hub", "floating_ip"),
                hub.floating_ip,
                "a prod environment adopts its existing floating IP: give its address",
            )
    frontdoor = config.frontdoor
    if frontdoor is not None and frontdoor.floating_ip is None and not listed_later:
        problem(
            ("frontdoor", "floating_ip"),
            frontdoor.floating_ip,
            "a prod front door adopts its existing floating IP: give its address",
        )
    if config.cloud.floating_ip_pool is not None:
        problem(
            ("cloud", "floating_ip_pool"),
            config.cloud.floating_ip_pool,
            "a prod hub never allocates a floating IP (it adopts hub.floating_ip): remove this",
        )
    if problems:
        # Raised as a ValidationError so that each problem keeps its field, and env.yaml's
        # message names it like any other ('hub.floating_ip: ...').
        raise ValidationError.from_exception_data(EnvConfig.__name__, problems)
