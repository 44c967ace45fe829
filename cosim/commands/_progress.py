"""Progress display of long CLI steps (rich, on stderr, only when stderr is a terminal).

``working(text)`` shows a spinner with the elapsed time while one step runs; ``counting(text,
total)`` a bar with done/total and the remaining time for steps made of many parts. Both
print nothing when stderr is not a terminal (pipes, logs, tests), so output files and stdout
stay the same either way; ``TTY_COMPATIBLE=1`` forces the display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _console() -> Console:
    return Console(stderr=True)


@contextmanager
def working(text: str) -> Iterator[None]:
    """Spinner, ``text`` and elapsed time on stderr while the block runs."""
    console = _console()
    if not console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(text, total=None)
        yield


@contextmanager
def counting(text: str, total: int) -> Iterator[Callable[[int], None]]:
    """Bar with done/total, elapsed and remaining time; yields ``advance(n)``."""
    console = _console()
    if not console.is_terminal:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(text, total=total)
        yield lambda n: progress.advance(task, n)


@contextmanager
def tracking(text: str) -> Iterator[Callable[[int, int], None]]:
    """Bar for steps whose total is known only once they run; yields ``update(done, total)``."""
    console = _console()
    if not console.is_terminal:
        yield lambda done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(text, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
