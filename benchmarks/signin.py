"""Time from a sign-in button's click to a running server: through the real sign-in proxy
(SimpleSAMLphp, signed and encrypted SAML) against the quick sign-in it replaced (a 40-hex hash
posted to /hub/login), on one local hub brought up by `make local`, in one run.

Each sign-in is a new student, so both include the creation of the student's ZFS home. Needs
root (zfs-fuse, as `make local` does); run it as `.venv/bin/python benchmarks/signin.py [ROUNDS]`.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.signin import Student, local_hub

PORT = 18640  # the hub, and the three ports after it


def wait_running(hub, user_hash: str, deadline: float = 120.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        servers = hub.api(f"users/{user_hash}").get("servers", {})
        if servers.get("", {}).get("ready"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no running server for {user_hash}")


def through_the_proxy(hub, n: int) -> tuple[float, float, str]:
    student = Student(hub)
    email = f"bench.{uuid.uuid4().hex[:8]}.{n}@example.org"
    start = time.perf_counter()
    answer = student.sign_in("google", email)
    signed_in = time.perf_counter() - start
    student.session.get(f"{hub.url}{answer.headers['Location'].lstrip('/')}", timeout=120)
    user_hash = student.signed_in_as()
    wait_running(hub, user_hash)
    return time.perf_counter() - start, signed_in, user_hash


def quick_sign_in(hub, n: int) -> tuple[float, float, str]:
    student = Student(hub)
    user_hash = uuid.uuid4().hex + f"{n:08x}"
    start = time.perf_counter()
    student.session.get(f"{hub.url}hub/login")
    xsrf = student.session.cookies.get("_xsrf")
    answer = student.session.post(
        f"{hub.url}hub/login",
        data={"username": user_hash, "password": "", "_xsrf": xsrf},
        allow_redirects=False,
    )
    signed_in = time.perf_counter() - start
    student.session.get(f"{hub.url}{answer.headers['Location'].lstrip('/')}", timeout=120)
    wait_running(hub, user_hash)
    return time.perf_counter() - start, signed_in, user_hash


def spread(samples: list[float]) -> str:
    return f"median {statistics.median(samples):6.2f} s (min {min(samples):.2f}, max {max(samples):.2f})"


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with local_hub("bench", PORT, "bench") as hub:
        ours, quick, ours_sign_in, quick_sign_ins = [], [], [], []
        for n in range(rounds):
            # Alternate, so that neither gets a warmer machine.
            for samples, parts, sign_in in (
                (ours, ours_sign_in, through_the_proxy),
                (quick, quick_sign_ins, quick_sign_in),
            ):
                seconds, signed_in, user_hash = sign_in(hub, n)
                samples.append(seconds)
                parts.append(signed_in)
                hub.api(f"users/{user_hash}/server", method="DELETE")
        proxy, plain = statistics.median(ours), statistics.median(quick)
        print(f"rounds: {rounds} (each a new student: first sign-in, home created, server started)")
        print("click to running server:")
        print(f"  through the sign-in proxy  {spread(ours)}")
        print(f"  quick 40-hex sign-in       {spread(quick)}")
        print(f"  ratio {proxy / plain:.2f}x, the proxy adds {(proxy - plain) * 1000:.0f} ms")
        print("click to signed in, no server yet:")
        print(f"  through the sign-in proxy  {spread(ours_sign_in)}")
        print(f"  quick 40-hex sign-in       {spread(quick_sign_ins)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
