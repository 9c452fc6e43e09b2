"""End to end against real Terraform and the fake OpenStack cloud: a dev hub is planned, applied,
rebuilt without losing its volumes and destroyed; a prod hub's adopted volumes and address survive
its destruction."""

from __future__ import annotations

import json

import yaml

from callysto_infra import environments, hubs, locking
from tests.tfcloud import cloud, provider_cli_config, terraform_bin  # noqa: F401
from tests.tfprovider import cloud as cloudfile

INSTANCE = 'module.hub["brave-otter"].openstack_compute_instance_v2.hub'


def edit_env(envs_dir, name, change) -> None:
    """Edit env.yaml as an operator would (change is applied to the parsed document)."""
    path = envs_dir / name / "env.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def outputs(envs_dir, name) -> dict:
    state = json.loads((envs_dir / name / "terraform.tfstate").read_text())
    return {key: value["value"] for key, value in state["outputs"].items()}


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def test_dev_hub_lifecycle_plan_apply_rebuild_destroy(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("terraform", "hub", "new", "dev", "brave-otter"))
    # A hand edit of env.yaml reaches the next plan (no generated copy to forget).
    edit_env(envs_dir, "brave-otter", lambda d: d["cloud"].update(floating_ip_pool="public"))

    planned = ok(callysto("terraform", "plan", "--env", "brave-otter"))
    assert "environment brave-otter (dev, brave-otter.callysto.farm)" in planned.stderr
    assert (envs_dir / "brave-otter" / "terraform.tfplan").exists()
    assert not any(cloud.counts().values()), "a plan must not change the cloud"

    # The saved plan is current, so apply applies it without asking (stdin is empty).
    applied = ok(callysto("terraform", "apply", "--env", "brave-otter"))
    assert "applying the plan saved by 'callysto terraform plan'" in applied.stderr
    assert "Apply complete!" in applied.stdout, "Terraform's own progress is shown"
    assert not (envs_dir / "brave-otter" / "terraform.tfplan").exists()

    counts = cloud.counts()
    assert counts["instances"] == 1
    assert counts["volumes"] == 2
    assert counts["volume_attachments"] == 2
    assert counts["secgroups"] == 1
    assert counts["secgroup_rules"] == 8  # 22, 80, 443/tcp and ICMP, for IPv4 and IPv6
    assert counts["recordsets"] == 2
    assert counts["floating_ips"] == 1

    state = cloud.read()
    instance = cloud.one("instances")
    volumes = sorted(state["volumes"])
    fip = cloud.one("floating_ips")
    rules = {
        (r["ethertype"], r["protocol"], r["port_range_min"])
        for r in state["secgroup_rules"].values()
    }
    assert ("IPv4", "tcp", 22) in rules and ("IPv6", "tcp", 443) in rules
    assert ("IPv6", "ipv6-icmp", 0) in rules
    records = {r["type"]: r for r in state["recordsets"].values()}
    assert records["A"]["name"] == "brave-otter.callysto.farm."
    assert records["A"]["records"] == [fip["address"]]
    assert ":" in records["AAAA"]["records"][0]
    assert instance["name"] == "brave-otter.callysto.farm"
    assert "#cloud-config" in instance["user_data"] and "ptty2u" in instance["user_data"]
    attached = {a["volume_id"]: a["instance_id"] for a in state["volume_attachments"].values()}
    assert attached == {v: instance["id"] for v in volumes}

    # The contract with the inventory, quotas and ssh.
    out = outputs(envs_dir, "brave-otter")
    ordered = out["hubs"]["brave-otter"]["volume_ids"]
    assert sorted(ordered) == volumes
    assert out["hosts"] == {
        "brave-otter.callysto.farm": {
            "name": "brave-otter.callysto.farm",
            "address": fip["address"],
            "ssh_user": "ptty2u",
            "groups": ["hub", "dev", "brave-otter"],
            "zfs_disk_1": f"/dev/disk/by-id/virtio-{ordered[0][:20]}",
            "zfs_disk_2": f"/dev/disk/by-id/virtio-{ordered[1][:20]}",
        }
    }
    (hub,) = hubs.hubs(environments.load("brave-otter"))
    assert hub.address == fip["address"] and hub.zfs_disks[0].endswith(ordered[0][:20])

    targets = ok(callysto("terraform", "list-targets", "--env", "brave-otter", "--json"))
    assert INSTANCE in json.loads(targets.stdout)
    shown = ok(callysto("terraform", "show", "--env", "brave-otter", "--json"))
    assert json.loads(shown.stdout)["values"]["outputs"]["hosts"]["value"] == out["hosts"]

    # Rebuild: a new instance, the same two volumes (same IDs, same data), the same address.
    ok(callysto("terraform", "hub", "rebuild", "--env", "brave-otter", "--auto-approve"))
    state = cloud.read()
    rebuilt = cloud.one("instances")
    assert rebuilt["id"] != instance["id"]
    assert sorted(state["volumes"]) == volumes
    attached = {a["volume_id"]: a["instance_id"] for a in state["volume_attachments"].values()}
    assert attached == {v: rebuilt["id"] for v in volumes}
    assert outputs(envs_dir, "brave-otter")["hosts"] == out["hosts"]

    # Replacing the volumes too needs the environment's name typed; anything else changes nothing.
    refused = callysto(
        "terraform", "hub", "rebuild", "--env", "brave-otter", "--with-volumes", "--auto-approve",
        input="yes\n",
    )  # fmt: skip
    assert refused.returncode == 1 and "aborted: nothing was changed" in refused.stderr
    assert sorted(cloud.read()["volumes"]) == volumes
    ok(
        callysto(
            "terraform", "hub", "rebuild", "--env", "brave-otter", "--with-volumes",
            "--auto-approve", input="brave-otter\n",
        )
    )  # fmt: skip
    new_volumes = sorted(cloud.read()["volumes"])
    assert len(new_volumes) == 2 and not set(new_volumes) & set(volumes)

    # Every mutating command left a private copy of the state it started from.
    copies = locking.backups(envs_dir / "brave-otter" / "terraform.tfstate")
    assert len(copies) >= 2
    assert all(c.stat().st_mode & 0o077 == 0 for c in copies)

    destroyed = ok(
        callysto("terraform", "destroy", "--env", "brave-otter", "--auto-approve", input="")
    )
    assert "Destroy complete!" in destroyed.stdout or "Apply complete!" in destroyed.stdout
    assert not any(cloud.counts().values()), cloud.counts()


def test_apply_without_a_saved_plan_shows_the_summary_and_asks(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("env", "new", "dev", "quick-fox"))
    declined = callysto("terraform", "apply", "--env", "quick-fox", input="n\n")
    assert declined.returncode == 1, declined.stderr
    assert "no current saved plan: planning now" in declined.stderr
    assert '+ module.hub["quick-fox"].openstack_compute_instance_v2.hub (create)' in declined.stdout
    assert "to add, 0 to change, 0 to destroy." in declined.stdout
    assert "aborted: nothing was changed" in declined.stderr
    assert not any(cloud.counts().values())
    assert not (envs_dir / "quick-fox" / "terraform.tfstate").exists()

    ok(callysto("terraform", "apply", "--env", "quick-fox", input="y\n"))
    assert cloud.counts()["instances"] == 1


def test_a_saved_plan_is_not_applied_after_env_yaml_changed(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("env", "new", "dev", "calm-crane"))
    ok(callysto("terraform", "plan", "--env", "calm-crane"))
    edit_env(envs_dir, "calm-crane", lambda d: d["hub"].update(volume_size_gb=40))
    result = callysto("terraform", "apply", "--env", "calm-crane", input="n\n")
    assert result.returncode == 1
    assert "no current saved plan: planning now" in result.stderr
    assert not any(cloud.counts().values())
    tfvars = json.loads((envs_dir / "calm-crane" / "terraform.tfvars.json").read_text())
    assert tfvars["volume_size_gb"] == 40


def test_prod_destroy_keeps_the_adopted_volumes_and_floating_ip(callysto, envs_dir, cloud):  # noqa: F811
    volume_ids = [cloudfile.add_volume(cloud.path, f"prod-zfs-{i}") for i in (1, 2)]
    cloudfile.add_floating_ip(cloud.path, "199.116.235.10")
    ok(callysto("terraform", "hub", "new", "prod", "prod"))

    def adopt(document):
        document["hub"].update(existing_volumes=volume_ids, floating_ip="199.116.235.10")
        document["cloud"].update(disk_id_prefix="scsi-0QEMU_QEMU_HARDDISK_", dns_zone="callysto.ca")

    edit_env(envs_dir, "prod", adopt)
    applied = ok(
        callysto("terraform", "apply", "--env", "prod", "--auto-approve", "--confirm-prod", "prod")
    )
    assert "PRODUCTION" in applied.stderr
    assert cloud.counts()["volumes"] == 2, "adopted volumes are not created again"
    hosts = outputs(envs_dir, "prod")["hosts"]
    assert hosts["hub.callysto.ca"]["address"] == "199.116.235.10"
    assert hosts["hub.callysto.ca"]["zfs_disk_2"] == (
        f"/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_{volume_ids[1][:20]}"
    )
    assert hosts["hub.callysto.ca"]["groups"] == ["hub", "prod", "prod"]
    port = cloud.one("ports")
    assert cloud.one("floating_ips")["port_id"] == port["id"]

    before = (envs_dir / "prod" / "terraform.tfstate").read_bytes()
    for refused_args in ([], ["--confirm-prod", "brave-otter"]):
        refused = callysto(
            "terraform", "destroy", "--env", "prod", "--auto-approve", *refused_args, input=""
        )
        assert refused.returncode == 2, refused.stderr
        assert "--confirm-prod prod" in refused.stderr
    assert (envs_dir / "prod" / "terraform.tfstate").read_bytes() == before
    assert cloud.counts()["instances"] == 1

    ok(
        callysto(
            "terraform", "destroy", "--env", "prod", "--auto-approve", "--confirm-prod", "prod"
        )
    )
    state = cloud.read()
    assert state["instances"] == {}
    assert sorted(state["volumes"]) == sorted(volume_ids)
    assert [f["address"] for f in state["floating_ips"].values()] == ["199.116.235.10"]
    assert cloud.one("floating_ips")["port_id"] is None
