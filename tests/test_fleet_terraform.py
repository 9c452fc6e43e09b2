"""A fleet's hubs in env.yaml, against real Terraform and the fake OpenStack cloud: one hub module
instance per hub, so adding or removing a hub touches no other; a count gets stable pet names;
a state from before fleets is moved, not replaced; prod fleets must adopt each hub's volumes."""

from __future__ import annotations

import json
import subprocess

import yaml

from callysto_infra import environments, hubs
from tests.tfcloud import cloud, provider_cli_config, terraform_bin  # noqa: F401

ENV = "brave-otter"


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def edit_env(envs_dir, change, name=ENV) -> None:
    path = envs_dir / name / "env.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def instances(cloud) -> dict[str, str]:  # noqa: F811
    return {i["name"]: i["id"] for i in cloud.read()["instances"].values()}


def test_hubs_are_added_and_removed_one_by_one(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("terraform", "hub", "new", "dev", ENV))
    edit_env(envs_dir, lambda d: d.update(hubs=[{"name": "hub-a"}, {"name": "hub-b"}]))
    ok(callysto("terraform", "apply", "--env", ENV, "--auto-approve"))
    first = instances(cloud)
    assert set(first) == {"hub-a.callysto.farm", "hub-b.callysto.farm"}
    assert cloud.counts()["volumes"] == 4
    env = environments.load(ENV)
    assert [hub.name for hub in hubs.hubs(env)] == sorted(first)
    listed = ok(callysto("ansible", "hosts", "--env", ENV, "--group", "hub")).stdout.split()
    assert listed == sorted(first)

    # A third hub: created, nothing else replaced or changed.
    edit_env(envs_dir, lambda d: d["hubs"].append({"name": "hub-c", "capacity": 200}))
    planned = ok(callysto("terraform", "plan", "--env", ENV))
    assert "0 to change, 0 to destroy" in planned.stdout, planned.stdout
    ok(callysto("terraform", "apply", "--env", ENV, "--auto-approve"))
    after = instances(cloud)
    assert {name: after[name] for name in first} == first
    assert "hub-c.callysto.farm" in after

    # Removing hub-b removes its resources only.
    edit_env(envs_dir, lambda d: d.update(hubs=[h for h in d["hubs"] if h["name"] != "hub-b"]))
    ok(callysto("terraform", "apply", "--env", ENV, "--auto-approve"))
    left = instances(cloud)
    assert left == {k: v for k, v in after.items() if k != "hub-b.callysto.farm"}
    assert cloud.counts()["volumes"] == 4

    # Rebuilding needs to know which hub, and replaces that one only.
    refused = callysto("terraform", "hub", "rebuild", "--env", ENV, "--auto-approve")
    assert refused.returncode == 2 and "--hub NAME" in refused.stderr
    ok(callysto("terraform", "hub", "rebuild", "--env", ENV, "--hub", "hub-c", "--auto-approve"))
    rebuilt = instances(cloud)
    assert rebuilt["hub-a.callysto.farm"] == left["hub-a.callysto.farm"]
    assert rebuilt["hub-c.callysto.farm"] != left["hub-c.callysto.farm"]
    ok(callysto("terraform", "destroy", "--env", ENV, "--auto-approve", input=""))
    assert not any(cloud.counts().values())


def test_a_count_of_hubs_gets_the_same_pet_names_every_time(envs_dir):
    env = environments.create("dev", ENV)
    edit_env(envs_dir, lambda d: d.update(hubs=3))
    names = [hub.name for hub in environments.load(ENV).config.fleet]
    assert names[0] == ENV and len(set(names)) == 3
    assert [hub.name for hub in environments.load(ENV).config.fleet] == names
    assert env.config.fleet[0].name == ENV


def test_a_state_from_before_fleets_is_moved_not_replaced(callysto, envs_dir, cloud, terraform_bin):  # noqa: F811
    ok(callysto("terraform", "hub", "new", "dev", ENV))
    ok(callysto("terraform", "apply", "--env", ENV, "--auto-approve"))
    before = instances(cloud)
    # The state as an older callysto left it: the one hub at module.hub.
    subprocess.run(
        [terraform_bin, f"-chdir={envs_dir / ENV}", "state", "mv",
         f'module.hub["{ENV}"]', "module.hub"],
        check=True, capture_output=True,
    )  # fmt: skip
    state = json.loads((envs_dir / ENV / "terraform.tfstate").read_text())
    assert {r.get("module") for r in state["resources"]} == {"module.hub"}
    # ... and initialised before the root called the front door's module.
    listing = envs_dir / ENV / ".terraform" / "modules" / "modules.json"
    modules = json.loads(listing.read_text())
    modules["Modules"] = [m for m in modules["Modules"] if m["Key"] != "frontdoor"]
    listing.write_text(json.dumps(modules))
    planned = ok(callysto("terraform", "plan", "--env", ENV))
    assert "initialising" in planned.stderr and "again (the root calls new modules)" in (
        planned.stderr
    )
    assert f'moving the hub in the state to module.hub["{ENV}"]' in planned.stderr
    assert "No changes" in planned.stdout or "0 to add, 0 to change, 0 to destroy" in (
        planned.stdout
    ), planned.stdout
    assert instances(cloud) == before
    state = json.loads((envs_dir / ENV / "terraform.tfstate").read_text())
    assert {r.get("module") for r in state["resources"]} == {f'module.hub["{ENV}"]'}


def test_fleet_settings_are_checked_in_one_line(callysto, envs_dir, one_line_error):
    ok(callysto("env", "new", "dev", ENV))
    for value, fragment in [
        ([{"name": "a"}, {"name": "a"}], "twice: a"),
        ([], "lists no hub"),
        ([{"name": "a", "state": "closed"}], "hubs.0.state"),
        ([{"name": "a", "capacity": -1}], "hubs.0.capacity"),
        (0, "hubs"),
    ]:
        edit_env(envs_dir, lambda d, v=value: d.update(hubs=v))
        one_line_error(callysto("ansible", "hosts", "--env", ENV), fragment, code=2)
    ok(callysto("env", "new", "prod", "big"))
    edit_env(envs_dir, lambda d: d.update(hubs=3), name="big")
    one_line_error(callysto("ansible", "hosts", "--env", "big"), "list its hubs by name", code=2)
    ok(callysto("env", "new", "local", "here"))
    # A local environment with hubs is a fleet on this machine: pet-named hubs and a front door.
    edit_env(envs_dir, lambda d: d.update(hubs=2), name="here")
    listed = ok(callysto("ansible", "hosts", "--env", "here")).stdout.split()
    assert len(listed) == 3 and "front-door" in listed and "here" not in listed
    edit_env(envs_dir, lambda d: d.update(hubs=[{"name": "a", "floating_ip": "203.0.113.9"}]),
             name="here")  # fmt: skip
    one_line_error(callysto("ansible", "hosts", "--env", "here"), "runs on this machine", code=2)
    edit_env(envs_dir, lambda d: d.update(hubs=[{"name": "front-door"}]), name="here")
    one_line_error(
        callysto("ansible", "hosts", "--env", "here"), "is taken on a local fleet", code=2
    )
