"""Where the front door may send a browser after sign-in: only a path of its own site, never
another host however the link spells it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(
    0, str(Path(__file__).parent.parent / "playbooks/roles/callysto_login/files/callysto_login")
)
from callysto_login.frontdoor import _local_path


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fx", True),
        ("/", True),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("/a\nLocation: https://evil.example", False),
        ("hub/x", False),
    ],
)
def test_only_local_paths_are_followed(value, kept):
    assert _local_path(value) == (value if kept else "/")
