"""The make targets of backups call the right `callysto` argv (values never reach a shell)."""

from __future__ import annotations

import json

import pytest

from tests.test_makefile import echo_argv, make  # noqa: F401 (echo_argv is a fixture)

H = "0123456789abcdef0123456789abcdef01234567"
SNAP = "callysto-20261126T090000Z"

CASES = [
    ("backup/homes", {"ENV": "prod"}, ["backup", "homes", "--env", "prod"]),
    ("backup/homes", {"ENV": "prod", "HOST": "h1"}, ["backup", "homes", "--env", "prod", "--host", "h1"]),
    ("backup/homes/status", {"ENV": "prod"}, ["backup", "homes", "status", "--env", "prod"]),
    ("backup/homes/restore", {"ENV": "prod", "SNAPSHOT": SNAP},
     ["backup", "homes", "restore", "--env", "prod", "--from", SNAP]),
    ("backup/homes/restore", {"ENV": "prod", "SNAPSHOT": SNAP, "USERHASH": H},
     ["backup", "homes", "restore", "--env", "prod", "--from", SNAP, H]),
]  # fmt: skip


@pytest.mark.parametrize(("target", "variables", "argv"), CASES, ids=[c[0] for c in CASES])
def test_backup_target_calls_callysto_with_the_right_argv(echo_argv, target, variables, argv):  # noqa: F811
    result = make(target, f"CALLYSTO={echo_argv}", *(f"{k}={v}" for k, v in variables.items()))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == argv


def test_homes_restore_target_names_a_missing_snapshot(echo_argv):  # noqa: F811
    result = make("backup/homes/restore", "ENV=prod", f"CALLYSTO={echo_argv}")
    assert result.returncode == 2
    assert "SNAPSHOT is required" in result.stderr and result.stdout == ""
