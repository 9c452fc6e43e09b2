"""env.yaml's sign-in settings: the institution's IdP and metadata and the OAuth2 client IDs are
checked when the file is read, and reach the sign-in proxy's role through the inventory."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from callysto_infra import ansible, environments
from tests.conftest import PROJECT


def _with_saml(env, saml: dict):
    path = env.path / environments.ENV_FILE
    config = yaml.safe_load(path.read_text())
    config.setdefault("saml", {}).update(saml)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return environments.load(env.name)


def test_sign_in_sources_reach_the_proxys_role(envs_dir):
    env = environments.create("local", "here")
    (env.path / "federation.xml").write_text("<md:EntitiesDescriptor/>")
    env = _with_saml(
        env,
        {
            "institution_idp": "https://idp.ecole.example.ca/idp/shibboleth",
            "institution_metadata": "federation.xml",
            "google_client_id": "1234-abcd.apps.googleusercontent.com",
            "microsoft_client_id": "00000000-0000-0000-0000-000000000000",
        },
    )
    host = ansible.load_inventory(env).host("localhost")
    assert host["idp_proxy_institution_idp"] == "https://idp.ecole.example.ca/idp/shibboleth"
    assert host["idp_proxy_institution_metadata"] == str((env.path / "federation.xml").resolve())
    assert host["idp_proxy_google_client_id"] == "1234-abcd.apps.googleusercontent.com"
    assert host["idp_proxy_microsoft_client_id"] == "00000000-0000-0000-0000-000000000000"
    assert host["saml_idp_entity_id"] == env.idp_entity_id


def test_a_federation_url_is_kept_as_it_is(envs_dir):
    env = environments.create("local", "here")
    env = _with_saml(env, {"institution_metadata": "https://federation.example.ca/md.xml"})
    host = ansible.load_inventory(env).host("localhost")
    assert host["idp_proxy_institution_metadata"] == "https://federation.example.ca/md.xml"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("institution_metadata", "http://federation.example.ca/md.xml", "https:// URL or a file"),
        ("google_client_id", "id; rm -rf /", "google_client_id"),
        ("microsoft_client_id", "", "microsoft_client_id"),
    ],
)
def test_bad_sign_in_settings_are_refused_in_one_line(
    callysto, envs_dir, one_line_error, field, value, fragment
):
    env = environments.create("local", "here")
    path = env.path / environments.ENV_FILE
    config = yaml.safe_load(path.read_text())
    config.setdefault("saml", {})[field] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    refused = callysto("ansible", "hosts", "--env", "here")
    line = one_line_error(refused, fragment, code=2)
    assert value not in line or not value


# --- the proxy's configuration, as a cloud hub and a local one get it ---------------------------

ROLES = PROJECT / "playbooks" / "roles"
PHP_TEMPLATES = [
    "config.php.j2",
    "sp.php.j2",
    "authsources.php.j2",
    "secrets.inc.php.j2",
    "saml20-idp-hosted.php.j2",
    "saml20-sp-remote.php.j2",
]
# A salt with the characters a PHP string must escape.
AWKWARD_SALT = "it's a \\ salt"


# Two hubs as the callysto_login role describes them to the proxy, and a third whose first
# check run has made no certificate yet.
TWO_HUBS = {
    f"hub-{n}.callysto.farm": {
        "name": f"hub-{n}.callysto.farm",
        "entity_id": f"https://hub-{n}.callysto.farm/hub/saml/metadata",
        "acs_url": f"https://hub-{n}.callysto.farm/hub/saml/acs",
        "host": f"hub-{n}.callysto.farm",
        "cert": "" if n == 3 else f"MIIcert{n}",
    }
    for n in (1, 2, 3)
}


def _render(template: str, env_type: str, tmp_path: Path, **extra) -> str:
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader()
    defaults = yaml.safe_load((ROLES / "idp_proxy" / "defaults" / "main.yml").read_text())
    variables = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in defaults.items()}
    variables.update(
        callysto_env_type=env_type,
        callysto_env_name="brave-otter",
        hub_fqdn="brave-otter.callysto.farm",
        saml_idp_entity_id="https://hub.callysto.ca/simplesaml/saml2/idp/metadata.php",
        saml_sp_entity_id="https://hub.callysto.ca/shibboleth",
        callysto_secrets_dir=str(tmp_path),
        hub_prefix=str(tmp_path / "hub"),
        local_port=18000,
        local_data_dir=str(tmp_path / "data"),
        support_email="help@school.ca",
        ansible_managed="managed by the tests",
        idp_proxy_salt=AWKWARD_SALT,
        idp_proxy_institution_metadata="https://federation.example.ca/md.xml",
        groups={"hub": list(TWO_HUBS)},
        hostvars={name: {"callysto_login_sp": sp} for name, sp in TWO_HUBS.items()},
    )
    variables.update({"item": TWO_HUBS["hub-1.callysto.farm"], **extra})
    source = (ROLES / "idp_proxy" / "templates" / template).read_text()
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))


@pytest.mark.parametrize("env_type", ["local", "dev"])
@pytest.mark.parametrize("template", PHP_TEMPLATES)
def test_the_proxys_configuration_is_valid_php(tmp_path, env_type, template):
    rendered = tmp_path / template.removesuffix(".j2")
    rendered.write_text(_render(template, env_type, tmp_path))
    lint = subprocess.run(["php", "-l", str(rendered)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("env_type", ["local", "dev"])
def test_simplesamlphp_reads_the_environments_salt_as_it_is(tmp_path, env_type):
    secrets = tmp_path / "secrets.inc.php"
    secrets.write_text(_render("secrets.inc.php.j2", env_type, tmp_path))
    code = f"$config = []; require {str(secrets)!r}; echo $config['secretsalt'];"
    read = subprocess.run(["php", "-r", code], capture_output=True, text=True, check=True)
    assert read.stdout == AWKWARD_SALT


def test_the_chain_pins_the_environments_entity_ids(tmp_path):
    secrets = tmp_path / "data" / "simplesamlphp" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "secrets.inc.php").write_text(_render("secrets.inc.php.j2", "local", tmp_path))
    config = tmp_path / "config.php"
    config.write_text(_render("config.php.j2", "local", tmp_path))
    code = (
        "require '/usr/share/simplesamlphp/lib/_autoload.php';"
        f"require {str(config)!r};"
        "$state = ['Source' => ['entityid' => 'x'], 'Destination' => ['entityid' => 'y']];"
        "$attributes = [];"
        "eval($config['authproc.idp'][5]['code']);"
        "echo $state['Source']['entityid'], ' ', $state['Destination']['entityid'];"
    )
    read = subprocess.run(["php", "-r", code], capture_output=True, text=True, check=True)
    assert read.stdout == (
        "https://hub.callysto.ca/simplesaml/saml2/idp/metadata.php https://hub.callysto.ca/shibboleth"
    )


def test_every_hub_with_a_certificate_is_a_service_provider_of_the_proxy(tmp_path):
    from ansible.template import trust_as_template

    defaults = yaml.safe_load((ROLES / "idp_proxy" / "defaults" / "main.yml").read_text())
    variables = {"groups": {"hub": list(TWO_HUBS)}, "hostvars": {
        name: {"callysto_login_sp": sp} for name, sp in TWO_HUBS.items()}}  # fmt: skip
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    sps = Templar(loader=DataLoader(), variables=variables).template(
        trust_as_template(defaults["idp_proxy_sps"])
    )
    assert [sp["name"] for sp in sps] == ["hub-1.callysto.farm", "hub-2.callysto.farm"]
    # One file per hub, as the role writes them (a limited run leaves the others' in place).
    config_dir = tmp_path / "data" / "simplesamlphp" / "config"
    folder = config_dir / "metadata" / "sps"
    folder.mkdir(parents=True)
    for sp in sps:
        (folder / f"{sp['name']}.php").write_text(_render("sp.php.j2", "local", tmp_path, item=sp))
    metadata = config_dir / "metadata" / "saml20-sp-remote.php"
    metadata.write_text(_render("saml20-sp-remote.php.j2", "local", tmp_path))
    code = (
        f"$metadata = []; require {str(metadata)!r};"
        "foreach ($metadata as $id => $sp) {"
        " echo $id, ' ', $sp['AssertionConsumerService'][0]['Location'], ' ', $sp['certData'],"
        " isset($sp['callysto.host']) ? ' host!' : '', \"\\n\"; }"
    )
    read = subprocess.run(["php", "-r", code], capture_output=True, text=True, check=True)
    assert read.stdout.splitlines() == [
        f"https://hub-{n}.callysto.farm/hub/saml/metadata https://hub-{n}.callysto.farm/hub/saml/acs"
        f" MIIcert{n}"
        for n in (1, 2)
    ]
    config = tmp_path / "config.php"
    secrets = tmp_path / "data" / "simplesamlphp" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "secrets.inc.php").write_text(_render("secrets.inc.php.j2", "local", tmp_path))
    config.write_text(_render("config.php.j2", "local", tmp_path))
    code = (
        "require '/usr/share/simplesamlphp/lib/_autoload.php';"
        f"require {str(config)!r}; echo implode(' ', $config['trusted.url.domains']);"
    )
    read = subprocess.run(["php", "-r", code], capture_output=True, text=True, check=True)
    assert read.stdout == "hub-1.callysto.farm hub-2.callysto.farm"


# --- the hub's sign-in settings, on its own and in a fleet --------------------------------------


class _Config:
    """Stands for JupyterHub's `c`: records c.Section.setting = value."""

    def __getattr__(self, name: str):
        section = SimpleNamespace()
        setattr(self, name, section)
        return section


def _hub_settings(tmp_path: Path, env_type: str, host: str, **inventory) -> SimpleNamespace:
    """The authenticator's settings of the hub HOST, rendered from callysto_login's defaults and
    template and run as JupyterHub runs its config file."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader()
    defaults = yaml.safe_load((ROLES / "callysto_login" / "defaults" / "main.yml").read_text())
    variables = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in defaults.items()}
    variables.update(
        callysto_env_type=env_type,
        callysto_secrets_dir=str(tmp_path / "secrets"),
        hub_prefix=str(tmp_path / "hub"),
        hub_fqdn="brave-otter.callysto.farm",
        idp_proxy_fqdn="door.callysto.farm",
        local_port=18040,
        inventory_hostname=host,
        groups={"hub": [host]},
        hostvars={},
    )
    variables.update(inventory)
    source = (ROLES / "callysto_login" / "templates" / "callysto_login_config.py.j2").read_text()
    text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))
    c = _Config()
    code = compile(text, "callysto_login_config.py", "exec")
    exec(code, {"sys": SimpleNamespace(path=[]), "c": c})  # noqa: S102
    return c.CallystoSamlAuthenticator


FLEET = [
    {"name": name, "url": f"https://{name}.callysto.farm/", "capacity": 500, "state": "accepting"}
    for name in ("brave-otter", "calm-heron")
]


def test_a_hub_on_its_own_asks_no_front_door(tmp_path):
    settings = _hub_settings(tmp_path, "dev", "brave-otter.callysto.farm")
    assert settings.hub_url == "https://brave-otter.callysto.farm/"
    assert not [name for name in vars(settings) if name.startswith(("fleet", "frontdoor"))]


def test_a_cloud_hub_of_a_fleet_asks_the_front_door_by_its_name(tmp_path):
    settings = _hub_settings(
        tmp_path,
        "dev",
        "calm-heron.callysto.farm",
        fleet_hubs=FLEET,
        groups={"hub": ["brave-otter.callysto.farm", "calm-heron.callysto.farm"],
                "frontdoor": ["door.callysto.farm"]},
    )  # fmt: skip
    assert settings.fleet_name == "calm-heron"
    assert settings.frontdoor_url == "https://door.callysto.farm/"
    assert settings.fleet_token_file == str(tmp_path / "hub" / "secrets" / "fleet-api-token")
    assert settings.fleet_timeout == 5.0


def test_a_local_hub_of_a_fleet_asks_the_front_door_on_its_port(tmp_path):
    settings = _hub_settings(
        tmp_path,
        "local",
        "calm-heron",
        fleet_hubs=FLEET,
        groups={"hub": ["brave-otter", "calm-heron"], "frontdoor": ["front-door"]},
        hostvars={"front-door": {"local_port": 18300}},
        local_port=18340,  # the hub's own
    )
    assert settings.fleet_name == "calm-heron"
    assert settings.frontdoor_url == "http://127.0.0.1:18300/"
    assert settings.hub_url == "http://127.0.0.1:18340/"
