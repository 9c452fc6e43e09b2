"""The one place that starts external programs: argv lists only, never a shell."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callysto_infra.errors import OperationError


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class MissingProgram(OperationError):
    def __init__(self, program: str, hint: str):
        super().__init__(f"'{program}' was not found on PATH: {hint}")


def which(program: str, hint: str) -> str:
    """Return the full path of PROGRAM, or fail with a line that says how to install it."""
    path = shutil.which(program)
    if path is None:
        raise MissingProgram(program, hint)
    return path


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    capture: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> Result:
    """Run ARGV (a list, one element per argument) and return its result.

    With check, a non-zero exit raises OperationError carrying the program's last stderr line.
    Without capture, output streams straight to the terminal (long Terraform or Ansible runs).
    """
    argv = [str(a) for a in argv]
    full_env = None
    if env is not None:
        full_env = {**os.environ, **env}
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=capture,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise OperationError(f"cannot run '{argv[0]}': {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise OperationError(f"'{argv[0]}' did not finish within {timeout:g}s") from exc
    result = Result(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")
    if check and not result.ok:
        raise OperationError(f"'{os.path.basename(argv[0])}' failed: {last_line(result)}")
    return result


def last_line(result: Result) -> str:
    """The most telling line of a failed program's output, for a one-line error."""
    for text in (result.stderr, result.stdout):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return f"exit status {result.returncode}"


def stream(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ARGV with its output going to our stdout and stderr as it is written (long runs).

    Ctrl-C at the terminal reaches the program as well as us: we keep waiting while it cleans up
    (Terraform finishes what is in flight and writes its state) instead of killing it, then
    re-raise the interrupt.
    """
    argv = [str(a) for a in argv]
    full_env = {**os.environ, **env} if env is not None else None
    try:
        proc = subprocess.Popen(argv, env=full_env, cwd=cwd)
    except FileNotFoundError as exc:
        raise OperationError(f"cannot run '{argv[0]}': {exc.strerror}") from exc
    interrupted = False
    while True:
        try:
            returncode = proc.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    result = Result(tuple(argv), returncode, "", "")
    if check and not result.ok:
        raise OperationError(
            f"'{os.path.basename(argv[0])}' failed with exit status {returncode}: "
            "its own message is above"
        )
    return result
