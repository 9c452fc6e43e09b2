"""The sign-in proxy on a host of its own (env.yaml frontdoor:), against real Terraform and the
fake OpenStack cloud, and the real Ansible inventory and playbook: the front door is created and
removed without touching the hub, it is in the inventory as the proxy's host but never taken
for a hub, and hub.yml runs the proxy's tasks there and the hub's on the hub."""

from __future__ import annotations

import json

import yaml

from callysto_infra import environments, hubs
from tests.tfcloud import cloud, provider_cli_config, terraform_bin  # noqa: F401

HUB = "brave-otter.callysto.farm"
DOOR = "door.callysto.farm"


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def edit_env(envs_dir, change) -> None:
    path = envs_dir / "brave-otter" / "env.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def hosts_output(envs_dir) -> dict:
    state = json.loads((envs_dir / "brave-otter" / "terraform.tfstate").read_text())
    return state["outputs"]["hosts"]["value"]


def test_a_front_door_comes_and_goes_without_touching_the_hub(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("terraform", "hub", "new", "dev", "brave-otter"))
    edit_env(
        envs_dir,
        lambda d: (
            d["cloud"].update(floating_ip_pool="public"),
            d.update(frontdoor={"name": "door"}),
        ),
    )
    ok(callysto("terraform", "apply", "--env", "brave-otter", "--auto-approve"))

    counts = cloud.counts()
    assert counts["instances"] == 2 and counts["volumes"] == 2, counts
    assert counts["secgroups"] == 2 and counts["floating_ips"] == 2, counts
    instances = {i["name"]: i for i in cloud.read()["instances"].values()}
    assert set(instances) == {HUB, DOOR}
    assert instances[DOOR]["metadata"]["role"] == "frontdoor"
    attached = {a["instance_id"] for a in cloud.read()["volume_attachments"].values()}
    assert attached == {instances[HUB]["id"]}, "the front door holds no students' volumes"
    records = {(r["name"], r["type"]) for r in cloud.read()["recordsets"].values()}
    assert (f"{DOOR}.", "A") in records and (f"{HUB}.", "A") in records

    rows = hosts_output(envs_dir)
    assert rows[DOOR]["groups"] == ["frontdoor", "dev", "brave-otter"]
    assert "zfs_disk_1" not in rows[DOOR]
    env = environments.load("brave-otter")
    assert [hub.name for hub in hubs.hubs(env)] == [HUB], "a front door is never a hub"

    # The inventory: the proxy's group is the front door's, and the hubs know where it is.
    listed = ok(callysto("ansible", "hosts", "--env", "brave-otter", "--json"))
    assert sorted(json.loads(listed.stdout)) == sorted([HUB, DOOR])
    proxy_hosts = ok(callysto("ansible", "hosts", "--env", "brave-otter", "--group", "idp_proxy"))
    assert proxy_hosts.stdout.split() == [DOOR]
    hub_hosts = ok(callysto("ansible", "hosts", "--env", "brave-otter", "--group", "hub"))
    assert hub_hosts.stdout.split() == [HUB]

    # hub.yml: the proxy's tasks run on the front door, the hub's on the hub.
    tasks = ok(callysto("ansible", "list-tasks", "--env", "brave-otter", "hub")).stdout
    plays = [
        (block.split("(", 1)[1].split(")", 1)[0], block) for block in tasks.split("play #")[1:]
    ]
    assert [hosts for hosts, _ in plays] == ["hub", "idp_proxy", "hub"]
    on_proxy = plays[1][1]
    assert "idp_proxy : Configure SimpleSAMLphp" in on_proxy
    assert "zfs :" not in on_proxy and "jupyterhub :" not in on_proxy
    assert "idp_proxy :" not in plays[0][1] + plays[2][1]
    assert "zfs : " in plays[0][1] and "jupyterhub : " in plays[2][1]
    on_door = ok(callysto("ansible", "hosts", "--env", "brave-otter", "--playbook", "hub"))
    assert sorted(on_door.stdout.split()) == sorted([HUB, DOOR])

    # Without the section the front door goes, and the hub is the same instance with its volumes.
    hub_id = instances[HUB]["id"]
    volumes = sorted(cloud.read()["volumes"])
    edit_env(envs_dir, lambda d: d.pop("frontdoor"))
    ok(callysto("terraform", "apply", "--env", "brave-otter", "--auto-approve"))
    left = {i["name"]: i["id"] for i in cloud.read()["instances"].values()}
    assert left == {HUB: hub_id}
    assert sorted(cloud.read()["volumes"]) == volumes
    assert list(hosts_output(envs_dir)) == [HUB]
    proxy_hosts = ok(callysto("ansible", "hosts", "--env", "brave-otter", "--group", "idp_proxy"))
    assert proxy_hosts.stdout.split() == [HUB], "without a front door the hub runs the proxy"

    ok(callysto("terraform", "destroy", "--env", "brave-otter", "--auto-approve", input=""))
    assert not any(cloud.counts().values()), cloud.counts()


def test_front_door_settings_are_checked_in_one_line(callysto, envs_dir, one_line_error):
    ok(callysto("terraform", "hub", "new", "dev", "brave-otter"))
    for section, fragment in [
        ({"name": "brave-otter"}, "is a hub's name"),
        ({"name": "Door!"}, "frontdoor.name"),
        ({"name": "door", "extra": 1}, "frontdoor.extra"),
    ]:
        edit_env(envs_dir, lambda d, s=section: d.update(frontdoor=s))
        refused = callysto("ansible", "hosts", "--env", "brave-otter")
        one_line_error(refused, fragment, code=2)
    ok(callysto("env", "new", "local", "here"))
    path = envs_dir / "here" / "env.yaml"
    path.write_text(path.read_text() + "frontdoor:\n  name: door\n")
    one_line_error(callysto("ansible", "hosts", "--env", "here"), "no 'frontdoor' section", code=2)
