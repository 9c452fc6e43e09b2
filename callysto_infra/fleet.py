"""A fleet as operators see it: its hubs (env.yaml's names, joined to how to reach each), their
loads and whether they answer, where a student is, and a plan that evens the hubs out. The
assignment table is assignments.py's and a move's steps are moves.py's."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from callysto_infra import assignments, homes, hubapi, moves
from callysto_infra import hubs as hubs_module
from callysto_infra.errors import OperationError, UsageError

if TYPE_CHECKING:
    import psycopg

    from callysto_infra.env_schema import FleetHub
    from callysto_infra.environments import Environment
    from callysto_infra.hubs import Hub


@dataclass(frozen=True)
class Member:
    """A hub of the fleet: its name in env.yaml (and in the assignment table), its settings, and
    how to reach it (None: not in the Terraform state yet)."""

    name: str
    config: FleetHub
    hub: Hub | None

    def place(self, env: Environment) -> moves.Place:
        if self.hub is None:
            raise UsageError(
                f"hub '{self.name}' is not in the Terraform state yet: run "
                f"'callysto terraform apply --env {env.name}' first"
            )
        return moves.Place(self.name, self.hub, self.hub.pool)


def members(env: Environment) -> list[Member]:
    """The hubs env.yaml lists, in its order. A cloud hub's state names it <name>.<domain>."""
    known = hubs_module.hubs(env)
    found = []
    for member in env.config.fleet:
        names = (member.name, f"{member.name}.{env.config.host.domain}")
        hub = next((h for h in known if h.name in names), None)
        found.append(Member(member.name, member, hub))
    return found


def member(env: Environment, name: str) -> Member:
    """The hub NAME (env.yaml's name, or a cloud hub's full name); else exit 2 listing them."""
    every = members(env)
    for candidate in every:
        if name in (candidate.name, getattr(candidate.hub, "name", None)):
            return candidate
    known = ", ".join(m.name for m in every)
    raise UsageError(f"unknown hub {name!r} in environment '{env.name}' (known: {known})")


# --- fleet list ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubStatus:
    name: str
    state: str  # what the database says now (env.yaml's, for a hub it does not hold yet)
    capacity: int
    students: int
    answers: bool
    answer: str  # the JupyterHub version, or why it did not answer
    in_database: bool
    in_env: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _answers(env: Environment, hubs: list[Hub]) -> dict[str, tuple[bool, str]]:
    """Every hub asked at once; one that is down is an answer too."""
    found, failed = homes.ask_every_hub(hubs, lambda hub: (hub.name, hubapi.version(env, hub)))
    result = {name: (True, f"JupyterHub {version}") for name, version in found}
    result.update({name: (False, reason) for name, reason in failed.items()})
    return result


def overview(env: Environment, conn: psycopg.Connection) -> tuple[list[HubStatus], list]:
    """Each hub of env.yaml and of the database, with its load and whether it answers; and the
    moves under way."""
    loads = {load.name: load for load in assignments.loads(conn)}
    listed = members(env)
    reachable = [m.hub for m in listed if m.hub is not None]
    answers = _answers(env, reachable) if reachable else {}
    rows = []
    for m in listed:
        load = loads.get(m.name)
        answered = (False, "not in the Terraform state yet")
        if m.hub is not None:
            answered = answers.get(m.hub.name, (False, "not asked"))
        rows.append(
            HubStatus(
                name=m.name,
                state=load.state if load else m.config.state,
                capacity=load.capacity if load else m.config.capacity,
                students=load.students if load else 0,
                answers=answered[0],
                answer=answered[1],
                in_database=load is not None,
                in_env=True,
            )
        )
    for name, load in loads.items():
        if all(m.name != name for m in listed):  # gone from env.yaml, still holding students
            rows.append(
                HubStatus(name, load.state, load.capacity, load.students, False,
                          "not in env.yaml any more", in_database=True, in_env=False)
            )  # fmt: skip
    return rows, moves.under_way(conn)


def move_dict(move: moves.Move) -> dict:
    return {"user": move.user_hash, "from": move.from_hub, "to": move.to_hub, "step": move.step}


# --- fleet find ----------------------------------------------------------------------------------


def whereabouts(conn: psycopg.Connection, user_hash: str) -> tuple[str | None, moves.Move | None]:
    """The hub USER_HASH is assigned to (None: not yet) and their move under way, if any."""
    current = moves.journal(conn, user_hash)
    return assignments.find(conn, user_hash), current


# --- fleet rebalance -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedMove:
    user: str
    from_hub: str
    to_hub: str


def _targets(loads: list[assignments.HubLoad]) -> dict[str, int]:
    """How many students each hub would hold at the same students/capacity ratio: whole
    numbers adding up to today's total (largest remainders first, then by name)."""
    total = sum(load.students for load in loads)
    room = sum(load.capacity for load in loads)
    shares = {load.name: total * load.capacity / room for load in loads}
    targets = {name: int(share) for name, share in shares.items()}
    left = total - sum(targets.values())
    by_remainder = sorted(shares, key=lambda name: (-(shares[name] - targets[name]), name))
    for name in by_remainder[:left]:
        targets[name] += 1
    return targets


def rebalance_plan(conn: psycopg.Connection) -> tuple[list[PlannedMove], dict[str, int]]:
    """The fewest moves that bring every accepting hub to about the same students/capacity
    ratio, and each hub's count afterwards. Draining hubs keep their own (they are emptied one
    student at a time by the operator); students already moving stay out of the plan."""
    loads = [
        load
        for load in assignments.loads(conn)
        if load.state == assignments.ACCEPTING and load.capacity > 0
    ]
    if not loads:
        raise OperationError("no hub is accepting students: there is nothing to balance")
    targets = _targets(loads)
    moving = {move.user_hash for move in moves.under_way(conn)}
    counts = {load.name: load.students for load in loads}
    short = {name: targets[name] - counts[name] for name in counts if targets[name] > counts[name]}
    plan: list[PlannedMove] = []
    for load in loads:
        surplus = counts[load.name] - targets[load.name]
        if surplus <= 0:
            continue
        movable = [u for u in assignments.students(conn, load.name) if u not in moving]
        for user in movable[:surplus]:
            receiver = min((n for n in short if short[n] > 0), key=lambda n: (-short[n], n))
            short[receiver] -= 1
            plan.append(PlannedMove(user, load.name, receiver))
    return plan, targets


# --- fleet drain / accept ------------------------------------------------------------------------


def set_hub_state(env: Environment, name: str, state: str) -> tuple[Member, bool, int]:
    """Make hub NAME accepting or draining, in env.yaml (what the front door syncs from at each
    start) and in the database at once (what it reads at each new student). Returns the hub,
    whether anything changed and how many students it holds. Either both change or neither."""
    from callysto_infra import fleetconfig, fleetdb, locking

    target = member(env, name)
    verb = "drain" if state == assignments.DRAINING else "accept"
    with locking.hold(env.path, env.name, f"callysto fleet {verb} {target.name}"):
        edit = fleetconfig.prepare(env, target.name, state)  # validated; nothing written yet
        with fleetdb.connect(env) as conn:
            before = {load.name: load for load in assignments.loads(conn)}.get(target.name)
            written = False
            try:
                with conn.transaction():
                    assignments.set_state(conn, target.name, target.config.capacity, state)
                    if edit.changes:
                        edit.write()
                        written = True
            except BaseException:
                if written:  # the database did not take it: env.yaml goes back as it was
                    edit.undo()
                raise
    changed = edit.changes or before is None or before.state != state
    return target, changed, before.students if before else 0
