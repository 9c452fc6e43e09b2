"""The playbooks pass Ansible's syntax check, ansible-lint's production profile and yamllint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from callysto_infra import ansible

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(argv, **kw):
    env = {**os.environ, **ansible.environment(), "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=PROJECT, **kw)


@pytest.mark.parametrize("book", [b.name for b in ansible.playbooks()])
def test_playbook_passes_syntax_check(book):
    proc = _run([BIN / "ansible-playbook", "--syntax-check", ansible.find_playbook(book).path])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_playbook_starts_with_its_description():
    for book in ansible.playbooks():
        first = book.path.read_text().splitlines()[:2]
        assert first[1].startswith("## ") and book.description, book.name


def test_ansible_lint_production_profile_is_clean():
    proc = _run([BIN / "ansible-lint", "--offline", "--nocolor", "playbooks/"], timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


def test_yamllint_is_clean():
    proc = _run([BIN / "yamllint", "--strict", "playbooks", ".yamllint", ".ansible-lint"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
