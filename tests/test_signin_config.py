"""env.yaml's sign-in settings: the institution's IdP and metadata and the OAuth2 client IDs are
checked when the file is read, and reach the sign-in proxy's role through the inventory."""

from __future__ import annotations

import pytest
import yaml

from callysto_infra import ansible, environments


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
