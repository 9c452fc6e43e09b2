"""The guards around Terraform: each bad input or collision is one line on stderr, a non-zero
exit, and leaves the state (and the cloud) as it was."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from callysto_infra import locking, terraform
from tests.conftest import CALLYSTO, PROJECT
from tests.tfcloud import cloud, provider_cli_config, terraform_bin  # noqa: F401
from tests.tfprovider import cloud as cloudfile


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


@pytest.fixture
def applied(callysto, envs_dir, cloud):  # noqa: F811
    """A dev hub that exists: its state and its cloud objects."""
    ok(callysto("env", "new", "dev", "brave-otter"))
    ok(callysto("terraform", "apply", "--env", "brave-otter", "--auto-approve"))
    return envs_dir / "brave-otter"


def test_list_targets_agrees_with_terraform(applied, terraform_bin, callysto):  # noqa: F811
    ours = json.loads(
        ok(callysto("terraform", "list-targets", "--env", "brave-otter", "--json")).stdout
    )
    theirs = subprocess.run(
        [terraform_bin, f"-chdir={applied}", "state", "list"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    # Data sources cannot be tainted or replaced: they are not targets.
    assert ours == sorted(t for t in theirs if ".data." not in t)
    assert (
        'module.hub["brave-otter"].openstack_networking_secgroup_rule_v2.ingress["ipv4-tcp-22"]'
        in ours
    )


def test_taint_checks_the_target_exists_first(applied, callysto, cloud, one_line_error):  # noqa: F811
    state = (applied / "terraform.tfstate").read_bytes()
    backups = locking.backups(applied / "terraform.tfstate")
    result = callysto(
        "terraform",
        "taint",
        "--env",
        "brave-otter",
        'module.hub["brave-otter"].openstack_compute_instance_v2.hubb',
    )
    one_line_error(
        result,
        "is not a resource of environment 'brave-otter'",
        "list-targets",
        code=2,
        alone=False,
    )
    assert (applied / "terraform.tfstate").read_bytes() == state
    assert locking.backups(applied / "terraform.tfstate") == backups

    one_line_error(
        callysto("terraform", "taint", "--env", "brave-otter", "$(reboot)"),
        "invalid Terraform address",
        code=2,
        alone=False,
    )

    target = 'module.hub["brave-otter"].openstack_compute_instance_v2.hub'
    ok(callysto("terraform", "taint", "--env", "brave-otter", target))
    taints = [
        i.get("status")
        for r in json.loads((applied / "terraform.tfstate").read_text())["resources"]
        if r["type"] == "openstack_compute_instance_v2"
        for i in r["instances"]
    ]
    assert taints == ["tainted"]


def test_a_second_command_on_a_locked_environment_fails_at_once(
    applied,
    callysto,
    cloud,  # noqa: F811
    one_line_error,
):
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from callysto_infra import locking\n"
            "with locking.hold(Path(sys.argv[1]), 'brave-otter', 'callysto terraform apply'):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
            str(applied),
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        state = (applied / "terraform.tfstate").read_bytes()
        for args in (
            ["apply", "--auto-approve"],
            ["destroy", "--auto-approve"],
            ["plan"],
            ["taint", 'module.hub["brave-otter"].openstack_compute_instance_v2.hub'],
            ["hub", "rebuild", "--auto-approve"],
        ):
            result = callysto("terraform", *args, "--env", "brave-otter")
            one_line_error(
                result,
                "environment 'brave-otter' is busy",
                f"pid {holder.pid}",
                f"user {getpass.getuser()}",
                "running 'callysto terraform apply' since",
                code=1,
                alone=False,
            )
        assert (applied / "terraform.tfstate").read_bytes() == state
        assert cloud.counts()["instances"] == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # The lock went with its holder.
    ok(callysto("terraform", "plan", "--env", "brave-otter"))


def test_a_corrupt_state_stops_every_command_and_stays_as_it_is(
    applied,
    callysto,
    cloud,  # noqa: F811
    one_line_error,
):
    state_file = applied / "terraform.tfstate"
    corrupt = state_file.read_bytes()[:200]  # a state cut short, as by a full disk
    state_file.write_bytes(corrupt)
    backups = locking.backups(state_file)
    for args in (
        ["plan"],
        ["apply", "--auto-approve"],
        ["destroy", "--auto-approve"],
        ["list-targets"],
        ["show"],
        ["taint", 'module.hub["brave-otter"].openstack_compute_instance_v2.hub'],
        ["hub", "rebuild", "--auto-approve"],
    ):
        result = callysto("terraform", *args, "--env", "brave-otter")
        one_line_error(result, "terraform.tfstate is corrupt", "state-backups", code=1, alone=False)
        assert state_file.read_bytes() == corrupt
    assert locking.backups(state_file) == backups
    assert cloud.counts()["instances"] == 1 and cloud.counts()["volumes"] == 2


def test_a_plan_made_for_another_environment_is_refused(callysto, envs_dir, cloud, one_line_error):  # noqa: F811
    ok(callysto("env", "new", "dev", "first"))
    ok(callysto("env", "new", "dev", "second"))
    ok(callysto("terraform", "plan", "--env", "first"))
    foreign = envs_dir / "first" / "terraform.tfplan"
    result = callysto(
        "terraform", "apply", "--env", "second", "--auto-approve", "--plan", str(foreign)
    )
    one_line_error(result, "was made for environment 'first', not 'second'", code=2, alone=False)
    assert not (envs_dir / "second" / "terraform.tfstate").exists()
    assert not any(cloud.counts().values())
    # Moved into the other environment's place, it is still not taken as that one's plan.
    (envs_dir / "first" / "terraform.tfplan").rename(envs_dir / "second" / "terraform.tfplan")
    (envs_dir / "first" / "terraform.tfplan.json").rename(
        envs_dir / "second" / "terraform.tfplan.json"
    )
    moved = callysto("terraform", "apply", "--env", "second", input="n\n")
    assert moved.returncode == 1 and "no current saved plan" in moved.stderr
    assert not any(cloud.counts().values())


def test_a_missing_binary_says_how_to_install_one(callysto, envs_dir, tmp_path, one_line_error):
    ok(callysto("env", "new", "dev", "brave-otter"))
    configured = callysto(
        "terraform", "plan", "--env", "brave-otter",
        env={"CALLYSTO_TERRAFORM": str(tmp_path / "no-such-terraform")},
    )  # fmt: skip
    one_line_error(configured, "CALLYSTO_TERRAFORM=", "install Terraform", code=1, alone=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    for args in (["setup"], ["plan", "--env", "brave-otter"]):
        result = callysto("terraform", *args, env={"PATH": str(empty), "CALLYSTO_TERRAFORM": ""})
        one_line_error(
            result, "neither 'terraform' nor 'tofu' was found", "OpenTofu", code=1, alone=False
        )
    assert not (envs_dir / "brave-otter" / "terraform.tfstate").exists()


def test_setup_reports_the_binary_and_its_version(callysto, terraform_bin):  # noqa: F811
    result = ok(callysto("terraform", "setup", "--json", env={"CALLYSTO_TERRAFORM": terraform_bin}))
    info = json.loads(result.stdout)
    expected = json.loads(
        subprocess.run([terraform_bin, "version", "-json"], capture_output=True, text=True).stdout
    )["terraform_version"]
    assert info == {
        "binary": "terraform",
        "path": terraform_bin,
        "source": "CALLYSTO_TERRAFORM",
        "version": expected,
    }
    human = ok(callysto("terraform", "setup", env={"CALLYSTO_TERRAFORM": terraform_bin}))
    assert human.stdout.startswith(f"terraform {expected} ")


def test_a_local_environment_has_nothing_for_terraform(callysto, one_line_error):
    ok(callysto("env", "new", "local"))
    one_line_error(callysto("terraform", "plan", "--env", "local"), "is local", code=2, alone=False)


def test_prod_must_name_the_volumes_and_address_it_adopts(
    callysto,
    envs_dir,
    cloud,  # noqa: F811
    one_line_error,
):
    ok(callysto("terraform", "hub", "new", "prod", "prod"))
    result = callysto("terraform", "plan", "--env", "prod")
    one_line_error(result, "hub.existing_volumes", "adopts its two existing", code=2, alone=False)
    assert not (envs_dir / "prod" / "terraform.tfplan").exists()


def test_terraform_itself_refuses_a_prod_that_adopts_nothing(callysto, cloud, terraform_bin):  # noqa: F811
    """Whoever runs Terraform in a prod root, with variables that name no volumes: the plan
    stops with the reason, and nothing is created (volumes least of all)."""
    from callysto_infra import environments

    ok(callysto("env", "new", "dev", "prod-by-hand"))
    env = environments.load("prod-by-hand")
    terraform.write_root(env)
    tfvars = json.loads((env.path / terraform.TFVARS_FILE).read_text())
    tfvars.update(environment_type="prod", floating_ip_pool="public")
    (env.path / terraform.TFVARS_FILE).write_text(json.dumps(tfvars))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [terraform_bin, f"-chdir={env.path}", *args, "-input=false", "-no-color"],
            capture_output=True, text=True,
        )  # fmt: skip

    assert run("init").returncode == 0
    result = run("plan")
    assert result.returncode != 0
    assert "A prod environment adopts its two existing volumes" in " ".join(result.stderr.split())
    assert not any(cloud.counts().values())


def test_an_older_generated_root_is_replaced_before_the_next_command(callysto, envs_dir, cloud):  # noqa: F811
    """An environment made when there was one template per type keeps working: its copies
    have the names of the one template's files and are rewritten before each command."""
    ok(callysto("env", "new", "dev", "brave-otter"))
    old_root = envs_dir / "brave-otter"
    for name in ("main.tf", "variables.tf", "outputs.tf"):
        (old_root / name).write_text(f"# a copy of terraform/roots/dev/{name}\n")
    ok(callysto("terraform", "plan", "--env", "brave-otter"))
    for source in (*terraform.ROOT_DIR.glob("*.tf"), terraform.VERSIONS_FILE):
        assert (old_root / source.name).read_text() == source.read_text()


def test_an_interrupted_apply_leaves_a_state_that_matches_the_cloud(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("env", "new", "dev", "slow-otter"))
    ok(callysto("terraform", "init", "--env", "slow-otter"))
    environ = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir), cloudfile.DELAY_VAR: "5"}
    apply = subprocess.Popen(
        [str(CALLYSTO), "terraform", "apply", "--env", "slow-otter", "--auto-approve"],
        env=environ, cwd=PROJECT, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(600):  # the instance is next once its port exists
            if cloud.counts()["ports"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the apply never reached the port")
        time.sleep(1.5)
        os.killpg(apply.pid, signal.SIGINT)  # Ctrl-C at the terminal: the whole process group
        out, err = apply.communicate(timeout=300)
    finally:
        if apply.poll() is None:
            os.killpg(apply.pid, signal.SIGKILL)
    assert apply.returncode != 0, (out, err)
    assert "Traceback" not in err
    assert "Interrupt received" in out + err, "the interrupt reached Terraform mid-apply"
    assert cloud.counts()["instances"] == 1, "the instance being created when interrupted finished"

    state = json.loads((envs_dir / "slow-otter" / "terraform.tfstate").read_text())
    recorded = {
        i["attributes"]["id"]
        for r in state["resources"]
        if r["mode"] == "managed"
        for i in r["instances"]
    }
    existing = cloud.read()
    for collection in ("instances", "volumes", "ports", "secgroups"):
        assert set(existing[collection]) <= recorded, f"{collection} exist but are not in the state"

    # The lock went with the interrupted command, and the next apply finishes the job once.
    ok(callysto("terraform", "apply", "--env", "slow-otter", "--auto-approve"))
    counts = cloud.counts()
    assert (counts["instances"], counts["volumes"], counts["ports"]) == (1, 2, 1)


def test_state_backups_keep_the_newest_ten(tmp_path):
    state = tmp_path / "terraform.tfstate"
    for serial in range(12):
        state.write_text(json.dumps({"serial": serial}))
        locking.backup(state)
    copies = locking.backups(state)
    assert len(copies) == 10
    assert [json.loads(c.read_text())["serial"] for c in copies] == list(range(2, 12))
    assert locking.backup(tmp_path / "absent.tfstate") is None


def test_terraform_code_is_formatted(terraform_bin):  # noqa: F811
    result = subprocess.run(
        [terraform_bin, "fmt", "-check", "-recursive", "-diff", str(PROJECT / "terraform")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_tfvars_come_from_env_yaml(envs_dir):
    from callysto_infra import environments

    env = environments.create("dev", "brave-otter")
    values = terraform.tfvars(env)
    assert values["environment"] == "brave-otter" and values["environment_type"] == "dev"
    assert values["host"] == {"name": "brave-otter", "domain": "callysto.farm"}
    assert values["hubs"] == {"brave-otter": {"existing_volume_ids": [], "floating_ip": None}}
    assert values["floating_ip_pool"] is None
    assert set(values) == _declared_variables()


def _declared_variables() -> set[str]:
    import re

    text = (terraform.ROOT_DIR / "variables.tf").read_text()
    return set(re.findall(r'^variable "([a-z0-9_]+)"', text, flags=re.M))


def test_a_failing_plan_is_one_line_with_terraforms_reason(
    callysto,
    envs_dir,
    cloud,  # noqa: F811
    one_line_error,
):
    ok(callysto("env", "new", "dev", "brave-otter"))
    (envs_dir / "brave-otter" / "env.yaml").write_text(
        (envs_dir / "brave-otter" / "env.yaml").read_text().replace("callysto-hub", "no-such-image")
    )
    result = callysto("terraform", "apply", "--env", "brave-otter", "--auto-approve")
    one_line_error(
        result,
        "terraform plan failed for environment 'brave-otter'",
        "no-such-image",
        code=1,
        alone=False,
    )
    assert not any(cloud.counts().values())
