"""callysto ssh: a shell on a hub."""

from __future__ import annotations

import click

from callysto_infra import validate
from callysto_infra.cli.common import env_option, flag, load_state_env, validated


@click.group("ssh")
def group() -> None:
    """Connect to hubs over SSH."""


@group.command("shell")
@env_option
@flag("--print", "print_only", help="Print the ssh command instead.")
@click.argument("host", callback=validated(validate.host))
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def shell(env_name: str | None, print_only: bool, host: str, command: tuple[str, ...]) -> None:
    """SSH to HOST (its public address, its SSH user, the environment's key), optionally running
    COMMAND given after '--'.

    Each word of COMMAND reaches the hub unchanged (nothing is parsed by a shell there); for
    pipes or redirections, pass a shell: -- sh -c 'zfs list | head'.
    """
    import shlex

    from callysto_infra import runner, ssh

    # A shell needs nothing the state does not say; the environment is validated in full only when
    # it has no state to read (which then says why).
    argv = ssh.shell_argv(load_state_env(env_name), host, command)
    if print_only:
        click.echo(shlex.join(argv))
        return
    runner.replace_process(argv)
