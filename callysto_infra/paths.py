"""Where things are (the project, the environments) and how a path is shown to an operator. Only
the standard library here: the commands that only read a state import this and nothing heavier."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def envs_dir() -> Path:
    """Where environments live: $CALLYSTO_ENVS_DIR, else envs/ in the project."""
    override = os.environ.get("CALLYSTO_ENVS_DIR")
    return Path(override) if override else PROJECT_DIR / "envs"


def display(path: Path) -> str:
    """PATH as an operator would type it here: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class EnvPaths:
    """The files of an environment directory (its `path`), named once for every kind of
    environment object: a validated one, or one found only to read its state."""

    path: Path

    @property
    def secrets_dir(self) -> Path:
        return self.path / "secrets"

    @property
    def ssh_key_file(self) -> Path:
        """The private key operators use for this environment's hubs (its .pub is the key pair)."""
        return self.secrets_dir / "ssh-key"

    @property
    def known_hosts_file(self) -> Path:
        return self.secrets_dir / "known_hosts"

    @property
    def state_file(self) -> Path:
        """Terraform's state for this environment; its 'hosts' output lists the hubs."""
        return self.path / "terraform.tfstate"
