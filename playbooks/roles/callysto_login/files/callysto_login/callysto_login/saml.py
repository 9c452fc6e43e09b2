"""A SAML service provider of the Callysto sign-in proxy, on pysaml2: the hub's, and the front
door's. It starts sign-ins (an AuthnRequest per browser) and accepts only a response the proxy
signed, with exactly one encrypted assertion, for this SP, in time, to that very request, and
never seen before; what it yields is the student's 40-hex user hash, nothing else.

Nothing here knows of JupyterHub or Tornado: the caller keeps the request ID in the browser
(a signed cookie) and hands it back with the response.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

HASH_RE = re.compile(r"[0-9a-f]{40}")
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TARGETED_ID = "eduPersonTargetedID"


class SignInRefused(Exception):
    """A SAML response that is not accepted; the message names why, without any identity."""


@dataclass
class ServiceProvider:
    entity_id: str
    acs_url: str
    idp_metadata_file: str
    key_file: str
    cert_file: str
    xmlsec_binary: str = "/usr/bin/xmlsec1"
    clock_skew: int = 60
    request_lifetime: int = 600
    _client: object = field(default=None, init=False, repr=False)
    # AuthnRequest ID -> (next URL, deadline): each one answers at most one response.
    _pending: dict[str, tuple[str, float]] = field(default_factory=dict, init=False, repr=False)
    # Assertion IDs already accepted, until they expire: a copied response is refused.
    _seen: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def _config(self) -> dict:
        from saml2 import BINDING_HTTP_POST

        return {
            "entityid": self.entity_id,
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

    def client(self):
        """The pysaml2 client, made at first use (the proxy's metadata may come after the SP)."""
        if self._client is None:
            from saml2.client import Saml2Client
            from saml2.config import SPConfig

            config = SPConfig()
            config.load(self._config())
            self._client = Saml2Client(config=config)
        return self._client

    def idp(self) -> str:
        (entity_id,) = self.client().metadata.identity_providers()
        return entity_id

    def start(self, source: str, next_url: str, language: str = "") -> tuple[str, str]:
        """A fresh AuthnRequest for SOURCE: its ID (for the browser to keep) and the proxy's URL.
        LANGUAGE ('fr' or 'en') travels in the RelayState, so the proxy's pages speak it too."""
        from saml2 import BINDING_HTTP_REDIRECT

        request_id, info = self.client().prepare_for_authenticate(
            entityid=self.idp(),
            binding=BINDING_HTTP_REDIRECT,
            relay_state=language if language in ("en", "fr") else "",
        )
        now = time.monotonic()
        self._forget_expired(now)
        self._pending[request_id] = (next_url, now + self.request_lifetime)
        location = dict(info["headers"])["Location"]
        # multiauth's own parameter: go straight to the source the student chose.
        return request_id, f"{location}&{urlencode({'source': source})}"

    def _forget_expired(self, now: float) -> None:
        for table in (self._pending, self._seen):
            for key in [k for k, v in table.items() if (v[1] if isinstance(v, tuple) else v) < now]:
                del table[key]

    def accept(self, encoded: str, request_id: str | None) -> tuple[str, str]:
        """The user hash and next URL of a SAML response posted by the browser whose pending
        AuthnRequest is REQUEST_ID; SignInRefused for anything else."""
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
        return _user_hash(response), pending[0]

    def logout_url(self, return_to: str) -> str:
        """The proxy's sign-out, which then sends the browser to RETURN_TO."""
        from saml2 import BINDING_HTTP_REDIRECT

        services = self.client().metadata.single_logout_service(
            self.idp(), BINDING_HTTP_REDIRECT, "idpsso"
        )
        base = services[0]["location"].rsplit("/", 1)[0]
        return f"{base}/initSLO.php?RelayState={quote(return_to, safe='')}"


def _user_hash(response) -> str:
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
