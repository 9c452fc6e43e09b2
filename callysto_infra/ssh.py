"""SSH to a hub: the command comes from the inventory alone (public address, SSH user, the
environment's key and known hosts), with no SSH round trip to discover any of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from callysto_infra import hubs

if TYPE_CHECKING:
    from callysto_infra.environments import Environment


def shell_argv(env: Environment, host: str, command: Sequence[str] = ()) -> list[str]:
    """The ssh command for a shell on HOST, or for running COMMAND there (each word kept as is).

    Not in batch mode: an operator at a terminal may have a key passphrase to type.
    """
    return hubs.find(env, host).ssh_argv(command, batch=False)
