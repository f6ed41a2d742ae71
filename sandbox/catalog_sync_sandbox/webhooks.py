"""ERP webhooks: each committed change is POSTed to the subscribers of its topic from a background thread.

A write only enqueues; delivery happens later with a short timeout, once, without retry, as many ERPs do. That is
the point: a subscriber that was down misses events and must catch up from ``GET /erp/changes?after=N``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from catalog_sync_sandbox import db

if TYPE_CHECKING:
    from catalog_sync_sandbox.state import SandboxState

log = logging.getLogger(__name__)


class WebhookDispatcher:
    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: the last deliveries, newest last: {"subscription", "seq", "status" | "error", "at"}
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=500)

    def publish(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()
        self._queue.put(change)

    def stop(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            change = self._queue.get()
            if change is None:
                return
            try:
                self._deliver(change)
            except Exception:  # the dispatcher must outlive any one bad subscriber or database hiccup
                log.exception("webhook delivery of change %s failed", change.get("seq"))

    def _deliver(self, change: dict[str, Any]) -> None:
        with self._state.engine.connect() as conn:
            subs = conn.execute(select(db.erp_webhook.c.id, db.erp_webhook.c.url, db.erp_webhook.c.topics)).all()
        body = json.dumps(change).encode("utf-8")
        for sub_id, url, topics in subs:
            if change["topic"] not in topics:
                continue
            record: dict[str, Any] = {"subscription": sub_id, "seq": change["seq"],
                                      "at": datetime.now(UTC).isoformat()}
            request = urllib.request.Request(
                url, data=body, method="POST",
                headers={"Content-Type": "application/json", "X-Erp-Topic": change["topic"],
                         "X-Erp-Seq": str(change["seq"])},
            )
            try:
                with urllib.request.urlopen(request, timeout=self._state.settings.webhook_timeout_s) as resp:
                    record["status"] = resp.status
            except urllib.error.HTTPError as exc:
                record["status"] = exc.code
            except (OSError, ValueError) as exc:  # refused, timed out, bad URL: the event is simply missed
                record["error"] = type(exc).__name__
            self.deliveries.append(record)
