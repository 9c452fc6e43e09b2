"""Ansible inventory plugin `callysto`: an environment's hubs from its Terraform state outputs."""

from __future__ import annotations

import os
from pathlib import Path

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = """
    name: callysto
    short_description: Hubs of a callysto-infra environment
    description:
        - Reads the environment's Terraform state output C(hosts) directly from the state file
          (no Terraform run, no SSH); a local environment is this machine.
        - The source is envs/<ENV>/inventory.callysto.yml; its directory is the environment.
    options:
        plugin:
            description: The name of this plugin.
            required: true
            choices: ['callysto']
"""


class InventoryModule(BaseInventoryPlugin):
    NAME = "callysto"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith("inventory.callysto.yml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        from callysto_infra import environments
        from callysto_infra import inventory as callysto_inventory
        from callysto_infra.errors import CallystoError

        env_dir = os.path.dirname(os.path.abspath(path))
        try:
            env = environments.Environment(
                name=os.path.basename(env_dir),
                path=Path(env_dir),
                config=environments.parse_config(Path(env_dir) / "env.yaml"),
            )
            built = callysto_inventory.build(env)
        except CallystoError as exc:
            raise AnsibleParserError(str(exc)) from exc
        for group in built.groups:
            self.inventory.add_group(group)
        for host, variables in built.host_vars.items():
            self.inventory.add_host(host)
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
        for group, members in built.groups.items():
            for host in members:
                self.inventory.add_child(group, host)
        for group, variables in built.group_vars.items():
            for key, value in variables.items():
                self.inventory.set_variable(group, key, value)
