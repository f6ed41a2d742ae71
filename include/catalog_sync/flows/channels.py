"""The nightly's fan-out to the declared sales channels beyond the Shopify storefront (``governance/channels.yaml``).

Each enabled channel gets its own task, ``publish_channel(load_id, channel, systems, client)``, which reads the same
staged ``families_ready`` that ``cold.publish_products`` publishes to the storefront (the PIM's content after the
business-rules gate), a slice of :data:`SLICE` families at a time, and for each slice:

* keeps the families the channel sells (a category at or under one of its category trees); the others are not read
  on its hop at all;
* takes each family's status and live prices from the ERP as the storefront publish does
  (``cold._erp_lifecycle``, ``hot._erp_prices``), and shapes its records by the channel's formatting rules (titles
  cut at a word boundary, descriptions stripped to the allowed tags);
* skips a family whose shaped content is the one last delivered to the channel (fingerprints under the channel's
  name), publishes the rest (``client.publish``: products in one bulk, variants linked in a second) and then each
  mapped locale's values to its store view;
* accounts every record (a SKU: parent or variant) on the hop ``pim-><channel>``: read == delivered + unchanged +
  dead-lettered, which ``cold.finish`` checks with the run's other hops.

Each slice is one ``ctx.part``: a retried task skips the slices an earlier attempt committed and sends nothing of
them again. **Outage isolation**: when the channel stays unavailable past its client's retries (``TransientError``:
``ChannelUnavailable``, or a bulk still open when polling gives up), every record of that slice and of every later
slice is dead-lettered with reason kind ``channel`` naming the outage, no further call goes to the channel in this
task, and the task succeeds: the storefront's publish, a task of its own, never waits on it. Those letters are
replayed through ``flows.replay`` once the channel answers (the next nightly does not stage them again).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from catalog_sync.connectors import ConnectorError, Disposition, Outcome, TransientError, WriteResult
from catalog_sync.engine.run import RunContext, json_safe
from catalog_sync.flows import freeze, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.governance.channels import Channel, load_channels
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope

log = logging.getLogger(__name__)

#: Families to a slice: one products bulk, one links bulk and one bulk per store view, committed together.
SLICE = 50


@dataclasses.dataclass
class _Session:
    """What one attempt of the task learns from the channel once: its identifiers, its store views, and whether it
    is down (then the reason every later record is dead-lettered with)."""

    catalog: Any = None
    stores: dict[str, str] | None = None
    down: str | None = None


def publish_channel(load_id: str, channel_name: str, systems: Systems, client: Any) -> dict[str, Any]:
    """Publish the run's ready families to the declared channel ``channel_name`` through ``client``; see the module
    docstring. Returns the task's counts on the channel's hop, the families it does not sell, and the outage that
    dead-lettered records (None when the channel answered)."""
    channel = load_channels().channel(channel_name)
    ctx = RunContext.attach(load_id)
    if not channel.enabled:
        return {"channel": channel.name, "enabled": False}
    session = _Session()
    not_sold = 0
    for number, page in enumerate(ctx.iter_staged("families_ready", SLICE)):
        sold = [fam for fam in page if channel.sells_family(fam)]
        not_sold += len(page) - len(sold)
        # parts named by channel: a task that publishes to the storefront or to several channels (a replay, a
        # freeze release, a republish) must not take one's committed slice for another's
        if not sold or ctx.committed(f"{channel.name}:slice:{number}"):
            continue
        with ctx.part(f"{channel.name}:slice:{number}"):
            _publish_slice(ctx, channel, systems, client, sold, session)
    counts = ctx.hop_counts(task_only=ctx.task is not None).get(channel.hop, {})
    return {"channel": channel.name, **{k: counts.get(k, 0) for k in ("read", "delivered", "unchanged",
                                                                       "dead_lettered")},
            "not_sold": not_sold, "down": session.down}


def _records(fam: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [fam["parent"], *fam["rows"]]


def _publish_slice(ctx: RunContext, channel: Channel, systems: Systems, client: Any,
                   sold: Sequence[Mapping[str, Any]], session: _Session) -> None:
    hop = channel.hop
    ctx.count(hop, read=sum(len(_records(fam)) for fam in sold))
    if session.down is not None:  # known down in this task: no further call, every record dead-lettered
        _dead_letter_down(ctx, channel, sold, session.down)
        return
    from catalog_sync.flows.cold import _erp_lifecycle
    from catalog_sync.flows.hot import _erp_prices

    erp_status = _erp_lifecycle(systems, [str(fam["sku"]) for fam in sold])
    skus = [str(r["sku"]) for fam in sold for r in _records(fam)]
    live = {sku: float(p["price"]) for sku, p in _erp_prices(systems, skus).items() if p.get("price") is not None}
    try:
        if session.catalog is None:
            session.catalog = client.catalog()
            session.stores = channel.store_views(session.catalog.store_of_locale)
    except TransientError as exc:
        session.down = _outage(channel, exc)
        _dead_letter_down(ctx, channel, sold, session.down)
        return
    with session_scope(ctx.hub_url) as s:
        known = repo.fingerprints(s, channel.name, "product", keys=[str(fam["sku"]) for fam in sold])
    outgoing: list[tuple[Mapping[str, Any], list[dict[str, Any]], str]] = []
    unchanged = 0
    for fam in sold:
        status = erp_status.get(str(fam["sku"]))
        shaped = [channel.formatting.shape({**record, "lifecycle_status": status,
                                            "reference_price": live.get(str(record["sku"]),
                                                                        record.get("reference_price"))})
                  for record in _records(fam)]
        digest = repo.content_hash({"records": json_safe(shaped), "stores": session.stores})
        if known.get(str(fam["sku"])) == digest:
            unchanged += len(shaped)
            for record in shaped:
                ctx.audit(channel.name, "product", str(record["sku"]), "write", "unchanged",
                          response={"message": f"{channel.name}: the channel holds this content already"})
            continue
        outgoing.append((fam, shaped, digest))
    ctx.count(hop, unchanged=unchanged)
    # a declared freeze holds a bulk content change to the channel as it holds the storefront's (flows/freeze.py)
    outgoing = freeze.hold_in_channel_publish(ctx, channel, outgoing)
    if not outgoing:
        return
    records = [r for _, shaped, _ in outgoing for r in shaped]
    try:
        results = {r.key: r for r in client.publish(records, session.catalog)}
        _store_values(client, records, results, session.stores or {})
    except TransientError as exc:
        session.down = _outage(channel, exc)
        _dead_letter_down(ctx, channel, [fam for fam, _, _ in outgoing], session.down)
        return
    _account(ctx, channel, records, results)
    published = {str(fam["sku"]): digest for fam, shaped, digest in outgoing
                 if all(results.get(str(r["sku"])) is not None and results[str(r["sku"])].ok for r in shaped)}
    if published:
        with session_scope(ctx.hub_url) as s:
            repo.save_fingerprints(s, channel.name, "product", published, ctx.load_id)


def _store_values(client: Any, records: Sequence[Mapping[str, Any]], results: dict[str, WriteResult],
                  stores: Mapping[str, str]) -> None:
    """Each mapped locale's texts to its store view, for the records the channel saved; a refused store value
    fails its record (its result is replaced, naming the store view)."""
    from catalog_sync.connectors.adobe_mapping import magento_store_values

    for locale, store in sorted(stores.items()):
        values = [(str(r["sku"]), v) for r in records if results.get(str(r["sku"])) is not None
                  and results[str(r["sku"])].ok for v in [magento_store_values(r, locale)] if v is not None]
        if not values:
            continue
        for written in client.upsert_store_values(store, values):
            sku = written.key.rsplit("@", 1)[0]
            if not written.ok and sku in results:
                results[sku] = dataclasses.replace(
                    written, key=sku, message=f"store view {store} ({locale}): {written.message}")


def _account(ctx: RunContext, channel: Channel, records: Sequence[Mapping[str, Any]],
             results: Mapping[str, WriteResult]) -> None:
    """Every record once: a result the channel answered goes through ``steps.deliver``; a record it never took
    (a refusal of the mapping, a variant whose parent was not saved, no answer at all) is dead-lettered with reason
    kind ``channel``. No field deltas are logged for a channel: a rollback does not reach channels yet, and the
    write-back loop detector reads the delta log of the systems Catalog Sync writes back to."""
    answered: list[WriteResult] = []
    letters: list[dict[str, Any]] = []
    for record in records:
        sku = str(record["sku"])
        result = results.get(sku)
        if result is not None and (result.outcome is not Outcome.FAILED or result.status is not None):
            answered.append(result)
            continue
        reason = result.message if result is not None else f"{channel.name} gave no answer for this record"
        letters.append({"entity": "product", "record_key": sku, "source_system": "pim",
                        "target_system": channel.name, "reason_kind": "channel", "expectation": "channel_refused",
                        "reason": reason, "payload": json_safe(dict(record))})
        ctx.audit(channel.name, "product", sku, "write", "dead_lettered", request=dict(record),
                  response={"message": reason})
    ctx.dead_letter(letters, hop=channel.hop)
    steps.deliver(ctx, answered, hop=channel.hop, system=channel.name, entity="product", source_system="pim")


def _outage(channel: Channel, exc: ConnectorError) -> str:
    log.warning("%s is unavailable; its remaining records are dead-lettered: %s", channel.name, exc)
    return (f"{channel.name} was unavailable during the nightly ({exc}); not sent, the storefront was not held "
            "back: replay this letter once the channel answers")


def _dead_letter_down(ctx: RunContext, channel: Channel, families: Sequence[Mapping[str, Any]], reason: str) -> None:
    letters = [{"entity": "product", "record_key": str(r["sku"]), "source_system": "pim",
                "target_system": channel.name, "reason_kind": "channel", "expectation": "channel_unavailable",
                "reason": reason} for fam in families for r in _records(fam)]
    for letter in letters:
        ctx.audit(channel.name, "product", letter["record_key"], "write", "dead_lettered",
                  response={"message": reason, "disposition": Disposition.RETRY.value})
    ctx.dead_letter(letters, hop=channel.hop)
