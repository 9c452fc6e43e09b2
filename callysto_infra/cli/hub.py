"""callysto hub: students' running servers on an environment's hubs."""

from __future__ import annotations

import click

from callysto_infra import validate
from callysto_infra.cli.common import emit, env_option, json_option, load_env, validated


def _note(line: str) -> None:
    click.echo(line, err=True)


@click.group("hub")
def group() -> None:
    """Students' running servers: list them, stop the idle ones."""


@group.command("servers")
@env_option
@json_option
def servers(env_name: str | None, as_json: bool) -> None:
    """Who has a running server on which hub, since when, and the memory it uses.

    Every hub is asked at once. With several hubs, a line per hub on stderr ends the list; a
    hub that did not answer is named there, the others' servers are listed, and the command
    exits 1.
    """
    from callysto_infra import everyhub
    from callysto_infra import servers as servers_module
    from callysto_infra.sizes import human_size

    env = load_env(env_name)
    outcomes = servers_module.ask_every_hub(env)
    if everyhub.none_answered(outcomes):
        everyhub.finish(outcomes)  # no list at all, only why
    found = [server for outcome in outcomes if outcome.ok for server in outcome.value or []]
    header = f"{'hub':<16} {'user':<40} {'started':<20} {'last activity':<20} memory"
    lines = [header] + [
        f"{s.hub:<16} {s.user:<40} {(s.started or '-')[:19]:<20} "
        f"{(s.last_activity or '-')[:19]:<20} "
        f"{human_size(s.memory_bytes) if s.memory_bytes is not None else '-'}"
        + ("" if s.ready else " (starting)")
        for s in found
    ]
    emit(as_json, [s.as_dict() for s in found], lines if found else ["no server is running"])
    everyhub.finish(outcomes, _servers_count)


def _servers_count(found) -> str:
    return f"{len(found)} server{'s' if len(found) != 1 else ''}"


@group.command("stop-idle")
@env_option
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    callback=validated(validate.duration_seconds),
    help="Stop servers with no activity for longer than this (e.g. 30m, 2h).",
)
@json_option
def stop_idle(env_name: str | None, older_than: int, as_json: bool) -> None:
    """Stop every server idle for longer than --older-than; students' files stay."""
    from callysto_infra import servers as servers_module

    env = load_env(env_name)
    stopped = servers_module.stop_idle(env, older_than, _note)
    emit(
        as_json,
        [{**server.as_dict(), "result": result} for server, result in stopped],
        [f"{server.hub} {server.user}: {result}" for server, result in stopped]
        or ["no server was idle that long"],
    )
