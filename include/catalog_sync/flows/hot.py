"""The hot-data path: ERP stock, live prices and lifecycle status straight to the storefront, within seconds.

One call (``sync_changes``) is one run. It reads the ERP change feed after the committed cursor (``erp/changes``)
up to the feed head frozen at start, so a run that starts while the ERP keeps committing does a bounded amount of
work and the next run picks up the rest. Hot data never passes the PIM (``governance/ownership.yaml``: ``stock``,
``live_price`` and ``lifecycle_status`` flow ``erp -> storefront``).

Hop ``erp->storefront`` counts ERP changes (``read == delivered + unchanged + dead_lettered``):

- a change superseded by a later change of the same value in the same run (a burst) is *unchanged*: only the
  latest value per (topic, SKU[, location]) is written;
- a change failing the stock/price gates (``stock_prices.l0`` / ``.l1``) or refused by the ownership rules is
  *dead-lettered*; the others still go out;
- a change for a SKU the storefront does not carry yet is *unchanged*, audited "not published yet": the nightly
  cold flow publishes new products with their stock, status and price read from the ERP at that moment;
- a write the storefront answers "nothing to change" (an idempotent replay of the same stock call, a level
  already at that quantity, or a price or status already in place) is *unchanged*, so re-running a run writes
  nothing twice.

The cursor commits to the last change read only after every write was accounted for. A failure after the
connector's retries (the storefront down) raises and leaves the cursor: the next run re-reads the same changes and
the deterministic idempotency keys make re-applying them harmless.

Each enabled declared sales channel gets the same changes in a batch of its own (``sync_channel_changes``), from
its own cursor (``erp/changes@<channel>``) on its own hop (``erp-><channel>``), for the SKUs it sells; a channel
that is down leaves its cursor and does not raise (docs/adr/0018-hot-data-to-every-channel.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from catalog_sync.connectors import ConnectorError, RecordError, WriteResult
from catalog_sync.connectors.base import Outcome
from catalog_sync.connectors.storefront import LevelWrite
from catalog_sync.domain import STOREFRONT_STATUS, LifecycleStatus
from catalog_sync.engine.run import RunContext, chunked
from catalog_sync.flows import steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import utcnow

log = logging.getLogger(__name__)

FLOW: Final = "hot_data_sync"
HOP: Final = "erp->storefront"
PAGES: Final = "storefront->cdn"
#: The cursor this flow owns: the ``seq`` of the last ERP change applied.
CURSOR: Final = ("erp", "changes")
#: Past this many distinct SKUs, one paged scan of the ERP beats one request per SKU. A scan costs the whole
#: catalog (100,000 SKUs: 200 pages of 500), so a hot batch, bounded by MAX_BATCH_CHANGES, reads per SKU.
BULK_READ_AFTER: Final = 1000
#: Storefront inventory levels read per request (before-values for the delta log).
LEVELS_PER_READ: Final = 50
#: Location used in a gate row of a price change for a SKU the ERP holds no stock for at all.
NO_LOCATION: Final = "ALL"
NOT_PUBLISHED: Final = "not published yet; applied at first publish"
#: Changes one hot batch reads at most (the DAG's ``max_batch_changes`` param overrides it).
MAX_BATCH_CHANGES: Final = 5000


@dataclass
class Change:
    """One coalesced ERP change: the latest value of one hot attribute of one SKU (at one location, for stock)."""

    seq: int
    topic: str  # stock | price | item
    sku: str
    data: dict[str, Any]
    committed_at: str | None
    superseded: list[int] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        return str(self.data["location"]) if self.topic == "stock" and self.data.get("location") else None

    @property
    def key(self) -> str:
        """Business key in audit rows and dead letters, e.g. ``stock:MH01-XS-Black@DC-EAST``."""
        return f"{self.topic}:{self.sku}" + (f"@{self.location}" if self.location else "")

    @property
    def entity(self) -> str:
        return {"stock": "inventory", "price": "price"}.get(self.topic, "product")

    @property
    def attribute(self) -> str:
        """The hot attribute (``governance/ownership.yaml``) this change carries."""
        return {"stock": "stock", "price": "live_price"}.get(self.topic, "lifecycle_status")

    @property
    def value(self) -> Any:
        if self.topic == "stock":
            return self.data.get("quantity")
        if self.topic == "price":
            return self.data.get("price")
        return self.data.get("lifecycle_status")


def coalesce(changes: Iterable[Mapping[str, Any]]) -> list[Change]:
    """Latest change per (topic, SKU, location), in seq order; each keeps the seqs it superseded.

    Stock is held per location, so two locations of one SKU are two values, not a burst. The feed is in commit
    order, so the highest seq is the value the ERP holds now (as of the frozen head).
    """
    latest: dict[tuple[str, str, str | None], Change] = {}
    for raw in sorted(changes, key=lambda c: int(c["seq"])):
        change = Change(int(raw["seq"]), str(raw["topic"]), str(raw["sku"]), dict(raw.get("data") or {}),
                        raw.get("committed_at"))
        slot = (change.topic, change.sku, change.location)
        previous = latest.get(slot)
        if previous is not None:
            change.superseded = [*previous.superseded, previous.seq]
        latest[slot] = change
    return sorted(latest.values(), key=lambda c: c.seq)


# --- the run -------------------------------------------------------------------------------------------------


def sync_changes(
    systems: Systems,
    *,
    load_id: str | None = None,
    max_changes: int | None = None,
    hub_url: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Apply every ERP change after the committed cursor to the storefront; returns the run's summary.

    Args:
        systems: The connector clients (only ``erp`` and ``storefront`` are used).
        load_id: The run's load id; default: derived from ``run_id`` (stable across task retries) or new.
        max_changes: Read at most this many changes (the rest is the next run's); default: up to the head.
        hub_url: The hub database; default: the configured one.
        dag_id: The Airflow DAG, for the run's row in the hub.
        run_id: The Airflow run, for the run's row in the hub.

    Returns:
        ``{"load_id", "after", "until", "read", "coalesced", "delivered", "unchanged", "dead_lettered", "cursor",
        "timeliness_s", "timeliness_max_s"}``; ``timeliness_*`` are seconds from the ERP's ``committed_at`` to the
        storefront write of each delivered change (median and worst), None when nothing was delivered.

    Raises:
        GateFailed: A hard stock/price gate was breached (the evidence is in the hub, the cursor did not move).
        ConnectorError: A system kept failing after the connector's retries (the cursor did not move).
    """
    ctx = RunContext.open(FLOW, load_id=load_id or steps.run_load_id(FLOW, run_id), dag_id=dag_id,
                          run_id=run_id, hub_url=hub_url)
    try:
        return _sync(ctx, systems, max_changes)
    except BaseException as exc:
        ctx.fail(f"{type(exc).__name__}: {exc}")
        raise


def drain(
    systems: Systems,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    hub_url: str | None = None,
    budget_s: float = 240.0,
    idle_s: float = 10.0,
    poll_s: float = 0.25,
    max_changes: int | None = MAX_BATCH_CHANGES,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    channel: str | None = None,
    client: Any = None,
    source_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``sync_changes`` batch after batch while the ERP keeps committing changes; returns the batches' totals.

    With ``channel`` (a declared sales channel, its ``client`` and its connection's ``source_map``) the batches are
    ``sync_channel_changes`` from that channel's own cursor instead, and the drain stops at the first batch that
    found the channel down (its changes stay after the cursor for the next run).

    A fresh Airflow task process costs seconds before the first change is read (process start, imports, the GX
    context: docs/adr/0004). Under a steady stream that start-up would be paid once per run and changes would wait
    for it, so one task keeps going instead: after each batch it polls the feed head every ``poll_s`` and syncs
    what arrived, until ``idle_s`` pass with nothing new or ``budget_s`` is spent (well inside the task's
    execution timeout); whatever arrives later starts the next run through the asset watcher.

    Each batch is its own hub run, with its own counts, audit, KPI and cursor commit. Its load id is the Airflow
    run's plus the cursor it starts from, so a retried task re-opens the batch that failed, not one that
    succeeded. A batch reads at most ``max_changes`` changes (a backlog after an outage is worked off in bounded
    batches, each committed before the next, instead of one read of everything inside the task's timeout).

    Returns:
        ``{"batches", "read", "coalesced", "delivered", "unchanged", "dead_lettered", "after", "cursor",
        "load_ids", "timeliness_max_s"}``
    """
    base = steps.run_load_id(FLOW, run_id) + (f"~{channel}" if channel else "")
    cursor = channel_cursor(channel) if channel else CURSOR
    started = last_work = clock()
    batches: list[dict[str, Any]] = []
    while True:
        with session_scope(hub_url) as s:
            after = int(repo.get_cursor(s, *cursor) or 0)
        if not batches or systems.erp.last_seq() > after:
            load_id = steps.batch_load_id(base, after)
            if channel:
                batches.append(sync_channel_changes(systems, channel, client, source_map or {}, load_id=load_id,
                                                    max_changes=max_changes, dag_id=dag_id, run_id=run_id,
                                                    hub_url=hub_url))
                if batches[-1].get("down"):
                    break
            else:
                batches.append(sync_changes(systems, load_id=load_id, max_changes=max_changes, dag_id=dag_id,
                                            run_id=run_id, hub_url=hub_url))
            if batches[-1]["read"]:
                last_work = clock()
                b = batches[-1]
                log.info("hot batch %d: changes %d..%d, %d read, %d delivered, %d dead-lettered; %.0f s into the "
                         "drain", len(batches), b["after"] + 1, b["until"], b["read"], b["delivered"],
                         b["dead_lettered"], clock() - started)
        now = clock()
        if now - started >= budget_s or now - last_work >= idle_s:
            break
        sleep(poll_s)
    worst = [b["timeliness_max_s"] for b in batches if b.get("timeliness_max_s") is not None]
    totals: dict[str, Any] = {k: sum(b[k] for b in batches)
                              for k in ("read", "coalesced", "delivered", "unchanged", "dead_lettered")}
    return {"batches": len(batches), **totals, "after": batches[0]["after"], "cursor": batches[-1]["cursor"],
            "load_ids": [b["load_id"] for b in batches], "timeliness_max_s": max(worst) if worst else None,
            **({"channel": channel, "down": batches[-1].get("down")} if channel else {})}


def _sync(ctx: RunContext, systems: Systems, max_changes: int | None) -> dict[str, Any]:
    with session_scope(ctx.hub_url) as s:
        after = int(repo.get_cursor(s, *CURSOR) or 0)
    head = systems.erp.last_seq()  # frozen now: changes committed during the run are the next run's
    until = min(head, after + max_changes) if max_changes else head
    summary: dict[str, Any] = {"load_id": ctx.load_id, "after": after, "until": until, "read": 0, "coalesced": 0,
                               "delivered": 0, "unchanged": 0, "dead_lettered": 0, "cursor": after,
                               "timeliness_s": None, "timeliness_max_s": None}
    if until <= after:
        ctx.finish(details={"after": after, "until": until})
        return summary

    records, errors, last, changes = _read_changes(ctx, systems, after, until, hop=HOP, target="storefront")

    # Publication first: a change that cannot be written yet is neither gated nor held against the batch.
    skus = sorted({c.sku for c in changes})
    variants = steps.external_ids("storefront", "variant", skus, ctx.hub_url)
    products = steps.external_ids("storefront", "product", skus, ctx.hub_url)
    ready = _published_only(ctx, changes, variants, products)
    ready = _gate(ctx, systems, ready)
    ready = _check_ownership(ctx, ready)
    written = _write_stock(ctx, systems, [c for c in ready if c.topic == "stock"], variants,
                           verify=bool(errors))
    written += _write_products(ctx, systems, [c for c in ready if c.topic != "stock"], variants, products)

    if _commit_if_accounted(ctx, HOP, CURSOR, last):
        summary["cursor"] = last
    timeliness = _write_timeliness(ctx, written)
    ctx.finish(details={"after": after, "until": until, "cursor": summary["cursor"],
                        "changes": len(records), "coalesced": len(changes), **timeliness})
    # the summary speaks of changes (the ERP -> storefront hop); the page purges have their own figure
    summary.update(**_hop_summary(ctx, HOP), coalesced=len(changes),
                   pages_purged=ctx.hop_counts().get(PAGES, {}).get("delivered", 0), **timeliness)
    return summary


def _commit_if_accounted(ctx: RunContext, hop: str, cursor: tuple[str, str], last: int) -> bool:
    """Move ``cursor`` to ``last`` when every change read on ``hop`` is accounted for; ``ctx.finish()`` fails the
    run loudly otherwise, and the cursor stays for the next run."""
    counts = _hop_summary(ctx, hop)
    if counts["delivered"] + counts["unchanged"] + counts["dead_lettered"] != counts["read"]:
        return False
    with session_scope(ctx.hub_url) as s:
        repo.commit_cursor(s, *cursor, "seq", str(last), ctx.load_id)
    return True


def _hop_summary(ctx: RunContext, hop: str) -> dict[str, int]:
    counts = ctx.hop_counts().get(hop, {})
    return {k: counts.get(k, 0) for k in ("read", "delivered", "unchanged", "dead_lettered")}


def _read_changes(ctx: RunContext, systems: Systems, after: int, until: int, *, hop: str,
                  target: str) -> tuple[list[dict[str, Any]], list[RecordError], int, list[Change]]:
    """The feed's changes in ``(after, until]``, counted read on ``hop``: the unreadable ones dead-lettered, the
    rest coalesced (a superseded change counted unchanged). Returns the records, the read errors, the last seq
    read and the coalesced changes."""
    records: list[dict[str, Any]] = []
    errors: list[RecordError] = []
    last = after
    for page in systems.erp.iter_changes(after=after, until=until):
        records.extend(page.records)
        errors.extend(page.errors)
        if page.cursor is not None:
            last = max(last, int(page.cursor))
    ctx.count(hop, read=len(records))
    steps.dead_letter_read_errors(ctx, errors, hop=hop, entity="change", source="erp", target=target)
    changes = coalesce(records)
    superseded = sum(len(c.superseded) for c in changes)
    for change in changes:
        for seq in change.superseded:
            ctx.audit("erp", change.entity, change.key, "read", "unchanged",
                      request={"seq": seq}, response={"message": f"superseded by seq {change.seq}"})
    ctx.count(hop, unchanged=superseded)
    return records, errors, last, changes


# --- gates ---------------------------------------------------------------------------------------------------


def _gate(ctx: RunContext, systems: Systems, changes: Sequence[Change], *, hop: str = HOP,
          target: str = "storefront") -> list[Change]:
    """Stock and price changes through ``stock_prices.l0`` and ``.l1``; lifecycle changes through their enum.

    The gates check the state of each (SKU, location) the target (the storefront, or a channel on its ``hop``) will show after this run: quantity and
    price together (the suite's row shape), the changed value from the feed and the other one from the ERP as it
    is now. A change is held back when any row it contributes to fails; the failing rows are dead-lettered by the
    gate with the expectations they broke.
    """
    hot = [c for c in changes if c.topic in ("stock", "price")]
    items = [c for c in changes if c.topic == "item"]
    ready: list[Change] = []
    bad_items = []
    for change in items:
        if change.value in {s.value for s in LifecycleStatus}:
            ready.append(change)
        else:
            bad_items.append(change)
    if bad_items:
        ctx.dead_letter([{
            "entity": c.entity, "record_key": c.key, "source_system": "erp", "target_system": target,
            "reason_kind": "gate", "gate_layer": 0, "expectation": "lifecycle_status_known",
            "reason": f"lifecycle_status {c.value!r} is none of the ERP's lifecycle codes", "payload": c.data,
        } for c in bad_items], hop=hop)
        for c in bad_items:
            ctx.audit(target, c.entity, c.key, "write", "dead_lettered", request=c.data)
    if not hot:
        ctx.flush_audit()
        return ready

    rows, contributes = _gate_rows(systems, hot)
    passed = steps.gate(ctx, rows, "stock_prices.l0", layer=0, entity="stock_prices", key="row_key", hop=None,
                        source_system="erp", target_system=target)
    passed = steps.gate(ctx, passed, "stock_prices.l1", layer=1, entity="stock_prices", key="row_key",
                        hop=None, source_system="erp", target_system=target)
    ok_rows = {r["row_key"] for r in passed}
    held = []
    for change in hot:
        if all(row in ok_rows for row in contributes[change.key]):
            ready.append(change)
        else:
            held.append(change)
            failed = sorted(row for row in contributes[change.key] if row not in ok_rows)
            ctx.audit(target, change.entity, change.key, "write", "dead_lettered", request=change.data,
                      response={"message": f"held back by the stock/price gates (rows {', '.join(failed)})"})
    # The gate dead-lettered the failing rows; each held-back change counts once on the hop.
    ctx.count(hop, dead_lettered=len(held))
    ctx.flush_audit()
    return sorted(ready, key=lambda c: c.seq)


def _gate_rows(systems: Systems, changes: Sequence[Change]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The gate frame (one row per affected SKU and location) and, per change, the rows it contributes to."""
    stock = {(c.sku, c.location): c for c in changes if c.topic == "stock"}
    price = {c.sku: c for c in changes if c.topic == "price"}
    skus = sorted({c.sku for c in changes})
    items = _erp_items(systems, skus)
    need_price = sorted({sku for sku, _ in stock} - set(price))
    current_price = _erp_prices(systems, need_price) if need_price else {}
    current_stock = _erp_stock(systems, sorted(price)) if price else {}

    rows: dict[str, dict[str, Any]] = {}
    contributes: dict[str, list[str]] = defaultdict(list)

    def row(sku: str, location: str, quantity: Any) -> str:
        key = f"{sku}@{location}"
        item = items.get(sku) or {}
        p = price.get(sku)
        live = p.data if p else current_price.get(sku, {})
        rows[key] = {
            "row_key": key, "sku": sku, "location": location, "quantity": quantity,
            "price": live.get("price"), "currency": live.get("currency"),
            "uom": item.get("uom"), "product_group": item.get("product_group"),
        }
        return key

    for (sku, location), change in stock.items():
        contributes[change.key].append(row(sku, str(location), change.data.get("quantity")))
    for sku, change in price.items():
        levels = current_stock.get(sku) or {}
        # The stock this run writes wins over the ERP's current figure (it is the newer, frozen-head value).
        levels.update({loc: c.data.get("quantity") for (s, loc), c in stock.items() if s == sku and loc})
        for location, quantity in sorted(levels.items()) or [(NO_LOCATION, 0)]:
            key = f"{sku}@{location}"
            if key not in rows:
                row(sku, location, quantity)
            contributes[change.key].append(key)
    return list(rows.values()), contributes


def _erp_items(systems: Systems, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
    """uom and product group of ``skus`` (the price band of a live price depends on the group)."""
    wanted = set(skus)
    out: dict[str, dict[str, Any]] = {}
    if len(wanted) > BULK_READ_AFTER:
        for page in systems.erp.iter_items():
            out.update({str(i["sku"]): i for i in page.records if i.get("sku") in wanted})
        return out

    def read(sku: str) -> dict[str, Any] | None:
        try:
            return systems.erp.get_item(sku)
        except RecordError:
            return None  # a malformed item: the gate then judges the row without its group (default band)

    for sku, item in zip(sorted(wanted), steps.parallel(read, sorted(wanted)), strict=True):
        if item:
            out[sku] = item
    return out


def _erp_pages(read: Callable[..., Iterable[Any]], skus: set[str]) -> Iterable[Any]:
    """Pages of ``read`` (an ERP stream with a per-SKU filter) covering ``skus``: a request per SKU, in parallel,
    for a batch's handful; one paged scan past :data:`BULK_READ_AFTER` (a catalog-sized set, as a nightly has)."""
    if len(skus) > BULK_READ_AFTER:
        return read()
    per_sku = steps.parallel(lambda sku: list(read(sku)), sorted(skus))
    return (page for sku_pages in per_sku for page in sku_pages)


def _erp_prices(systems: Systems, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ERP's live price of ``skus``."""
    wanted = set(skus)
    out: dict[str, dict[str, Any]] = {}
    for page in _erp_pages(systems.erp.iter_prices, wanted):
        out.update({str(p["sku"]): p for p in page.records if p.get("sku") in wanted})
    return out


def _erp_stock(systems: Systems, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{sku: {location: quantity}} as the ERP holds it now."""
    wanted = set(skus)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for page in _erp_pages(systems.erp.iter_stock, wanted):
        for level in page.records:
            if level.get("sku") in wanted:
                out[str(level["sku"])][str(level["location"])] = level.get("quantity")
    return out


def _check_ownership(ctx: RunContext, changes: Sequence[Change], *, hop: str = HOP,
                     system: str = "storefront") -> list[Change]:
    """Only attributes the ERP may write into the storefront go out; a refused change is dead-lettered.

    A declared sales channel (``system``) takes the storefront's role in ``ownership.yaml``: the rules name the
    systems that own and read each attribute, and a channel reads what the storefront reads."""
    records = [{"sku": c.sku, c.attribute: c.value} for c in changes]
    allowed = steps.check_ownership(ctx, records, writer="erp", target="storefront", hop=hop)
    ready, refused = [], 0
    for change, record in zip(changes, allowed, strict=True):
        if change.attribute in record:
            ready.append(change)
        else:
            refused += 1  # check_ownership dead-lettered the refusal without counting it on the hop
            ctx.audit(system, change.entity, change.key, "write", "refused", request=change.data)
    ctx.count(hop, dead_lettered=refused)
    return ready


# --- writes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """A change that reached the storefront, with the instants timeliness is measured between."""

    key: str
    committed_at: str | None
    written_at: datetime


def _published_only(ctx: RunContext, changes: Sequence[Change], variants: Mapping[str, Any],
                    products: Mapping[str, Any]) -> list[Change]:
    """Changes for SKUs the storefront carries; the others are accounted unchanged ("not published yet")."""
    ready: list[Change] = []
    for change in changes:
        if _published(change, variants, products):
            ready.append(change)
            continue
        ctx.count(HOP, unchanged=1)
        ctx.audit("storefront", change.entity, change.key, "write", "unchanged", request=change.data,
                  response={"message": NOT_PUBLISHED})
    ctx.flush_audit()
    return ready


def _published(change: Change, variants: Mapping[str, Any], products: Mapping[str, Any]) -> bool:
    if change.topic == "stock":
        return change.sku in variants and bool((variants[change.sku][1] or {}).get("inventory_item_id"))
    if change.topic == "price":
        return change.sku in variants
    # Shopify has no per-variant status: the product's status is the status of the parent (or simple) SKU.
    return change.sku in products or change.sku in variants


def _write_stock(ctx: RunContext, systems: Systems, changes: Sequence[Change],
                 variants: Mapping[str, tuple[str, dict[str, Any] | None]], *, verify: bool) -> list[Written]:
    """One idempotent inventory level per change, at the storefront location mirroring the ERP location.

    ``verify``: the batch had unreadable changes, so the newest readable value of a SKU and location may be
    older than what the ERP holds; the ERP's current figures are read and win where they differ.
    """
    if not changes:
        return []
    mirror = {str(loc.get("erp_location")): loc["id"] for loc in systems.storefront.locations()
              if loc.get("erp_location")}
    unmapped = [c for c in changes if c.location not in mirror]
    if unmapped:
        ctx.dead_letter([{
            "entity": c.entity, "record_key": c.key, "source_system": "erp", "target_system": "storefront",
            "reason_kind": "transform", "expectation": "location_mapped",
            "reason": f"ERP location {c.location!r} is not in the storefront connection's location_map",
            "payload": c.data,
        } for c in unmapped], hop=HOP)
        for c in unmapped:
            ctx.audit("storefront", c.entity, c.key, "write", "dead_lettered", request=c.data)
    mapped = [c for c in changes if c.location in mirror]
    item_of = {c.key: (variants[c.sku][1] or {})["inventory_item_id"] for c in mapped}
    before = _levels(systems, sorted({str(i) for i in item_of.values()}))
    # The ERP's figure now, not only the feed's: when the newest change of a SKU and location could not be read
    # (dead-lettered as malformed), the last readable one is older, and writing it would show stale stock.
    now = _erp_stock(systems, sorted({c.sku for c in mapped})) if verify else {}
    results: list[WriteResult] = []
    written: list[Written] = []
    befores: dict[str, dict[str, Any]] = {}
    afters: dict[str, dict[str, Any]] = {}
    plan: list[tuple[Change, int, Any, int]] = []
    for change in mapped:
        location_id = mirror[str(change.location)]
        item_id = item_of[change.key]
        quantity = int(change.data["quantity"])
        current = now.get(change.sku, {}).get(str(change.location))
        if isinstance(current, int) and current >= 0 and current != quantity:
            ctx.audit("erp", change.entity, change.key, "read", "ok", request={"seq": change.seq},
                      response={"message": f"feed says {quantity}, the ERP holds {current}: writing the ERP's"})
            quantity = current
        plan.append((change, location_id, item_id, quantity))
        befores[change.key] = {"available": before.get((str(item_id), str(location_id)))}
        afters[change.key] = {"available": quantity}

    # One key per (SKU, location) after coalescing, so the levels are independent of each other's order; they go
    # out 250 to an inventorySetQuantities call whose idempotency key comes from the changes it applies.
    writes = [LevelWrite(change.key, change.sku, location_id, item_id, quantity, change.seq)
              for change, location_id, item_id, quantity in plan]
    try:
        answered = systems.storefront.set_inventory_levels(writes)
    except ConnectorError as exc:  # the storefront stopped answering: record what was written, then fail
        steps.deliver(ctx, list(exc.partial_results), hop=HOP, system="storefront", entity="inventory",
                      source_system="erp", before=befores, fields_of=lambda r: afters[r.key])
        raise
    at = utcnow()
    by_key = {change.key: change for change, *_ in plan}
    for result in answered:
        results.append(result)
        if result.outcome is Outcome.OK:
            written.append(Written(result.key, by_key[result.key].committed_at, at))
    steps.deliver(ctx, results, hop=HOP, system="storefront", entity="inventory", source_system="erp",
                  before=befores, fields_of=lambda r: afters[r.key])
    return written


def _levels(systems: Systems, item_ids: Sequence[str]) -> dict[tuple[str, str], Any]:
    """Current storefront stock by (inventory item, location): the before-values a rollback restores."""
    out: dict[tuple[str, str], Any] = {}
    batches = [list(batch) for batch in chunked(list(item_ids), LEVELS_PER_READ)]
    for levels in steps.parallel(systems.storefront.inventory_levels, batches):
        for level in levels:
            out[(str(level.get("inventory_item_id")), str(level.get("location_id")))] = level.get("available")
    return out


def _write_products(ctx: RunContext, systems: Systems, changes: Sequence[Change],
                    variants: Mapping[str, tuple[str, dict[str, Any] | None]],
                    products: Mapping[str, tuple[str, dict[str, Any] | None]]) -> list[Written]:
    """Live prices and lifecycle status, one product update per storefront product however many changes it has.

    A price travels as the product's full variant list with only that variant's price changed: Shopify replaces
    the variants of a product with the list it is sent, so sending one variant alone would delete the others.
    """
    by_product: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        if change.topic == "item" and change.sku in products:
            by_product[products[change.sku][0]].append(change)
        else:
            by_product[str((variants[change.sku][1] or {}).get("product_id"))].append(change)
    written: list[Written] = []
    pages: dict[str, str] = {}
    for product_id, group in sorted(by_product.items()):
        done, handle = _write_product(ctx, systems, product_id, group, set(products))
        written += done
        if done and handle:
            pages[min(w.key for w in done)] = handle
    # The shopper page shows the price and whether the product is on sale: the CDN's copy of each page whose
    # product changed here is purged, or shoppers keep the old price (and an archived product) until its TTL.
    steps.purge_pages(ctx, systems, pages, hop=PAGES)
    return written


def _write_product(ctx: RunContext, systems: Systems, product_id: str, group: Sequence[Change],
                   product_skus: set[str]) -> tuple[list[Written], str | None]:
    """One storefront product's price and status changes in one update; ``product_skus``: SKUs that are a
    storefront product of their own (configurable parents and simple products)."""
    existing = systems.storefront.get_product(int(product_id)) if product_id.isdigit() else None
    current = {str(v.get("sku")): v for v in (existing or {}).get("variants") or []}
    applicable, gone = [], []
    for change in group:
        if existing is None or (change.topic == "price" and change.sku not in current):
            gone.append(change)
        elif change.topic == "item" and change.sku not in product_skus:
            # A variant's own status has nowhere to go on the storefront: its parent's lifecycle decides.
            gone.append(change)
        else:
            applicable.append(change)
    for change in gone:
        ctx.count(HOP, unchanged=1)
        message = NOT_PUBLISHED if existing is None or change.topic == "price" else (
            "the storefront status follows the parent product's lifecycle")
        ctx.audit("storefront", change.entity, change.key, "write", "unchanged", request=change.data,
                  response={"message": message})
    if not applicable or existing is None:
        ctx.flush_audit()
        return [], None
    desired: dict[str, Any] = {"handle": existing["handle"]}
    befores: dict[str, dict[str, Any]] = {}
    afters: dict[str, dict[str, Any]] = {}
    prices = {c.sku: c for c in applicable if c.topic == "price"}
    if prices:
        desired["variants"] = [
            {"sku": sku, "price": _money(prices[sku].data["price"]) if sku in prices else v.get("price")}
            for sku, v in current.items()
        ]
        for sku, change in prices.items():
            befores[change.key] = {"price": current[sku].get("price")}
            afters[change.key] = {"price": _money(change.data["price"])}
    for change in (c for c in applicable if c.topic == "item"):
        desired["status"] = STOREFRONT_STATUS[LifecycleStatus(change.value)]
        befores[change.key] = {"status": existing.get("status")}
        afters[change.key] = {"status": desired["status"]}
    try:
        result = systems.storefront.upsert_product(desired)
    except RecordError as exc:
        result = WriteResult.failure(str(existing["handle"]), exc, desired)
    written_at = utcnow()
    results = [dataclasses.replace(result, key=c.key) for c in applicable]
    steps.deliver(ctx, results, hop=HOP, system="storefront", entity="product", source_system="erp",
                  before=befores, fields_of=lambda r: afters[r.key])
    if result.outcome is not Outcome.OK:
        return [], None
    return [Written(c.key, c.committed_at, written_at) for c in applicable], str(existing["handle"])


def _money(value: Any) -> str:
    """Prices as the storefront stores them (strings with two decimals), so a replay compares equal."""
    return f"{float(value):.2f}"


# --- the declared sales channels ------------------------------------------------------------------------------
#
# Each enabled channel of governance/channels.yaml gets the same ERP changes on its own hop (erp-><channel>), from
# its own cursor, in its own task: docs/adr/0018-hot-data-to-every-channel.md.


def channel_cursor(channel_name: str) -> tuple[str, str]:
    """The cursor of a declared channel's hot hop: the ``seq`` of the last ERP change applied to that channel."""
    return ("erp", f"changes@{channel_name}")


def channel_hop(channel_name: str) -> str:
    return f"erp->{channel_name}"


def not_published_to(channel_name: str) -> str:
    return f"not published to {channel_name} yet; applied at its first publish"


#: A variant's own lifecycle change: the nightly gives a channel's variants the status of their family's root.
FOLLOWS_PARENT: Final = "the channel's status follows the parent product's lifecycle"


def sync_channel_changes(
    systems: Systems,
    channel_name: str,
    client: Any,
    source_map: Mapping[str, str],
    *,
    load_id: str | None = None,
    max_changes: int | None = None,
    hub_url: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Apply every ERP change after the channel's own cursor to the declared channel ``channel_name``.

    The batch reads the feed up to the head frozen at its start, coalesces, keeps the SKUs the channel sells (a
    SKU the hub holds no fingerprint of for this channel, itself or its family's root, is unchanged "not
    published to <channel> yet": the nightly's channel publish gives it the ERP's values), gates them as the
    storefront's batch does, and writes stock as MSI source items (ERP location -> source through
    ``source_map``), live prices as base prices, lifecycle as the product's status (enabled only when active).

    When the channel stays unavailable past its client's retries (a ``TransientError``) the batch stops: the run
    is closed ``failed`` with the outage, the channel's cursor does not move (the next run re-reads the same
    changes; every write is an idempotent upsert by SKU), and the call returns normally with ``down`` set, so the
    task succeeds and the DAG's next run, the storefront's included, is not held. Anything else raises.

    Returns:
        ``{"load_id", "channel", "after", "until", "read", "coalesced", "delivered", "unchanged",
        "dead_lettered", "cursor", "down", "timeliness_s", "timeliness_max_s"}``
    """
    from catalog_sync.governance.channels import load_channels

    channel = load_channels().channel(channel_name)
    ctx = RunContext.open(FLOW, load_id=load_id or steps.run_load_id(FLOW, run_id), dag_id=dag_id,
                          run_id=run_id, hub_url=hub_url)
    try:
        return _sync_channel(ctx, systems, channel.name, client, source_map, max_changes)
    except BaseException as exc:
        ctx.fail(f"{type(exc).__name__}: {exc}")
        raise


def _sync_channel(ctx: RunContext, systems: Systems, channel: str, client: Any, source_map: Mapping[str, str],
                  max_changes: int | None) -> dict[str, Any]:
    from catalog_sync.connectors import TransientError

    hop, cursor = channel_hop(channel), channel_cursor(channel)
    with session_scope(ctx.hub_url) as s:
        after = int(repo.get_cursor(s, *cursor) or 0)
    head = systems.erp.last_seq()
    until = min(head, after + max_changes) if max_changes else head
    summary: dict[str, Any] = {"load_id": ctx.load_id, "channel": channel, "after": after, "until": until,
                               "read": 0, "coalesced": 0, "delivered": 0, "unchanged": 0, "dead_lettered": 0,
                               "cursor": after, "down": None, "timeliness_s": None, "timeliness_max_s": None}
    if until <= after:
        ctx.finish(details={"channel": channel, "after": after, "until": until})
        return summary

    records, errors, last, changes = _read_changes(ctx, systems, after, until, hop=hop, target=channel)
    ready = _sold_on_channel(ctx, systems, channel, changes)
    ready = _gate(ctx, systems, ready, hop=hop, target=channel)
    ready = _check_ownership(ctx, ready, hop=hop, system=channel)
    written: list[Written] = []
    try:
        written += _write_source_items(ctx, systems, channel, client, source_map,
                                       [c for c in ready if c.topic == "stock"], verify=bool(errors))
        written += _write_base_prices(ctx, channel, client, [c for c in ready if c.topic == "price"])
        written += _write_statuses(ctx, channel, client, [c for c in ready if c.topic == "item"])
    except TransientError as exc:
        down = (f"{channel} was unavailable ({exc}); its changes after seq {after} stay after its cursor and are "
                "read again by the next run; the storefront was not held back")
        log.warning("%s", down)
        ctx.flush_audit()
        with session_scope(ctx.hub_url) as s:
            repo.finish_run(s, ctx.load_id, status="failed", counts=ctx.counts(), error=down[:4000],
                            details={"channel": channel, "after": after, "until": until, "cursor": after,
                                     "down": down, "hops": ctx.hop_counts()})
        summary.update(**_hop_summary(ctx, hop), coalesced=len(changes), down=down)
        return summary

    if _commit_if_accounted(ctx, hop, cursor, last):
        summary["cursor"] = last
    timeliness = _write_timeliness(ctx, written)
    ctx.finish(details={"channel": channel, "after": after, "until": until, "cursor": summary["cursor"],
                        "changes": len(records), "coalesced": len(changes), **timeliness})
    summary.update(**_hop_summary(ctx, hop), coalesced=len(changes), **timeliness)
    return summary


def _sold_on_channel(ctx: RunContext, systems: Systems, channel: str, changes: Sequence[Change]) -> list[Change]:
    """Changes for SKUs the channel has been given; the others are unchanged, "not published to <channel> yet".

    The nightly's channel publish saves one fingerprint per family it delivered whole, keyed by the family's root
    (a configurable parent, or the simple product itself), under the channel's name. A SKU without one of its own
    is a variant or unknown: its root is the ERP item's ``parent_sku`` (the ERP owns it; the PIM is never asked).
    A variant's own lifecycle change is unchanged too: the channel's variants carry their root's status.
    """
    skus = sorted({c.sku for c in changes})
    with session_scope(ctx.hub_url) as s:
        known = set(repo.fingerprints(s, channel, "product", keys=skus))
    parent_of: dict[str, str] = {}
    unknown = [sku for sku in skus if sku not in known]
    if unknown:
        parent_of = {sku: str(item["parent_sku"]) for sku, item in _erp_items(systems, unknown).items()
                     if item.get("parent_sku")}
        with session_scope(ctx.hub_url) as s:
            known |= set(repo.fingerprints(s, channel, "product", keys=sorted(set(parent_of.values()))))
    ready: list[Change] = []
    hop = channel_hop(channel)
    for change in changes:
        root = change.sku if change.sku in known else parent_of.get(change.sku)
        if root in known and (change.topic != "item" or root == change.sku):
            ready.append(change)
            continue
        message = not_published_to(channel) if root not in known else FOLLOWS_PARENT
        ctx.count(hop, unchanged=1)
        ctx.audit(channel, change.entity, change.key, "write", "unchanged", request=change.data,
                  response={"message": message})
    ctx.flush_audit()
    return ready


def _written(results: Sequence[WriteResult], by_key: Mapping[str, Change]) -> list[Written]:
    at = utcnow()
    return [Written(r.key, by_key[r.key].committed_at, at) for r in results if r.outcome is Outcome.OK]


def _deliver_channel(ctx: RunContext, channel: str, results: Sequence[WriteResult], entity: str) -> None:
    """The channel's answers on its hop. No field deltas: hot data is never rolled back (ADR 0017)."""
    steps.deliver(ctx, results, hop=channel_hop(channel), system=channel, entity=entity, source_system="erp")


def _write_source_items(ctx: RunContext, systems: Systems, channel: str, client: Any,
                        source_map: Mapping[str, str], changes: Sequence[Change], *, verify: bool) -> list[Written]:
    """Stock as MSI source items, one per change (SKU and ERP location), in ``save_source_items`` requests.

    A location without a source in the connection's ``source_map`` is dead-lettered naming it (reason kind
    ``channel``). ``verify``: as for the storefront, the ERP's current figure wins when the batch had unreadable
    changes."""
    from catalog_sync.connectors.adobe_mapping import MagentoCatalog, stock_to_source_items

    if not changes:
        return []
    now = _erp_stock(systems, sorted({c.sku for c in changes})) if verify else {}
    rows = []
    for change in changes:
        quantity = change.data.get("quantity")
        current = now.get(change.sku, {}).get(str(change.location))
        if isinstance(current, int) and current >= 0 and current != quantity:
            quantity = current
        rows.append({"sku": change.sku, "location": change.location, "quantity": quantity})
    items, refused = stock_to_source_items(rows, MagentoCatalog(source_of_location=dict(source_map)))
    by_item = {f"{c.sku}/{c.location}": c for c in changes}
    if refused:
        ctx.dead_letter([{
            "entity": "inventory", "record_key": by_item[e.record_key].key, "source_system": "erp",
            "target_system": channel, "reason_kind": "channel", "expectation": "location_mapped",
            "reason": e.reason, "payload": by_item[e.record_key].data} for e in refused], hop=channel_hop(channel))
        for e in refused:
            ctx.audit(channel, "inventory", by_item[e.record_key].key, "write", "dead_lettered",
                      request=by_item[e.record_key].data, response={"message": e.reason})
    if not items:
        return []
    # the client keys a result "sku/source_code"; the hop's key is the change's (stock:SKU@LOCATION)
    change_of = {f"{c.sku}/{source_map[str(c.location)]}": c for c in changes if str(c.location) in source_map}
    results = [dataclasses.replace(r, key=change_of[r.key].key) for r in client.save_source_items(items)]
    _deliver_channel(ctx, channel, results, "inventory")
    return _written(results, {c.key: c for c in changes})


def _write_base_prices(ctx: RunContext, channel: str, client: Any, changes: Sequence[Change]) -> list[Written]:
    """Live prices as the channel's base prices (``POST /V1/products/base-prices``), one item per SKU."""
    from catalog_sync.connectors.adobe_mapping import base_price

    if not changes:
        return []
    by_sku = {c.sku: c for c in changes}
    results = [dataclasses.replace(r, key=by_sku[r.key].key)
               for r in client.save_base_prices([base_price(c.sku, c.data["price"]) for c in changes])]
    _deliver_channel(ctx, channel, results, "price")
    return _written(results, {c.key: c for c in changes})


def _write_statuses(ctx: RunContext, channel: str, client: Any, changes: Sequence[Change]) -> list[Written]:
    """Lifecycle as the product's status on the channel (enabled only when active), one request per product."""
    from catalog_sync.connectors.adobe_mapping import magento_status

    if not changes:
        return []
    results = [dataclasses.replace(client.set_status(c.sku, magento_status(c.value)), key=c.key) for c in changes]
    _deliver_channel(ctx, channel, results, "product")
    return _written(results, {c.key: c for c in changes})


# --- timeliness ----------------------------------------------------------------------------------------------


def _write_timeliness(ctx: RunContext, written: Sequence[Written]) -> dict[str, float | None]:
    """Seconds from the ERP commit to the storefront write of each delivered change: median (the KPI) and worst."""
    import pandas as pd

    from catalog_sync.quality.kpis import timeliness, write_kpis

    pairs = [(w.committed_at, w.written_at) for w in written if w.committed_at]
    if not pairs:
        return {"timeliness_s": None, "timeliness_max_s": None}
    committed = pd.Series([_parse_ts(c) for c, _ in pairs])
    arrived = pd.Series([a for _, a in pairs])
    median = timeliness(committed, arrived)
    worst = max((a - c).total_seconds() for c, a in zip(committed, arrived, strict=True))
    with session_scope(ctx.hub_url) as s:
        write_kpis(s, ctx.load_id, {"timeliness": median})
    return {"timeliness_s": median, "timeliness_max_s": worst}


def _parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


__all__ = ["FLOW", "HOP", "CURSOR", "Change", "ConnectorError", "channel_cursor", "channel_hop", "coalesce",
           "sync_changes", "sync_channel_changes"]
