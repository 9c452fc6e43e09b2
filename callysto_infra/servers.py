"""Students' running servers on an environment's hubs: who, since when, how much memory, and
stopping those idle for too long. The hub's API says who runs what; the hub's own Docker daemon
says how much memory each container uses."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from callysto_infra import everyhub, hubapi, hubs
from callysto_infra.errors import OperationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from callysto_infra.environments import Environment
    from callysto_infra.everyhub import Outcome
    from callysto_infra.hubs import Hub

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "kB": 1000, "MB": 1000**2, "GB": 1000**3}  # fmt: skip
_MEMORY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)")


@dataclass(frozen=True)
class Server:
    hub: str
    user: str
    started: str | None
    last_activity: str | None
    ready: bool
    memory_bytes: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def _memory(text: str) -> int | None:
    """Bytes of docker stats' '12.5MiB / 1GiB' (the part before the slash)."""
    match = _MEMORY_RE.fullmatch(text.split("/", 1)[0].strip())
    if match is None or match.group(2) not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def docker_socket(env: Environment, hub: Hub) -> Path:
    """The socket of the Docker daemon that runs HUB's students' containers: the hub's own, or,
    on a local fleet, the one daemon its hubs share (the inventory's hub_docker_prefix)."""
    if hubs.is_local_fleet(env):
        return hubs.local_docker_prefix(env) / "run" / "docker.sock"
    return Path(hub.prefix or env.hub_prefix) / "run" / "docker.sock"


def container_memory(env: Environment, hub: Hub) -> dict[str, int]:
    """Memory used by each student's container on HUB, by user name; {} when Docker does not
    answer (the servers' list still stands without it)."""
    socket = docker_socket(env, hub)
    argv = ["docker", "--host", f"unix://{socket}", "stats", "--no-stream",
            "--format", "{{.Name}}\t{{.MemUsage}}"]  # fmt: skip
    try:
        result = hub.run(argv, check=False)
    except OperationError:
        return {}
    if not result.ok:
        return {}
    # Containers are named after the user (the role's DockerSpawner.name_template); a daemon
    # shared by a local fleet's hubs also runs the other hubs' containers.
    prefix = hubs.container_prefix(env, hub)
    usage: dict[str, int] = {}
    for line in result.stdout.splitlines():
        name, _, memory = line.partition("\t")
        size = _memory(memory)
        if name.startswith(prefix) and size is not None:
            usage[name.removeprefix(prefix)] = size
    return usage


def hub_servers(env: Environment, hub: Hub) -> list[Server]:
    """The running (or starting) servers of HUB; OperationError when its API does not answer."""
    users = hubapi.active_users(env, hub)
    memory = container_memory(env, hub) if users else {}
    found = []
    for user in users:
        server = (user.get("servers") or {}).get("")
        if not server:
            continue
        found.append(
            Server(
                hub=hub.name,
                user=user["name"],
                started=server.get("started"),
                last_activity=server.get("last_activity"),
                ready=bool(server.get("ready")),
                memory_bytes=memory.get(user["name"]),
            )
        )
    return found


def ask_every_hub(env: Environment, on: list[Hub] | None = None) -> list[Outcome[list[Server]]]:
    """Each hub's running servers (ENV's hubs, or those ON), every hub asked at once."""
    return everyhub.on_every_hub(hubs.hubs(env) if on is None else on, partial(hub_servers, env))


def running(
    env: Environment, note: Callable[[str], None], on: list[Hub] | None = None
) -> list[Server]:
    """Every running (or starting) server on ENV's hubs (or those ON); a hub that does not
    answer is NOTEd."""
    outcomes = ask_every_hub(env, on)
    for outcome in everyhub.failures(outcomes):
        note(f"{outcome.hub}: {outcome.error}")
    return [server for outcome in outcomes if outcome.ok for server in outcome.value or []]


def idle_seconds(server: Server, now: dt.datetime) -> float | None:
    """Seconds since SERVER's last activity (or its start, when it has none)."""
    stamp = server.last_activity or server.started
    if not stamp:
        return None
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (now - when).total_seconds()


def stop_idle(
    env: Environment, older_than: int, note: Callable[[str], None]
) -> list[tuple[Server, str]]:
    """Stop every server idle for more than OLDER_THAN seconds; (server, what happened) each."""
    now = dt.datetime.now(dt.UTC)
    everywhere = hubs.hubs(env)
    by_name = {hub.name: hub for hub in everywhere}
    stopped = []
    for server in running(env, note, everywhere):
        idle = idle_seconds(server, now)
        if idle is None or idle <= older_than:
            continue
        stopped.append((server, hubapi.stop_server(env, by_name[server.hub], server.user)))
    return stopped
