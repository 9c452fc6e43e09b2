"""Checks on operator input, run before anything reaches a program. Each returns the clean value
or raises UsageError with a message that says how to fix it."""

from __future__ import annotations

import re

from callysto_infra import addresses
from callysto_infra.errors import UsageError

USER_HASH_RE = re.compile(r"^[0-9a-f]{40}$")
ZFS_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*)([KMGTP])?$")
ENV_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TF_ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]\"]+$")

_SIZE_FACTORS = {None: 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def _whole(pattern: re.Pattern[str], value: str, message: str) -> str:
    """VALUE when PATTERN matches all of it (a trailing newline included), else UsageError.
    Messages show a value with repr(), so a control character in it cannot break the line."""
    if not pattern.fullmatch(value):
        raise UsageError(message)
    return value


def env_name(value: str) -> str:
    return _whole(
        ENV_NAME_RE,
        value,
        f"invalid environment name {value!r}: use lower-case letters, digits and '-', "
        "starting with a letter (it becomes a host name)",
    )


def user_hash(value: str) -> str:
    return _whole(
        USER_HASH_RE, value, f"invalid user hash {value!r}: expected 40 lower-case hex characters"
    )


def is_user_hash(value: str) -> bool:
    return bool(USER_HASH_RE.fullmatch(value))


def email(value: str) -> str:
    # The message never repeats the value: it may be a student's address.
    if not addresses.is_email(value):
        raise UsageError(
            "invalid e-mail address: expected local-part@domain as RFC 5322 spells it "
            "(e.g. d'arcy+art@school.ca), at most 254 bytes"
        )
    return value


def microsoft_account_id(value: str) -> str:
    """A Microsoft account id as Graph gives it (a GUID, or 16 hex digits for a personal one)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", value):
        raise UsageError(
            "invalid Microsoft account id: expected the account's id from Microsoft Graph, such "
            "as 00000000-0000-0000-0000-000000000000 or 0123456789abcdef"
        )
    return value


def user_ref(value: str) -> str:
    """A user as operators name one: a 40-hex hash or an e-mail address."""
    if is_user_hash(value) or addresses.is_email(value):
        return value
    raise UsageError(
        "invalid user: give a 40-character hex user hash or an e-mail address "
        "(the value given is neither; it is not repeated here, as it may be an address)"
    )


def zfs_size(value: str) -> str:
    """ZFS size syntax as accepted here: a whole number with an optional K/M/G/T/P suffix, or none."""
    if value == "none":
        return value
    normalized = value.upper() if value[-1:].isalpha() else value
    if not ZFS_SIZE_RE.fullmatch(normalized):
        raise UsageError(
            f"invalid size {value!r}: use a whole number with an optional K, M, G, T or P suffix "
            "(e.g. 2G), or 'none'"
        )
    return normalized


def zfs_size_bytes(value: str) -> int | None:
    """Bytes for a size accepted by zfs_size(); None for 'none'."""
    value = zfs_size(value)
    if value == "none":
        return None
    match = ZFS_SIZE_RE.fullmatch(value)
    assert match is not None
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


def host(value: str) -> str:
    return _whole(HOST_RE, value, f"invalid host name {value!r}: use letters, digits, '.' and '-'")


def name(value: str, what: str) -> str:
    """A playbook, group, module or similar plain name."""
    return _whole(
        NAME_RE, value, f"invalid {what} {value!r}: use letters, digits, '_', '.' and '-'"
    )


def terraform_address(value: str) -> str:
    return _whole(
        TF_ADDRESS_RE,
        value,
        f"invalid Terraform address {value!r}: expected something like "
        "module.hub.openstack_compute_instance_v2.hub (see 'callysto terraform list-targets')",
    )
