"""Is an environment's hub serving? The proxy answers and routes to the hub, the hub's API answers
to the operator token, the sign-in proxy publishes the pinned IdP, the ZFS pool is ONLINE and
has room for students to sign in."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callysto_infra import everyhub, hubapi, hubs, zfs
from callysto_infra.errors import CallystoError, Unreachable
from callysto_infra.homes import MIN_FREE_BYTES
from callysto_infra.sizes import human_size

if TYPE_CHECKING:
    from callysto_infra.environments import Environment


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # Why SSH could not reach the hub at all, when that is why the check failed.
    unreachable: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Report:
    env: str
    url: str
    attempts: int = 0
    checks: list[Check] = field(default_factory=list)
    # Each hub with its own checks (also among `checks`), in the fleet's order.
    per_hub: list[tuple[hubs.Hub, list[Check]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)

    def outcomes(self) -> list[everyhub.Outcome]:
        """Each hub's verdict, for the per-hub summary."""
        return [hub_outcome(hub, checks) for hub, checks in self.per_hub]

    def as_dict(self) -> dict:
        return {
            "env": self.env,
            "url": self.url,
            "healthy": self.ok,
            "attempts": self.attempts,
            "checks": [c.as_dict() for c in self.checks],
        }


def hub_outcome(hub: hubs.Hub, checks: list[Check]) -> everyhub.Outcome:
    """ok when every check of HUB passed; UNREACHABLE when none did and SSH could not reach it;
    else FAILED with its first failed check (and the names of the others)."""
    bad = [check for check in checks if not check.ok]
    if not bad:
        return everyhub.Outcome(hub.name)
    if len(bad) == len(checks):
        why = next((check.unreachable for check in bad if check.unreachable), None)
        if why is not None:
            return everyhub.Outcome(hub.name, everyhub.UNREACHABLE, why)
    also = f" (also failed: {', '.join(c.name for c in bad[1:])})" if len(bad) > 1 else ""
    return everyhub.Outcome(hub.name, everyhub.FAILED, f"{bad[0].name}: {bad[0].detail}{also}")


def hub_url(env: Environment, hub: hubs.Hub | None = None) -> str:
    """The address students open: the local port on this machine, else the HTTPS name of HUB
    (by default the environment's host.name)."""
    if env.type == "local":
        # A local fleet's own address is its front door's, at local.port too.
        return f"http://127.0.0.1:{hub.port if hub is not None and hub.port else env.local.port}/"
    return f"https://{hub.name if hub is not None else env.fqdn}/"


def _get_json(url: str, timeout: float, token: str | None = None) -> tuple[int, object]:
    # URLs are built here from hub_url(): http or https only.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _http_failure(exc: Exception) -> str:
    reason = getattr(exc, "reason", exc)
    return f"no answer ({reason})"


def check_proxy(env: Environment, timeout: float, hub: hubs.Hub | None = None) -> Check:
    """The public address answers with the hub's API root: the proxy is up and routes to the hub."""
    url = hub_url(env, hub) + "hub/api"
    try:
        status, doc = _get_json(url, timeout)
    except (OSError, urllib.error.URLError) as exc:
        return Check("proxy", False, f"{url}: {_http_failure(exc)}")
    if status != 200 or not isinstance(doc, dict) or "version" not in doc:
        return Check("proxy", False, f"{url} answered HTTP {status}, not the hub's API")
    return Check("proxy", True, f"{hub_url(env, hub)} routes to JupyterHub {doc['version']}")


def frontdoor_url(env: Environment) -> str | None:
    """The front door's address (a local fleet's local.port, or frontdoor.name), or None."""
    if hubs.is_local_fleet(env):
        return f"http://127.0.0.1:{env.local.port}/"
    if env.frontdoor_fqdn is not None:
        return f"https://{env.frontdoor_fqdn}/"
    return None


def check_frontdoor(env: Environment, timeout: float) -> Check | None:
    """The front door answers and reaches its assignment table (None: there is none)."""
    base = frontdoor_url(env)
    if base is None:
        return None
    url = base + "frontdoor/health"
    try:
        status, doc = _get_json(url, timeout)
    except (OSError, urllib.error.URLError) as exc:
        return Check("frontdoor", False, f"{url}: {_http_failure(exc)}")
    if status == 200 and isinstance(doc, dict) and doc.get("database") is True:
        return Check("frontdoor", True, f"{base} assigns students to {len(doc['hubs'])} hubs")
    if isinstance(doc, dict) and doc.get("database") is False:
        return Check("frontdoor", False, f"{base} answers but its database does not")
    return Check("frontdoor", False, f"{url} answered HTTP {status}, not the front door")


def sign_in_url(env: Environment) -> str:
    """The sign-in proxy's base: its own port on this machine (the hub's + 3), else
    /simplesaml/ on the front door or, without one, on the hub."""
    if env.type == "local":
        return f"http://127.0.0.1:{env.local.port + 3}/simplesaml/"
    return f"https://{env.idp_proxy_fqdn}/simplesaml/"


# The root element's entityID in SAML metadata (read as text: nothing else of it is needed).
_ENTITY_ID = re.compile(rb"<(?:[\w.-]+:)?EntityDescriptor\b[^>]*?\bentityID=\"([^\"]*)\"")


def check_sign_in(env: Environment, timeout: float) -> Check:
    """The sign-in proxy publishes the IdP whose entity ID the environment pins: students can
    sign in, and their hashes are the ones `callysto user findhash` prints."""
    url = sign_in_url(env) + "saml2/idp/metadata.php"
    request = urllib.request.Request(url)  # noqa: S310 (built above: http or https)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, body = response.status, response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return Check("sign-in", False, f"{url} answered HTTP {exc.code}, not the proxy's metadata")
    except (OSError, urllib.error.URLError) as exc:
        return Check("sign-in", False, f"{url}: {_http_failure(exc)}")
    found = _ENTITY_ID.search(body)
    if status != 200 or found is None:
        return Check("sign-in", False, f"{url} answered HTTP {status}, not SAML metadata")
    published = found.group(1).decode("utf-8", "replace")
    if published != env.idp_entity_id:
        return Check(
            "sign-in",
            False,
            f"the sign-in proxy publishes the IdP {published!r}, not the pinned "
            f"{env.idp_entity_id!r}: provision it (callysto ansible playbook --env {env.name} hub)",
        )
    return Check("sign-in", True, f"{sign_in_url(env)} publishes the IdP {published}")


def check_hub_api(env: Environment, timeout: float, hub: hubs.Hub | None = None) -> Check:
    """The hub's API accepts the operator token (the hub and its database work)."""
    token = hubapi.read_token(env)
    if token is None:
        return Check(
            "hub-api",
            False,
            f"no operator token (mode 0600) in {hubapi.TOKEN_FILE} of '{env.name}': provision "
            f"the hub (callysto ansible playbook --env {env.name} hub)",
        )
    url = hub_url(env, hub) + "hub/api/user"
    try:
        status, doc = _get_json(url, timeout, token)
    except (OSError, urllib.error.URLError) as exc:
        return Check("hub-api", False, f"{url}: {_http_failure(exc)}")
    if status != 200 or not isinstance(doc, dict):
        return Check("hub-api", False, f"{url} answered HTTP {status} to the operator token")
    where = "" if hub is None or hub.name == "localhost" else f"{hub.name} "
    return Check(
        "hub-api", True, f"{where}answers the operator token (as '{doc.get('name', '?')}')"
    )


def check_pool(env: Environment, timeout: float, on: list[hubs.Hub] | None = None) -> list[Check]:
    """The pool's health and the free space of its home datasets, read as data on each hub
    (or those ON)."""
    checks = []
    for hub in hubs.hubs(env) if on is None else on:
        pool = hub.pool
        where = "" if hub.name == "localhost" else f" on {hub.name}"
        try:
            health = zfs.pool_health(hub, pool, timeout=timeout * 4)
        except CallystoError as exc:
            why = exc.why if isinstance(exc, Unreachable) else None
            checks.append(Check("pool", False, str(exc), unreachable=why))
            continue
        if health is None:
            checks.append(Check("pool", False, f"pool '{pool}'{where} is not imported"))
            continue
        checks.append(Check("pool", health == "ONLINE", f"pool '{pool}'{where} is {health}"))
        home = f"{pool}/home"
        try:
            props = zfs.get_properties(hub, [home], ["available", "mounted"], timeout=timeout * 4)
        except zfs.ZfsError:
            props = {}
        value = props.get(home, {}).get("available", "")
        if not value.isdigit():
            checks.append(Check("free-space", False, f"dataset '{home}'{where} is missing"))
            continue
        if props[home].get("mounted") != "yes":
            # Students' servers would start in the empty directory beneath it.
            checks.append(
                Check(
                    "free-space",
                    False,
                    f"dataset '{home}'{where} is not mounted: run the hub playbook "
                    f"(callysto ansible playbook --env {env.name} --tags zfs hub)",
                )
            )
            continue
        free = int(value)
        checks.append(
            Check(
                "free-space",
                free >= MIN_FREE_BYTES,
                f"{human_size(free)} free for homes in '{pool}/home'{where}",
            )
        )
    return checks


def check(env: Environment, timeout: float = 5.0) -> Report:
    """One round of every check."""
    report = Report(env.name, hub_url(env), attempts=1)

    def one_hub(hub: hubs.Hub) -> list[Check]:
        return [
            check_proxy(env, timeout, hub),
            check_hub_api(env, timeout, hub),
            *check_pool(env, timeout, [hub]),
        ]

    # Every hub at once, so a fleet takes as long as its slowest hub; each hub's checks stay
    # together, in the fleet's order.
    fleet_hubs = hubs.hubs(env)
    for hub, outcome in zip(fleet_hubs, everyhub.on_every_hub(fleet_hubs, one_hub), strict=True):
        if outcome.ok:
            checks = outcome.value
        else:
            why = outcome.detail if outcome.status == everyhub.UNREACHABLE else None
            checks = [Check("hub", False, outcome.error, unreachable=why)]
        report.per_hub.append((hub, checks or []))
        report.checks += checks or []
    door = check_frontdoor(env, timeout)
    if door is not None:
        report.checks.append(door)
    report.checks.append(check_sign_in(env, timeout))
    return report


def wait(
    env: Environment,
    attempts: int = 1,
    timeout: float = 5.0,
    *,
    pause: float = 2.0,
    on_attempt: Callable[[Report], None] | None = None,
) -> Report:
    """Check up to ATTEMPTS times, pausing between rounds, until everything is healthy."""
    report = Report(env.name, hub_url(env))
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        report = check(env, timeout)
        report.attempts = attempt
        if report.ok or attempt == attempts:
            break
        if on_attempt is not None:
            on_attempt(report)
        time.sleep(max(0.0, pause - (time.monotonic() - started)))
    return report
