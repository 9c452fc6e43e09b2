"""One operation on every hub of an environment at once: each hub in a thread of its own (the
work is SSH round trips and ZFS commands, so threads wait together), a hub that is down or
fails is named while the others finish, and the run ends with one line per hub."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

from callysto_infra.errors import CallystoError, OperationError, Unreachable
from callysto_infra.hubs import Hub

T = TypeVar("T")

OK = "ok"
UNREACHABLE = "UNREACHABLE"
FAILED = "FAILED"

# Enough for the largest fleet env.yaml allows (hubs: at most 100): every hub at once.
MAX_AT_ONCE = 100


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one hub made of the operation: its answer, or why there is none."""

    hub: str
    status: str = OK
    detail: str = ""  # why it failed, or a few words on what was done
    value: T | None = None
    error: str = ""  # a failure's whole message, as the hub's own command would say it

    @property
    def ok(self) -> bool:
        return self.status == OK

    def line(self) -> str:
        """'hub-a: ok', 'hub-b: UNREACHABLE: <why>': the hub's line of the summary."""
        return f"{self.hub}: {self.status}" + (f": {self.detail}" if self.detail else "")


def outcome_of_error(hub: Hub, exc: CallystoError) -> Outcome:
    """HUB's outcome when its part raised EXC: UNREACHABLE when SSH could not reach it at all
    (errors.Unreachable), else FAILED."""
    message = str(exc)
    if isinstance(exc, Unreachable):
        return Outcome(hub.name, UNREACHABLE, exc.why, error=message)
    return Outcome(hub.name, FAILED, message, error=message)


def on_every_hub(
    hubs: Sequence[Hub],
    operation: Callable[[Hub], T],
    *,
    done: Callable[[Outcome[T]], None] | None = None,
) -> list[Outcome[T]]:
    """OPERATION(hub) on every hub of HUBS at once. A CallystoError ends that hub's part only:
    it becomes the hub's UNREACHABLE or FAILED outcome. Outcomes come back in the order of HUBS;
    DONE (called in this thread) hears of each one as it ends, for progress lines."""

    def one(hub: Hub) -> Outcome[T]:
        try:
            return Outcome(hub.name, value=operation(hub))
        except CallystoError as exc:
            return outcome_of_error(hub, exc)

    if len(hubs) <= 1:  # no thread to start for a single hub
        outcomes = [one(hub) for hub in hubs]
        for outcome in outcomes:
            if done is not None:
                done(outcome)
        return outcomes
    by_hub: dict[str, Outcome[T]] = {}
    workers = ThreadPoolExecutor(max_workers=min(MAX_AT_ONCE, len(hubs)))
    try:
        futures = [workers.submit(one, hub) for hub in hubs]
        for future in as_completed(futures):
            outcome = future.result()
            by_hub[outcome.hub] = outcome
            if done is not None:
                done(outcome)
    finally:
        # Interrupted: hubs not yet started are not started; those running finish their part.
        workers.shutdown(wait=True, cancel_futures=True)
    return [by_hub[hub.name] for hub in hubs]


def summary(
    outcomes: Sequence[Outcome[T]], describe: Callable[[T], str] | None = None
) -> list[str]:
    """One line per hub, in the fleet's order; DESCRIBE says in a few words what a hub that is
    ok answered ('hub-a: ok: 12 homes')."""
    return [
        Outcome(o.hub, o.status, describe(o.value)).line()  # type: ignore[arg-type]
        if o.ok and describe is not None
        else o.line()
        for o in outcomes
    ]


def failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [outcome for outcome in outcomes if not outcome.ok]


def failure(outcomes: Sequence[Outcome], what: str = "failed") -> OperationError | None:
    """The error a fleet command exits with when a hub failed, naming the first; None when every
    hub is ok. A single hub's own message stands alone."""
    bad = failures(outcomes)
    if not bad:
        return None
    first = bad[0]
    if len(outcomes) == 1:
        return OperationError(first.error or first.line())
    return OperationError(f"{len(bad)} of {len(outcomes)} hubs {what}: {first.line()}")


def finish(
    outcomes: Sequence[Outcome[T]],
    describe: Callable[[T], str] | None = None,
    *,
    what: str = "failed",
) -> None:
    """How a command asked of every hub ends: with several hubs, a line per hub on stderr;
    then the failure naming the first hub that did not answer (exit 1), if any."""
    if len(outcomes) > 1:
        for line in summary(outcomes, describe):
            print(line, file=sys.stderr, flush=True)
    failed = failure(outcomes, what)
    if failed is not None:
        raise failed


def none_answered(outcomes: Sequence[Outcome]) -> bool:
    """No hub answered: there is nothing to show but why."""
    return bool(outcomes) and not any(outcome.ok for outcome in outcomes)
