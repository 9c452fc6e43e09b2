"""The `callysto` command tree. Commands parse, call a module under callysto_infra, and print."""

from __future__ import annotations

import click

from callysto_infra import __version__
from callysto_infra.cli import (
    ansible,
    backup,
    env,
    health,
    hub,
    image,
    local,
    packer,
    quota,
    ssh,
    terraform,
    user,
)
from callysto_infra.cli.common import CONTEXT_SETTINGS, CallystoGroup


@click.group(cls=CallystoGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="callysto")
def main() -> None:
    """Operate Callysto JupyterHub fleets: environments, Terraform, Ansible, Packer, user hashes,
    quotas, backups and SSH.

    Every command that acts on an environment takes --env NAME (or $CALLYSTO_ENV). Exit codes:
    0 success, 1 the operation failed, 2 bad usage or bad input.
    """


for _module in (
    env,
    terraform,
    ansible,
    quota,
    user,
    backup,
    packer,
    ssh,
    health,
    local,
    hub,
    image,
):
    main.add_command(_module.group)
