"""Shared fixtures: an empty envs/ directory per test, and the real `callysto` program."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
CALLYSTO = Path(sys.executable).with_name("callysto")


@pytest.fixture
def envs_dir(tmp_path, monkeypatch) -> Path:
    """A private envs/ directory for the test; the project's own envs/ is never touched."""
    path = tmp_path / "envs"
    path.mkdir()
    monkeypatch.setenv("CALLYSTO_ENVS_DIR", str(path))
    monkeypatch.delenv("CALLYSTO_ENV", raising=False)
    return path


@pytest.fixture
def callysto(envs_dir):
    """Run the installed `callysto` script as an operator would, returning the CompletedProcess."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None, **kw):
        full_env = {**os.environ, "CALLYSTO_ENVS_DIR": str(envs_dir), **(env or {})}
        full_env.pop("CALLYSTO_ENV", None) if "CALLYSTO_ENV" not in (env or {}) else None
        return subprocess.run(
            [str(CALLYSTO), *args],
            capture_output=True,
            text=True,
            input=input,
            env=full_env,
            cwd=kw.pop("cwd", PROJECT),
            timeout=kw.pop("timeout", 600),
            check=False,
        )

    return run
