"""env.yaml validation (fixtures named for their outcome) and `callysto env new/list/show`."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from callysto_infra import environments
from callysto_infra.env_schema import EnvConfig
from callysto_infra.errors import UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "env"
HAPPY = sorted(FIXTURES.glob("*.happy.yaml"))
ERRORS = sorted(FIXTURES.glob("*.error.*.yaml"))


@pytest.mark.parametrize("path", HAPPY, ids=lambda p: p.name)
def test_happy_env_files_validate(path):
    config = EnvConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.type in ("dev", "prod", "local")


@pytest.mark.parametrize("path", ERRORS, ids=lambda p: p.name)
def test_error_env_files_fail_for_the_named_reason(path):
    reason = path.name.split(".error.")[1].removesuffix(".yaml")
    with pytest.raises(ValidationError) as caught:
        EnvConfig.model_validate(yaml.safe_load(path.read_text()))
    assert reason in {error["type"] for error in caught.value.errors()}


def test_saml_entity_ids_default_to_the_hub_name(envs_dir):
    env = environments.create("dev", "brave-otter")
    assert (
        env.idp_entity_id == "https://brave-otter.callysto.farm/simplesaml/saml2/idp/metadata.php"
    )
    assert env.sp_entity_id == "https://brave-otter.callysto.farm/shibboleth"


def test_env_new_dev_picks_a_pet_name_and_writes_a_valid_env(callysto, envs_dir):
    result = callysto("env", "new", "dev")
    assert result.returncode == 0, result.stderr
    (created,) = [p for p in envs_dir.iterdir()]
    assert re.fullmatch(r"[a-z]+-[a-z]+", created.name)
    config = EnvConfig.model_validate(yaml.safe_load((created / "env.yaml").read_text()))
    assert config.type == "dev"
    assert config.host.name == created.name


def test_env_new_makes_a_private_random_salt(callysto, envs_dir):
    for name in ("first", "second"):
        assert callysto("env", "new", "dev", name).returncode == 0
    salts = []
    for name in ("first", "second"):
        secrets = envs_dir / name / "secrets"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
        salt = secrets / "saml-salt"
        assert stat.S_IMODE(salt.stat().st_mode) == 0o600
        salts.append(salt.read_text().strip())
    assert len(salts[0]) >= 32 and salts[0] != salts[1]


def test_env_new_never_touches_an_existing_environment(callysto, envs_dir):
    assert callysto("env", "new", "dev", "brave-otter").returncode == 0
    env_yaml = envs_dir / "brave-otter" / "env.yaml"
    env_yaml.write_text(env_yaml.read_text() + "# operator's edit\n")
    salt = (envs_dir / "brave-otter" / "secrets" / "saml-salt").read_text()
    result = callysto("env", "new", "prod", "brave-otter")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert env_yaml.read_text().endswith("# operator's edit\n")
    assert (envs_dir / "brave-otter" / "secrets" / "saml-salt").read_text() == salt


def test_env_new_prod_needs_a_name(callysto, envs_dir):
    result = callysto("env", "new", "prod")
    assert result.returncode == 2
    assert "needs a name" in result.stderr
    assert list(envs_dir.iterdir()) == []


def test_env_new_refuses_a_name_that_is_not_a_host_name(callysto, envs_dir):
    result = callysto("env", "new", "dev", "Bad_Name")
    assert result.returncode == 2 and "invalid environment name" in result.stderr
    assert list(envs_dir.iterdir()) == []


def adopt(envs_dir: Path, name: str) -> None:
    """List a prod environment's volumes and floating IP, as an operator does after 'env new'."""
    path = envs_dir / name / "env.yaml"
    document = yaml.safe_load(path.read_text())
    document["hub"].update(
        existing_volumes=[
            "0a1b2c3d-0000-4000-8000-000000000001",
            "0a1b2c3d-0000-4000-8000-000000000002",
        ],
        floating_ip="199.116.235.10",
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_env_list_and_show(callysto, envs_dir):
    created = callysto("env", "new", "prod", "prod")
    assert created.returncode == 0, created.stderr
    assert "still needed: " in created.stdout and "hub.existing_volumes" in created.stdout
    callysto("env", "new", "local")
    listed = json.loads(callysto("env", "list", "--json").stdout)
    assert [(row["name"], row["valid"]) for row in listed] == [("local", True), ("prod", False)]
    assert "hub.existing_volumes: a prod environment adopts" in listed[1]["error"]
    adopt(envs_dir, "prod")
    listed = json.loads(callysto("env", "list", "--json").stdout)
    assert [(row["name"], row["type"]) for row in listed] == [("local", "local"), ("prod", "prod")]
    shown = callysto("env", "show", "--env", "prod", "--json")
    assert shown.returncode == 0
    document = json.loads(shown.stdout)
    assert document["fqdn"] == "hub.callysto.ca"
    assert document["config"]["hub"]["refquota"] == "1G"
    human = callysto("env", "show", env={"CALLYSTO_ENV": "local"})
    assert human.returncode == 0 and "type: local" in human.stdout


def test_env_show_never_prints_the_salt(callysto, envs_dir):
    callysto("env", "new", "local")
    salt = (envs_dir / "local" / "secrets" / "saml-salt").read_text().strip()
    for args in (["env", "show", "--env", "local"], ["env", "show", "--env", "local", "--json"]):
        result = callysto(*args)
        assert salt not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda hub: hub.update(existing_volumes=[]), "hub.existing_volumes"),
        (lambda hub: hub.pop("floating_ip"), "hub.floating_ip"),
    ],
    ids=["without-volumes", "without-floating-ip"],
)
def test_a_prod_env_without_what_it_adopts_fails_at_env_show(callysto, envs_dir, change, field):
    callysto("env", "new", "prod", "prod")
    adopt(envs_dir, "prod")
    path = envs_dir / "prod" / "env.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["hub"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    for args in (["env", "show", "--env", "prod"], ["terraform", "plan", "--env", "prod"]):
        result = callysto(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"env.yaml: {field}: a prod environment adopts its" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_new_prod_environment_names_what_it_still_needs(envs_dir):
    env = environments.create("prod", "prod")
    assert env.type == "prod" and env.config.hub.existing_volumes == []
    text = (env.path / "env.yaml").read_text()
    assert "hub.existing_volumes" in text.split("type: prod")[0], "the header says what to list"
    with pytest.raises(UsageError, match=r"hub\.existing_volumes: .* \(and 1 more problem\)"):
        environments.load("prod")
