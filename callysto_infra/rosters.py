"""Class rosters: a file of students' e-mail addresses (one a line) in, their user hashes out as
the CSV 'email,hash'. Fast enough for a whole school board's list."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callysto_infra import userhash
from callysto_infra.addresses import ADDRESS, within_limits
from callysto_infra.errors import UsageError

if TYPE_CHECKING:
    from callysto_infra.userhash import Hasher

HEADER = "email,hash\n"


def read(path: str) -> list[str]:
    """The addresses in PATH; blank lines and # comments are skipped. Every address is checked
    before anything is written, so a bad roster produces no partial CSV."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except OSError as exc:
        raise UsageError(f"roster {path} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"roster {path} is not UTF-8 text: save it as UTF-8 (CSV UTF-8)") from None
    # The address grammar, run over the whole file at once: a class of 100,000 stays fast.
    bad = re.search(rf"^(?![ \t]*(?:#.*)?\r?$)(?![ \t]*{ADDRESS}[ \t]*\r?$).*$", text, re.M)
    lines = [line.strip(" \t\r") for line in text.split("\n")]
    found = [line for line in lines if line and not line.startswith("#")]
    too_long = next((a for a in found if not within_limits(a)), None)
    if bad is not None or too_long is not None:
        number = text.count("\n", 0, bad.start()) + 1 if bad else lines.index(too_long) + 1
        # The line is not repeated: it may be a student's address, mistyped.
        raise UsageError(
            f"roster {path} line {number} is not an e-mail address (one address per line, "
            "at most 254 bytes): nothing was written"
        )
    return found


def hashes(hasher: Hasher, addresses: Sequence[str], source: str, idp: str | None) -> list[str]:
    """The user hashes of ADDRESSES signing in through SOURCE, in order."""
    source = userhash.ALIASES.get(source, source)
    if source != "google":  # institution; Microsoft raises NeedsAccountId
        ids = [userhash.user_id(a, source, idp) for a in addresses]
    else:  # Google's user ID is the lower-cased address (userhash.user_id), done in bulk
        ids = "\n".join(addresses).lower().split("\n") if addresses else []
    return hasher.many(ids)


def csv_text(addresses: Sequence[str], hashes: Sequence[str]) -> str:
    """CSV 'email,hash' with its header. Addresses hold no line breaks (the grammar allows none),
    so only a quoted local part, or one with a comma, needs CSV quoting; without any, plain lines
    are the same CSV, three times faster."""
    import csv
    import io

    if any("," in a or '"' in a for a in addresses):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(zip(addresses, hashes, strict=True))
        body = buffer.getvalue()
    else:
        body = "".join(f"{a},{h}\n" for a, h in zip(addresses, hashes, strict=True))
    return HEADER + body


def write(path: str, text: str) -> None:
    """Write the CSV TEXT to PATH, 0600: it maps students' addresses to their hashes. It appears
    whole (written beside it, then renamed), replacing any file there; the folder must exist."""
    import os
    import secrets
    from pathlib import Path

    from callysto_infra.settings import display

    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(
            f"output folder {display(folder)} does not exist: create it first "
            f"(mkdir -m 700 {display(folder)}) or choose another --output"
        )
    partial = folder / f".{target.name}.{secrets.token_hex(4)}.partial"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"output {display(target)} cannot be written ({exc.strerror})") from None
