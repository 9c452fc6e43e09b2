"""callysto env: create, list and show environments."""

from __future__ import annotations

import click

from callysto_infra.cli.common import emit_json, env_option, json_option, load_env


@click.group("env")
def group() -> None:
    """Create, list and show environments (envs/<NAME>/env.yaml)."""


def create_and_report(env_type: str, name: str | None) -> None:
    from callysto_infra import environments
    from callysto_infra.errors import UsageError
    from callysto_infra.settings import display

    env = environments.create(env_type, name)  # type: ignore[arg-type]
    click.echo(f"created environment '{env.name}' ({env.type}) in {display(env.path)}")
    click.echo(f"  edit {display(env.path / environments.ENV_FILE)} to suit your site;")
    click.echo(f"  the SAML salt is in {display(env.salt_file)} (keep it secret)")
    try:
        environments.load(env.name)
    except UsageError as exc:  # a new prod environment: what only the operator knows
        click.echo(f"  still needed: {exc}")


@group.command("new")
@click.argument("env_type", metavar="{dev|prod|local}", type=click.Choice(["dev", "prod", "local"]))
@click.argument("name", required=False)
def new(env_type: str, name: str | None) -> None:
    """Create a new environment. Dev names default to a pet name such as brave-otter, a local
    environment to 'local'; prod needs NAME. An existing environment is never touched."""
    create_and_report(env_type, name)


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the environments and their types."""
    from callysto_infra import environments

    rows = []
    for name in environments.list_names():
        try:
            env = environments.load(name)
            rows.append({"name": name, "type": env.type, "fqdn": env.fqdn, "valid": True})
        except Exception as exc:  # an invalid env.yaml still shows up, flagged
            rows.append(
                {"name": name, "type": None, "fqdn": None, "valid": False, "error": str(exc)}
            )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no environments yet: create one with 'callysto env new dev|prod|local'")
        return
    for row in rows:
        if row["valid"]:
            click.echo(f"{row['name']:<24} {row['type']:<6} {row['fqdn']}")
        else:
            click.echo(f"{row['name']:<24} INVALID {row['error']}")


@group.command("show")
@env_option
@json_option
def show(env_name: str | None, as_json: bool) -> None:
    """Validate and show an environment's settings (secrets are never shown)."""
    env = load_env(env_name)
    document = {
        "name": env.name,
        "path": str(env.path),
        "fqdn": env.fqdn,
        "saml": {"idp_entity_id": env.idp_entity_id, "sp_entity_id": env.sp_entity_id},
        "config": env.config.model_dump(mode="json"),
    }
    if as_json:
        emit_json(document)
        return
    import yaml

    click.echo(f"# environment {env.name}: {env.type}, {env.fqdn}")
    click.echo(yaml.safe_dump(document["config"], sort_keys=False).rstrip())
    click.echo(f"# SAML IdP entity ID: {env.idp_entity_id}")
    click.echo(f"# SAML SP entity ID:  {env.sp_entity_id}")
