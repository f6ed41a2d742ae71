"""Lifecycle divergence caught before shoppers see it: the last step of the seasonal triage, run by itself.

An item's lifecycle travels ERP -> PIM at the nightly and ERP -> storefront at once on the hot path; when the PIM
does not follow, the next publish from the PIM (content, images) works from a stale state, which is how a launch
shows a product as draft or a discontinued one as live. This watch reads the ERP change feed's item changes that
are older than ``lifecycle_follow_minutes`` (thresholds.yaml) and not yet looked at, and for each SKU whose ERP
lifecycle is still that value compares the PIM's: where the PIM differs it returns an alert naming the SKU and both
states. Its cursor (``erp/lifecycle_watch``, a change seq) moves past what it looked at; the first run starts at
the feed's head. Sending the alerts is the caller's (the DAG task dispatches them through Airflow's notifiers).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from catalog_sync.alerting import Alert
from catalog_sync.connectors import ReadResult
from catalog_sync.connectors.mapping import akeneo_product_to_canonical
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.showable import parse_ts

CURSOR: Final = ("erp", "lifecycle_watch")


def _pim_lifecycle(systems: Systems, sku: str) -> str | None:
    record = systems.pim.get_product_model(sku) or systems.pim.get_product(sku)
    return akeneo_product_to_canonical(record).get("lifecycle_status") if record else None


def watch(systems: Systems, *, follow_within: timedelta, hub_url: str | None = None,
          now: datetime | None = None) -> tuple[list[Alert], dict[str, Any]]:
    """(alerts, summary): the ERP lifecycle changes older than ``follow_within`` that the PIM has not followed."""
    now = now or datetime.now(UTC)
    with session_scope(hub_url) as s:
        stored = repo.get_cursor(s, *CURSOR)
    head = systems.erp.last_seq()
    if stored is None:  # the first run: from here on, not a backlog of every change ever made
        with session_scope(hub_url) as s:
            repo.commit_cursor(s, *CURSOR, "seq", str(head), "lifecycle_watch")
        return [], {"after": head, "until": head, "checked": 0, "diverged": 0}
    after = int(stored)
    due_before = now - follow_within
    latest: dict[str, tuple[str, datetime]] = {}
    last = after
    for change in ReadResult.collect(systems.erp.iter_changes(after=after, until=head)).records:
        committed = parse_ts(change.get("committed_at")) or now
        if committed > due_before:
            break  # the feed is in commit order: the rest is not due yet
        last = int(change["seq"])
        value = (change.get("data") or {}).get("lifecycle_status")
        if change.get("topic") == "item" and value:
            latest[str(change["sku"])] = (str(value), committed)
    alerts: list[Alert] = []
    for sku, (value, committed) in sorted(latest.items()):
        erp = (systems.erp.get_item(sku) or {}).get("lifecycle_status")
        if erp != value:
            continue  # changed again since: that later change is watched in its turn
        pim = _pim_lifecycle(systems, sku)
        if pim != erp:
            minutes = int((now - committed).total_seconds() // 60)
            alerts.append(Alert(
                key=f"lifecycle_divergence:{sku}", severity="warning",
                subject=f"{sku}: the PIM still says {pim or 'nothing'}, the ERP {erp}",
                body=f"The ERP made {sku} {erp} {minutes} minutes ago and the PIM still holds {pim or 'no record'}: "
                     "the next publish from the PIM works from the old state. Check the nightly's ERP -> PIM hop "
                     "for this SKU (dead letters, gates), or repair it with a seasonal republish.",
                facts={"sku": sku, "erp_lifecycle": erp, "pim_lifecycle": pim, "erp_changed_at": committed.isoformat(),
                       "minutes": minutes}))
    with session_scope(hub_url) as s:
        repo.commit_cursor(s, *CURSOR, "seq", str(last), "lifecycle_watch")
    return alerts, {"after": after, "until": last, "checked": len(latest), "diverged": len(alerts)}
