"""Students' user hashes: SimpleSAMLphp's core:TargetedID, byte for byte, and the user ID that
each sign-in source feeds into it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

# The sign-in proxy's sources (the buttons of the sign-in page); 'saml' is the institution's
# former name here.
SOURCES = ("institution", "google", "microsoft")
ALIASES = {"saml": "institution"}
# The proxy's chain names a Microsoft account by its Graph id, prefixed so.
MICROSOFT_PREFIX = "https://graph.microsoft.com!"


class NeedsAccountId(ValueError):
    """A Microsoft sign-in is hashed from the account id, which no address gives."""

    def __init__(self) -> None:
        super().__init__(
            "a Microsoft sign-in is hashed from the student's Microsoft account id, not the "
            "address: give the account id (findhash --source microsoft --account-id ID)"
        )


# SimpleSAMLphp names the metadata sets of the hosted IdP and of the remote SP this way, and
# TargetedID::getEntityId() prefixes each entity ID with its set.
_IDP_SET = "saml20-idp-hosted"
_SP_SET = "saml20-sp-remote"


def _netstring(value: bytes) -> bytes:
    """PHP's strlen($x) . ':' . $x: the length counts UTF-8 bytes, not characters."""
    return str(len(value)).encode("ascii") + b":" + value


def _entity_id(metadata_set: str, entity_id: str) -> bytes:
    set_bytes, id_bytes = metadata_set.encode(), entity_id.encode()
    return b"set" + _netstring(set_bytes) + b"set" + _netstring(id_bytes)


@dataclass(frozen=True)
class Hasher:
    """TargetedID for one deployment (salt, IdP, SP); hashing many users reuses the common prefix."""

    salt: str
    idp_entity_id: str
    sp_entity_id: str

    def __post_init__(self) -> None:
        src = _entity_id(_IDP_SET, self.idp_entity_id)
        dst = _entity_id(_SP_SET, self.sp_entity_id)
        prefix = b"uidhashbase" + self.salt.encode() + _netstring(src) + _netstring(dst)
        # SHA-1 is SimpleSAMLphp's format for these identifiers, not a choice made here.
        object.__setattr__(self, "_prefix", hashlib.sha1(prefix, usedforsecurity=False))
        object.__setattr__(self, "_suffix", self.salt.encode())

    def targeted_id(self, user_id: str) -> str:
        return self.many([user_id])[0]

    def many(self, user_ids: Iterable[str]) -> list[str]:
        """Hashes of USER_IDS, in order: the salt and entity IDs are hashed once, not per user."""
        base = self._prefix  # type: ignore[attr-defined]
        salt = self._suffix  # type: ignore[attr-defined]
        hashes = []
        for user_id in user_ids:
            raw = user_id.encode()
            digest = base.copy()
            digest.update(b"%d:%s%s" % (len(raw), raw, salt))
            hashes.append(digest.hexdigest())
        return hashes


def targeted_id(salt: str, idp_entity_id: str, sp_entity_id: str, user_id: str) -> str:
    """The eduPersonTargetedID SimpleSAMLphp gives USER_ID: 40 lower-case hex characters."""
    return Hasher(salt, idp_entity_id, sp_entity_id).targeted_id(user_id)


def user_id(email: str, source: str = "google", idp: str | None = None) -> str:
    """The user ID the sign-in proxy hashes for EMAIL signing in through SOURCE.

    Google gives the address, which the proxy's chain lower-cases (addresses are
    case-insensitive, hashes are not); an institution's SAML IdP gives the address, to which
    SmartID appends '!<IdP entity ID>'. Microsoft is known by its account id, so an address
    alone cannot give its user ID: NeedsAccountId.
    """
    source = ALIASES.get(source, source)
    address = email.strip().lower()
    if source == "google":
        return address
    if source == "institution":
        if not idp:
            raise ValueError("an institution's user ID needs the IdP entity ID")
        return f"{address}!{idp}"
    if source == "microsoft":
        raise NeedsAccountId()
    raise ValueError(f"unknown sign-in source '{source}' (expected one of {', '.join(SOURCES)})")


def microsoft_user_id(account_id: str) -> str:
    """The user ID the proxy hashes for the Microsoft account ACCOUNT_ID (its Graph id)."""
    return MICROSOFT_PREFIX + account_id.strip()


def hash_of_user(env: Environment, user: str) -> str:
    """USER as operators give it (a 40-hex hash, or an e-mail address signing in with Google) as
    the hash the hubs know, using ENV's salt and entity IDs."""
    from callysto_infra import environments, validate

    if validate.is_user_hash(user):
        return user
    validate.email(user)
    salt = environments.read_salt(env.salt_file)
    return targeted_id(salt, env.idp_entity_id, env.sp_entity_id, user_id(user))
