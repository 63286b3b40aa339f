"""Progress of long CLI work (simulate, report, `make images`) on a terminal, and silence everywhere else.

A bar is redrawn in place on stderr (`\\r`, at most ten times a second) only when stderr is a terminal and no `CI`
variable says otherwise: a pipe, a log file or a CI job sees nothing of it, so the command's stdout and its tests stay
exactly as they were. No dependency: the project has neither rich nor tqdm, and one line of text is all it needs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TextIO, TypeVar

T = TypeVar("T")
WIDTH = 24  # characters of the bar itself
QUIET_CI = ("", "0", "false", "no")


def progress_enabled(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True on an interactive terminal outside CI: `stream` (stderr) is a TTY and `CI` is unset, empty or false."""
    stream = sys.stderr if stream is None else stream
    env = os.environ if env is None else env
    if env.get("CI", "").strip().lower() not in QUIET_CI:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """`with Progress("simulate", total=500) as bar: ... bar.advance()`; a no-op unless `progress_enabled()`.

    `total=None` shows a count without a bar. The line is erased when the block ends, so the command's own output
    follows on a clean line.
    """

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float = 0.1) -> None:
        self.label, self.total, self.done, self.note = label, total, 0, ""
        self.stream = sys.stderr if stream is None else stream
        self.enabled = progress_enabled(self.stream, env)
        self.clock, self.interval = clock, interval
        self.started = clock()
        self._drawn_at: float | None = None
        self._width = 0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        self._draw(force=self.total is not None and self.done >= self.total)

    def stage(self, note: str) -> None:
        """Name what is being done now (e.g. "writing the report"), without counting."""
        self.note = note
        self._draw(force=True)

    def line(self) -> str:
        """The text drawn now: `label [#####-----] 120/500 00:12 note`."""
        elapsed = int(self.clock() - self.started)
        clock = f"{elapsed // 60:02d}:{elapsed % 60:02d}"
        if self.total:
            filled = min(WIDTH, WIDTH * self.done // self.total)
            count = f"[{'#' * filled}{'-' * (WIDTH - filled)}] {self.done}/{self.total}"
        else:
            count = f"{self.done}" if self.done else ""
        return " ".join(p for p in (self.label, count, clock, self.note) if p)

    def close(self) -> None:
        if self.enabled and self._drawn_at is not None:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._drawn_at = None

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and self._drawn_at is not None and now - self._drawn_at < self.interval:
            return
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width, self._drawn_at = max(self._width, len(text)), now


def track(items: Iterable[T], label: str, total: int | None = None, **kwargs: object) -> Iterator[T]:
    """Yield `items`, advancing a `Progress` by one each (total: `len(items)` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(label, total, **kwargs) as bar:  # type: ignore[arg-type]
        for item in items:
            yield item
            bar.advance()
