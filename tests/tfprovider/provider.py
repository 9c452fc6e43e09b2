"""The provider: registry.terraform.io/terraform-provider-openstack/openstack, as far as the hub
module needs it. Like the real cloud it refuses what the real one would (a missing image, a volume
attached twice, a record that is not an address), so a wrong module fails here too."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from tf import runner, types
from tf.blocks import SetNestedBlock
from tf.iface import DataSource, Provider, Resource
from tf.schema import Attribute, Block, Schema
from tf.types import Unknown
from tfprovider import cloud as cloudfile

S, N, B = types.String, types.Number, types.Bool


def _cloud_path() -> Path:
    path = os.environ.get(cloudfile.CLOUD_FILE_VAR)
    if not path:
        raise RuntimeError(f"{cloudfile.CLOUD_FILE_VAR} is not set: it names the fake cloud's file")
    return Path(path)


def _plain(value: Any) -> Any:
    """A state value as JSON can hold it (Unknown only appears in plans, never in the cloud)."""
    if value is Unknown:
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class CloudResource(Resource):
    """A resource kept in one collection of the cloud file, keyed by its ID."""

    name: ClassVar[str]
    collection: ClassVar[str]
    attributes: ClassVar[tuple[Attribute, ...]]
    blocks: ClassVar[tuple] = ()

    def __init__(self, provider: Provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,  # no older schemas to upgrade from
            attributes=[Attribute("id", S(), computed=True), *cls.attributes],
            block_types=cls.blocks,
        )

    @classmethod
    def _fields(cls) -> list[str]:
        return ["id", *(a.name for a in cls.attributes), *(b.type_name for b in cls.blocks)]

    # Hooks: refuse what the real cloud refuses; fill what the real cloud computes.
    def check(self, cloud: dict, obj: dict) -> str | None:
        return None

    def computed(self, cloud: dict, obj: dict) -> dict:
        return {}

    def on_delete(self, cloud: dict, obj: dict) -> str | None:
        return None

    def _public(self, obj: dict) -> dict:
        return {k: obj.get(k) for k in self._fields()}

    def create(self, ctx, planned):
        with cloudfile.edit(_cloud_path()) as cloud:
            obj = _plain(planned)
            error = self.check(cloud, obj)
            if error:
                ctx.diagnostics.add_error(f"{self.name}: {error}")
                return None
            obj["id"] = cloudfile.new_id()
            obj.update(self.computed(cloud, obj))
            cloud[self.collection][obj["id"]] = obj
        return self._public(obj)

    def read(self, ctx, current):
        stored = cloudfile.read(_cloud_path())[self.collection].get(current["id"])
        # Gone from the cloud: Terraform plans to create it again.
        return self._public(stored) if stored else None

    def update(self, ctx, current, planned):
        with cloudfile.edit(_cloud_path()) as cloud:
            obj = {**cloud[self.collection].get(current["id"], {}), **_plain(planned)}
            for key, value in planned.items():
                if value is Unknown:
                    obj[key] = current.get(key)
            error = self.check(cloud, obj)
            if error:
                ctx.diagnostics.add_error(f"{self.name}: {error}")
                return current
            obj.update(self.computed(cloud, obj))
            cloud[self.collection][obj["id"]] = obj
        return self._public(obj)

    def delete(self, ctx, current):
        with cloudfile.edit(_cloud_path()) as cloud:
            obj = cloud[self.collection].get(current["id"])
            if obj is None:
                return None
            error = self.on_delete(cloud, obj)
            if error:
                ctx.diagnostics.add_error(f"{self.name}: {error}")
                return None
            del cloud[self.collection][current["id"]]
        return None


# --- compute ---------------------------------------------------------------------------------


class Instance(CloudResource):
    name = "openstack_compute_instance_v2"
    collection = "instances"
    attributes = (
        Attribute("name", S(), required=True),
        Attribute("image_id", S(), optional=True, computed=True, requires_replace=True),
        Attribute("flavor_name", S(), optional=True, computed=True),
        Attribute("key_pair", S(), optional=True, requires_replace=True),
        Attribute("user_data", S(), optional=True, requires_replace=True),
        Attribute("metadata", types.Map(S()), optional=True),
        Attribute("access_ip_v4", S(), optional=True, computed=True),
        Attribute("access_ip_v6", S(), optional=True, computed=True),
    )
    blocks = (
        SetNestedBlock(
            "network",
            Block(
                attributes=[
                    Attribute("uuid", S(), optional=True),
                    Attribute("name", S(), optional=True),
                    Attribute("port", S(), optional=True),
                ]
            ),
        ),
    )

    def check(self, cloud, obj):
        if not any(image["id"] == obj.get("image_id") for image in cloud["images"]):
            return f"image {obj.get('image_id')} does not exist"
        for net in obj.get("network") or []:
            if net.get("port") and net["port"] not in cloud["ports"]:
                return f"port {net['port']} does not exist"
        return None

    def computed(self, cloud, obj):
        delay = float(os.environ.get(cloudfile.DELAY_VAR, "0") or 0)
        if delay:
            time.sleep(delay)  # a slow boot, so a test can interrupt an apply half-way
        ips: list[str] = []
        for net in obj.get("network") or []:
            if net.get("port"):
                ips += cloud["ports"][net["port"]]["all_fixed_ips"]
                cloud["ports"][net["port"]]["device_id"] = obj["id"]
        v4 = [ip for ip in ips if ipaddress.ip_address(ip).version == 4]
        v6 = [ip for ip in ips if ipaddress.ip_address(ip).version == 6]
        return {
            "access_ip_v4": obj.get("access_ip_v4") or (v4[0] if v4 else ""),
            "access_ip_v6": obj.get("access_ip_v6") or (v6[0] if v6 else ""),
        }

    def on_delete(self, cloud, obj):
        attached = [
            a for a in cloud["volume_attachments"].values() if a["instance_id"] == obj["id"]
        ]
        # Nova detaches volumes of a deleted server; the volumes themselves stay.
        for attachment in attached:
            del cloud["volume_attachments"][attachment["id"]]
        for port in cloud["ports"].values():
            if port.get("device_id") == obj["id"]:
                port["device_id"] = ""
        return None


class VolumeAttach(CloudResource):
    name = "openstack_compute_volume_attach_v2"
    collection = "volume_attachments"
    attributes = (
        Attribute("instance_id", S(), required=True, requires_replace=True),
        Attribute("volume_id", S(), required=True, requires_replace=True),
        Attribute("device", S(), optional=True, computed=True),
    )

    def check(self, cloud, obj):
        if obj["instance_id"] not in cloud["instances"]:
            return f"instance {obj['instance_id']} does not exist"
        if obj["volume_id"] not in cloud["volumes"]:
            return f"volume {obj['volume_id']} does not exist"
        for other in cloud["volume_attachments"].values():
            if other["volume_id"] == obj["volume_id"] and other.get("id") != obj.get("id"):
                return f"volume {obj['volume_id']} is already attached to {other['instance_id']}"
        return None

    def computed(self, cloud, obj):
        taken = sum(
            a["instance_id"] == obj["instance_id"] for a in cloud["volume_attachments"].values()
        )
        return {"device": obj.get("device") or f"/dev/vd{'bcdefgh'[taken]}"}


# --- block storage ---------------------------------------------------------------------------


class Volume(CloudResource):
    name = "openstack_blockstorage_volume_v3"
    collection = "volumes"
    attributes = (
        Attribute("name", S(), optional=True),
        Attribute("description", S(), optional=True),
        Attribute("size", N(), required=True),
    )

    def check(self, cloud, obj):
        if not isinstance(obj["size"], int) or obj["size"] < 1:
            return f"size must be a whole number of GB, not {obj['size']}"
        return None

    def on_delete(self, cloud, obj):
        if any(a["volume_id"] == obj["id"] for a in cloud["volume_attachments"].values()):
            return f"volume {obj['id']} is still attached (VolumeIsBusy)"
        return None


# --- networking ------------------------------------------------------------------------------


class Port(CloudResource):
    name = "openstack_networking_port_v2"
    collection = "ports"
    attributes = (
        Attribute("name", S(), optional=True),
        Attribute("network_id", S(), required=True, requires_replace=True),
        Attribute("admin_state_up", B(), optional=True, computed=True),
        Attribute("security_group_ids", types.Set(S()), optional=True),
        Attribute("all_fixed_ips", types.List(S()), computed=True),
        Attribute("mac_address", S(), optional=True, computed=True),
        Attribute("device_id", S(), optional=True, computed=True),
    )

    def check(self, cloud, obj):
        if not any(net["id"] == obj["network_id"] for net in cloud["networks"]):
            return f"network {obj['network_id']} does not exist"
        for group in obj.get("security_group_ids") or []:
            if group not in cloud["secgroups"]:
                return f"security group {group} does not exist"
        return None

    def computed(self, cloud, obj):
        if obj.get("all_fixed_ips"):
            return {}
        n = len(cloud["ports"]) + 10
        while any(f"10.0.0.{n}" in p["all_fixed_ips"] for p in cloud["ports"].values()):
            n += 1
        return {
            "all_fixed_ips": [f"10.0.0.{n}", f"2001:db8::{n:x}"],
            "mac_address": f"fa:16:3e:00:00:{n:02x}",
            "admin_state_up": True if obj.get("admin_state_up") is None else obj["admin_state_up"],
            "device_id": obj.get("device_id") or "",
        }

    def on_delete(self, cloud, obj):
        if obj.get("device_id"):
            return f"port {obj['id']} is in use by instance {obj['device_id']}"
        for fip in cloud["floating_ips"].values():
            if fip.get("port_id") == obj["id"]:
                fip["port_id"] = None
        return None


class SecGroup(CloudResource):
    name = "openstack_networking_secgroup_v2"
    collection = "secgroups"
    attributes = (
        Attribute("name", S(), required=True),
        Attribute("description", S(), optional=True, computed=True),
    )

    def computed(self, cloud, obj):
        return {"description": obj.get("description") or ""}

    def on_delete(self, cloud, obj):
        if any(obj["id"] in (p.get("security_group_ids") or []) for p in cloud["ports"].values()):
            return f"security group {obj['id']} is in use (SecurityGroupInUse)"
        for rule_id in [
            r
            for r, rule in cloud["secgroup_rules"].items()
            if rule["security_group_id"] == obj["id"]
        ]:
            del cloud["secgroup_rules"][rule_id]
        return None


class SecGroupRule(CloudResource):
    name = "openstack_networking_secgroup_rule_v2"
    collection = "secgroup_rules"
    attributes = (
        Attribute("security_group_id", S(), required=True, requires_replace=True),
        Attribute("direction", S(), required=True, requires_replace=True),
        Attribute("ethertype", S(), required=True, requires_replace=True),
        Attribute("protocol", S(), optional=True, requires_replace=True),
        Attribute("port_range_min", N(), optional=True, computed=True, requires_replace=True),
        Attribute("port_range_max", N(), optional=True, computed=True, requires_replace=True),
        Attribute("remote_ip_prefix", S(), optional=True, computed=True, requires_replace=True),
    )

    def check(self, cloud, obj):
        if obj["security_group_id"] not in cloud["secgroups"]:
            return f"security group {obj['security_group_id']} does not exist"
        if obj["direction"] not in ("ingress", "egress"):
            return f"direction must be ingress or egress, not {obj['direction']}"
        if obj["ethertype"] not in ("IPv4", "IPv6"):
            return f"ethertype must be IPv4 or IPv6, not {obj['ethertype']}"
        prefix = obj.get("remote_ip_prefix")
        if prefix and ipaddress.ip_network(prefix).version != int(obj["ethertype"][-1]):
            return f"remote_ip_prefix {prefix} does not match ethertype {obj['ethertype']}"
        return None

    def computed(self, cloud, obj):
        return {
            "port_range_min": obj.get("port_range_min") or 0,
            "port_range_max": obj.get("port_range_max") or 0,
            "remote_ip_prefix": obj.get("remote_ip_prefix") or "",
        }


class FloatingIp(CloudResource):
    name = "openstack_networking_floatingip_v2"
    collection = "floating_ips"
    attributes = (
        Attribute("pool", S(), required=True, requires_replace=True),
        Attribute("address", S(), optional=True, computed=True, requires_replace=True),
        Attribute("description", S(), optional=True),
    )

    def check(self, cloud, obj):
        if obj["pool"] not in cloud["floating_ip_pools"]:
            return f"floating IP pool {obj['pool']} does not exist"
        return None

    def computed(self, cloud, obj):
        if obj.get("address"):
            return {}
        n = len(cloud["floating_ips"]) + 10
        while any(f["address"] == f"203.0.113.{n}" for f in cloud["floating_ips"].values()):
            n += 1
        return {"address": f"203.0.113.{n}"}


class FloatingIpAssociate(CloudResource):
    name = "openstack_networking_floatingip_associate_v2"
    collection = "floating_ip_associations"
    attributes = (
        Attribute("floating_ip", S(), required=True, requires_replace=True),
        Attribute("port_id", S(), required=True, requires_replace=True),
        Attribute("fixed_ip", S(), optional=True, computed=True),
    )

    @staticmethod
    def _fip(cloud, address):
        return next((f for f in cloud["floating_ips"].values() if f["address"] == address), None)

    def check(self, cloud, obj):
        fip = self._fip(cloud, obj["floating_ip"])
        if fip is None:
            return f"floating IP {obj['floating_ip']} does not exist"
        if fip.get("port_id") not in (None, obj["port_id"]):
            return f"floating IP {obj['floating_ip']} is associated with port {fip['port_id']}"
        if obj["port_id"] not in cloud["ports"]:
            return f"port {obj['port_id']} does not exist"
        return None

    def computed(self, cloud, obj):
        self._fip(cloud, obj["floating_ip"])["port_id"] = obj["port_id"]
        return {"fixed_ip": cloud["ports"][obj["port_id"]]["all_fixed_ips"][0]}

    def on_delete(self, cloud, obj):
        fip = self._fip(cloud, obj["floating_ip"])
        if fip is not None:
            fip["port_id"] = None  # disassociated; the address itself stays allocated
        return None


# --- DNS -------------------------------------------------------------------------------------


class RecordSet(CloudResource):
    name = "openstack_dns_recordset_v2"
    collection = "recordsets"
    attributes = (
        Attribute("zone_id", S(), required=True, requires_replace=True),
        Attribute("name", S(), required=True, requires_replace=True),
        Attribute("type", S(), optional=True, computed=True, requires_replace=True),
        Attribute("ttl", N(), optional=True, computed=True),
        Attribute("records", types.List(S()), optional=True),
        Attribute("description", S(), optional=True),
    )

    def check(self, cloud, obj):
        zone = next((z for z in cloud["dns_zones"] if z["id"] == obj["zone_id"]), None)
        if zone is None:
            return f"zone {obj['zone_id']} does not exist"
        if not obj["name"].endswith("." + zone["name"]):
            return f"record {obj['name']} is not inside zone {zone['name']}"
        version = {"A": 4, "AAAA": 6}.get(obj.get("type"))
        for record in obj.get("records") or []:
            try:
                if version and ipaddress.ip_address(record).version != version:
                    raise ValueError
            except ValueError:
                return f"{obj.get('type')} record {record!r} is not an IPv{version} address"
        return None

    def computed(self, cloud, obj):
        return {"ttl": obj.get("ttl") or 3600, "type": obj.get("type") or "A"}


# --- data sources ----------------------------------------------------------------------------


class Lookup(DataSource):
    name: ClassVar[str]
    attributes: ClassVar[tuple[Attribute, ...]]

    def __init__(self, provider: Provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=0, attributes=[Attribute("id", S(), computed=True), *cls.attributes])

    def read(self, ctx, config):
        found = self.find(cloudfile.read(_cloud_path()), config)
        if isinstance(found, str):
            ctx.diagnostics.add_error(f"{self.name}: {found}")
            return None
        return {**config, **found}

    def find(self, cloud: dict, config: dict) -> dict | str:
        raise NotImplementedError


class Image(Lookup):
    name = "openstack_images_image_v2"
    attributes = (
        Attribute("name", S(), optional=True),
        Attribute("most_recent", B(), optional=True),
    )

    def find(self, cloud, config):
        images = [i for i in cloud["images"] if i["name"] == config["name"]]
        if not images:
            return f"no image named {config['name']!r}"
        if len(images) > 1 and not config.get("most_recent"):
            return f"{len(images)} images are named {config['name']!r}: set most_recent"
        return {"id": max(images, key=lambda i: i["created_at"])["id"]}


class Network(Lookup):
    name = "openstack_networking_network_v2"
    attributes = (Attribute("name", S(), optional=True),)

    def find(self, cloud, config):
        for network in cloud["networks"]:
            if network["name"] == config["name"]:
                return {"id": network["id"]}
        return f"no network named {config['name']!r}"


class DnsZone(Lookup):
    name = "openstack_dns_zone_v2"
    attributes = (Attribute("name", S(), optional=True),)

    def find(self, cloud, config):
        for zone in cloud["dns_zones"]:
            if zone["name"] == config["name"]:
                return {"id": zone["id"]}
        return f"no DNS zone named {config['name']!r}"


class OpenStack(Provider):
    def get_model_prefix(self) -> str:
        return ""  # each class names its full type

    def full_name(self) -> str:
        return "registry.terraform.io/terraform-provider-openstack/openstack"

    def get_provider_schema(self, diags) -> Schema:
        return Schema(
            attributes=[
                Attribute("cloud", S(), optional=True),
                Attribute("region", S(), optional=True),
            ]
        )

    def validate_config(self, diags, config) -> None:
        return None

    def configure_provider(self, diags, config) -> None:
        if not os.environ.get(cloudfile.CLOUD_FILE_VAR):
            diags.add_error(
                f"{cloudfile.CLOUD_FILE_VAR} is not set: it names the fake cloud's file"
            )

    def get_data_sources(self) -> list:
        return [Image, Network, DnsZone]

    def get_resources(self) -> list:
        return [Instance, VolumeAttach, Volume, Port, SecGroup, SecGroupRule, FloatingIp,
                FloatingIpAssociate, RecordSet]  # fmt: skip


class _StopOnlyOnShutdown(runner._ShutdownInterceptor):
    """The framework ends its server at StopProvider, killing calls in flight; a real provider
    lets them finish, and Terraform records what they made. Only Shutdown ends the server here."""

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.endswith("/StopProvider"):
            return continuation(handler_call_details)
        return super().intercept_service(continuation, handler_call_details)


def main() -> None:
    # Like real (Go) providers, ignore the terminal's Ctrl-C: Terraform asks us to stop, and
    # finishes what is in flight first, so an interrupted apply still records what exists.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runner._ShutdownInterceptor = _StopOnlyOnShutdown
    runner.run_provider(OpenStack())
