"""everyhub: one operation on every hub at once, each hub's verdict, and how a command ends."""

from __future__ import annotations

import threading

import pytest

from callysto_infra import everyhub
from callysto_infra.errors import OperationError, Unreachable
from callysto_infra.hubs import Hub

HUBS = [Hub(name, f"192.0.2.{n}") for n, name in enumerate(("hub-a", "hub-b", "hub-c"), 1)]


def test_every_hub_is_asked_at_the_same_time():
    # Each hub's part waits for the other two: asked one after another, none would get past.
    together = threading.Barrier(len(HUBS), timeout=10)

    def operation(hub: Hub) -> str:
        together.wait()
        return hub.name.upper()

    outcomes = everyhub.on_every_hub(HUBS, operation)
    assert [(o.hub, o.status, o.value) for o in outcomes] == [
        ("hub-a", "ok", "HUB-A"),
        ("hub-b", "ok", "HUB-B"),
        ("hub-c", "ok", "HUB-C"),
    ]


def test_a_hub_ssh_cannot_reach_is_unreachable_and_one_that_fails_is_failed():
    def operation(hub: Hub) -> int:
        if hub.name == "hub-a":
            raise Unreachable(hub.name, hub.address, "Connection refused")
        if hub.name == "hub-b":
            # Its message happens to read like an unreachable hub's: the type decides.
            raise OperationError("hub 'hub-b' (192.0.2.2) is unreachable: said the zfs command")
        return 7

    outcomes = everyhub.on_every_hub(HUBS, operation)
    assert [o.line() for o in outcomes] == [
        "hub-a: UNREACHABLE: Connection refused",
        "hub-b: FAILED: hub 'hub-b' (192.0.2.2) is unreachable: said the zfs command",
        "hub-c: ok",
    ]
    assert not everyhub.none_answered(outcomes)


def test_finish_gives_a_line_per_hub_then_fails_naming_the_first(capsys):
    outcomes = [
        everyhub.Outcome("hub-a", value=3),
        everyhub.Outcome("hub-b", everyhub.UNREACHABLE, "timed out", error="whole message"),
    ]
    with pytest.raises(OperationError) as raised:
        everyhub.finish(outcomes, lambda n: f"{n} homes")
    assert str(raised.value) == "1 of 2 hubs failed: hub-b: UNREACHABLE: timed out"
    assert capsys.readouterr().err.splitlines() == [
        "hub-a: ok: 3 homes",
        "hub-b: UNREACHABLE: timed out",
    ]


def test_one_hub_ends_with_its_own_message_and_no_summary(capsys):
    outcomes = [everyhub.Outcome("hub-a", everyhub.FAILED, "short", error="the hub's own words")]
    assert everyhub.none_answered(outcomes)
    with pytest.raises(OperationError, match=r"\Athe hub's own words\Z"):
        everyhub.finish(outcomes)
    assert capsys.readouterr().err == ""
    everyhub.finish([everyhub.Outcome("hub-a", value=1)])  # all well: nothing raised
