"""Progress display: rich bars on a terminal, silent in CI and when piped."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

console = Console(stderr=True)


def interactive() -> bool:
    """True on a terminal outside CI (``CI`` unset, stderr is a TTY, ``GDELT_FORECAST_QUIET`` unset)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and not os.environ.get("GDELT_FORECAST_QUIET")


def make_progress() -> Progress:
    """A rich ``Progress`` (disabled when not interactive) for multi-task displays."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not interactive(), transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal; plain iteration otherwise."""
    if not interactive():
        yield from items
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total if total is not None else _len(items), info="")
        for item in items:
            yield item
            progress.advance(task)


def _len(items: Iterable[object]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


@contextmanager
def quiet_transformers(errors_only: bool = True) -> Iterator[None]:
    """Silence transformers' per-load progress bars (and, with ``errors_only``, its load reports) inside the block."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if errors_only:
        hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
