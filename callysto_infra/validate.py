"""Checks on operator input, run before anything reaches a program. Each returns the clean value
or raises UsageError with a message that says how to fix it."""

from __future__ import annotations

import re

from callysto_infra.errors import UsageError

USER_HASH_RE = re.compile(r"^[0-9a-f]{40}$")
ZFS_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*)([KMGTP])?$")
ENV_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TF_ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]\"]+$")

ZFS_SIZE_MAX = (1 << 64) - 1
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
    from callysto_infra import addresses  # here: its pattern takes a while to compile

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
    from callysto_infra import addresses

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
    match = ZFS_SIZE_RE.fullmatch(normalized)
    if not match:
        raise UsageError(
            f"invalid size {value!r}: use a whole number with an optional K, M, G, T or P suffix "
            "(e.g. 2G), or 'none'"
        )
    # What zfs itself refuses: 0 ("use 'none' to disable quota/refquota") and more than 64 bits.
    if match.group(1) == "0":
        raise UsageError(f"invalid size {value!r}: zfs takes no size 0; for no limit give 'none'")
    if int(match.group(1)) * _SIZE_FACTORS[match.group(2)] > ZFS_SIZE_MAX:
        raise UsageError(f"invalid size {value!r}: larger than zfs can hold (16E, 2^64 bytes)")
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
        'module.hub["brave-otter"].openstack_compute_instance_v2.hub (see \'callysto '
        "terraform list-targets')",
    )


DURATION_RE = re.compile(r"^(0|[1-9][0-9]{0,8})([smhd])?$")
_DURATION_FACTORS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str) -> int:
    """Seconds of a duration: a whole number with an optional s, m, h or d suffix (90s, 30m, 2h)."""
    match = DURATION_RE.fullmatch(value)
    if match is None:
        raise UsageError(
            f"invalid duration {value!r}: use a whole number with an optional s, m, h or d "
            "suffix (e.g. 30m, 2h)"
        )
    return int(match.group(1)) * _DURATION_FACTORS[match.group(2)]


TAGS_RE = re.compile(r"[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*")
# An entity ID is a URI or a URN: no blanks, no control characters, one line.
ENTITY_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,1024}")
ONE_LINE_RE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")


def tags(value: str) -> str:
    """Ansible tags as --tags takes them: names separated by commas."""
    return _whole(
        TAGS_RE,
        value,
        f"invalid tags {value!r}: give tag names separated by commas (e.g. base,zfs)",
    )


def entity_id(value: str) -> str:
    """A SAML entity ID: it enters every user hash, so a stray blank or newline must not."""
    return _whole(
        ENTITY_ID_RE,
        value,
        f"invalid entity ID {value!r}: expected a URI such as https://idp.school.ca/idp, "
        "without blanks",
    )


def one_line(value: str, what: str) -> str:
    """Free text from the command line (an Ansible KEY=VALUE, module arguments): one line, so no
    newline or control character can start another setting in the program that reads it."""
    return _whole(
        ONE_LINE_RE,
        value,
        f"invalid {what} {value!r}: give it on one line, without control characters",
    )


# --- a row of the Terraform state's `hosts` output --------------------------------------------
# Each value reaches ssh or Ansible, so none may begin with '-' (it would be read as an option).

STATE_ADDRESS_RE = re.compile(
    r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
SSH_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
DISK_PATH_RE = re.compile(r"/[A-Za-z0-9_.:+/-]+")


def state_address(value: object) -> str:
    """A host's public address in the state: an IPv4 or IPv6 address or a DNS name."""
    if not isinstance(value, str) or not value:
        raise UsageError("has no address")
    if not STATE_ADDRESS_RE.fullmatch(value):
        raise UsageError(f"has address {value!r}, not an IP address or host name")
    return value


def state_ssh_user(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not SSH_USER_RE.fullmatch(value):
        raise UsageError(f"has ssh_user {value!r}, not a user name")
    return value


def state_ssh_port(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UsageError(f"has ssh_port {value!r}, not a port number")
    return value


def state_disk(value: object) -> str:
    if not isinstance(value, str) or not DISK_PATH_RE.fullmatch(value):
        raise UsageError(f"has zfs disk {value!r}, not an absolute device path")
    return value


def state_name(value: object, field: str) -> str:
    """The row's host name or one of its group names."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"has no {field}")
    if not (HOST_RE.fullmatch(value) or NAME_RE.fullmatch(value)):
        raise UsageError(f"has {field} {value!r}, not a plain name")
    return value
