"""callysto fleet: the hubs of a fleet and its students: loads, where a student is, moving one,
draining a hub."""

from __future__ import annotations

import click

from callysto_infra import progress, validate
from callysto_infra.cli.common import emit, emit_json, env_option, json_option, load_env, validated

USER_HELP = "USER is a 40-hex user hash or an e-mail address (hashed first)."


def _fleet_env(env_name: str | None):
    from callysto_infra import fleetdb

    env = load_env(env_name)
    fleetdb.require_fleet(env)
    return env


@click.group("fleet")
def group() -> None:
    """A fleet's hubs and students: loads, finding, moving, draining."""


@group.command("list", short_help="Each hub's state, load and whether it answers.")
@env_option
@json_option
def list_(env_name: str | None, as_json: bool) -> None:
    """Each hub: its state, capacity, students and whether it answers; and the moves under way.

    Every hub is asked at once; one that does not answer is listed as such.
    """
    from callysto_infra import fleet, fleetdb

    env = _fleet_env(env_name)
    with fleetdb.connect(env) as conn:
        rows, under_way = fleet.overview(env, conn)
    document = {
        "hubs": [row.as_dict() for row in rows],
        "moves": [fleet.move_dict(move) for move in under_way],
    }
    header = ("HUB", "STATE", "CAPACITY", "STUDENTS", "ANSWERS")
    table = [header] + [
        (r.name, r.state, str(r.capacity), str(r.students),
         ("yes, " if r.answers else "no: ") + r.answer)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in table]  # fmt: skip
    lines += [f"note: hub '{r.name}' is not in the fleet database yet (the front door adds it "
              "when it starts)" for r in rows if not r.in_database]  # fmt: skip
    if under_way:
        lines.append("moves under way:")
        lines += [f"  {m.user_hash}  {m.from_hub} -> {m.to_hub}  {_progress(m)}"
                  for m in under_way]  # fmt: skip
    else:
        lines.append("no move under way")
    emit(as_json, document, lines)


def _progress(move) -> str:
    from callysto_infra import moves

    if move.step == "done":
        return "done (the old home awaits --cleanup)"
    if moves.switched(move):
        return f"after step '{move.step}' (run the same move again to finish it)"
    return f"after step '{move.step}' (run the same move again to resume it, or --abort)"


@group.command("find", epilog=USER_HELP)
@env_option
@json_option
@click.argument("user", callback=validated(validate.user_ref))
def find(env_name: str | None, as_json: bool, user: str) -> None:
    """Which hub USER is assigned to, and their move under way if any."""
    from callysto_infra import fleet, fleetdb, userhash

    env = _fleet_env(env_name)
    user_hash = userhash.hash_of_user(env, user)
    with fleetdb.connect(env) as conn:
        hub, move = fleet.whereabouts(conn, user_hash)
    document = {"user": user_hash, "hub": hub, "move": fleet.move_dict(move) if move else None}
    lines = [f"{user_hash}  {hub or 'no hub yet'}"]
    if move is not None:
        lines.append(f"move: {move.from_hub} -> {move.to_hub}, {_progress(move)}")
    emit(as_json, document, lines)


@group.command("move", epilog=USER_HELP, short_help="Move a student's home to another hub.")
@env_option
@click.option(
    "--to",
    "to_hub",
    metavar="HUB",
    callback=validated(validate.host),
    help="The hub to move USER to.",
)
@click.option("--abort", is_flag=True, help="Roll back USER's move that has not switched yet.")
@click.option("--cleanup", is_flag=True, help="After a finished move: destroy the old frozen home.")
@click.argument("user", callback=validated(validate.user_ref))
def move(env_name: str | None, to_hub: str | None, abort: bool, cleanup: bool, user: str) -> None:
    """Move USER's home to hub --to, and the front door's assignment with it.

    The student's server is stopped and their home frozen (read-only) while it is copied; each
    step is journaled in the fleet's database as it is reached, so a move that stops anywhere
    (Ctrl-C, a network or hub failure) resumes when the same command runs again, or is rolled
    back with --abort until it has switched. The old home stays frozen until --cleanup.
    """
    from callysto_infra import fleetdb, fleetmove, userhash
    from callysto_infra.errors import UsageError

    if abort and cleanup:
        raise UsageError("give --abort or --cleanup, not both")
    if not (abort or cleanup or to_hub):
        raise UsageError("give the hub to move to: --to HUB (or --abort, --cleanup)")
    env = _fleet_env(env_name)
    if to_hub is not None:
        from callysto_infra import fleet

        to_hub = fleet.member(env, to_hub).name  # an unknown hub: refused before anything
    user_hash = userhash.hash_of_user(env, user)
    with fleetdb.connect(env) as conn:
        if abort:
            click.echo(fleetmove.abort(env, conn, user_hash, to_hub))
        elif cleanup:
            click.echo(fleetmove.cleanup(env, conn, user_hash, to_hub))
        else:
            assert to_hub is not None
            try:
                click.echo(fleetmove.run(env, conn, user_hash, to_hub, progress.to_stderr))
            except KeyboardInterrupt:
                # Each step is journaled once done, so wherever this stopped is a step boundary
                # or a step that runs again whole.
                again = f"callysto fleet move --env {env.name} {user_hash} --to {to_hub}"
                progress.to_stderr(_interrupted(conn, user_hash, again))
                raise SystemExit(130) from None


def _interrupted(conn, user_hash: str, again: str) -> str:
    """What to do after a move was interrupted: resume it, or (before it switched the student
    over) roll it back."""
    import contextlib

    from callysto_infra import moves

    current = None
    with contextlib.suppress(Exception):  # the interrupt may have cut the connection short
        current = moves.journal(conn, user_hash)
    if current is None:
        return (
            f"interrupted: the move is journaled; run '{again}' to resume it, or add --abort "
            "to roll it back unless it has switched the student over"
        )
    if moves.switched(current):
        return (
            f"interrupted after step '{current.step}': the student is on the new hub; run "
            f"'{again}' to finish the move"
        )
    return (
        f"interrupted after step '{current.step}': the move is journaled; run '{again}' to "
        "resume it, or add --abort to roll it back"
    )


@group.command("drain", short_help="Send no new students to HUB; its own stay.")
@env_option
@click.argument("hub", callback=validated(validate.host))
def drain(env_name: str | None, hub: str) -> None:
    """Send no new students to HUB; those it holds stay (move them with 'fleet move').

    Recorded in env.yaml (hubs: ... state: draining, comments kept; a count of hubs becomes
    their list) and in the fleet's database at once. 'fleet accept' undoes it.
    """
    _set_state(env_name, hub, "draining")


@group.command("accept", short_help="Let HUB take new students again.")
@env_option
@click.argument("hub", callback=validated(validate.host))
def accept(env_name: str | None, hub: str) -> None:
    """Let HUB take new students again (undoes 'fleet drain'), in env.yaml and the database."""
    _set_state(env_name, hub, "accepting")


def _set_state(env_name: str | None, hub: str, state: str) -> None:
    from callysto_infra import fleet

    env = _fleet_env(env_name)
    member, changed, students = fleet.set_hub_state(env, hub, state)
    held = f"{students} student{'s' if students != 1 else ''}"
    if state == "draining":
        news = f"hub '{member.name}' is draining: no new students go there; its {held} stay"
    else:
        news = f"hub '{member.name}' is accepting new students (it holds {held})"
    click.echo(news if changed else f"{news} (it was already)")


@group.command("rebalance", short_help="Plan the moves that even the hubs out.")
@env_option
@click.option("--dry-run", is_flag=True, help="Print the moves; change nothing.")
@json_option
def rebalance(env_name: str | None, dry_run: bool, as_json: bool) -> None:
    """Plan the moves that bring every accepting hub to about the same students/capacity
    ratio (only with --dry-run: the moves themselves are 'fleet move', one by one)."""
    from callysto_infra import fleet, fleetdb
    from callysto_infra.errors import UsageError

    if not dry_run:
        raise UsageError(
            "rebalance only plans (--dry-run): move the students it lists one by one with "
            "'callysto fleet move USER --to HUB'"
        )
    env = _fleet_env(env_name)
    with fleetdb.connect(env) as conn:
        plan, targets = fleet.rebalance_plan(conn)
    document = {
        "moves": [{"user": m.user, "from": m.from_hub, "to": m.to_hub} for m in plan],
        "students_after": targets,
    }
    if as_json:
        emit_json(document)
        return
    if not plan:
        click.echo("the accepting hubs are balanced: no move to make")
        return
    for m in plan:
        click.echo(
            f"callysto fleet move --env {env.name} {m.user} --to {m.to_hub}  # from {m.from_hub}"
        )
    after = ", ".join(f"{name} {count}" for name, count in targets.items())
    progress.to_stderr(
        f"{len(plan)} move{'s' if len(plan) != 1 else ''}; students afterwards: {after}"
    )
