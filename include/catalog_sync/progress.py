"""Progress lines for long loops, so a task log shows every few thousand records what was done, how fast, and
what is left, instead of nothing for minutes.

A line goes out each time another ``every`` records are done (and at the end): ::

    load_pim: 6,000 of 20,512 records (29%), 1,420/s, 14,512 left, about 10 s to go

Without a known total (a full read of a paged API) it says how many so far and at what rate. Logging only: it
never changes what the loop does, and costs one clock read per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("catalog_sync.progress")


class Progress:
    def __init__(self, what: str, total: int | None = None, *, every: int = 2000, unit: str = "records",
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger | None = None) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.what, self.total, self.every, self.unit = what, total, every, unit
        self.clock, self.log = clock, logger or log
        self.done = 0
        self.started = clock()
        self._next = every
        self.lines: list[str] = []

    def add(self, n: int = 1) -> None:
        """Count ``n`` more records done; logs a line each time another ``every`` are done."""
        self.done += n
        if self.done >= self._next:
            self._next = (self.done // self.every + 1) * self.every
            self._emit()

    def finish(self) -> None:
        """The closing line (only when the loop was long enough to have logged on the way)."""
        if self.done >= self.every:
            self._emit(final=True)

    def line(self, *, final: bool = False) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        if final:
            return f"{self.what}: done, {self.done:,} {self.unit} in {elapsed:,.0f} s ({rate:,.0f}/s)"
        if self.total:
            left = max(self.total - self.done, 0)
            eta = f", about {left / rate:,.0f} s to go" if rate > 0 else ""
            return (f"{self.what}: {self.done:,} of {self.total:,} {self.unit} ({self.done / self.total:.0%}), "
                    f"{rate:,.0f}/s, {left:,} left{eta}")
        return f"{self.what}: {self.done:,} {self.unit} so far, {rate:,.0f}/s"

    def _emit(self, final: bool = False) -> None:
        text = self.line(final=final)
        self.lines.append(text)
        self.log.info(text)
