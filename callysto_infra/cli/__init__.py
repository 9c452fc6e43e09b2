"""The `callysto` command tree. Commands parse, call a module under callysto_infra, and print."""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping
from typing import Any

import click

from callysto_infra import __version__
from callysto_infra.cli.common import CONTEXT_SETTINGS, CallystoGroup

# Each is a module of this package whose `group` is the command of the same name.
GROUPS = (
    "env",
    "terraform",
    "ansible",
    "quota",
    "user",
    "backup",
    "packer",
    "ssh",
    "health",
    "local",
    "hub",
    "image",
    "storage",
    "fleet",
)


class _Commands(CallystoGroup):
    """The top level, importing a command group only when it runs: 'callysto ansible hosts' pays
    for the ansible commands' imports alone, not for every group's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loaded: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> MutableMapping[str, click.Command]:  # type: ignore[override]
        """Every command, all loaded (for whoever walks the whole tree: help, tests)."""
        for name in GROUPS:
            self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        self._loaded.update(value)

    def _load(self, name: str) -> click.Command:
        if name not in self._loaded:
            self._loaded[name] = importlib.import_module(f"callysto_infra.cli.{name}").group
        return self._loaded[name]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(GROUPS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name) if cmd_name in GROUPS else None


@click.group(cls=_Commands, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="callysto")
def main() -> None:
    """Operate Callysto JupyterHub fleets: environments, Terraform, Ansible, Packer, user hashes,
    quotas, backups and SSH.

    Every command that acts on an environment takes --env NAME (or $CALLYSTO_ENV). Exit codes:
    0 success, 1 the operation failed, 2 bad usage or bad input.
    """
