"""The hub as a SAML service provider of the Callysto sign-in proxy (SimpleSAMLphp), on pysaml2.

Each button of the sign-in page sends the student to the proxy with an AuthnRequest naming the
source; the proxy answers with a signed response carrying an encrypted assertion, whose
persistent NameID (or eduPersonTargetedID) is the student's 40-hex user hash: the only thing the
hub ever learns. No header a browser sends can sign anyone in.

A hub of a fleet (fleet_name set) asks the fleet's front door which hub the student belongs to
before it signs them in: a student of another hub is sent there, so that no one gets a second
home by opening a hub's own name.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LogoutHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Integer, Unicode, default

from callysto_login import SOURCES
from callysto_login.saml import HASH_RE, ServiceProvider, SignInRefused

# The browser's pending sign-in: the ID of the AuthnRequest it was sent with (signed cookie).
REQUEST_COOKIE = "callysto-saml-request"


class FleetUnanswered(Exception):
    """The front door could not say which hub a student belongs to."""


class FleetFull(Exception):
    """The front door has no hub with room for a new student."""


class SamlLoginHandler(BaseHandler):
    """GET /hub/saml/login/SOURCE: off to the sign-in proxy, with an AuthnRequest for SOURCE."""

    async def get(self, source: str) -> None:
        if source not in SOURCES:
            raise web.HTTPError(404, "unknown sign-in source")
        # Only a 'next' the student came with (checked by JupyterHub); none: the usual default
        # after sign-in (the student's server).
        next_url = self.get_next_url() if self.get_argument("next", "") else ""
        language = self.get_argument("lang", "")
        url = self.authenticator.start_sign_in(self, source, next_url, language)
        self.redirect(url)


class SamlAcsHandler(BaseHandler):
    """POST /hub/saml/acs: the proxy's response; signs in the hash it carries, or refuses."""

    def check_xsrf_cookie(self) -> None:
        # The response is posted by the proxy's page, not by ours; what protects this endpoint is
        # the signed response bound to the browser's own pending request.
        return

    async def post(self) -> None:
        authenticator = self.authenticator
        request_id = self.get_signed_cookie(REQUEST_COOKIE, max_age_days=1)
        self.clear_cookie(REQUEST_COOKIE, path=self.hub.base_url)
        try:
            user_hash, next_url = authenticator.accept_response(
                self.get_body_argument("SAMLResponse", ""),
                request_id.decode("ascii") if request_id else None,
            )
        except SignInRefused as refusal:
            self.log.warning("SAML sign-in refused: %s", refusal)
            raise web.HTTPError(
                403, "The sign-in could not be completed: please try again."
            ) from None
        if authenticator.fleet_name:
            # Before login_user, which would make the student a user (and, at their server's
            # first start, a home) here: a student of another hub gets neither.
            try:
                hub, url = await authenticator.fleet_hub_of(user_hash)
            except FleetFull:
                raise web.HTTPError(
                    503,
                    "Every hub is full: please try again later, or write to "
                    f"{authenticator.support_email}.",
                ) from None
            except FleetUnanswered as reason:
                self.log.error(
                    "The front door could not say where %s belongs: %s", user_hash, reason
                )
                raise web.HTTPError(
                    503, "Sign-in cannot check your hub right now: please try again in a minute."
                ) from None
            if hub != authenticator.fleet_name:
                self.log.info("%s belongs to hub %s: sent there", user_hash, hub)
                # The same path and query there (JupyterHub made next a path of this site), so
                # links such as nbgitpuller's keep working.
                self.redirect(url + next_url.lstrip("/"))
                return
        user = await self.login_user({"saml_user": user_hash})
        if user is None:
            raise web.HTTPError(403, "The sign-in could not be completed: please try again.")
        self.redirect(next_url or self.get_next_url(user))


class SamlLogoutHandler(LogoutHandler):
    """GET /hub/logout: signs the student out of the hub, then ends the proxy's session too, so
    the next student at a shared computer sees the sign-in page."""

    async def render_logout_page(self) -> None:
        self.redirect(self.authenticator.proxy_logout_url(), permanent=False)


class CallystoSamlAuthenticator(Authenticator):
    """Students are known only by the TargetedID hash the sign-in proxy computes."""

    support_email = Unicode("support@callysto.ca", config=True, help="Shown on the sign-in page.")
    notices_url = Unicode(
        "", config=True, help="Where to register for service notices; default: mail support."
    )
    sp_entity_id = Unicode(
        config=True, help="The hub's own entity ID as an SP (the proxy pins the one hashes use)."
    )
    hub_url = Unicode(config=True, help="The hub's public URL, ending in '/'.")
    idp_metadata_file = Unicode(config=True, help="The sign-in proxy's SAML metadata.")
    key_file = Unicode(config=True, help="The hub's SAML private key (0600).")
    cert_file = Unicode(config=True, help="The hub's SAML certificate.")
    xmlsec_binary = Unicode(
        "/usr/bin/xmlsec1", config=True, help="xmlsec1, which checks signatures."
    )
    clock_skew = Integer(60, config=True, help="Seconds of clock difference accepted.")
    request_lifetime = Integer(600, config=True, help="Seconds a sign-in may take at the proxy.")
    fleet_name = Unicode(
        "",
        config=True,
        help="This hub's name in its fleet's assignment table; empty: a hub on its own, which "
        "lets in every student.",
    )
    frontdoor_url = Unicode(config=True, help="The fleet's front door, ending in '/'.")
    fleet_token_file = Unicode(
        config=True, help="The fleet's API token, with which the hub asks the front door (0600)."
    )
    fleet_timeout = Float(
        5.0,
        config=True,
        help="Seconds the front door has to answer (to connect, and in all); then sign-in is "
        "refused for now rather than guessed.",
    )
    allow_hash_sign_in = Bool(
        False,
        config=True,
        help="Local hubs only: a POST of a 40-hex 'username' to /hub/login signs that hash in "
        "(operators see a student's hub as the student does).",
    )

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # Any student of any school may sign in; who they are is unknown to the hub by design.
        return True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._sp: ServiceProvider | None = None

    @property
    def sp(self) -> ServiceProvider:
        """The hub as the proxy's service provider (made at first use, from the settings)."""
        if self._sp is None:
            self._sp = ServiceProvider(
                entity_id=self.sp_entity_id,
                acs_url=self.acs_url,
                idp_metadata_file=self.idp_metadata_file,
                key_file=self.key_file,
                cert_file=self.cert_file,
                xmlsec_binary=self.xmlsec_binary,
                clock_skew=self.clock_skew,
                request_lifetime=self.request_lifetime,
            )
        return self._sp

    @property
    def acs_url(self) -> str:
        return f"{self.hub_url}hub/saml/acs"

    # --- signing in ------------------------------------------------------------------------

    def start_sign_in(
        self, handler: BaseHandler, source: str, next_url: str, language: str = ""
    ) -> str:
        """The proxy's URL for SOURCE, with a fresh AuthnRequest bound to HANDLER's browser;
        LANGUAGE ('fr' or 'en') is the one the student chose on the sign-in page."""
        request_id, location = self.sp.start(source, next_url, language)
        handler.set_signed_cookie(
            REQUEST_COOKIE,
            request_id,
            path=handler.hub.base_url,
            httponly=True,
            expires_days=None,
            secure=self.hub_url.startswith("https:"),
        )
        return location

    def accept_response(self, encoded: str, request_id: str | None) -> tuple[str, str]:
        """The user hash and next URL of the response (see ServiceProvider.accept)."""
        return self.sp.accept(encoded, request_id)

    async def fleet_hub_of(self, user_hash: str) -> tuple[str, str]:
        """The name and URL of USER_HASH's hub, from the front door (which assigns a new
        student one). FleetUnanswered when it cannot tell; FleetFull when no hub has room."""
        try:
            token = Path(self.fleet_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise FleetUnanswered(f"the fleet token: {exc.strerror}") from None
        request = HTTPRequest(
            f"{self.frontdoor_url}frontdoor/api/assignment?user={quote(user_hash)}",
            headers={"Authorization": f"token {token}"},
            connect_timeout=self.fleet_timeout,
            request_timeout=self.fleet_timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (HTTPClientError, OSError) as exc:  # no connection, or no answer in time
            raise FleetUnanswered(str(exc)) from None
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if response.code == 503 and answer.get("error") == "fleet full":
            raise FleetFull()
        hub, url = answer.get("hub"), answer.get("url")
        if response.code != 200 or not isinstance(hub, str) or not _is_hub_url(url):
            raise FleetUnanswered(f"HTTP {response.code}: {(response.body or b'')[:200]!r}")
        return hub, url

    def proxy_logout_url(self) -> str:
        """The proxy's sign-out, which returns to the hub's sign-in page."""
        return self.sp.logout_url(self.hub_url + "hub/login")

    # --- JupyterHub ------------------------------------------------------------------------

    def validate_username(self, username: str) -> bool:
        return bool(HASH_RE.fullmatch(username))

    def get_handlers(self, app):
        return [
            (r"/login", self.login_handler()),
            (r"/logout", SamlLogoutHandler),
            (r"/saml/login/([a-z]+)", SamlLoginHandler),
            (r"/saml/acs", SamlAcsHandler),
        ]

    def login_handler(self):
        from jupyterhub.handlers.login import LoginHandler

        return LoginHandler

    def source_url(self, source: str, base_url: str, next_url: str = "") -> str:
        """Where the button for SOURCE leads. BASE_URL is the hub's (/hub/); NEXT_URL comes
        URL-escaped, as JupyterHub hands it to the login template."""
        query = f"?next={next_url}" if next_url else ""
        return f"{base_url}saml/login/{source}{query}"

    async def authenticate(self, handler, data):
        if isinstance(handler, SamlAcsHandler):
            return data.get("saml_user")
        # The sign-in page's form: only a 40-hex hash, and only where the operator allowed it.
        name = (data or {}).get("username", "").strip().lower()
        if self.allow_hash_sign_in and HASH_RE.fullmatch(name):
            return name
        return None


def _is_hub_url(url) -> bool:
    return isinstance(url, str) and url.startswith(("https://", "http://")) and url.endswith("/")
