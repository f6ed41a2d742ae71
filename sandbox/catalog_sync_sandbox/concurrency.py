"""Requests in flight at each system: how many now, the most since the last reset, how many were refused for it.

The PIM refuses as Akeneo documents (https://api.akeneo.com/documentation/good-practices.html, "Maximum concurrent
API calls"): at most 4 API calls at once per PIM connection (its client id: every token of one connection counts
together, so two workers with a token each share the 4) and 10 for the whole instance; a call beyond is answered 429.
The other systems publish no such limit: they are only counted.

``peak`` counts a request refused for being over a limit as one more at once: the count is of what clients sent,
not of what the system let in, so ``peak > limit`` exactly when the clients together went over the limit. That is
what ``GET /_sandbox/concurrency`` reports, and what the tests that check Catalog Sync's budgets assert on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class _Count:
    in_flight: int = 0
    peak: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "peak": self.peak, "refused": self.refused}


class Meter:
    """Requests in flight at one system, per key (a PIM connection) and in total. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _Count()
        self._keys: dict[str, _Count] = {}

    def enter(self, key: str = "", *, limit: int | None = None, total_limit: int | None = None) -> bool:
        """Count one arriving request for ``key``. False (the request is refused, and counted as such, not as in
        flight) when it would be the ``limit + 1``-th at once for its key, or the ``total_limit + 1``-th in all."""
        with self._lock:
            count = self._keys.setdefault(key, _Count())
            arriving, arriving_total = count.in_flight + 1, self._total.in_flight + 1
            count.peak = max(count.peak, arriving)
            self._total.peak = max(self._total.peak, arriving_total)
            if (limit is not None and arriving > limit) or (total_limit is not None and arriving_total > total_limit):
                count.refused += 1
                self._total.refused += 1
                return False
            count.in_flight = arriving
            self._total.in_flight = arriving_total
            return True

    def leave(self, key: str = "") -> None:
        with self._lock:
            count = self._keys.get(key)
            if count is not None and count.in_flight > 0:
                count.in_flight -= 1
                self._total.in_flight = max(0, self._total.in_flight - 1)

    def reset(self) -> None:
        """Forget the peaks and refusals (requests still in flight stay counted)."""
        with self._lock:
            self._total.peak, self._total.refused = self._total.in_flight, 0
            for key, count in list(self._keys.items()):
                if count.in_flight == 0:
                    del self._keys[key]
                else:
                    count.peak, count.refused = count.in_flight, 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self._total.as_dict(), "keys": {k: c.as_dict() for k, c in self._keys.items() if k}}


#: The systems whose requests are counted, by the first segment of their path (the sales channel too: its task's
#: pool bounds its requests in flight, and benchmark 13 reads the peak here).
METERED: tuple[str, ...] = ("erp", "pim", "dam", "storefront", "supplier", "cdn", "adobe_commerce")


class CountingMiddleware:
    """Counts the requests in flight at every system but the PIM (whose limits middleware counts its own, since
    it refuses by them): from the moment a request arrives until its answer is sent."""

    def __init__(self, app: Any, meters_getter: Any) -> None:
        self.app = app
        self.meters_getter = meters_getter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        system = scope["path"].lstrip("/").split("/", 1)[0] if scope["type"] == "http" else ""
        if system not in METERED or system == "pim":
            await self.app(scope, receive, send)
            return
        meter: Meter = self.meters_getter()[system]
        meter.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            meter.leave()
