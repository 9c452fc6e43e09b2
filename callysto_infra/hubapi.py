"""The one JupyterHub API call operator commands need: stop a student's running server."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from callysto_infra import secretfiles
from callysto_infra.errors import OperationError, UsageError

if TYPE_CHECKING:
    from callysto_infra.environments import Environment
    from callysto_infra.hubs import Hub

TOKEN_FILE = "hub-api-token"  # noqa: S105 - a file name, not a secret


def api_url(env: Environment, hub: Hub) -> str:
    """JupyterHub's API on HUB (its base URL is /)."""
    if hub.is_local:
        return f"http://127.0.0.1:{hub.port or env.local.port}/hub/api"
    return f"https://{hub.name}/hub/api"


def read_token(env: Environment) -> str | None:
    """The operator's API token; None when there is none to use (missing, or others can read it:
    a token that may have leaked is not one we send)."""
    try:
        return secretfiles.read_line(env.secrets_dir / TOKEN_FILE, "hub API token")
    except UsageError:
        return None


def stop_server(env: Environment, hub: Hub, user: str, *, timeout: float = 10) -> str:
    """Ask HUB's JupyterHub to stop USER's server; returns one line saying what happened.

    Never raises: a ban or a delete must not depend on the hub's web side being up.
    """
    token = read_token(env)
    if token is None:
        return (
            f"server not stopped: no API token in {env.secrets_dir / TOKEN_FILE} (mode 0600); "
            "the student keeps a running server until it is culled"
        )
    url = f"{api_url(env, hub)}/users/{urllib.parse.quote(user, safe='')}/server"
    request = urllib.request.Request(  # noqa: S310 - the URL is built from the env, http(s) only
        url, method="DELETE", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        if status == 400:
            return "server was not running"
        if status == 404:
            return "server not stopped: the hub has no such user"
        return f"server not stopped: hub API answered {status} {_reason(exc)}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"server not stopped: hub API at {api_url(env, hub)} is not reachable ({reason})"
    if status == 202:
        return "server is stopping"
    return "server stopped"


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read().decode() or "{}").get("message", exc.reason))
    except (ValueError, OSError):
        return str(exc.reason)


def active_users(env: Environment, hub: Hub, *, timeout: float = 10) -> list[dict]:
    """The users of HUB with a running or starting server (the API's models, servers included),
    every page of them. Raises OperationError when the hub cannot be asked."""
    token = read_token(env)
    if token is None:
        raise OperationError(f"no API token in {env.secrets_dir / TOKEN_FILE} (mode 0600)")
    users: list[dict] = []
    offset = 0
    while True:
        page = _get(env, hub, f"/users?state=active&offset={offset}", token, timeout)
        items = page.get("items", []) if isinstance(page, dict) else page
        users += [user for user in items if isinstance(user, dict) and "name" in user]
        following = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
        if not following or not items:
            return users
        offset = int(following.get("offset", offset + len(items)))


def version(env: Environment, hub: Hub, *, timeout: float = 5) -> str:
    """The JupyterHub version HUB's API answers with (it asks for no token). Raises
    OperationError when the hub does not answer."""
    answer = _get(env, hub, "/", None, timeout)
    return str(answer.get("version", "?")) if isinstance(answer, dict) else "?"


def _get(env: Environment, hub: Hub, path: str, token: str | None, timeout: float):
    headers = {"Accept": "application/jupyterhub-pagination+json"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    request = urllib.request.Request(  # noqa: S310 - the URL is built from the env, http(s) only
        f"{api_url(env, hub)}{path}", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise OperationError(f"hub API answered {exc.code} {_reason(exc)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OperationError(
            f"hub API at {api_url(env, hub)} is not reachable ({reason})"
        ) from None
