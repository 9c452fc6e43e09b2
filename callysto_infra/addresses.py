"""What can be an e-mail address: RFC 5322's addr-spec with RFC 6532's UTF-8. Standalone (no
imports from the package), because the hub's sign-in package carries a copy of this file too."""

from __future__ import annotations

import re

# Identity providers hand over whatever their users registered (d'arcy+art@..., "jo smith"@...,
# élève@école.ca), and an address never reaches a shell, so everything the grammar allows is
# accepted: a dot-atom or a quoted string before the @, a dot-atom or a [domain literal] after
# it (RFC 5322 section 3.4.1). A domain has at least two labels: no provider hands over an address
# at a dotless domain (ICANN forbids them). Control characters and line breaks are in none of
# these classes, and the pattern is only ever matched whole (fullmatch).
_UTF8_NON_ASCII = "\u00a0-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8_NON_ASCII}]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QCONTENT = rf"(?:[\x21\x23-\x5b\x5d-\x7e{_UTF8_NON_ASCII}]|\\[\x20-\x7e\t])"
_QUOTED_STRING = rf'"(?:[ \t]*{_QCONTENT})*[ \t]*"'
_DOMAIN_LITERAL = rf"\[(?:[ \t]*[\x21-\x5a\x5e-\x7e{_UTF8_NON_ASCII}])*[ \t]*\]"
_DOMAIN = rf"{_ATEXT}+(?:\.{_ATEXT}+)+"
ADDRESS = rf"(?:{_DOT_ATOM}|{_QUOTED_STRING})@(?:{_DOMAIN}|{_DOMAIN_LITERAL})"
ADDRESS_RE = re.compile(ADDRESS)

# RFC 5321's limits, in octets: what a mail system can carry at all.
MAX_OCTETS = 254
LOCAL_PART_MAX_OCTETS = 64


def within_limits(value: str) -> bool:
    local = value.rpartition("@")[0]
    return len(value.encode()) <= MAX_OCTETS and len(local.encode()) <= LOCAL_PART_MAX_OCTETS


def is_email(value: str) -> bool:
    """Whether VALUE, as a whole, can be an e-mail address."""
    return bool(ADDRESS_RE.fullmatch(value)) and within_limits(value)
