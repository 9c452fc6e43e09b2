"""How modules report progress: a Say callback for steps (one line each) and an Advance callback
for bytes moved, which the CLI turns into stderr lines and a bar on a terminal, so stdout stays
data. Modules never print; they take these callbacks."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

# A step of a long operation, in one line ("stopping zfs-fuse").
Say = Callable[[str], None]
# N more bytes moved (drives a progress bar).
Advance = Callable[[float], None]


def quiet(_message: str) -> None:
    """A Say that says nothing (tests, --json)."""


def no_progress(_count: float) -> None:
    """An Advance that shows nothing."""


def to_stderr(message: str) -> None:
    """The Say of commands run by an operator: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def bar(description: str, total: float | None = None) -> Iterator[Advance]:
    """Yield advance(n): a transient bar on a terminal, nothing elsewhere (logs, pipes, tests)."""
    with bars() as add:
        yield add(description, total)


@contextlib.contextmanager
def bars() -> Iterator[Callable[[str, float | None], Advance]]:
    """Yield add(description, total) -> advance(n): a transient bar each, in one display on a
    terminal (several hubs at once; add and advance may be called from any thread), nothing
    elsewhere."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda _description, _total=None: no_progress
        return
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn()]
    columns += [TransferSpeedColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        # Rich's Progress takes its own lock in add_task and advance.

        def add(description: str, total: float | None = None) -> Advance:
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        yield add
