"""The README names only commands and make targets that exist."""

from __future__ import annotations

import re
import subprocess

import click

from callysto_infra.cli import main
from tests.conftest import PROJECT

README = (PROJECT / "README.md").read_text(encoding="utf-8")


def code_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```(?:sh|console)?\n(.*?)```", README, flags=re.S):
        lines.extend(line.split("#")[0].strip() for line in block.splitlines())
    lines.extend(re.findall(r"`((?:make|callysto) [^`]+)`", README))
    return [line for line in lines if line]


def make_targets() -> set[str]:
    out = subprocess.run(
        ["make", "-s", "help"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[0] for line in out.splitlines()}


def test_readme_make_targets_exist():
    targets = make_targets()
    named = {m.split()[1] for m in code_lines() if m.startswith("make ") and len(m.split()) > 1}
    named = {n for n in named if not n.startswith("-") and "=" not in n}
    assert named, "the README shows no make command"
    assert not named - targets


def test_readme_callysto_commands_exist():
    commands = [line.split()[1:] for line in code_lines() if line.startswith("callysto ")]
    assert commands, "the README shows no callysto command"
    missing = [" ".join(c) for c in commands if not _exists(c)]
    assert not missing


def _exists(words: list[str]) -> bool:
    command: click.Command = main
    for word in words:
        if word.startswith("-") or word.isupper() or not isinstance(command, click.Group):
            return True  # an option, a placeholder such as COMMAND, or a command's arguments
        sub = command.commands.get(word)
        if sub is None:
            # an argument of a group that runs itself (e.g. 'backup'), or a typo
            return False
        command = sub
    return True


def test_readme_starts_with_the_two_commands():
    first = [line for line in code_lines() if line.startswith("make ")][:2]
    assert first == ["make local", "make test"]
