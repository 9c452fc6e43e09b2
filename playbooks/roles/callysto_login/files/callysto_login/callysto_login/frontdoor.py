"""The front door of a fleet: the public name students open, which sends each to their hub.

It signs the student in as a SAML service provider of the same sign-in proxy as the hubs (so
it learns the same user hash the hubs will), looks the hash up in the fleet's assignment table
(PostgreSQL) and, for a new student, assigns the accepting hub with the most room in one
transaction; then it redirects to that hub's own name with the same path and query, so links
such as nbgitpuller's /hub/user-redirect/git-pull?... keep working through it. When the
student's hub does not answer, it says so on a page of its own and never sends them elsewhere.
The hubs ask it too (GET /frontdoor/api/assignment, with the fleet's token), so that a student
who signs in at a hub's own name is let in only at their own hub.

Run: python -m callysto_login.frontdoor CONFIG.json (written by the playbook; see load_config).
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from tornado import httpserver, ioloop, web

from callysto_login import SOURCES, assignments
from callysto_login.saml import ServiceProvider, SignInRefused

REQUEST_COOKIE = "callysto-frontdoor-request"
# The student's hash, from the sign-in to the redirect only: cleared once they are sent to
# their hub, and never trusted after ten minutes, so the next student at a shared classroom
# computer signs in as themselves rather than being sent to the previous student's hub.
USER_COOKIE = "callysto-frontdoor-user"
USER_COOKIE_DAYS = 10 / (24 * 60)
# How long a hub's answer (or silence) is trusted before it is asked again.
HUB_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class Hub:
    name: str
    url: str  # its own public URL, ending in '/'
    capacity: int
    state: str


@dataclass(frozen=True)
class Config:
    public_url: str
    listen_address: str
    listen_port: int
    sp: ServiceProvider
    conninfo: str
    password: str
    cookie_secret: str
    hubs: tuple[Hub, ...]
    support_email: str
    api_token: str = ""  # the fleet's token the hubs ask with; empty: no API


def _secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def load_config(path: str) -> Config:
    """The front door's settings (JSON): its public URL and listening address, its SAML key pair
    and the proxy's metadata, the database (its password in a file of its own), the cookie
    secret's file, the hubs with their URLs, capacities and states, and optionally the file
    of the fleet's API token (api_token_file) the hubs ask with."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    public_url = data["public_url"]
    sp = ServiceProvider(
        entity_id=f"{public_url}frontdoor/saml/metadata",
        acs_url=f"{public_url}frontdoor/saml/acs",
        idp_metadata_file=data["idp_metadata_file"],
        key_file=data["key_file"],
        cert_file=data["cert_file"],
        xmlsec_binary=data.get("xmlsec_binary", "/usr/bin/xmlsec1"),
    )
    hubs = tuple(
        Hub(h["name"], h["url"], int(h.get("capacity", 500)), h.get("state", "accepting"))
        for h in data["hubs"]
    )
    return Config(
        public_url=public_url,
        listen_address=data.get("listen_address", "127.0.0.1"),
        listen_port=int(data["listen_port"]),
        sp=sp,
        conninfo=data["database"],
        password=_secret(data["database_password_file"]),
        cookie_secret=_secret(data["cookie_secret_file"]),
        hubs=hubs,
        support_email=data.get("support_email", "support@callysto.ca"),
        api_token=_secret(data["api_token_file"]) if data.get("api_token_file") else "",
    )


class HubWatch:
    """Whether each hub answers, asked at most every HUB_CHECK_SECONDS."""

    def __init__(self, hubs: tuple[Hub, ...], timeout: float = 3.0):
        self._hubs = {hub.name: hub for hub in hubs}
        self._known: dict[str, tuple[bool, float]] = {}
        self._timeout = timeout

    def answers(self, name: str) -> bool:
        known = self._known.get(name)
        if known is not None and time.monotonic() - known[1] < HUB_CHECK_SECONDS:
            return known[0]
        url = self._hubs[name].url + "hub/api"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as response:  # noqa: S310
                alive = response.status == 200
        except OSError:
            alive = False
        self._known[name] = (alive, time.monotonic())
        return alive


class FrontDoor:
    """What the handlers share: the settings, the database pool, the hubs' watch."""

    def __init__(self, config: Config):
        from psycopg_pool import ConnectionPool

        self.config = config
        self.hubs = {hub.name: hub for hub in config.hubs}
        self.pool = ConnectionPool(
            config.conninfo,
            kwargs={"password": config.password, "autocommit": True},
            min_size=2,
            max_size=20,
            open=True,
        )
        self.watch = HubWatch(config.hubs)
        # Database calls and hub checks block: they run here, never in the event loop.
        self.workers = ThreadPoolExecutor(max_workers=20)
        with self.pool.connection() as conn:
            assignments.create_schema(conn)
            assignments.set_hubs(conn, [(h.name, h.capacity, h.state) for h in config.hubs])

    def assign(self, user_hash: str) -> str:
        with self.pool.connection() as conn:
            return assignments.assign(conn, user_hash)[0]

    def database_answers(self) -> bool:
        try:
            with self.pool.connection(timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception:  # any failure means it does not answer
            return False
        return True

    async def run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.workers, function, *args)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Callysto</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""


def page(title: str, body: str) -> str:
    return PAGE.format(title=html.escape(title), body=body)


class Handler(web.RequestHandler):
    @property
    def door(self) -> FrontDoor:
        return self.settings["door"]

    def secure(self) -> bool:
        return self.door.config.public_url.startswith("https:")

    def page(self, status: int, title: str, body: str) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(page(title, body))


class LoginHandler(Handler):
    """GET /frontdoor/login/SOURCE?next=PATH: off to the sign-in proxy."""

    def get(self, source: str) -> None:
        if source not in SOURCES:
            raise web.HTTPError(404)
        next_path = _local_path(self.get_argument("next", "/"))
        request_id, location = self.door.config.sp.start(source, next_path)
        self.set_signed_cookie(REQUEST_COOKIE, request_id, httponly=True, expires_days=None,
                               secure=self.secure())  # fmt: skip
        self.redirect(location)


class AcsHandler(Handler):
    """POST /frontdoor/saml/acs: the proxy's response; the student's hash goes in a signed
    cookie of the front door's own, and the browser back to where it was going."""

    def check_xsrf_cookie(self) -> None:
        return  # the signed response bound to this browser's pending request protects it

    def post(self) -> None:
        request_id = self.get_signed_cookie(REQUEST_COOKIE, max_age_days=1)
        self.clear_cookie(REQUEST_COOKIE)
        try:
            user_hash, next_path = self.door.config.sp.accept(
                self.get_body_argument("SAMLResponse", ""),
                request_id.decode("ascii") if request_id else None,
            )
        except SignInRefused:
            self.page(403, "Sign-in failed", "<p>The sign-in could not be completed: please "
                      "<a href='/'>try again</a>.</p>")  # fmt: skip
            return
        self.set_signed_cookie(USER_COOKIE, user_hash, httponly=True, expires_days=None,
                               secure=self.secure())  # fmt: skip
        self.redirect(next_path or "/")


class AssignmentHandler(Handler):
    """GET /frontdoor/api/assignment?user=HASH, with 'Authorization: token TOKEN': the student's
    hub as {"hub": name, "url": its URL}, assigned now when they have none, by the same call as
    a sign-in here, so one place decides. A hub asks before it lets a student in."""

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        token = self.door.config.api_token
        if not token:
            raise web.HTTPError(404)
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        # Compared in constant time, so the answer's timing tells nothing of the token.
        if scheme.lower() != "token" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            self.set_status(403)
            self.finish({"error": "a fleet token is needed"})
            return
        user = self.get_argument("user", "", strip=False)
        try:
            assignments.check_hash(user)
        except ValueError:
            self.set_status(400)
            self.finish({"error": "user must be a user hash (40 lower-case hex digits)"})
            return
        try:
            name = await self.door.run(self.door.assign, user)
        except assignments.FleetFull:
            self.set_status(503)
            self.finish({"error": "fleet full"})
            return
        self.finish({"hub": name, "url": self.door.hubs[name].url})


class RouteHandler(Handler):
    """Every other path: the student's hub, at the same path and query."""

    async def get(self, path: str) -> None:
        user = self.get_signed_cookie(USER_COOKIE, max_age_days=USER_COOKIE_DAYS)
        here = _local_path(self.request.uri)
        if user is None:
            buttons = "".join(
                f"<p><a id='source-{s}' href='/frontdoor/login/{s}?next={quote(here, safe='')}'>"
                f"Sign in with {'your school' if s == 'institution' else s.title()}</a></p>"
                for s in SOURCES
            )
            self.page(200, "Welcome to Callysto!", buttons)
            return
        try:
            name = await self.door.run(self.door.assign, user.decode("ascii"))
        except assignments.FleetFull:
            self.page(503, "No room right now", "<p>Every hub is full: please try again later, "
                      f"or write to {html.escape(self.door.config.support_email)}.</p>")  # fmt: skip
            return
        hub = self.door.hubs[name]
        if not await self.door.run(self.door.watch.answers, name):
            self.page(503, "Your hub is not answering",
                      f"<p id='hub-down'>Your hub, {html.escape(name)}, is not answering right "
                      "now. Your work is safe on it: please try again in a few minutes.</p>")  # fmt: skip
            return
        self.clear_cookie(USER_COOKIE)
        self.redirect(hub.url + here.lstrip("/"))


class HealthHandler(Handler):
    """GET /frontdoor/health: whether the assignment table answers (for `callysto health`)."""

    async def get(self) -> None:
        ok = await self.door.run(self.door.database_answers)
        self.set_status(200 if ok else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish({"database": ok, "hubs": sorted(self.door.hubs)})


def _local_path(value: str) -> str:
    """VALUE as a path of this site (a full URL elsewhere becomes '/')."""
    parts = urlsplit(value)
    # Browsers read '/\\host' as '//host': a backslash or a control character is no local path.
    if (
        parts.scheme
        or parts.netloc
        or not value.startswith("/")
        or value.startswith("//")
        or any(c == "\\" or ord(c) < 32 for c in value)
    ):
        return "/"
    return value


def make_app(door: FrontDoor) -> web.Application:
    return web.Application(
        [
            (r"/frontdoor/api/assignment", AssignmentHandler),
            (r"/frontdoor/login/([a-z]+)", LoginHandler),
            (r"/frontdoor/saml/acs", AcsHandler),
            (r"/frontdoor/health", HealthHandler),
            (r"(/.*)", RouteHandler),
        ],
        door=door,
        cookie_secret=door.config.cookie_secret,
        xsrf_cookies=False,
    )


def main(argv: list[str] | None = None) -> None:
    (path,) = argv if argv is not None else sys.argv[1:]
    config = load_config(path)
    door = FrontDoor(config)
    server = httpserver.HTTPServer(make_app(door), xheaders=True)
    server.listen(config.listen_port, address=config.listen_address)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
