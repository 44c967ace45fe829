"""Progress display of long CLI steps (rich, on stderr).

``working(text)`` shows a spinner with the elapsed time while one step runs; ``counting(text,
total)`` a bar with done/total and the remaining time for steps made of many parts;
``tracking(text)`` a bar whose total is known only once the step runs. These three are
transient and print nothing when stderr is not a terminal (pipes, logs, tests), so output
files and stdout stay the same either way. ``stepping(text, total)`` is a bar of labelled
steps that stays when done: off a terminal its final state is printed once, as a record in
logs (``quiet`` hides it). ``TTY_COMPATIBLE=1`` forces the terminal display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Step(Protocol):
    """``step(label, n=1)``: ``n`` more steps are done; the bar shows ``label``."""

    def __call__(self, label: str, n: int = 1) -> None: ...


@contextmanager
def _shown(columns: tuple[ProgressColumn, ...], keep: bool = False, quiet: bool = False) -> Iterator[Progress | None]:
    """A rich ``Progress`` on stderr, or None when nothing is to be shown: with ``quiet``, or
    off a terminal unless the bar is kept (``keep``) when done."""
    console = Console(stderr=True)
    if quiet or not (keep or console.is_terminal):
        yield None
        return
    with Progress(*columns, console=console, transient=not keep) as progress:
        yield progress


@contextmanager
def working(text: str) -> Iterator[None]:
    """Spinner, ``text`` and elapsed time on stderr while the block runs."""
    with _shown((SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())) as progress:
        if progress is not None:
            progress.add_task(text, total=None)
        yield


@contextmanager
def counting(text: str, total: int) -> Iterator[Callable[[int], None]]:
    """Bar with done/total, elapsed and remaining time; yields ``advance(n)``."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with _shown(columns) as progress:
        if progress is None:
            yield lambda n: None
            return
        task = progress.add_task(text, total=total)
        yield lambda n: progress.advance(task, n)


@contextmanager
def tracking(text: str, describe: Callable[[float, float], str] | None = None
             ) -> Iterator[Callable[[float, float], None]]:
    """Bar for steps whose total is known only once they run; yields ``update(done, total)``.

    ``describe(done, total)``, if given, is shown instead of done/total (e.g. a simulated time).
    """
    count = MofNCompleteColumn() if describe is None else TextColumn("{task.fields[note]}")
    with _shown((TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn())) as progress:
        if progress is None:
            yield lambda done, total: None
            return
        task = progress.add_task(text, total=None, note="")

        def update(done: float, total: float) -> None:
            notes = {} if describe is None else {"note": describe(done, total)}
            progress.update(task, completed=done, total=total, **notes)

        yield update


@contextmanager
def stepping(text: str, total: int, quiet: bool = False) -> Iterator[Step]:
    """Kept bar ``text <label>`` with done/total and elapsed time (``text starting`` until the
    first step); yields a :class:`Step`. ``quiet``: show nothing."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _shown(columns, keep=True, quiet=quiet) as progress:
        if progress is None:
            yield lambda label, n=1: None
            return
        task = progress.add_task(f"{text} starting", total=total)

        def step(label: str, n: int = 1) -> None:
            progress.update(task, advance=n, description=f"{text} {label}")

        yield step
