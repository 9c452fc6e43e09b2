"""The project's own settings, `callysto.yaml` beside the Makefile (or $CALLYSTO_CONFIG). It may
name files that hold keys, never hold a key itself, so it can live in git."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from callysto_infra import settings
from callysto_infra.settings import PROJECT_DIR, Strict

CONFIG_FILE = "callysto.yaml"


def config_path() -> Path:
    override = os.environ.get("CALLYSTO_CONFIG")
    return Path(override) if override else PROJECT_DIR / CONFIG_FILE


def _public_key(value: str) -> str:
    if value.strip().upper().startswith("AGE-SECRET-KEY-"):
        raise ValueError(
            "is an age SECRET key: put it in a 0600 file named by identity_file, and list its "
            "public key (age1...) here"
        )
    if not (value.startswith("age1") or value.startswith("ssh-")):
        raise ValueError("must be an age public key (age1...) or an SSH public key (ssh-...)")
    return value


PublicKey = Annotated[str, AfterValidator(_public_key)]
PathText = Annotated[str, Field(min_length=1, max_length=4096)]


class BackupSettings(Strict):
    """Where `callysto backup` writes its encrypted archives, and with which keys."""

    destination: PathText | None = Field(
        default=None, description="folder the archives go to; relative to callysto.yaml"
    )
    recipients: list[PublicKey] = Field(
        default_factory=list, description="age public keys to encrypt to (public: fine in git)"
    )
    recipients_file: PathText | None = Field(
        default=None, description="file of age public keys, one per line"
    )
    passphrase_file: PathText | None = Field(
        default=None, description="0600 file whose first line is the passphrase"
    )
    identity_file: PathText | None = Field(
        default=None, description="0600 age identity file used by verify and restore"
    )
    keep: Annotated[int, Field(ge=1, le=100000)] = Field(
        default=30, description="archives kept in the destination; older ones are removed"
    )
    signing_key_file: PathText | None = Field(
        default=None, description="0600 Ed25519 private key that signs every archive"
    )
    trusted_signers: PathText | None = Field(
        default=None, description="file of the public keys whose archives verify and restore trust"
    )


class ProjectConfig(Strict):
    """The whole of callysto.yaml."""

    backup: BackupSettings = Field(default_factory=BackupSettings)

    def resolve(self, value: str | None) -> Path | None:
        """A path named in callysto.yaml, relative to the file's own folder."""
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else config_path().parent / path


def load() -> ProjectConfig:
    """callysto.yaml, validated; defaults when there is none."""
    path = config_path()
    if not path.exists():
        return ProjectConfig()
    return settings.read(path, ProjectConfig, empty_ok=True)
