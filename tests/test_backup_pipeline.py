"""runner.transfer, the two-process pipeline that carries `zfs send | ssh host zfs receive`:
bytes arrive whole, no shell is involved, and the failing side is the one named."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from callysto_infra import runner
from callysto_infra.errors import OperationError


def test_two_programs_are_joined_without_a_shell(tmp_path):
    data = os.urandom(3_000_000)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    out = tmp_path / "out.bin"
    seen = []
    moved = runner.transfer(
        ["cat", str(source)], ["dd", f"of={out}", "status=none"], on_bytes=seen.append
    )
    assert moved == len(data) == sum(seen)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_words_reach_the_program_as_they_are(tmp_path):
    marker = tmp_path / "pwned"
    sink = io.BytesIO()
    runner.transfer(["printf", "%s", f"x; touch {marker}"], sink)
    assert sink.getvalue() == f"x; touch {marker}".encode()
    assert not marker.exists()


def test_a_failing_producer_is_named_with_its_own_error():
    with pytest.raises(OperationError, match="'sh' failed: cannot open snapshot"):
        runner.transfer(["sh", "-c", "echo 'cannot open snapshot' >&2; exit 1"], ["cat"])


def test_a_consumer_that_stops_early_is_the_cause_not_the_producer():
    with pytest.raises(OperationError, match="'sh' failed: destination is full"):
        runner.transfer(
            ["yes"], ["sh", "-c", "head -c 10 >/dev/null; echo 'destination is full' >&2; exit 1"]
        )


def test_a_file_can_feed_a_program():
    with pytest.raises(OperationError, match="'sh' failed: got 5 bytes"):
        runner.transfer(
            io.BytesIO(b"hello"), ["sh", "-c", 'n=$(wc -c); echo "got $n bytes" >&2; exit 2']
        )


def test_a_missing_program_is_one_clear_error():
    with pytest.raises(OperationError, match="cannot run 'no-such-program-here'"):
        runner.transfer(["no-such-program-here"], io.BytesIO())
