"""callysto image: the students' image their servers run."""

from __future__ import annotations

import click

from callysto_infra.cli.common import env_option, load_env


@click.group("image")
def group() -> None:
    """The students' image (JupyterLab and the notebook stack), built on each hub."""


@group.command("build")
@env_option
def build(env_name: str | None) -> None:
    """Build the students' image on the environment's hubs (this machine for a local one),
    unless the image of the current package list is already there."""
    from callysto_infra import ansible

    env = load_env(env_name)
    results = ansible.run_playbook(env, "hub", ansible.Options.parse(tags="image"))
    click.echo(
        f"the students' image is ready on the hubs of '{env.name}' "
        f"(changed={results.total('changed')})",
        err=True,
    )
