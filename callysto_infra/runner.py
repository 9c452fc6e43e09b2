"""The one place that starts external programs: argv lists only, never a shell."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

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


# --- signals ---------------------------------------------------------------------------------

# The signal that last stopped us, when it was not the terminal's Ctrl-C.
_stopped_by: int | None = None


def _interrupt(signum: int, frame: object) -> None:
    global _stopped_by
    _stopped_by = signum
    raise KeyboardInterrupt


def interrupt_on_hangup() -> None:
    """Treat SIGHUP (the terminal closed) and SIGTERM (kill) as Ctrl-C: the command stops where it
    is and its cleanups run (plan files removed, the lock released) instead of the process
    vanishing mid-prompt. A signal already ignored (nohup) stays ignored."""
    for signum in (signal.SIGHUP, signal.SIGTERM):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _interrupt)


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
    umask: int = -1,
) -> Result:
    """Run ARGV (a list, one element per argument) and return its result.

    With check, a non-zero exit raises OperationError carrying the program's last stderr line.
    Without capture, output streams straight to the terminal (long Terraform or Ansible runs).
    UMASK (e.g. 0o077) is the program's, for programs that write secrets with open modes.
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
            umask=umask,
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


def replace_process(argv: Sequence[str]) -> None:
    """Become ARGV (exec): for interactive programs such as ssh, which then own the terminal,
    the signals and the exit status. Returns only by raising when ARGV cannot be started."""
    argv = [str(a) for a in argv]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 -- an argv list, never a shell, by design
    except OSError as exc:
        raise OperationError(f"cannot run '{argv[0]}': {exc.strerror}") from exc


def stream(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    umask: int = -1,
) -> Result:
    """Run ARGV with its output going to our stdout and stderr as it is written (long runs).

    Ctrl-C at the terminal reaches the program as well as us: we keep waiting while it cleans up
    (Terraform finishes what is in flight and writes its state) instead of killing it, then
    re-raise the interrupt. A SIGHUP or SIGTERM that reached only us is passed on as that Ctrl-C.
    """
    global _stopped_by
    argv = [str(a) for a in argv]
    full_env = {**os.environ, **env} if env is not None else None
    try:
        proc = subprocess.Popen(argv, env=full_env, cwd=cwd, umask=umask)
    except FileNotFoundError as exc:
        raise OperationError(f"cannot run '{argv[0]}': {exc.strerror}") from exc
    interrupted = False
    while True:
        try:
            returncode = proc.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
            if _stopped_by is not None:
                _stopped_by = None
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
    if interrupted:
        raise KeyboardInterrupt
    result = Result(tuple(argv), returncode, "", "")
    if check and not result.ok:
        raise OperationError(
            f"'{os.path.basename(argv[0])}' failed with exit status {returncode}: "
            "its own message is above"
        )
    return result


Source = Sequence[str] | BinaryIO
Sink = Sequence[str] | BinaryIO

_CHUNK = 1 << 20


def transfer(
    source: Source,
    sink: Sink,
    *,
    on_bytes: Callable[[int], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Move bytes from SOURCE to SINK and return how many moved.

    Each end is an argv (a program's stdout or stdin) or an open binary file, so
    `zfs send | ssh host zfs receive` is two argv processes joined here, with no shell, and the
    bytes pass through us on the way so ON_BYTES can drive a progress bar. A failure of either
    program raises OperationError with the most telling line of its stderr.
    """
    import tempfile

    full_env = {**os.environ, **env} if env is not None else None
    procs: list[tuple[list[str], subprocess.Popen, BinaryIO]] = []

    def start(argv: Sequence[str], **pipes) -> subprocess.Popen:
        argv = [str(a) for a in argv]
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
        try:
            proc = subprocess.Popen(argv, stderr=errors, env=full_env, **pipes)
        except FileNotFoundError as exc:
            errors.close()
            raise OperationError(f"cannot run '{argv[0]}': {exc.strerror}") from exc
        procs.append((argv, proc, errors))
        return proc

    moved = 0
    broken_pipe = False
    try:
        if isinstance(source, (str, bytes)) or not hasattr(source, "read"):
            producer = start(source, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            reader: BinaryIO = producer.stdout  # type: ignore[assignment]
        else:
            reader = source  # type: ignore[assignment]
        if isinstance(sink, (str, bytes)) or not hasattr(sink, "write"):
            consumer = start(sink, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            writer: BinaryIO = consumer.stdin  # type: ignore[assignment]
        else:
            writer = sink  # type: ignore[assignment]
        while chunk := reader.read(_CHUNK):
            try:
                writer.write(chunk)
            except BrokenPipeError:
                # The consumer stopped early; its own exit status says why.
                broken_pipe = True
                break
            moved += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        for _argv, proc, _errors in procs:
            if proc.stdin:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            if proc.stdout:
                proc.stdout.close()
        failures = []
        for argv, proc, errors in procs:
            code = proc.wait()
            if code != 0:
                errors.seek(0)
                text = errors.read().decode("utf-8", "replace")
                failures.append(Result(tuple(argv), code, "", text))
        # A producer killed by SIGPIPE only echoes the consumer's failure; otherwise the first
        # program to fail (the producer, whose error starves the consumer) tells the cause.
        causes = [r for r in failures if r.returncode != -signal.SIGPIPE] or failures
        if causes:
            cause = causes[0]
            raise OperationError(f"'{os.path.basename(cause.argv[0])}' failed: {last_line(cause)}")
        if broken_pipe:
            raise OperationError("the receiving program stopped before the stream ended")
        return moved
    finally:
        for _argv, proc, errors in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            errors.close()


class Background:
    """A program running beside us (an SSH tunnel): whether it still runs, and why it stopped."""

    def __init__(self, argv: tuple[str, ...], proc: subprocess.Popen, errors: BinaryIO):
        self.argv = argv
        self._proc = proc
        self._errors = errors

    def exited(self) -> int | None:
        """Its exit status once it has stopped, else None."""
        return self._proc.poll()

    def result(self) -> Result:
        """What it said on stderr so far, as a Result for last_line()."""
        self._errors.seek(0)
        text = self._errors.read().decode("utf-8", "replace")
        return Result(self.argv, self._proc.poll() or 0, "", text)


@contextlib.contextmanager
def background(argv: Sequence[str], *, grace: float = 5.0, hold_stdin: bool = False):
    """Run ARGV while the block runs, then stop it by its pid (SIGTERM, SIGKILL after GRACE s).

    It runs in a session of its own, so a Ctrl-C at the terminal reaches only us: the block
    decides when it stops (a tunnel must outlive the database work the interrupt is cutting
    short). Its stderr is kept for the error line when it fails. With HOLD_STDIN its stdin is
    a pipe only we hold, never written to: it reads end-of-file once we are gone however we
    end (kill -9 too), which is how a program that stops at end-of-file outlives us by nothing.
    """
    import tempfile

    argv = [str(a) for a in argv]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if hold_stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        errors.close()
        raise OperationError(f"cannot run '{argv[0]}': {exc.strerror}") from exc
    try:
        yield Background(tuple(argv), proc, errors)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors.close()
