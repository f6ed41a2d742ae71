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
    kind ``channel``. No field deltas are logged for a channel's content (it goes back through the PIM: ADR
    0017), and the write-back loop detector reads the delta log of the systems Catalog Sync writes back to."""
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


# ------------------------------------------------------------------------------------------------------- images
#: Families to an image slice: one DAM read of their assets, then each family's gallery read back and written.
IMAGE_SLICE = 50


class _ChannelDown(Exception):
    """The channel stopped answering while a gallery was being synced (its client's ``TransientError``)."""

    def __init__(self, cause: TransientError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclasses.dataclass(frozen=True)
class _Wanted:
    """One image a channel's gallery should hold: its asset, the entry's file stem, position and image roles."""

    asset: Mapping[str, Any]
    stem: str
    position: int
    types: tuple[str, ...]

    @property
    def label(self) -> str:
        return str(self.asset.get("filename") or self.asset["id"])


def publish_channel_images(load_id: str, channel_name: str, systems: Systems, client: Any) -> dict[str, Any]:
    """The galleries of the run's ready families to the declared channel ``channel_name``, after its products: the
    nightly's ``publish_channel_images_<name>`` task. Reads ``families_ready`` :data:`IMAGE_SLICE` families a
    slice, keeps those the channel sells and holds (its product fingerprint: a family whose product never reached
    the channel has no page to show images on and is not read on the image hop), and syncs each one's gallery
    (:func:`sync_galleries`). Each slice is a part, so a retry re-sends nothing committed; a channel that is down
    dead-letters its galleries and the task succeeds."""
    channel = load_channels().channel(channel_name)
    ctx = RunContext.attach(load_id)
    if not channel.enabled or channel.images is None:
        return {"channel": channel.name, "images": False}
    from catalog_sync.flows.cold import _window_end

    now = _window_end(ctx)
    session = _Session()
    not_on_channel = 0
    for number, page in enumerate(ctx.iter_staged("families_ready", IMAGE_SLICE)):
        sold = [fam for fam in page if channel.sells_family(fam)]
        if not sold or ctx.committed(f"{channel.name}:images:{number}"):
            continue
        with ctx.part(f"{channel.name}:images:{number}"):
            held = on_channel(ctx.hub_url, channel, sold)
            not_on_channel += len(sold) - len(held)
            sync_galleries(ctx, channel, systems, client, held, now, session)
    counts = ctx.hop_counts(task_only=ctx.task is not None).get(channel.image_hop, {})
    return {"channel": channel.name, **{k: counts.get(k, 0) for k in ("read", "delivered", "unchanged",
                                                                       "dead_lettered")},
            "not_on_channel": not_on_channel, "down": session.down}


def sync_skus(ctx: RunContext, channel_name: str, systems: Systems, client: Any, skus: Sequence[str],
              now: Any) -> dict[str, Any]:
    """The galleries of the families of ``skus`` (variants bring their parent) on the channel made the showable
    ones at ``now``, outside the nightly: the image_windows sweep's per-channel repair and the replay of image
    letters. Families the channel does not sell or does not hold are not read on its image hop."""
    from catalog_sync.flows.cold import _families

    channel = load_channels().channel(channel_name)
    if not channel.enabled or channel.images is None or not skus:
        return {"channel": channel.name, "families": 0, "down": None}
    roots = sorted({str((systems.pim.get_product(sku) or {}).get("parent") or sku) for sku in skus})
    held = on_channel(ctx.hub_url, channel, [f for f in _families(systems, roots) if channel.sells_family(f)])
    session = _Session()
    sync_galleries(ctx, channel, systems, client, held, now, session)
    return {"channel": channel.name, "families": len(held), "down": session.down}


def on_channel(hub_url: str | None, channel: Channel, families: Sequence[Mapping[str, Any]]
               ) -> list[Mapping[str, Any]]:
    """The ``families`` whose product the channel holds: the hub has a fingerprint of what it last delivered."""
    with session_scope(hub_url) as s:
        known = repo.fingerprints(s, channel.name, "product", keys=[str(fam["sku"]) for fam in families])
    return [fam for fam in families if str(fam["sku"]) in known]


def sync_galleries(ctx: RunContext, channel: Channel, systems: Systems, client: Any,
                   families: Sequence[Mapping[str, Any]], now: Any, session: _Session) -> None:
    """Make each family's gallery on ``channel`` the showable one, one record per family on the hop
    ``dam-><channel>`` (read == delivered + unchanged + dead-lettered).

    The gallery is the one rule and order (``showable.gallery`` with the channel's region) over the family's PIM
    asset links, less the assets without the channel's rendition; each image's roles come from the channel's
    mapping (:meth:`ImageRules.types`). The channel's gallery is read back (``client.media``) and compared by file
    stem (``adobe_mapping.media_stem``: asset, rendition, file checksum): an entry already right is left alone, one
    no longer wanted (rights expired, window ended, not licensed for the channel's region, unlinked, an older file)
    is removed, one in another place or with other roles is changed in place (``update_media``, no bytes sent), and
    what is missing is added with the rendition's bytes from the DAM. A re-run or a retried task thus adds nothing
    twice. Entries made by hand on the channel are never touched.

    A DAM outage raises (the task retries); a channel outage dead-letters this family and the rest with reason kind
    ``channel`` and no further call goes to the channel (``session.down``)."""
    hop = channel.image_hop
    ctx.count(hop, read=len(families))
    if not families:
        return
    if session.down is not None:
        _dead_letter_galleries(ctx, channel, families, session.down)
        return
    from catalog_sync.connectors import RecordError
    from catalog_sync.flows.cold import family_asset_ids

    assets, malformed = systems.dam.get_assets(aid for fam in families for aid in family_asset_ids(fam))
    for number, fam in enumerate(families):
        sku = str(fam["sku"])
        ids = family_asset_ids(fam)
        broken = next((malformed[aid] for aid in ids if aid in malformed), None)
        if broken is not None:  # a gallery with a hole in it is left as the channel has it, as on the storefront
            _gallery_letter(ctx, channel, sku, "api", "record_schema",
                            f"asset {broken.record_key}: {broken.reason}", {"asset_links": ids})
            continue
        try:
            done = _sync_gallery(channel, systems, client, sku, [assets[a] for a in ids if a in assets], now)
        except _ChannelDown as exc:
            session.down = _outage(channel, exc.cause)
            _dead_letter_galleries(ctx, channel, families[number:], session.down)
            return
        except RecordError as exc:  # the channel does not hold the product, or the DAM has no such rendition
            kind = "channel" if exc.system == channel.name else "api"
            _gallery_letter(ctx, channel, sku, kind, "channel_refused" if kind == "channel" else "record_schema",
                            exc.reason, {"asset_links": ids})
            continue
        failed = [r for r in done["results"] if not r.ok]
        request = {"added": done["added"], "moved": done["moved"], "removed": done["removed"], "kept": done["kept"]}
        if failed:
            reason = "; ".join(f"{r.key}: {r.message}" for r in failed)
            _gallery_letter(ctx, channel, sku, "channel", "channel_refused", reason, request)
            continue
        outcome = "ok" if done["added"] or done["moved"] or done["removed"] else "unchanged"
        ctx.audit(channel.name, "images", sku, "write", outcome, request=request,
                  response={"gallery": done["kept"] + done["moved"] + done["added"]})
        ctx.count(hop, **{"delivered" if outcome == "ok" else "unchanged": 1})


def _wanted(channel: Channel, assets: Sequence[Mapping[str, Any]], now: Any) -> list[_Wanted]:
    from catalog_sync.connectors.adobe_mapping import media_stem
    from catalog_sync.showable import gallery

    rules = channel.images
    assert rules is not None
    shown = [a for a in gallery(assets, now, rules.region) if (a.get("renditions") or {}).get(rules.rendition)]
    types = rules.types(a.get("role") for a in shown)
    return [_Wanted(a, media_stem(str(a["id"]), rules.rendition, str(a.get("checksum") or "")), position,
                    tuple(t)) for position, (a, t) in enumerate(zip(shown, types, strict=True), start=1)]


def _sync_gallery(channel: Channel, systems: Systems, client: Any, sku: str, assets: Sequence[Mapping[str, Any]],
                  now: Any) -> dict[str, Any]:
    """One family's gallery on the channel made the wanted one; see :func:`sync_galleries`."""
    from catalog_sync.connectors.adobe_mapping import IMAGE_EXTENSIONS, magento_media_entry, media_entry_stem

    rules = channel.images
    assert rules is not None
    wanted = _wanted(channel, assets, now)
    try:
        listed = client.media(sku)
    except TransientError as exc:
        raise _ChannelDown(exc) from None
    by_stem = {w.stem: w for w in wanted}
    kept: list[str] = []
    moved: list[tuple[Mapping[str, Any], _Wanted]] = []
    removals: list[Mapping[str, Any]] = []
    for entry in listed:
        stem = media_entry_stem(entry)
        if stem is None:
            continue  # made by hand on the channel: not ours to change
        want = by_stem.get(stem)
        if want is None or stem in kept or any(w.stem == stem for _, w in moved):
            removals.append(entry)  # hidden now, unlinked, an older file, or a second copy
        elif (entry.get("position"), list(entry.get("types") or []), entry.get("label"), bool(entry.get("disabled"))
              ) == (want.position, list(want.types), want.label, False):
            kept.append(stem)
        else:
            moved.append((entry, want))  # the same file in another place or with other roles: changed in place
    placed = set(kept) | {w.stem for _, w in moved}
    additions = [w for w in wanted if w.stem not in placed]
    # the bytes first (a DAM outage raises before the channel's gallery is touched)
    files = {w.stem: systems.dam.download_rendition(w.asset, rules.rendition) for w in additions}
    results: list[WriteResult] = []
    try:
        # removals first, then the moves, then the new files: an image taking a role releases it from the others
        for entry in removals:
            results.append(client.delete_media(sku, entry["id"]))
        for entry, want in moved:
            results.append(client.update_media(sku, entry["id"], {
                "media_type": "image", "label": want.label, "position": want.position, "disabled": False,
                "types": list(want.types)}))
        for w in additions:
            content, mime = files[w.stem]
            entry = magento_media_entry(content, mime, f"{w.stem}.{IMAGE_EXTENSIONS[mime]}", w.label,
                                        str(w.asset.get("role") or ""), w.position, types=w.types)
            results.append(client.add_media(sku, entry, listed=()))
    except TransientError as exc:
        raise _ChannelDown(exc) from None
    return {"results": results, "kept": kept, "added": [w.stem for w in additions],
            "moved": [w.stem for _, w in moved], "removed": [str(e.get("file")) for e in removals]}


def _gallery_letter(ctx: RunContext, channel: Channel, sku: str, kind: str, expectation: str, reason: str,
                    payload: Mapping[str, Any]) -> None:
    ctx.dead_letter([{"entity": "images", "record_key": sku, "source_system": "dam", "target_system": channel.name,
                      "reason_kind": kind, "expectation": expectation, "reason": reason,
                      "payload": json_safe(dict(payload))}], hop=channel.image_hop)
    ctx.audit(channel.name, "images", sku, "write", "dead_lettered", request=dict(payload),
              response={"message": reason})


def _dead_letter_galleries(ctx: RunContext, channel: Channel, families: Sequence[Mapping[str, Any]],
                           reason: str) -> None:
    letters = [{"entity": "images", "record_key": str(fam["sku"]), "source_system": "dam",
                "target_system": channel.name, "reason_kind": "channel", "expectation": "channel_unavailable",
                "reason": reason} for fam in families]
    for letter in letters:
        ctx.audit(channel.name, "images", letter["record_key"], "write", "dead_lettered",
                  response={"message": reason, "disposition": Disposition.RETRY.value})
    ctx.dead_letter(letters, hop=channel.image_hop)


# ------------------------------------------------------------------------------------------------------- backfill
BACKFILL_FLOW = "channel_backfill"


def pim_roots(systems: Systems) -> list[str]:
    """Every family root the PIM holds: its root product models and its products without a parent (Akeneo's
    documented ``parent`` filter with operator ``EMPTY``), read a page at a time; keys only."""
    roots = [str(m["code"]) for page in systems.pim.iter_product_models() for m in page.records
             if not m.get("parent")]
    roots += [str(p["identifier"]) for page in systems.pim.iter_products(search={"parent": [{"operator": "EMPTY"}]})
              for p in page.records]
    return sorted(set(roots))


def backfill(channel_name: str, systems: Systems, client: Any, *, resend: bool = False, dag_id: str | None = None,
             run_id: str | None = None, hub_url: str | None = None) -> dict[str, Any]:
    """Bring a declared channel level with the PIM for every family it sells, not only those the nightly's window
    saw change: what a channel needs when it is first enabled, when it starts taking images or changes rendition
    (ADR 0019), or after products were removed on the channel by hand.

    One hub run (flow ``channel_backfill``): every family root in the PIM (:func:`pim_roots`) is read again, the
    families the channel sells are staged as they are read and put through the business-rules gate (the nightly's
    ``gate_channel_content``, in batches), then the nightly's own :func:`publish_channel` and
    :func:`publish_channel_images` publish them. A family whose content is the one last delivered to the channel is
    counted unchanged and not sent, unless ``resend`` (its fingerprints on the channel forgotten first, for products
    changed or deleted on the channel by hand). A freeze window holds the backfill as it holds a nightly's bulk
    publish. The storefront is not this run's target: the families the gate passes are counted unchanged on its
    hop, so every hop reconciles. The DAG and the command call it outside ``run_task``, so its parts are not
    checkpointed: a retry re-opens the run, stages again and sends nothing the fingerprints say the channel holds
    (with ``resend``, it forgets them again and re-sends every family).
    """
    from datetime import UTC, datetime

    from sqlalchemy import delete

    from catalog_sync.flows import cold
    from catalog_sync.hub.models import RecordFingerprint

    channel = load_channels().channel(channel_name)
    if not channel.enabled:
        raise ValueError(f"{channel.name} is disabled in channels.yaml: enable it before a backfill")
    ctx = RunContext.open(BACKFILL_FLOW, load_id=steps.run_load_id(BACKFILL_FLOW, run_id), dag_id=dag_id,
                          run_id=run_id, window_start=None, window_end=datetime.now(UTC), hub_url=hub_url)
    roots = pim_roots(systems)
    read = 0
    categories: set[str] = set()

    def sold() -> Any:
        nonlocal read
        for batch in cold._family_batches(systems, roots):
            for fam in batch:
                if channel.sells_family(fam):
                    read += 1
                    categories.update(c for r in [fam["parent"], *fam["rows"]] for c in (r.get("categories") or []))
                    yield fam

    ctx.stage("families", sold())
    ctx.stage("taxonomy", [{"sku": c} for c in sorted(categories)])
    ctx.count(cold.PIM_STOREFRONT, read=read)
    cold.gate_channel_content(ctx.load_id)
    ctx.count(cold.PIM_STOREFRONT, unchanged=ctx.count_staged("families_ready"))  # not this run's target
    if resend:
        for page in ctx.iter_staged("families_ready", 1000):
            with session_scope(hub_url) as s:
                s.execute(delete(RecordFingerprint).where(RecordFingerprint.system == channel.name,
                                                          RecordFingerprint.record_key.in_([str(f["sku"])
                                                                                            for f in page])))
    products = publish_channel(ctx.load_id, channel.name, systems, client)
    images = publish_channel_images(ctx.load_id, channel.name, systems, client)
    families = {"in_pim": len(roots), "sold": read}
    counts = ctx.finish(details={"backfill": channel.name, "resend": resend, "families": families,
                                 "products": products, "images": images})
    return {"load_id": ctx.load_id, "channel": channel.name, "families": families, "products": products,
            "images": images, "counts": counts}
