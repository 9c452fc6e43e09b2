"""The hub as a SAML service provider of the Callysto sign-in proxy (SimpleSAMLphp), on pysaml2.

Each button of the sign-in page sends the student to the proxy with an AuthnRequest naming the
source; the proxy answers with a signed response carrying an encrypted assertion, whose
persistent NameID (or eduPersonTargetedID) is the student's 40-hex user hash: the only thing the
hub ever learns. No header a browser sends can sign anyone in.
"""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import quote, urlencode

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LogoutHandler
from tornado import web
from traitlets import Bool, Integer, Unicode, default

from callysto_login import SOURCES

HASH_RE = re.compile(r"[0-9a-f]{40}")
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TARGETED_ID = "eduPersonTargetedID"
# The browser's pending sign-in: the ID of the AuthnRequest it was sent with (signed cookie).
REQUEST_COOKIE = "callysto-saml-request"


class SignInRefused(Exception):
    """A SAML response the hub does not accept; the message names why, without any identity."""


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
    sp_entity_id = Unicode(config=True, help="The hub's own entity ID as an SP (the proxy pins the one hashes use).")
    hub_url = Unicode(config=True, help="The hub's public URL, ending in '/'.")
    idp_metadata_file = Unicode(config=True, help="The sign-in proxy's SAML metadata.")
    key_file = Unicode(config=True, help="The hub's SAML private key (0600).")
    cert_file = Unicode(config=True, help="The hub's SAML certificate.")
    xmlsec_binary = Unicode(
        "/usr/bin/xmlsec1", config=True, help="xmlsec1, which checks signatures."
    )
    clock_skew = Integer(60, config=True, help="Seconds of clock difference accepted.")
    request_lifetime = Integer(600, config=True, help="Seconds a sign-in may take at the proxy.")
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
        self._client = None
        # AuthnRequest ID -> (next URL, deadline): each one answers at most one response.
        self._pending: dict[str, tuple[str, float]] = {}
        # Assertion IDs already accepted, until they expire: a copied response is refused.
        self._seen: dict[str, float] = {}

    # --- pysaml2 ---------------------------------------------------------------------------

    def _saml_config(self) -> dict:
        from saml2 import BINDING_HTTP_POST

        return {
            "entityid": self.sp_entity_id,
            "xmlsec_binary": self.xmlsec_binary,
            "key_file": self.key_file,
            "cert_file": self.cert_file,
            "encryption_keypairs": [{"key_file": self.key_file, "cert_file": self.cert_file}],
            "metadata": {"local": [self.idp_metadata_file]},
            "accepted_time_diff": self.clock_skew,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)],
                    },
                    "allow_unsolicited": False,
                    "want_response_signed": True,
                    "want_assertions_signed": True,
                    "authn_requests_signed": False,
                    "name_id_format": PERSISTENT,
                    "name_id_format_allow_create": True,
                },
            },
        }

    @property
    def acs_url(self) -> str:
        return f"{self.hub_url}hub/saml/acs"

    def client(self):
        """The pysaml2 client, made at first use (the proxy's metadata may come after the hub)."""
        if self._client is None:
            from saml2.client import Saml2Client
            from saml2.config import SPConfig

            config = SPConfig()
            config.load(self._saml_config())
            self._client = Saml2Client(config=config)
        return self._client

    def _idp(self) -> str:
        (entity_id,) = self.client().metadata.identity_providers()
        return entity_id

    # --- signing in ------------------------------------------------------------------------

    def start_sign_in(
        self, handler: BaseHandler, source: str, next_url: str, language: str = ""
    ) -> str:
        """The proxy's URL for SOURCE, with a fresh AuthnRequest bound to HANDLER's browser;
        LANGUAGE ('fr' or 'en') is the one the student chose on the sign-in page."""
        from saml2 import BINDING_HTTP_REDIRECT

        # The RelayState carries the student's language, so the proxy's pages speak it too.
        request_id, info = self.client().prepare_for_authenticate(
            entityid=self._idp(),
            binding=BINDING_HTTP_REDIRECT,
            relay_state=language if language in ("en", "fr") else "",
        )
        now = time.monotonic()
        self._forget_expired(now)
        self._pending[request_id] = (next_url, now + self.request_lifetime)
        handler.set_signed_cookie(
            REQUEST_COOKIE,
            request_id,
            path=handler.hub.base_url,
            httponly=True,
            expires_days=None,
            secure=self.hub_url.startswith("https:"),
        )
        location = dict(info["headers"])["Location"]
        # multiauth's own parameter: go straight to the source the student chose.
        return f"{location}&{urlencode({'source': source})}"

    def _forget_expired(self, now: float) -> None:
        for table in (self._pending, self._seen):
            for key in [k for k, v in table.items() if (v[1] if isinstance(v, tuple) else v) < now]:
                del table[key]

    def accept_response(self, encoded: str, request_id: str | None) -> tuple[str, str]:
        """The user hash and next URL of a SAML response posted by the browser whose pending
        AuthnRequest is REQUEST_ID. Raises SignInRefused for anything but a response the proxy
        signed, with an encrypted assertion, for this hub, in time, to that very request, and
        never seen before."""
        from saml2 import BINDING_HTTP_POST, samlp
        from saml2.sigver import SignatureError

        if not encoded:
            raise SignInRefused("no SAMLResponse")
        if not request_id:
            raise SignInRefused("no sign-in was started in this browser")
        now = time.monotonic()
        self._forget_expired(now)
        pending = self._pending.pop(request_id, None)
        if pending is None:
            raise SignInRefused("the sign-in this response answers is unknown, used or expired")
        try:
            raw = base64.b64decode(encoded, validate=False)
            envelope = samlp.response_from_string(raw)
        except Exception as exc:
            raise SignInRefused(f"not a SAML response ({type(exc).__name__})") from None
        if envelope is None or envelope.assertion or len(envelope.encrypted_assertion) != 1:
            raise SignInRefused("the response must carry exactly one encrypted assertion")
        try:
            response = self.client().parse_authn_request_response(
                encoded, BINDING_HTTP_POST, outstanding={request_id: pending[0]}
            )
        except SignatureError as exc:
            raise SignInRefused(f"bad signature ({type(exc).__name__})") from None
        except Exception as exc:
            raise SignInRefused(f"{type(exc).__name__}: {exc}") from None
        if response is None or response.assertion is None:
            raise SignInRefused("no valid assertion")
        if response.in_response_to != request_id:
            raise SignInRefused("the response answers another sign-in")
        if not response.response.signature:
            raise SignInRefused("the response is not signed")
        assertion_id = response.assertion.id
        if assertion_id in self._seen:
            raise SignInRefused("this assertion was used before")
        self._seen[assertion_id] = now + self.request_lifetime + 2 * self.clock_skew
        return self._user_hash(response), pending[0]

    def _user_hash(self, response) -> str:
        name_id = response.name_id
        if name_id is not None and name_id.format == PERSISTENT:
            value = (name_id.text or "").strip().lower()
            if HASH_RE.fullmatch(value):
                return value
        for value in response.ava.get(TARGETED_ID, []):
            value = str(value).strip().lower()
            if HASH_RE.fullmatch(value):
                return value
        raise SignInRefused("the assertion carries no 40-hex TargetedID")

    def proxy_logout_url(self) -> str:
        """The proxy's sign-out, which returns to the hub's sign-in page."""
        from saml2 import BINDING_HTTP_REDIRECT

        services = self.client().metadata.single_logout_service(
            self._idp(), BINDING_HTTP_REDIRECT, "idpsso"
        )
        base = services[0]["location"].rsplit("/", 1)[0]
        return f"{base}/initSLO.php?RelayState={quote(self.hub_url + 'hub/login', safe='')}"

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
