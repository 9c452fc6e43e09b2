"""Issue 16, the state and prod parts: one row per case found by trying to get around the guards.
Each row ran wrongly before (a prod change nobody confirmed, a traceback, a broken or readable
state, a slow read) and is refused in one line, or done right, now. Real Terraform, the local
stand-in cloud, the real `callysto` and `make`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CALLYSTO, PROJECT
from tests.tfcloud import cloud, provider_cli_config, terraform_bin  # noqa: F401
from tests.tfprovider import cloud as cloudfile

DEV = "brave-otter"
INSTANCE = 'module.hub["brave-otter"].openstack_compute_instance_v2.hub'
PROD_INSTANCE = 'module.hub["hub"].openstack_compute_instance_v2.hub'
GOOD_ROW = {
    "name": "hub-01.callysto.farm",
    "address": "203.0.113.1",
    "ssh_user": "ptty2u",
    "groups": ["hub", "dev", DEV],
    "zfs_disk_1": "/dev/disk/by-id/virtio-1",
    "zfs_disk_2": "/dev/disk/by-id/virtio-2",
}

CASES: dict[str, Callable[..., None]] = {}


def case(name: str):
    """A row of the table: NAME, and the check that it now holds."""

    def register(check: Callable[..., None]) -> Callable[..., None]:
        CASES[name] = check
        return check

    return register


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under DIRECTORY with its bytes: 'nothing changed' made checkable."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and ".terraform" not in p.parts and p.name != ".lock"
    }


def state_text(version=4, hosts=None, serial=1) -> str:
    hosts = {"a": GOOD_ROW} if hosts is None else hosts
    return json.dumps(
        {"version": version, "serial": serial, "lineage": "l", "resources": [],
         "outputs": {"hosts": {"value": hosts}}}
    )  # fmt: skip


def with_backups(env_dir: Path) -> Path:
    """A good copy, then a newer broken one (older callysto copied whatever state there was):
    the one to restore is the good one. Returns it."""
    backups = env_dir / "state-backups"
    backups.mkdir(mode=0o700)
    good = backups / "terraform.tfstate.20240101T000000.000000Z"
    good.write_text(state_text())
    (backups / "terraform.tfstate.20240102T000000.000000Z").write_text(state_text(version=99))
    return good


# --- the state check: each bad state refused in one line naming the newest GOOD copy ----------

BAD_STATES = {
    "format version 99": (state_text(version=99), "format version 99"),
    "format version 3": (state_text(version=3), "format version 3"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff".decode("latin-1"), None),
    "null": ("null", "not a Terraform state"),
    "a list": ("[]", "not a Terraform state"),
    "a row without address": (
        state_text(hosts={"a": {k: v for k, v in GOOD_ROW.items() if k != "address"}}),
        "hosts row 'a' has no address",
    ),
    "ssh_port x": (state_text(hosts={"a": {**GOOD_ROW, "ssh_port": "x"}}), "ssh_port 'x'"),
    "an address that is an ssh option": (
        state_text(hosts={"a": {**GOOD_ROW, "address": "-oProxyCommand=touch /tmp/x"}}),
        "has address '-oProxyCommand",
    ),
    "an ssh user that is an option": (
        state_text(hosts={"a": {**GOOD_ROW, "ssh_user": "-oProxyCommand=x"}}),
        "has ssh_user",
    ),
}


def _bad_state_is_refused(callysto, envs_dir, one_line_error, terraform_bin, text, reason):  # noqa: F811
    ok(callysto("env", "new", "dev", DEV))
    env_dir = envs_dir / DEV
    good = with_backups(env_dir)
    state = env_dir / "terraform.tfstate"
    if text.startswith("\x89"):
        state.write_bytes(text.encode("latin-1"))
    else:
        state.write_text(text)
    before = snapshot(env_dir)
    runs = [
        ["ansible", "hosts", "--env", DEV],
        ["ansible", "get-ipv4", "--env", DEV, "hub-01.callysto.farm"],
        ["ssh", "shell", "--env", DEV, "--print", "hub-01.callysto.farm"],
        ["terraform", "plan", "--env", DEV],
        ["terraform", "taint", "--env", DEV, INSTANCE],
    ]
    for args in runs:
        result = callysto(*args, env={"CALLYSTO_TERRAFORM": terraform_bin})
        line = one_line_error(
            result, "terraform.tfstate is corrupt", code=1, alone=args[0] != "terraform"
        )
        assert f"restore the newest good copy, {good}" in line, line
        if reason:
            assert reason in line, line
        assert "ProxyCommand" not in result.stdout
    assert snapshot(env_dir) == before, "a refused state changes nothing, backups included"


for _name, (_text, _reason) in BAD_STATES.items():

    def _check(callysto, envs_dir, one_line_error, terraform_bin, _t=_text, _r=_reason):  # noqa: F811
        _bad_state_is_refused(callysto, envs_dir, one_line_error, terraform_bin, _t, _r)

    case(f"state: {_name}")(_check)


@case("state backups: failed retries keep the last good copies")
def _retries(callysto, envs_dir, cloud):  # noqa: F811
    ok(callysto("env", "new", "dev", DEV))
    env_dir = envs_dir / DEV
    good = with_backups(env_dir)
    broken = json.loads(state_text(version=99))
    broken["resources"] = [
        {"mode": "managed", "module": "module.hub", "type": "openstack_compute_instance_v2",
         "name": "hub", "instances": [{"attributes": {"id": "i-1"}}]}
    ]  # fmt: skip
    (env_dir / "terraform.tfstate").write_text(json.dumps(broken))
    for _ in range(11):  # an operator retrying a command that fails on this state
        assert callysto("terraform", "taint", "--env", DEV, INSTANCE).returncode != 0
    assert good.exists(), "ten failed retries evicted the last good copy"
    assert len(list((env_dir / "state-backups").iterdir())) == 2


@case("state backups: the same state is never copied twice")
def _dedupe(envs_dir):
    from callysto_infra import environments, locking, tfstate

    env = environments.create("dev", DEV)
    env.state_file.write_text(state_text())
    first = tfstate.backup(env)
    assert tfstate.backup(env) == first
    assert locking.backups(env.state_file) == [first]
    assert first.stat().st_mode & 0o777 == 0o600
    assert (env.path / "state-backups").stat().st_mode & 0o777 == 0o700
    env.state_file.write_text(state_text(version=99))
    assert tfstate.backup(env) is None, "a state that fails the check is no backup"
    assert locking.backups(env.state_file) == [first]


@case("lock: a directory at envs/X/.lock is one line")
def _lock_dir(callysto, envs_dir, one_line_error, terraform_bin):  # noqa: F811
    ok(callysto("env", "new", "dev", DEV))
    (envs_dir / DEV / ".lock").mkdir()
    result = callysto("terraform", "plan", "--env", DEV, env={"CALLYSTO_TERRAFORM": terraform_bin})
    one_line_error(result, ".lock of environment 'brave-otter' is a directory", code=1, alone=False)


# --- prod: every change shown and confirmed by name -------------------------------------------


def make_prod(callysto, envs_dir, cloud) -> Path:  # noqa: F811
    volume_ids = [cloudfile.add_volume(cloud.path, f"prod-zfs-{i}") for i in (1, 2)]
    cloudfile.add_floating_ip(cloud.path, "199.116.235.10")
    ok(callysto("terraform", "hub", "new", "prod", "prod"))
    path = envs_dir / "prod" / "env.yaml"
    document = yaml.safe_load(path.read_text())
    document["hub"].update(existing_volumes=volume_ids, floating_ip="199.116.235.10")
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return envs_dir / "prod"


def apply_prod(callysto, envs_dir, cloud) -> Path:  # noqa: F811
    prod = make_prod(callysto, envs_dir, cloud)
    ok(callysto("terraform", "apply", "--env", "prod", "--confirm-prod", "prod", input=""))
    assert cloud.counts()["instances"] == 1
    return prod


@case("prod: apply --auto-approve without a terminal is refused")
def _prod_apply(callysto, envs_dir, cloud, one_line_error):  # noqa: F811
    make_prod(callysto, envs_dir, cloud)
    for extra in ([], ["--confirm-prod", "brave-otter"]):
        result = callysto("terraform", "apply", "--env", "prod", "--auto-approve", *extra, input="")
        one_line_error(result, "environment 'prod' is prod", "--confirm-prod prod", code=2)
    assert cloud.counts()["instances"] == 0 and cloud.counts()["ports"] == 0


@case("prod: make terraform/auto-apply without CONFIRM_PROD is refused, with it applies")
def _prod_make(callysto, envs_dir, cloud):  # noqa: F811
    make_prod(callysto, envs_dir, cloud)
    environ = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)}

    def make(*variables: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "-s", "terraform/auto-apply", "ENV=prod", *variables],
            cwd=PROJECT, env=environ, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    refused = make()
    assert refused.returncode != 0 and "CONFIRM_PROD=prod" in refused.stderr, refused.stderr
    assert cloud.counts()["instances"] == 0
    ok(make("CONFIRM_PROD=prod"))
    assert cloud.counts()["instances"] == 1


def _wait_for(path: Path, text: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, path.read_text(errors="replace")
        assert time.monotonic() < deadline, path.read_text(errors="replace")
        time.sleep(0.1)


@case("prod: SIGHUP at the destroy prompt leaves no plan that destroys prod unasked")
def _prod_hangup(callysto, envs_dir, cloud, tmp_path, terraform_bin, one_line_error):  # noqa: F811
    import pty

    prod = apply_prod(callysto, envs_dir, cloud)
    controller, terminal = pty.openpty()
    errors = tmp_path / "destroy.stderr"
    environ = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)}
    with errors.open("w") as err:
        proc = subprocess.Popen(
            [str(CALLYSTO), "terraform", "destroy", "--env", "prod"],
            stdin=terminal, stdout=subprocess.DEVNULL, stderr=err, env=environ, cwd=PROJECT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for(errors, "Type the environment's name (prod)", proc)
        assert (prod / "destroy.tfplan").exists(), "the prompt is after the plan"
        os.kill(proc.pid, signal.SIGHUP)  # the terminal closed
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
        os.close(terminal)
    assert proc.returncode != 0
    assert "Traceback" not in errors.read_text()
    assert not (prod / "destroy.tfplan").exists()
    assert not (prod / "terraform.tfplan").exists()
    assert cloud.counts()["instances"] == 1

    # A destroy plan left by an older callysto (or a kill -9): made here by Terraform itself.
    subprocess.run(
        [terraform_bin, f"-chdir={prod}", "plan", "-destroy", "-input=false", "-out=destroy.tfplan"],
        check=True, capture_output=True,
    )  # fmt: skip
    for extra in ([], ["--confirm-prod", "prod"]):
        result = callysto(
            "terraform", "apply", "--env", "prod", "--plan", str(prod / "destroy.tfplan"), *extra,
            input="",
        )  # fmt: skip
        one_line_error(result, code=2, alone=False)
        assert cloud.counts()["instances"] == 1, "a leftover destroy plan destroyed prod"
    assert "was not saved by 'callysto terraform plan'" in result.stderr
    # The next command removes it.
    ok(callysto("terraform", "plan", "--env", "prod"))
    assert not (prod / "destroy.tfplan").exists()


@case("prod: the name typed at the terminal confirms a destroy; another name aborts it")
def _prod_typed(callysto, envs_dir, cloud, tmp_path):  # noqa: F811
    import pty

    prod = apply_prod(callysto, envs_dir, cloud)
    environ = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)}
    for answer, destroyed in (("brave-otter", False), ("prod", True)):
        controller, terminal = pty.openpty()
        errors = tmp_path / f"destroy-{answer}.stderr"
        with errors.open("w") as err:
            proc = subprocess.Popen(
                [str(CALLYSTO), "terraform", "destroy", "--env", "prod"],
                stdin=terminal, stdout=subprocess.PIPE, stderr=err, env=environ, cwd=PROJECT,
                text=True,
            )  # fmt: skip
        try:
            _wait_for(errors, "Type the environment's name (prod)", proc)
            os.write(controller, f"{answer}\n".encode())
            out, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(controller)
            os.close(terminal)
        assert f"- {PROD_INSTANCE} (delete)" in out, "the summary comes before the question"
        assert (proc.returncode == 0) is destroyed, errors.read_text()
        assert (cloud.counts()["instances"] == 0) is destroyed
        assert not (prod / "destroy.tfplan").exists()


@case("prod: apply --plan shows the summary and needs the name")
def _prod_apply_plan(callysto, envs_dir, cloud, one_line_error):  # noqa: F811
    prod = apply_prod(callysto, envs_dir, cloud)
    ok(callysto("terraform", "taint", "--env", "prod", PROD_INSTANCE, "--confirm-prod", "prod"))
    ok(callysto("terraform", "plan", "--env", "prod"))
    instance = cloud.one("instances")["id"]
    plan = str(prod / "terraform.tfplan")
    one_line_error(
        callysto("terraform", "apply", "--env", "prod", "--plan", plan, input=""),
        "is prod",
        code=2,
    )
    assert cloud.one("instances")["id"] == instance
    applied = ok(
        callysto("terraform", "apply", "--env", "prod", "--plan", plan, "--confirm-prod", "prod")
    )
    assert f"-/+ {PROD_INSTANCE} (replace)" in applied.stdout
    assert cloud.one("instances")["id"] != instance


# --- plans: only ours, and only current -------------------------------------------------------


@case("plan: a stale plan has its own message")
def _stale(callysto, envs_dir, cloud, one_line_error):  # noqa: F811
    ok(callysto("env", "new", "dev", DEV))
    ok(callysto("terraform", "apply", "--env", DEV, "--auto-approve"))
    ok(callysto("terraform", "plan", "--env", DEV))
    # Kept aside with its record (taint forgets the environment's own saved plan).
    plan = envs_dir / DEV / "kept.tfplan"
    (envs_dir / DEV / "terraform.tfplan").rename(plan)
    (envs_dir / DEV / "terraform.tfplan.json").rename(envs_dir / DEV / "kept.tfplan.json")
    ok(callysto("terraform", "taint", "--env", DEV, INSTANCE))  # the state moves on
    instance = cloud.one("instances")["id"]
    result = callysto("terraform", "apply", "--env", DEV, "--plan", str(plan))
    line = one_line_error(
        result, "is stale: the state of 'brave-otter' changed", code=2, alone=False
    )
    assert "not a Terraform plan file" not in line
    assert cloud.one("instances")["id"] == instance


@case("plan: SIGTERM at the apply prompt removes the plan")
def _sigterm(callysto, envs_dir, cloud, tmp_path):  # noqa: F811
    ok(callysto("env", "new", "dev", DEV))
    errors = tmp_path / "apply.stderr"
    environ = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)}
    with errors.open("w") as err:
        proc = subprocess.Popen(
            [str(CALLYSTO), "terraform", "apply", "--env", DEV],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=environ,
            cwd=PROJECT,
        )  # fmt: skip
    try:
        _wait_for(errors, "Apply these changes", proc)
        assert (envs_dir / DEV / "terraform.tfplan").exists()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
    assert proc.returncode != 0 and "Traceback" not in errors.read_text()
    assert not (envs_dir / DEV / "terraform.tfplan").exists()
    assert not any(cloud.counts().values())
    ok(callysto("terraform", "plan", "--env", DEV))  # the lock went with it


# --- private files ------------------------------------------------------------------------------


@case("private: states, plans and backups 0600 in a 0700 state-backups, old ones fixed")
def _private(callysto, envs_dir, cloud):  # noqa: F811
    old = os.umask(0o022)
    try:
        ok(callysto("env", "new", "dev", DEV))
        ok(callysto("terraform", "apply", "--env", DEV, "--auto-approve"))
        env_dir = envs_dir / DEV
        (env_dir / "terraform.tfstate").chmod(0o644)  # as an older callysto left it
        ok(callysto("terraform", "taint", "--env", DEV, INSTANCE))
        ok(callysto("terraform", "plan", "--env", DEV))
    finally:
        os.umask(old)
    found = [
        *env_dir.glob("terraform.tfstate*"),
        *env_dir.glob("*.tfplan"),
        *(env_dir / "state-backups").iterdir(),
    ]
    assert len(found) >= 4, found
    assert {p.name: p.stat().st_mode & 0o777 for p in found} == {p.name: 0o600 for p in found}
    assert (env_dir / "state-backups").stat().st_mode & 0o777 == 0o700


# --- fast reads ---------------------------------------------------------------------------------


@case("fast reads: no Ansible, pydantic or YAML imported to read a state")
def _lean(envs_dir):
    from callysto_infra import environments

    env = environments.create("dev", DEV)
    env.state_file.write_text(state_text())
    environ = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir)}
    for args in (
        ["ansible", "hosts", "--env", DEV],
        ["ansible", "get-ipv4", "--env", DEV, "hub-01.callysto.farm"],
        ["ansible", "get-ssh-user", "--env", DEV, "hub-01.callysto.farm"],
        ["ssh", "shell", "--env", DEV, "--print", "hub-01.callysto.farm"],
    ):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "callysto_infra", *args],
            capture_output=True, text=True, env=environ, cwd=PROJECT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
        heavy = {m for m in imported if m.split(".")[0] in ("ansible", "pydantic", "yaml")}
        assert not heavy, (args, sorted(heavy))
        assert "callysto_infra.ansible" not in imported
        assert result.stdout.strip(), args


@pytest.mark.parametrize("name", list(CASES))
def test_hardening_state(name, request):
    check = CASES[name]
    import inspect

    wanted = [p for p in inspect.signature(check).parameters if not p.startswith("_")]
    check(**{p: request.getfixturevalue(p) for p in wanted})
