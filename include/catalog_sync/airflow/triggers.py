"""Event trigger for Airflow 3's event-driven scheduling: "the ERP has committed changes the hub has not applied".

``ErpChangeFeedTrigger`` runs in the triggerer as the trigger of an ``AssetWatcher`` (``dags/hot_data_sync.py``).
It polls two cheap things, both off the event loop: the ERP change feed's head (``GET /erp/changes?limit=1``,
through the ERP connector) and the hub's committed cursor (``erp/changes``, or the cursor of a declared sales
channel's hot hop when that one is further behind). When the head is ahead of the cursor
it yields a ``TriggerEvent``; the triggerer turns each event into an asset event (``Trigger.submit_event`` ->
``AssetManager.register_asset_change``) and the scheduler queues a run of every DAG scheduled on the asset.

Semantics this relies on (Airflow 3.3, ``jobs/triggerer_job_runner.py`` and ``models/dag.py``):

* A watcher trigger is not finished by its first event: the triggerer keeps iterating ``run()`` and submits every
  event it yields, so ``run()`` loops for ever and must not repeat itself. It signals a given feed head once, and
  signals again only when the head moves on, or when ``resignal_after`` seconds passed with the cursor still
  behind (a failed run left it there: the changes must not wait for the next ERP commit).
* Events are not deduplicated by Airflow, but runs are: queued asset events collapse into one pending run per
  DAG (one ``asset_dag_run_queue`` row per asset and DAG), and an asset-triggered DAG at ``max_active_runs`` gets
  its next run only when the current one ends. A burst therefore costs one run that reads everything after the
  cursor, plus at most one follow-up run for what arrived meanwhile.
* A watcher trigger is identified by ``BaseEventTrigger.hash(classpath, kwargs)``: ``serialize()`` returns only
  configuration (no timestamps, no secrets), so every DAG parse maps to the same trigger row.

The watcher is also where an outage shows first, so it raises two alerts (thresholds in ``thresholds.yaml``,
section ``alerts``; sent through ``catalog_sync.airflow.notifiers.adispatch``, repeats suppressed in the hub and,
while the hub itself is down, in the trigger's memory):

* the hot path is behind: the feed head has stayed ahead of the committed cursor, with the cursor not moving, for
  more than ``freshness.hot_lag_minutes``;
* the ERP or the hub is unreachable: polls kept failing for more than ``unreachable_minutes``.

Boundary: this module is imported when the DAG file is parsed, so its top level imports Airflow's trigger base
only; the connector (``requests``), the hub (``sqlalchemy``) and the hooks are imported inside ``run()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


class ErpChangeFeedTrigger(BaseEventTrigger):
    """Fires when the ERP change feed holds changes after the hub's committed ``erp/changes`` cursor.

    Args:
        conn_id: Airflow connection of the ERP (the same one the tasks use).
        poll_interval: Seconds between polls. Each poll is one small ERP request and one hub read; this bounds
            the trigger's share of the hot path's latency.
        resignal_after: Seconds after which a head that was already signalled is signalled again while the
            cursor is still behind it (the run it started failed or was cleared).
        error_backoff: Seconds to wait after a failed poll (ERP or hub unreachable) before trying again; the
            watcher keeps running through outages instead of dying with them.
    """

    def __init__(
        self,
        *,
        conn_id: str = "catalog_sync_erp",
        poll_interval: float = 2.0,
        resignal_after: float = 60.0,
        error_backoff: float = 10.0,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.resignal_after = float(resignal_after)
        self.error_backoff = float(error_backoff)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "resignal_after": self.resignal_after,
                "error_backoff": self.error_backoff,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll for ever; yield one event per new feed head (and again when a signalled head stays unapplied)."""
        from airflow.sdk import BaseHook

        # The async accessor: the synchronous get_connection would block the triggerer's shared event loop
        # (and, from async code, is refused outside sync_to_async).
        conn = await BaseHook.aget_connection(self.conn_id)
        erp = await asyncio.to_thread(_erp_client, conn)
        signalled: int | None = None
        signalled_at = 0.0
        watch = _Health()
        try:
            while True:
                try:
                    cursor, head, target = await asyncio.to_thread(_poll, erp)
                except Exception as exc:  # an outage of the ERP or the hub must not end the watch
                    self.log.warning("ERP change feed poll failed (%s); retrying in %.0f s",
                                     type(exc).__name__, self.error_backoff)
                    await watch.failed(exc, time.monotonic(), self.log)
                    await asyncio.sleep(self.error_backoff)
                    continue
                now = time.monotonic()
                await watch.polled(cursor, head, now, self.log, target)
                fresh = signalled is None or head > signalled
                stale = signalled is not None and now - signalled_at >= self.resignal_after
                if head > cursor and (fresh or stale):
                    self.log.info("ERP changes %d..%d not applied yet: signalling", cursor + 1, head)
                    yield TriggerEvent({"after": cursor, "head": head, "pending": head - cursor})
                    signalled, signalled_at = head, now
                await asyncio.sleep(self.poll_interval)
        finally:
            await asyncio.to_thread(erp.close)


class _Health:
    """What the watcher has seen over time: since when polls fail, since when the cursor lags the head."""

    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.behind: tuple[int, float] | None = None  # (cursor, since) while head > cursor and the cursor stands
        self.sent: dict[str, float] = {}  # alert key -> when this trigger sent it (the hub may be the one down)

    async def failed(self, exc: BaseException, now: float, log: Any) -> None:
        from catalog_sync.alerting import unreachable_alert, unreachable_system
        from catalog_sync.quality.policy import load_alert_rules

        rules = load_alert_rules()
        self.failing_since = self.failing_since if self.failing_since is not None else now
        down = now - self.failing_since
        if down > rules.unreachable_minutes * 60:
            system = unreachable_system(exc) or "erp or hub"
            await self._send(unreachable_alert(system, f"{type(exc).__name__}: {exc}", since_s=down,
                                               watcher="erp_change_feed"), now, rules, log)

    async def polled(self, cursor: int, head: int, now: float, log: Any, target: str = "storefront") -> None:
        from catalog_sync.alerting import hot_lag_alert
        from catalog_sync.quality.policy import load_alert_rules

        self.failing_since = None
        if head <= cursor:
            self.behind = None
            return
        if self.behind is None or self.behind[0] != cursor:
            self.behind = (cursor, now)
            return
        alert = hot_lag_alert(cursor, head, now - self.behind[1], load_alert_rules(), target)
        if alert is not None:
            await self._send(alert, now, load_alert_rules(), log)

    async def _send(self, alert: Any, now: float, rules: Any, log: Any) -> None:
        from catalog_sync.airflow.notifiers import adispatch

        last = self.sent.get(alert.key)
        if last is not None and now - last < rules.suppress_minutes * 60:
            return
        self.sent[alert.key] = now
        try:
            await adispatch([alert])
        except Exception as exc:  # delivery must never end the watch
            log.error("alert %s not sent (%s)", alert.key, type(exc).__name__)


def _erp_client(conn: Any) -> Any:
    """The ERP connector client for an Airflow connection (imports requests: kept out of DAG parsing)."""
    from catalog_sync.airflow.hooks import client_from_connection
    from catalog_sync.domain import System

    return client_from_connection(System.ERP, conn)


def _poll(erp: Any) -> tuple[int, int, str]:
    """(committed cursor, feed head, whose cursor). Blocking: runs in a worker thread, never on the triggerer's loop.

    The cursor is the one furthest behind among the storefront's (``erp/changes``) and those of the enabled declared
    channels that have one (``erp/changes@<channel>``, docs/adr/0018): a channel's changes left by an outage start
    a run of their own (re-signalled every ``resignal_after`` while it stays down), and a channel that stays behind
    raises the lag alert, which names it ("storefront" when the storefront's cursor is the one behind, or level with
    the furthest). A channel without a cursor yet is left out: its first batch runs with the next run."""
    from catalog_sync.flows.hot import CURSOR, channel_cursor
    from catalog_sync.governance.channels import load_channels
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope

    with session_scope() as s:
        cursor, target = int(repo.get_cursor(s, *CURSOR) or 0), "storefront"
        for channel in load_channels().enabled():
            found = repo.get_cursor(s, *channel_cursor(channel.name))
            if found is not None and int(found) < cursor:
                cursor, target = int(found), channel.name
    return cursor, int(erp.last_seq()), target


class ErpItemFileTrigger(BaseEventTrigger):
    """Fires when a file-fed ERP's inbox (the ERP connection's extra ``item_feed``) holds an item file that arrived
    after the hub's committed ``erp/items`` cursor: the ``erp_item_files`` DAG then starts a nightly, so a dropped
    export is picked up without waiting for 02:00. With no ``item_feed`` configured (an API-fed ERP, the default) it
    only re-reads the connection now and then, and never fires.

    Args:
        conn_id: Airflow connection of the ERP.
        poll_interval: Seconds between looks at the inbox (one directory listing and one hub read).
        recheck_interval: Seconds between re-reads of the connection while it names no inbox.
    """

    def __init__(self, *, conn_id: str = "catalog_sync_erp", poll_interval: float = 60.0,
                 recheck_interval: float = 600.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.recheck_interval = float(recheck_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"conn_id": self.conn_id, "poll_interval": self.poll_interval,
                 "recheck_interval": self.recheck_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk import BaseHook

        signalled: str | None = None
        while True:
            try:
                conn = await BaseHook.aget_connection(self.conn_id)
            except Exception as exc:  # no ERP connection (yet): nothing to watch, and no reason to end the watch
                self.log.info("no usable connection %r (%s); looking again later", self.conn_id, type(exc).__name__)
                await asyncio.sleep(self.recheck_interval)
                continue
            if not str(conn.extra_dejson.get("item_feed") or "").strip():
                await asyncio.sleep(self.recheck_interval)
                continue
            try:
                waiting = await asyncio.to_thread(_pending_item_files, conn)
            except Exception as exc:  # an unreadable inbox or hub must not end the watch
                self.log.warning("ERP item inbox not readable (%s); retrying in %.0f s", type(exc).__name__,
                                 self.poll_interval)
                await asyncio.sleep(self.poll_interval)
                continue
            if waiting and waiting[-1] != signalled:
                self.log.info("ERP item files waiting: %s", ", ".join(waiting))
                yield TriggerEvent({"files": waiting})
                signalled = waiting[-1]
            await asyncio.sleep(self.poll_interval)


def _pending_item_files(conn: Any) -> list[str]:
    """Names of the item files that arrived after the committed ``erp/items`` cursor (blocking: a worker thread)."""
    from datetime import datetime

    from catalog_sync.airflow.hooks import client_from_connection
    from catalog_sync.domain import System
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope

    with session_scope() as s:
        cursor = repo.get_cursor(s, "erp", "items")
    client = client_from_connection(System.ERP, conn)
    try:
        since = datetime.fromisoformat(cursor.replace("Z", "+00:00")) if cursor else None
        return [p.name for p in client.pending(since)]
    finally:
        client.close()
