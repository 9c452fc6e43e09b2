"""Adjective-animal names for dev hubs (brave-otter), chosen by the CLI so they show in env.yaml."""

from __future__ import annotations

import secrets
from collections.abc import Container

ADJECTIVES = (
    "able", "agile", "amused", "ample", "apt", "bold", "boss", "brave", "bright", "brisk", "calm",
    "civil", "clever", "cosmic", "crisp", "daring", "dear", "eager", "engaged", "epic", "fair",
    "fast", "fine", "fit", "flowing", "fond", "frank", "gentle", "glad", "golden", "grand",
    "happy", "hardy", "honest", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucky",
    "mature", "merry", "mighty", "modest", "neat", "nimble", "noble", "obliging", "patient",
    "polite", "promoted", "proud", "quick", "quiet", "rapid", "ready", "ruling", "sharp", "shy",
    "smart", "solid", "steady", "sunny", "swift", "tidy", "topical", "trusty", "upbeat", "vivid",
    "warm", "wise", "witty", "zesty",
)  # fmt: skip

ANIMALS = (
    "alpaca", "badger", "beaver", "bison", "bobcat", "cowbird", "coyote", "crane", "dingo",
    "dolphin", "donkey", "eagle", "egret", "elk", "falcon", "ferret", "finch", "flounder", "fox",
    "gecko", "gopher", "grouse", "heron", "ibis", "impala", "jackal", "jay", "koala", "lemur",
    "lynx", "magpie", "marmot", "mink", "moose", "narwhal", "newt", "ocelot", "orca", "osprey",
    "otter", "owl", "panda", "peacock", "pelican", "pika", "puffin", "quail", "rabbit", "raven",
    "redfish", "robin", "salmon", "sawfly", "seal", "shrew", "skunk", "sparrow", "squid", "stoat",
    "swan", "tapir", "tern", "toad", "trout", "turtle", "vole", "walrus", "weasel", "wildcat",
    "wombat", "wren", "yak", "zebra",
)  # fmt: skip


def pet_name(taken: Container[str] = ()) -> str:
    """A random adjective-animal name not in TAKEN."""
    for _ in range(1000):
        candidate = f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}"
        if candidate not in taken:
            return candidate
    raise RuntimeError("no free pet name left")


def stable_names(seed: str, count: int, taken: Container[str] = ()) -> list[str]:
    """COUNT distinct names drawn from SEED alone (the same every time), none in TAKEN: the hubs of
    an env.yaml that gives only their number keep their names from one run to the next."""
    import hashlib

    names: list[str] = []
    counter = 0
    while len(names) < count:
        digest = hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
        if counter > 100_000:
            raise RuntimeError("no free pet name left")
        candidate = (
            f"{ADJECTIVES[int.from_bytes(digest[:4]) % len(ADJECTIVES)]}-"
            f"{ANIMALS[int.from_bytes(digest[4:8]) % len(ANIMALS)]}"
        )
        if candidate not in taken and candidate not in names:
            names.append(candidate)
    return names
