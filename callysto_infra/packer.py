"""The hub image: Packer's template under packer/, given the environment's values through a
variables file (never the command line), with the cloud's credentials left to clouds.yaml or OS_*."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from callysto_infra import runner
from callysto_infra.environments import PROJECT_DIR
from callysto_infra.errors import OperationError, UsageError

if TYPE_CHECKING:
    from callysto_infra.env_schema import CloudSettings
    from callysto_infra.environments import Environment

PACKER_DIR = PROJECT_DIR / "packer"
PLAYBOOKS_DIR = PROJECT_DIR / "playbooks"
TEMPLATES = {"hub": ("hub.pkr.hcl", "packer-hub.yml")}

PACKER_HINT = (
    "install Packer with its OpenStack builder: apt-get install packer (Debian), "
    "or see https://developer.hashicorp.com/packer/install"
)
ANSIBLE_HINT = "install Ansible (pip install ansible-core), which provisions the image"
# Packer would otherwise ask HashiCorp's servers for news on every run.
PACKER_ENV = {"CHECKPOINT_DISABLE": "1"}


@dataclass(frozen=True)
class Image:
    """What a build published: Terraform boots the newest image of this name."""

    name: str
    id: str
    build_date: str


def template_file(template: str) -> Path:
    if template not in TEMPLATES:
        raise UsageError(f"unknown Packer template '{template}' (known: {', '.join(TEMPLATES)})")
    return PACKER_DIR / TEMPLATES[template][0]


def cloud_settings(env: Environment) -> CloudSettings:
    if env.config.cloud is None:
        raise UsageError(
            f"environment '{env.name}' is {env.type}: it boots no cloud image; "
            "build images with a dev or prod environment"
        )
    return env.config.cloud


# --- credentials ------------------------------------------------------------------------------


def clouds_yaml_files(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Where OpenStack's clients look for clouds.yaml, first match wins."""
    if environ.get("OS_CLIENT_CONFIG_FILE"):
        return [Path(environ["OS_CLIENT_CONFIG_FILE"])]
    return [
        Path.cwd() / "clouds.yaml",
        Path.home() / ".config" / "openstack" / "clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]


def credentials_cloud(env: Environment, environ: Mapping[str, str] = os.environ) -> str:
    """The clouds.yaml entry Packer logs in with, or "" when an openrc's OS_* variables are set.

    Checked here so that missing credentials are one clear line before Packer starts.
    """
    if environ.get("OS_AUTH_URL"):
        return ""
    name = cloud_settings(env).cloud
    fix = (
        f"add an entry '{name}' (env.yaml cloud.cloud) to clouds.yaml "
        "(~/.config/openstack/clouds.yaml, or the file $OS_CLIENT_CONFIG_FILE names), "
        "or source your openrc so that OS_AUTH_URL and the other OS_* variables are set"
    )
    found = next((p for p in clouds_yaml_files(environ) if p.is_file()), None)
    if found is None:
        raise UsageError(f"no cloud credentials for environment '{env.name}': {fix}")
    try:
        clouds = (yaml.safe_load(found.read_text(encoding="utf-8")) or {}).get("clouds") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        raise UsageError(f"{found} cannot be read as clouds.yaml: {fix}") from None
    if name not in clouds:
        known = ", ".join(sorted(map(str, clouds))) or "none"
        raise UsageError(f"{found} has no cloud '{name}' (it has: {known}): {fix}")
    return name


# --- the variables Packer gets ----------------------------------------------------------------


def ansible_playbook_program() -> str:
    """ansible-playbook of this installation (the virtual environment) first, then PATH."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return runner.which("ansible-playbook", ANSIBLE_HINT)


def variables(env: Environment, template: str, cloud: str, manifest: Path) -> dict[str, Any]:
    """Every variable of the template, from env.yaml: the template holds no site value."""
    settings = cloud_settings(env)
    playbook = PLAYBOOKS_DIR / TEMPLATES[template][1]
    return {
        "cloud": cloud,
        "region": settings.region,
        "flavor": settings.flavor,
        "source_image": settings.source_image,
        "source_image_user": settings.source_image_user,
        "networks": [settings.build_network_id] if settings.build_network_id else [],
        "floating_ip_network": settings.build_floating_ip_network or "",
        "security_groups": list(settings.build_security_groups),
        "ssh_ip_version": str(settings.build_ssh_ip_version),
        "image_name": settings.image,
        "hub_ssh_user": settings.ssh_user,
        "playbook": str(playbook),
        "ansible_playbook": ansible_playbook_program(),
        "manifest": str(manifest),
    }


@contextmanager
def var_file(env: Environment, template: str, cloud: str) -> Iterator[tuple[Path, Path]]:
    """A private temporary directory holding the variables file; yields it and the manifest path."""
    with tempfile.TemporaryDirectory(prefix="callysto-packer-") as tmp:
        manifest = Path(tmp) / "manifest.json"
        path = Path(tmp) / f"{template}.pkrvars.json"
        document = variables(env, template, cloud, manifest)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
        yield path, manifest


# --- running Packer ---------------------------------------------------------------------------


def machine_readable_errors(stdout: str) -> list[str]:
    """The error messages of Packer's -machine-readable output (timestamp,target,type,data...)."""
    errors = []
    for line in stdout.splitlines():
        fields = line.split(",", 4)
        if len(fields) == 5 and fields[2] == "ui" and fields[3] == "error":
            text = fields[4].replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n")
            errors.append(text)
    return errors


def one_line(errors: list[str]) -> str:
    """Packer's errors as one line: its '* reason' items, else each message's first line."""
    items = [
        line.strip()[2:]
        for text in errors
        for line in text.splitlines()
        if line.strip()[:2] == "* "
    ]
    if not items:
        items = [text.strip().splitlines()[0] for text in errors if text.strip()]
    return "; ".join(items) or "no reason given"


def validate(env: Environment, template: str = "hub", *, syntax_only: bool = False) -> None:
    """Run `packer validate`. Packer's OpenStack builder logs in to the cloud while it checks the
    template, so a full check needs credentials; syntax_only needs none."""
    path = template_file(template)
    packer = runner.which("packer", PACKER_HINT)
    cloud = cloud_settings(env).cloud if syntax_only else credentials_cloud(env)
    with var_file(env, template, cloud) as (vars_path, _manifest):
        argv = [packer, "-machine-readable", "validate"]
        argv += ["-syntax-only"] if syntax_only else []
        argv += [f"-var-file={vars_path}", str(path)]
        result = runner.run(argv, check=False, env=PACKER_ENV)
    if not result.ok:
        errors = machine_readable_errors(result.stdout) or [runner.last_line(result)]
        raise OperationError(
            f"packer validate of '{template}' failed for environment '{env.name}': "
            f"{one_line(errors)}"
        )


def build(env: Environment, template: str = "hub") -> Image:
    """Run `packer build`, its progress streaming to the terminal; return the image it made."""
    path = template_file(template)
    packer = runner.which("packer", PACKER_HINT)
    cloud = credentials_cloud(env)
    with var_file(env, template, cloud) as (vars_path, manifest):
        argv = [packer, "build", f"-var-file={vars_path}", str(path)]
        returncode = runner.stream(argv, check=False, env=PACKER_ENV).returncode
        if returncode != 0:
            raise OperationError(
                f"packer build of '{template}' failed for environment '{env.name}' "
                f"(exit {returncode}); its output above says why"
            )
        return read_manifest(manifest)


def read_manifest(path: Path) -> Image:
    """The image of the manifest Packer wrote (its last build)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        last = document["builds"][-1]
        data = last.get("custom_data") or {}
        return Image(
            name=data.get("image_name", ""),
            id=last["artifact_id"],
            build_date=data.get("build_date", ""),
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise OperationError(
            f"Packer reported success but its manifest {path} is unreadable: {exc}"
        ) from None
