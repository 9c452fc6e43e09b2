"""Authenticators: a development sign-in that hashes an e-mail address as the SAML proxy would,
and the cloud one that trusts the hash the SAML proxy puts in REMOTE_USER."""

from __future__ import annotations

import re
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from tornado import web
from traitlets import Dict, Unicode, default

from callysto_login import SOURCES
from callysto_login.addresses import is_email
from callysto_login.userhash import targeted_id, user_id

HASH_RE = re.compile(r"[0-9a-f]{40}")


class _CallystoAuthenticator(Authenticator):
    """What both authenticators share: hashes are the only user names, and everyone may sign in."""

    support_email = Unicode("support@callysto.ca", config=True, help="Shown on the sign-in page.")
    notices_url = Unicode(
        "", config=True, help="Where to register for service notices; default: mail support."
    )

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # Any student of any school may sign in; who they are is unknown to the hub by design.
        return True

    def validate_username(self, username: str) -> bool:
        return bool(HASH_RE.fullmatch(username))

    def source_url(self, source: str, base_url: str, next_url: str = "") -> str:
        """Where the button for SOURCE leads. BASE_URL is the hub's (/hub/); NEXT_URL comes
        URL-escaped, as JupyterHub hands it to the login template."""
        raise NotImplementedError


class DevSignInHandler(BaseHandler):
    """GET /hub/callysto-signin/SOURCE: the development sign-in form for one source."""

    async def get(self, source: str) -> None:
        if source not in SOURCES:
            raise web.HTTPError(404, "unknown sign-in source")
        html = await self.render_template(
            "callysto-signin.html",
            source=source,
            authenticator=self.authenticator,
            next=self.get_argument("next", default=""),
            login_url=self.settings["login_url"],
            institution_idp=self.authenticator.institution_idp_entity_id,
            xsrf=self.xsrf_token.decode("ascii"),
            login_error=None,
        )
        self.finish(html)


class DevAuthenticator(_CallystoAuthenticator):
    """Local hubs: asks for an e-mail address and derives the same hash the SAML proxy would.

    No password is checked, so it is for a hub on one's own machine only. The address lives only
    in the request that signs in: the hub stores and logs the hash.
    """

    salt_file = Unicode(config=True, help="The environment's SAML salt (a 0600 file).")
    idp_entity_id = Unicode(config=True, help="The SAML proxy's (hosted IdP's) entity ID.")
    sp_entity_id = Unicode(config=True, help="The hub's (remote SP's) entity ID.")
    institution_idp_entity_id = Unicode(
        "https://idp.example.org/idp/shibboleth",
        config=True,
        help="The institution IdP offered by default on the institution sign-in form.",
    )

    def _salt(self) -> str:
        path = Path(self.salt_file)
        if path.stat().st_mode & 0o077:
            raise web.HTTPError(500, "the SAML salt file is readable by others")
        return path.read_text(encoding="utf-8").strip()

    def get_handlers(self, app):
        return [*super().get_handlers(app), (r"/callysto-signin/([a-z]+)", DevSignInHandler)]

    def source_url(self, source: str, base_url: str, next_url: str = "") -> str:
        query = f"?next={next_url}" if next_url else ""
        return f"{base_url}callysto-signin/{source}{query}"

    async def authenticate(self, handler, data):
        source = data.get("source", "")
        email = data.get("email", "").strip()
        if not source and "username" in data:
            # A user hash typed directly (e.g. from 'callysto user findhash'): lets an operator
            # see a student's hub as they do. Local hubs check no password in any case.
            name = data["username"].strip().lower()
            if HASH_RE.fullmatch(name):
                return name
            raise web.HTTPError(403, "Sign in with a 40-character user hash or an e-mail address.")
        if source not in SOURCES:
            raise web.HTTPError(400, "Unknown sign-in source: choose one on the sign-in page.")
        if not is_email(email):
            # The message never repeats what was typed: it may be someone's address.
            raise web.HTTPError(403, "Please enter an e-mail address such as name@school.ca.")
        idp = None
        if SOURCES[source] == "saml":
            idp = data.get("idp", "").strip() or self.institution_idp_entity_id
        uid = user_id(email, SOURCES[source], idp)
        return targeted_id(self._salt(), self.idp_entity_id, self.sp_entity_id, uid)


class RemoteLoginHandler(BaseHandler):
    """GET /hub/remote-login: the SAML proxy has put the user's hash in a trusted header."""

    async def get(self) -> None:
        user = await self.login_user()
        if user is None:
            raise web.HTTPError(403, "The sign-in service did not identify you: please try again.")
        self.redirect(self.get_next_url(user))


class SamlAuthenticator(_CallystoAuthenticator):
    """Cloud hubs: each button goes to the SAML proxy, which signs the student in with that source
    and returns to /hub/remote-login with the TargetedID hash in the REMOTE_USER header."""

    header_name = Unicode("REMOTE_USER", config=True, help="The header the proxy sets.")
    source_urls = Dict(
        config=True,
        help="Sign-in URL of the SAML proxy for each source (institution, google, microsoft).",
    )

    def get_handlers(self, app):
        return [*super().get_handlers(app), (r"/remote-login", RemoteLoginHandler)]

    def source_url(self, source: str, base_url: str, next_url: str = "") -> str:
        return self.source_urls.get(source, "#")

    async def authenticate(self, handler, data=None):
        value = handler.request.headers.get(self.header_name, "").strip().lower()
        return value if HASH_RE.fullmatch(value) else None
