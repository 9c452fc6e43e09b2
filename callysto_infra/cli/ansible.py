"""callysto ansible: provision hubs with the playbooks under playbooks/."""

from __future__ import annotations

from functools import partial

import click

from callysto_infra import validate
from callysto_infra.cli.common import (
    emit,
    env_option,
    flag,
    json_option,
    load_env,
    load_state_env,
    validated,
)

_playbook = validated(partial(validate.name, what="playbook"))
_group_name = validated(partial(validate.name, what="group"))
_module = validated(partial(validate.name, what="module"))


@click.group("ansible")
def group() -> None:
    """Run Ansible against an environment's hubs."""


def group_option(func):
    return click.option(
        "--group", "group_name", metavar="GROUP", callback=_group_name,
        help="Limit to this inventory group or host (default: all).",
    )(func)  # fmt: skip


def playbook_options(func):
    """The options every playbook command shares."""
    func = click.option(
        "-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE",
        callback=validated(partial(validate.one_line, what="extra variable")),
        help="Extra variable for Ansible; repeatable.",
    )(func)  # fmt: skip
    func = click.option(
        "--tags", metavar="TAGS", callback=validated(validate.tags),
        help="Only run tasks with these tags.",
    )(func)  # fmt: skip
    func = ansible_args_option(func)
    func = flag("--check", help="Check mode: report what would change (adds --diff).")(func)
    return group_option(func)


def ansible_args_option(func):
    return click.option(
        "--ansible-args", metavar="ARGS",
        help="More ansible options, split like a shell would split them (never run by one).",
    )(func)  # fmt: skip


def _options(group_name=None, check=False, tags=None, extra_vars=(), ansible_args=None):
    from callysto_infra.ansible import Options

    return Options.parse(
        check=check, limit=group_name, tags=tags, extra_vars=extra_vars, ansible_args=ansible_args
    )


def _recap(results) -> None:
    """One line after a playbook: the totals, read from the JSON callback."""
    totals = {k: results.total(k) for k in ("ok", "changed", "failures", "unreachable", "skipped")}
    click.echo(
        "recap: " + " ".join(f"{k.replace('failures', 'failed')}={v}" for k, v in totals.items()),
        err=True,
    )


@group.command("setup")
def setup() -> None:
    """Install the pinned Ansible collections into the project."""
    from callysto_infra import ansible

    click.echo(ansible.setup())


@group.command("list-playbooks")
def list_playbooks() -> None:
    """List the playbooks with their one-line descriptions."""
    from callysto_infra import ansible

    books = ansible.playbooks()
    width = max((len(b.name) for b in books), default=0)
    for book in books:
        click.echo(f"{book.name:<{width}}  {book.description}")


@group.command("list-tasks")
@env_option
@click.argument("playbook", callback=_playbook)
def list_tasks(env_name: str | None, playbook: str) -> None:
    """List the tasks of PLAYBOOK."""
    from callysto_infra import ansible

    env = load_env(env_name)
    click.echo(ansible.list_tasks(env, playbook), nl=False)


@group.command("hosts")
@env_option
@group_option
@click.option("--playbook", metavar="PLAYBOOK", callback=_playbook, help="Hosts PLAYBOOK runs on.")
@json_option
def hosts(
    env_name: str | None, group_name: str | None, playbook: str | None, as_json: bool
) -> None:
    """List the environment's hosts (of a group, or of a playbook)."""
    if playbook:
        from callysto_infra import ansible

        names = ansible.list_playbook_hosts(load_env(env_name), playbook, _options(group_name))
    else:
        from callysto_infra import hubs

        names = hubs.inventory_names(load_state_env(env_name), group_name)
    emit(as_json, names, names)


@group.command("ping")
@env_option
@group_option
def ping(env_name: str | None, group_name: str | None) -> None:
    """Check that Ansible can reach the hosts."""
    from callysto_infra import ansible

    env = load_env(env_name)
    results = ansible.run_adhoc(env, group_name or "all", "ansible.builtin.ping")
    for host in sorted(results.results):
        click.echo(f"{host}: {results.results[host].get('ping', 'ok')}")


@group.command("exec")
@env_option
@group_option
@click.argument("module", callback=_module)
@click.option(
    "--args", "module_args", metavar="ARGS", help="Arguments for the module.",
    callback=validated(partial(validate.one_line, what="module arguments")),
)  # fmt: skip
@ansible_args_option
def exec_(env_name, group_name, module, module_args, ansible_args):
    """Run Ansible MODULE (with --args) on the hosts, as root."""
    from callysto_infra import ansible

    env = load_env(env_name)
    options = _options(ansible_args=ansible_args)
    ansible.run_adhoc(
        env, group_name or "all", module, module_args, options, become=True, stream=True
    )


@group.command("get-ipv4")
@env_option
@click.argument("host", callback=validated(validate.host))
@flag("--live", help="Ask the host itself instead of the inventory.")
def get_ipv4(env_name: str | None, host: str, live: bool) -> None:
    """Print HOST's public address (from the inventory; --live: the host's default IPv4)."""
    if live:
        from callysto_infra import ansible

        click.echo(ansible.ipv4(load_env(env_name), host, live=True))
        return
    from callysto_infra import hubs

    click.echo(hubs.inventory_host(load_state_env(env_name), host).address)


@group.command("get-ssh-user")
@env_option
@click.argument("host", callback=validated(validate.host))
def get_ssh_user(env_name: str | None, host: str) -> None:
    """Print HOST's SSH user."""
    import getpass

    from callysto_infra import hubs

    user = hubs.inventory_host(load_state_env(env_name), host).ssh_user
    click.echo(user or getpass.getuser())


@group.command("playbook")
@env_option
@playbook_options
@click.argument("playbook", callback=_playbook)
def playbook(
    env_name: str | None,
    group_name: str | None,
    check: bool,
    tags: str | None,
    extra_vars: tuple[str, ...],
    ansible_args: str | None,
    playbook: str,
) -> None:
    """Run PLAYBOOK (a name under playbooks/, e.g. hub) on the environment.

    Every host at once (--forks for the whole inventory; --ansible-args '--forks N' to choose),
    and a host that is unreachable or fails does not stop the others. After Ansible's recap, a
    line per host on stderr ('hub-a: ok: ok=12 changed=0', 'hub-b: UNREACHABLE: ...'); the
    command exits 1 naming the hosts that did not finish. The run's results are also written
    as JSON to $CALLYSTO_ANSIBLE_RESULTS when it is set.
    """
    from callysto_infra import ansible, everyhub

    env = load_env(env_name)
    options = _options(group_name, check, tags, extra_vars, ansible_args)
    results = ansible.run_playbook(env, playbook, options, check=False)
    _recap(results)
    for line in everyhub.summary(results.outcomes()):
        click.echo(line, err=True)
    failure = results.failure()
    if failure is not None:
        raise failure
