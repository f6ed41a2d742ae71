"""Replay dead letters after a fix: each record is re-read fresh from its source system and sent again through the
same hop, gates and ownership checks as the run that dead-lettered it.

Re-reading (instead of re-sending the stored payload) is deliberate: the fix almost always happens in the source
system (a corrected price in the ERP, an approved asset in the DAM), and a stale payload would re-deliver the
error. Nothing can be forced through: a record that still fails its gate, or an attribute its writer does not
own, stays dead-lettered (its ``attempts`` go up). A letter is marked ``replayed`` only when the replay delivered
the record (or found the target already holding it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from catalog_sync.connectors.mapping import erp_item_to_canonical
from catalog_sync.engine.run import RunContext
from catalog_sync.flows import cold, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.governance.channels import load_channels
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter

FLOW = "dead_letter_replay"


class ReplayError(ValueError):
    """The selection cannot be replayed (unknown ids, letters not open, a hop replay does not cover)."""


#: (target system, entity) of a dead letter -> the hop that replays it. A gate's letters name the gate's entity
#: ("products", "assets": ``steps.gate``), the hops' own letters the record's ("product", "asset"): both replay.
#: Each declared sales channel's products are replayed on its own hop (re-read from the PIM, gated, published to
#: that channel only).
HOPS = {("pim", "product"): "erp->pim", ("storefront", "product"): "pim->storefront",
        ("pim", "asset"): "dam->pim",
        ("pim", "products"): "erp->pim", ("storefront", "products"): "pim->storefront",
        ("pim", "assets"): "dam->pim",
        **{(c.name, "product"): c.hop for c in load_channels().channels.values()},
        **{(c.name, "images"): c.image_hop for c in load_channels().channels.values() if c.images is not None}}


def select_letters(ids: Sequence[int], hub_url: str | None = None) -> list[dict[str, Any]]:
    with session_scope(hub_url) as s:
        rows = s.scalars(select(DeadLetter).where(DeadLetter.id.in_(list(ids)))).all()
        letters = [{c.name: getattr(r, c.name) for c in DeadLetter.__table__.columns} for r in rows]
    missing = sorted(set(ids) - {letter["id"] for letter in letters})
    if missing:
        raise ReplayError(f"no dead letter with id(s) {missing}")
    closed = [letter["id"] for letter in letters if letter["status"] != "open"]
    if closed:
        raise ReplayError(f"dead letter(s) {closed} are not open (already replayed or discarded)")
    unsupported = sorted({(letter["target_system"], letter["entity"]) for letter in letters} - set(HOPS))
    if unsupported:
        raise ReplayError(f"replay does not cover {unsupported}; fix the source and let the next run pick it up")
    return letters


def replay(ids: Sequence[int], systems: Systems, *, by: str, dag_id: str | None = None,
           run_id: str | None = None, hub_url: str | None = None) -> dict[str, Any]:
    """Replay open dead letters ``ids``; returns which were delivered and which are still failing."""
    letters = select_letters(ids, hub_url)
    # A write-back loop's letter: release the hold first, so the replay writes the owner's value of the field.
    loops = [x["id"] for x in letters if x["reason_kind"] == "loop"]
    if loops:
        with session_scope(hub_url) as s:
            repo.release_holds(s, loops, by)
    by_hop: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for letter in letters:
        by_hop[HOPS[(letter["target_system"], letter["entity"])]].append(letter)
    channels = {c.hop: c for c in load_channels().channels.values() if c.hop in by_hop}
    galleries = {c.image_hop: c for c in load_channels().channels.values() if c.image_hop in by_hop}
    missing = sorted({c.name for c in [*channels.values(), *galleries.values()] if c.name not in systems.channels})
    if missing:
        raise ReplayError(f"no client for the channel(s) {missing} here: configure their Airflow connection "
                          "(governance/channels.yaml names it)")
    load_id = cold.open_run(dag_id=dag_id, run_id=f"replay:{run_id}" if run_id else None, window_start=None,
                            window_end=None, hub_url=hub_url)
    ctx = RunContext.attach(load_id, hub_url)
    if "erp->pim" in by_hop:
        _replay_erp_pim(ctx, systems, sorted({x["record_key"] for x in by_hop["erp->pim"]}))
    if "dam->pim" in by_hop:
        _replay_assets(ctx, systems, sorted({x["record_key"] for x in by_hop["dam->pim"]}))
    if "pim->storefront" in by_hop:
        _replay_storefront(ctx, systems, sorted({x["record_key"] for x in by_hop["pim->storefront"]}))
    for hop, channel in sorted(channels.items()):
        _replay_channel(ctx, systems, channel.name, sorted({x["record_key"] for x in by_hop[hop]}))
    for hop, channel in sorted(galleries.items()):  # after the products: a gallery needs its product there
        from catalog_sync.flows.channels import sync_skus

        sync_skus(ctx, channel.name, systems, systems.channels[channel.name],
                  sorted({x["record_key"] for x in by_hop[hop]}), datetime.now(UTC))
    delivered = _delivered_keys(load_id, hub_url)
    done = [x["id"] for x in letters if (x["target_system"], x["record_key"]) in delivered]
    with session_scope(hub_url) as s:
        repo.resolve_dead_letters(s, done, "replayed", by=by)
    counts = ctx.finish(details={"replayed_letters": done, "by": by})
    return {"load_id": load_id, "replayed": done, "still_open": [x["id"] for x in letters if x["id"] not in done],
            "counts": counts}


def _delivered_keys(load_id: str, hub_url: str | None) -> set[tuple[str, str]]:
    with session_scope(hub_url) as s:
        rows = s.execute(select(AuditEvent.system, AuditEvent.record_key).where(
            AuditEvent.load_id == load_id, AuditEvent.action == "write",
            AuditEvent.outcome.in_(["ok", "unchanged"]))).all()
    return {(system, key) for system, key in rows}


def _replay_erp_pim(ctx: RunContext, systems: Systems, skus: Sequence[str]) -> None:
    records = []
    for sku in skus:
        item = systems.erp.get_item(sku)
        if item is None:
            ctx.count(cold.ERP_PIM, read=1)
            ctx.dead_letter([{"entity": "product", "record_key": sku, "source_system": "erp", "target_system": "pim",
                              "reason_kind": "api", "expectation": "missing_in_source",
                              "reason": "the ERP no longer has this item"}], hop=cold.ERP_PIM)
            continue
        record = erp_item_to_canonical(item)
        record["updated_at"] = item.get("updated_at")
        records.append(record)
    ctx.count(cold.ERP_PIM, read=len(records))
    ctx.stage("erp_items", records)
    cold.gate_master_data(ctx.load_id)
    # A replay must re-send even when the content hash matches the last delivery: forget those fingerprints.
    with session_scope(ctx.hub_url) as s:
        from sqlalchemy import delete

        from catalog_sync.hub.models import RecordFingerprint

        s.execute(delete(RecordFingerprint).where(RecordFingerprint.system == "pim",
                                                  RecordFingerprint.record_key.in_(list(skus))))
    cold.load_pim(ctx.load_id, systems)


def _replay_assets(ctx: RunContext, systems: Systems, asset_ids: Sequence[str]) -> None:
    """Re-link assets by id (the DAM read by id instead of by change window)."""
    assets = []
    for aid in asset_ids:
        asset = systems.dam.get_asset(aid)
        if asset is None:
            ctx.count(cold.DAM_PIM, read=1)
            ctx.dead_letter([{"entity": "asset", "record_key": aid, "source_system": "dam", "target_system": "pim",
                              "reason_kind": "api", "expectation": "missing_in_source",
                              "reason": "the DAM no longer has this asset"}], hop=cold.DAM_PIM)
            continue
        assets.append(dict(asset, asset_id=str(asset["id"])))
    ctx.count(cold.DAM_PIM, read=len(assets))
    upper = cold._window_end(ctx)
    passed = steps.gate(ctx, assets, "assets.l0", layer=0, entity="assets", key="asset_id", hop=cold.DAM_PIM,
                        source_system="dam", target_system="pim", now=upper)
    passed = steps.gate(ctx, passed, "assets.l1", layer=1, entity="assets", key="asset_id", hop=cold.DAM_PIM,
                        source_system="dam", target_system="pim", now=upper)
    known = cold._existing_pim_skus(systems, {str(a["sku"]) for a in passed if a.get("sku")})
    passed = steps.gate(ctx, passed, "assets.l2", layer=2, entity="assets", key="asset_id", hop=cold.DAM_PIM,
                        source_system="dam", target_system="pim", now=upper, known_skus=known)
    by_sku: dict[str, list[str]] = defaultdict(list)
    for a in passed:
        by_sku[str(a["sku"])].append(str(a["id"]))
    current, models = cold._current_links_and_kinds(systems, list(by_sku))
    for sku, ids in sorted(by_sku.items()):
        links = sorted(set(current.get(sku, [])) | set(ids))
        (allowed,) = steps.check_ownership(ctx, [{"sku": sku, "asset_links": links}], writer="dam", target="pim",
                                           hop=cold.DAM_PIM)
        if "asset_links" not in allowed:  # held in a write-back loop: audited by check_ownership, not written
            ctx.count(cold.DAM_PIM, unchanged=len(ids))
            continue
        for res in cold.write_asset_links(systems, {sku: allowed["asset_links"]}, models):
            for aid in ids:
                ctx.audit("pim", "asset", aid, "write", res.outcome.value, request=res.sent)
            ctx.audit("pim", "product", sku, "write", res.outcome.value, request=res.sent)
            ctx.record_deltas("pim", "product", sku, {"asset_links": current.get(sku)}, {"asset_links": links},
                              source="dam")
            ctx.count(cold.DAM_PIM, **({"delivered": len(ids)} if res.ok else {"dead_lettered": len(ids)}))
    ctx.flush_audit()


def _replay_storefront(ctx: RunContext, systems: Systems, skus: Sequence[str]) -> None:
    roots = set()
    for sku in skus:
        product = systems.pim.get_product(sku)
        roots.add(str((product or {}).get("parent") or sku))
    cold.restage_families(ctx, systems, sorted(roots))
    with session_scope(ctx.hub_url) as s:
        from sqlalchemy import delete

        from catalog_sync.hub.models import RecordFingerprint

        s.execute(delete(RecordFingerprint).where(RecordFingerprint.system == "storefront",
                                                  RecordFingerprint.record_key.in_(sorted(roots))))
    cold.publish_products(ctx.load_id, systems)
    for chunk in cold.plan_image_chunks(ctx.load_id):
        cold.publish_images(ctx.load_id, chunk, systems)
    # A variant's letter is settled when its family was delivered.
    published = {r["sku"] for r in ctx.staged("published")}
    for fam in ctx.staged("families_ready"):
        if fam["sku"] in published:
            for row in [fam["parent"], *fam["rows"]]:
                ctx.audit("storefront", "product", str(row["sku"]), "write", "ok",
                          response={"message": f"published with family {fam['sku']}"})
    ctx.flush_audit()


def _replay_channel(ctx: RunContext, systems: Systems, channel: str, skus: Sequence[str]) -> None:
    """Re-read the families of ``skus`` from the PIM, through the business-rules gate, and publish them to the
    declared ``channel`` again (its fingerprints forgotten, so they are re-sent). The storefront is not this
    replay's target: the families the gate lets through are counted unchanged on its hop."""
    from catalog_sync.flows.channels import publish_channel

    roots = sorted({str((systems.pim.get_product(sku) or {}).get("parent") or sku) for sku in skus})
    ctx.count(cold.PIM_STOREFRONT, unchanged=cold.restage_families(ctx, systems, roots))  # not its target
    with session_scope(ctx.hub_url) as s:
        from sqlalchemy import delete

        from catalog_sync.hub.models import RecordFingerprint

        s.execute(delete(RecordFingerprint).where(RecordFingerprint.system == channel,
                                                  RecordFingerprint.record_key.in_(roots)))
    publish_channel(ctx.load_id, channel, systems, systems.channels[channel])
