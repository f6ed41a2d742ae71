"""The showable-window sweep: images come down when their rights or validity end, and go up when an embargo lifts,
within minutes and without anyone.

The nightly applies the showable rule (``catalog_sync.showable``) to what changed; an image whose rights simply run
out changes nothing in the DAM, so no delta read would ever see it. This sweep asks the DAM for the assets whose
window opened or closed since the last sweep (``valid_from``, ``valid_to`` or ``rights_expires_at`` in between,
however old the asset), and hands their SKUs to the seasonal republish's own repairs, limited to what a window
change needs: the PIM links (``dam_links``), the storefront gallery (``storefront``) and the page cache (``cache``),
each verified on the live page (``republish.repair_showable``, which the weekly reconciliation's showable repair
uses too). It owns one cursor, ``dam/window_edges``, moved at its end.

Each declared channel that takes images gets the same sweep (``sweep_channel``): the families of those SKUs that it
sells and holds have their galleries made the showable ones for its region, counted on its own hop
(``dam-><channel>``) in a hub run of its own, a channel that is down dead-lettering its galleries (kind
``channel``) without holding the storefront's repair or another channel back.

Run by the ``image_windows`` DAG every few minutes (``dags/image_windows.py``); an interval shorter than the promise
(images right within 15 minutes) leaves room for a sweep that takes a while.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from catalog_sync.connectors import ReadResult
from catalog_sync.domain import AssetStatus
from catalog_sync.engine.run import RunContext
from catalog_sync.flows import republish
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope

log = logging.getLogger(__name__)

FLOW: Final = "image_windows"
CURSOR: Final = ("dam", "window_edges")
#: The repairs a window change can need, in the republish's order.
REPAIRS: Final = republish.SHOWABLE_REPAIRS
#: How far back the first sweep looks (no cursor yet).
FIRST_LOOKBACK: Final = timedelta(hours=24)


def sweep(systems: Systems, *, run_id: str, hub_url: str | None = None, now: datetime | None = None
          ) -> dict[str, Any]:
    """Repair every SKU whose assets crossed a window edge since the last sweep; move the cursor to ``now``."""
    now = now or datetime.now(UTC)
    with session_scope(hub_url) as s:
        stored = repo.get_cursor(s, *CURSOR)
    since = datetime.fromisoformat(stored) if stored else now - FIRST_LOOKBACK
    if now <= since:
        return {"since": since.isoformat(), "until": now.isoformat(), "assets": 0, "skus": [], "load_id": None}
    result = ReadResult.collect(systems.dam.iter_assets(window_edges=(since, now)))
    skus = sorted({str(a["sku"]) for a in result.records
                   if a.get("sku") and a.get("status") == AssetStatus.APPROVED.value})
    summary: dict[str, Any] = {"since": since.isoformat(), "until": now.isoformat(), "assets": len(result.records),
                               "malformed": len(result.errors), "skus": skus, "load_id": None}
    if skus:
        summary.update(republish.repair_showable(systems, skus, reason=f"image windows to "
                                                 f"{now.isoformat(timespec='minutes')}", run_id=run_id,
                                                 hub_url=hub_url))
    # the declared channels this bundle has a client for (the DAG's sweep has none: each channel sweeps in a task
    # of its own, in its pool, from this summary)
    summary["channels"] = {name: sweep_channel(systems, client, name, skus, run_id=run_id, now=now,
                                               hub_url=hub_url)
                           for name, client in sorted(systems.channels.items()) if _takes_images(name)}
    # The SKUs the repairs could not fix are in the dead-letter queue with their reasons (the republish's own);
    # the window edges up to now have been looked at, so the next sweep starts here.
    with session_scope(hub_url) as s:
        repo.commit_cursor(s, *CURSOR, "window_edge", now.isoformat(), summary["load_id"] or f"{FLOW}:{run_id}")
    log.info("image windows %s .. %s: %d assets crossed an edge, %d SKUs looked at", since, now,
             len(result.records), len(skus))
    return summary


def _takes_images(name: str) -> bool:
    from catalog_sync.governance.channels import load_channels

    channel = load_channels().channels.get(name)
    return channel is not None and channel.enabled and channel.images is not None


def sweep_channel(systems: Systems, client: Any, channel_name: str, skus: Sequence[str], *, run_id: str,
                  now: datetime, hub_url: str | None = None) -> dict[str, Any]:
    """The sweep's repair on one declared channel: the galleries of ``skus``' families made the showable ones at
    ``now`` (``channels.sync_skus``), in a hub run of its own (load id ``image_windows:<run>:<channel>``, so a
    retried task re-opens it) whose counts must reconcile on the channel's image hop."""
    from catalog_sync.flows.channels import sync_skus

    if not skus:
        return {"channel": channel_name, "load_id": None, "families": 0}
    ctx = RunContext.open(FLOW, load_id=f"{FLOW}:{run_id}:{channel_name}", run_id=run_id, hub_url=hub_url)
    done = sync_skus(ctx, channel_name, systems, client, skus, now)
    counts = ctx.finish(details={"channel": channel_name, "skus": list(skus), "down": done["down"]})
    return {**done, "load_id": ctx.load_id, "counts": counts}

