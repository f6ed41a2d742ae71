"""Freeze windows in the flows: hold structural and bulk changes during a declared freeze, and release them after a
person approved (the ``freeze_release`` DAG).

The calendar is ``catalog_sync.governance.freeze``. Each flow asks it at the moment it would apply a change:

- ``cold._publish_slice`` calls :func:`hold_in_publish` on each slice it is about to write. A product already on
  the storefront whose categories (its tags) differ from the shop's is written with the shop's tags kept, and the
  move is held (``category_move``); the rest of its content goes out. When the publish is a bulk content change
  (:func:`bulk_decision`), the updates of products already on the shop are not written at all (``bulk_content``).
  New products are not held: nothing shoppers navigate by moves.
- ``channels._publish_slice`` calls :func:`hold_in_channel_publish` for a declared sales channel: the same bulk
  rule judged per channel (:func:`channel_bulk_decision`), the updates of families the channel holds held under
  the channel's name (``bulk_content``). The nightly sends no categories to a channel, so there is no move to hold.
- ``reconcile.apply_deletions`` calls :func:`hold_deletions`: the planned disables and archives (a channel's
  disables too) are held (``deletion``).
- ``reference.apply_decision`` calls :func:`hold_taxonomy` after an approval: a proposal that changes the category
  table is left ``proposed`` and held (``taxonomy``).

The hot path never asks: stock, live prices and lifecycle status keep flowing through a freeze.

A held change is a ``held_change`` row (one per kind and record, a later hold replacing the change), an audit row
``held`` under the run that held it, and, for the hop, an ``unchanged`` count: nothing was lost, nothing was applied.

:func:`release` applies approved held changes through the code that holds them back: held storefront products are
re-read from the PIM and published by the nightly's own publish (as a replay does), a channel's through that
channel's publish (``replay._replay_channel``), with the records being released let through the hold; held
deletions go through the reconciliation's own disable, archive or channel disable (``reconcile.apply_for``); a held
taxonomy change through ``refdata.decide``. A record the target refuses is dead-lettered by that code, and its held
change is marked ``dead_lettered``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml
from sqlalchemy import func, select

from catalog_sync.engine.run import RunContext, json_safe
from catalog_sync.flows import steps
from catalog_sync.governance import freeze as calendar
from catalog_sync.governance.channels import Channel
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import ExternalId, HeldChange, RecordFingerprint, SyncRun

log = logging.getLogger(__name__)

FLOW: Final[str] = "freeze_release"
APPROVE, KEEP = "Approve", "Keep held"
#: The stage a release run puts the keys it releases in: the holds let exactly those through, in that run only.
RELEASING: Final[str] = "freeze:releasing"
#: The stage caching a publish's bulk decision, so every slice and every retry of the task judge alike.
BULK: Final[str] = "freeze:bulk"
THRESHOLDS: Final[Path] = Path(__file__).resolve().parents[1] / "quality" / "thresholds.yaml"
#: Where a release waits in Airflow (its Required actions page).
APPROVAL_PATH: Final[str] = "/dags/freeze_release/runs/{run_id}/tasks/approve_release/required_actions"
#: Held changes listed one by one in the approval's body (the rest are counted).
LISTED: Final[int] = 50


def bulk_limits(path: Path | None = None) -> tuple[float, int]:
    """``freeze.bulk_content_share`` and ``freeze.bulk_content_min_products`` of ``thresholds.yaml``."""
    with (path or THRESHOLDS).open(encoding="utf-8") as fh:
        section = (yaml.safe_load(fh) or {}).get("freeze") or {}
    share, least = float(section.get("bulk_content_share", 0.2)), int(section.get("bulk_content_min_products", 50))
    if not 0.0 < share <= 1.0 or least < 0:
        raise ValueError("thresholds.yaml: freeze.bulk_content_share is a share in (0, 1], "
                         "freeze.bulk_content_min_products a count >= 0")
    return share, least


# --- holding --------------------------------------------------------------------------------------------------


def _releasing(ctx: RunContext) -> set[str]:
    return {str(r["sku"]) for r in ctx.staged(RELEASING)}


def hold(ctx: RunContext, kind: str, system: str, entity: str, record_key: str, change: Mapping[str, Any],
         window: calendar.FreezeWindow) -> None:
    """Record one held change (replacing the change of a record already held for ``kind``) and audit it."""
    safe = json_safe(dict(change))
    with session_scope(ctx.hub_url) as s:
        row = s.scalars(select(HeldChange).where(
            HeldChange.kind == kind, HeldChange.system == system, HeldChange.entity == entity,
            HeldChange.record_key == record_key, HeldChange.status == "held")).first()
        if row is None:
            s.add(HeldChange(kind=kind, system=system, entity=entity, record_key=record_key, change=safe,
                             window=window.name, load_id=ctx.load_id, held_at=datetime.now(UTC), status="held"))
        else:
            row.change, row.window, row.load_id, row.held_at = safe, window.name, ctx.load_id, datetime.now(UTC)
    ctx.audit(system, entity, record_key, "write", "held",
              response={"message": f"held: freeze window {window.name} holds {kind.replace('_', ' ')}s"},
              changes=safe)


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return [str(t) for t in value or []]


def bulk_decision(ctx: RunContext, window: calendar.FreezeWindow | None) -> dict[str, Any]:
    """Whether this publish is a bulk content change: it would update more than ``bulk_content_share`` of the
    products the hub knows on the storefront, and at least ``bulk_content_min_products`` of them. Decided once
    per run (staged), from the whole publish plan."""
    cached = ctx.staged(BULK)
    if cached:
        return dict(cached[0])
    decision: dict[str, Any] = {"sku": "bulk", "held": False, "window": None, "updates": 0, "on_shop": 0}
    if window is not None:
        share, least = bulk_limits()
        planned = [str(p["sku"]) for page in ctx.iter_staged("publish_plan") for p in page]
        updates = len(steps.external_ids("storefront", "product", planned, ctx.hub_url)) if planned else 0
        with session_scope(ctx.hub_url) as s:
            on_shop = int(s.scalar(select(func.count()).select_from(ExternalId).where(
                ExternalId.system == "storefront", ExternalId.entity == "product")) or 0)
        held = updates >= least and on_shop > 0 and updates / on_shop > share
        decision.update(held=held, window=window.name if held else None, updates=updates, on_shop=on_shop,
                        share=round(updates / on_shop, 4) if on_shop else 0.0, limit=share)
    ctx.stage(BULK, [decision])
    return decision


def hold_in_publish(ctx: RunContext, outgoing: Sequence[tuple[Mapping[str, Any], dict[str, Any], str]],
                    shown: Mapping[str, Mapping[str, Any]], hop: str,
                    ) -> list[tuple[Mapping[str, Any], dict[str, Any], str]]:
    """The slice the nightly may write now: during a freeze holding ``bulk_content`` (and a bulk publish), the
    updates of products already on the shop are taken out and held; during one holding ``category_move``, a
    product on the shop keeps the shop's tags and the move is held. Held products taken out count unchanged on
    ``hop``. Records a release run is releasing pass as they are."""
    windows = calendar.active_windows(("category_move", "bulk_content"))
    if not windows:
        return list(outgoing)
    releasing = _releasing(ctx)
    bulk = bulk_decision(ctx, windows.get("bulk_content"))
    kept: list[tuple[Mapping[str, Any], dict[str, Any], str]] = []
    for fam, product, digest in outgoing:
        sku, was = str(fam["sku"]), shown.get(product["handle"])
        if was is None or sku in releasing:
            kept.append((fam, product, digest))
            continue
        if bulk["held"]:
            fields = {f: {"before": was.get(f), "after": product.get(f)}
                      for f in ("title", "body_html", "vendor", "product_type", "status", "tags")
                      if (_tags(was.get(f)) != _tags(product.get(f)) if f == "tags" else was.get(f) != product.get(f))}
            hold(ctx, "bulk_content", "storefront", "product", sku,
                 {"handle": product["handle"], "fields": fields, "updates": bulk["updates"],
                  "skus": [str(r["sku"]) for r in fam.get("rows") or []],
                  "on_shop": bulk["on_shop"]}, windows["bulk_content"])
            ctx.count(hop, unchanged=1)
            continue
        before, after = _tags(was.get("tags")), _tags(product.get("tags"))
        if "category_move" in windows and sorted(before) != sorted(after):
            hold(ctx, "category_move", "storefront", "product", sku,
                 {"handle": product["handle"], "field": "tags", "before": before, "after": after,
                  "skus": [str(r["sku"]) for r in fam.get("rows") or []]},
                 windows["category_move"])
            product = {**product, "tags": ", ".join(before)}
        kept.append((fam, product, digest))
    ctx.flush_audit()
    return kept


def channel_bulk_decision(ctx: RunContext, channel: Channel, window: calendar.FreezeWindow | None,
                          ) -> dict[str, Any]:
    """Whether this run's publish to the declared ``channel`` is a bulk content change: of the ready families the
    channel sells, those it already holds (a fingerprint under the channel's name) are more than
    ``bulk_content_share`` of every product the hub has delivered to it, and at least ``bulk_content_min_products``.
    The storefront's rule, judged per channel (each channel holds its own products); decided once per run and
    channel (staged), so every slice and every retry of the channel's task judge alike."""
    stage = f"{BULK}:{channel.name}"
    cached = ctx.staged(stage)
    if cached:
        return dict(cached[0])
    decision: dict[str, Any] = {"sku": "bulk", "held": False, "window": None, "updates": 0, "on_channel": 0}
    if window is not None:
        share, least = bulk_limits()
        planned = [str(fam["sku"]) for page in ctx.iter_staged("families_ready") for fam in page
                   if channel.sells_family(fam)]
        with session_scope(ctx.hub_url) as s:
            updates = len(repo.fingerprints(s, channel.name, "product", keys=planned)) if planned else 0
            on_channel = int(s.scalar(select(func.count()).select_from(RecordFingerprint).where(
                RecordFingerprint.system == channel.name, RecordFingerprint.entity == "product")) or 0)
        held = updates >= least and on_channel > 0 and updates / on_channel > share
        decision.update(held=held, window=window.name if held else None, updates=updates, on_channel=on_channel,
                        share=round(updates / on_channel, 4) if on_channel else 0.0, limit=share)
    ctx.stage(stage, [decision])
    return decision


def hold_in_channel_publish(ctx: RunContext, channel: Channel,
                            outgoing: Sequence[tuple[Mapping[str, Any], list[dict[str, Any]], str]],
                            ) -> list[tuple[Mapping[str, Any], list[dict[str, Any]], str]]:
    """The slice ``flows.channels`` may send to ``channel`` now: during a freeze holding ``bulk_content`` and a
    bulk publish to this channel (:func:`channel_bulk_decision`), the updates of families the channel already holds
    are taken out and held, one held change per family under the channel's name, its records counted unchanged on
    the channel's hop (not fingerprinted: the release sends them). New products go out; records a release run is
    releasing pass as they are."""
    window = calendar.active_windows(("bulk_content",)).get("bulk_content")
    if window is None or not outgoing:
        return list(outgoing)
    bulk = channel_bulk_decision(ctx, channel, window)
    if not bulk["held"]:
        return list(outgoing)
    releasing = _releasing(ctx)
    with session_scope(ctx.hub_url) as s:
        on_channel = repo.fingerprints(s, channel.name, "product", keys=[str(fam["sku"]) for fam, _, _ in outgoing])
    kept: list[tuple[Mapping[str, Any], list[dict[str, Any]], str]] = []
    for fam, shaped, digest in outgoing:
        sku = str(fam["sku"])
        if sku not in on_channel or sku in releasing:
            kept.append((fam, shaped, digest))
            continue
        hold(ctx, "bulk_content", channel.name, "product", sku,
             {"channel": channel.name, "skus": [str(r["sku"]) for r in shaped],
              "after": {str(r["sku"]): {f: r.get(f) for f in ("name", "lifecycle_status", "reference_price")}
                        for r in shaped},
              "updates": bulk["updates"], "on_channel": bulk["on_channel"]}, window)
        ctx.count(channel.hop, unchanged=len(shaped))
    ctx.flush_audit()
    return kept


def hold_deletions(ctx: RunContext, plan: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]],
                                                                              list[Mapping[str, Any]]]:
    """Split a deletion plan into what may be applied now and what a freeze holding ``deletion`` holds."""
    window = calendar.active_windows(("deletion",)).get("deletion")
    if window is None or not plan:
        return list(plan), []
    releasing = _releasing(ctx)
    go, held = [], []
    for p in plan:
        if f"{p['system']}:{p['sku']}" in releasing:
            go.append(p)
            continue
        hold(ctx, "deletion", str(p["system"]), "product", str(p["sku"]), dict(p), window)
        held.append(p)
    ctx.flush_audit()
    return go, held


def hold_taxonomy(ctx: RunContext, proposal_id: int, approved_by: str | None) -> bool:
    """Whether an approved proposal is held: it changes the category table during a freeze holding ``taxonomy``."""
    from catalog_sync.hub.models import ReferenceProposal

    window = calendar.active_windows(("taxonomy",)).get("taxonomy")
    if window is None:
        return False
    with session_scope(ctx.hub_url) as s:
        proposal = s.get(ReferenceProposal, proposal_id)
        category = dict(((proposal.diff if proposal is not None else None) or {}).get("category") or {})
    if not any(category.get(k) for k in ("added", "removed", "changed")):
        return False
    if f"proposal:{proposal_id}" in _releasing(ctx):
        return False
    hold(ctx, "taxonomy", "hub", "reference_proposal", str(proposal_id),
         {"proposal_id": proposal_id, "approved_by": approved_by, "category": category}, window)
    ctx.flush_audit()
    return True


# --- listing and releasing ------------------------------------------------------------------------------------


def held(hub_url: str | None = None, *, kinds: Sequence[str] | None = None,
         ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The changes held now (``ids`` among them), oldest first."""
    with session_scope(hub_url) as s:
        query = select(HeldChange).where(HeldChange.status == "held")
        if kinds:
            query = query.where(HeldChange.kind.in_(list(kinds)))
        if ids is not None:
            query = query.where(HeldChange.id.in_(list(ids)))
        return [_row(r) for r in s.scalars(query.order_by(HeldChange.id)).all()]


def _row(r: HeldChange) -> dict[str, Any]:
    return {c.name: getattr(r, c.name) for c in HeldChange.__table__.columns}


def describe(change: Mapping[str, Any]) -> str:
    """One held change in words."""
    c, key = change["change"], change["record_key"]
    if change["kind"] == "category_move":
        return f"`{key}` categories {c.get('before')} -> {c.get('after')}"
    if change["kind"] == "deletion":
        verb = {"pim": "disable in the PIM", "storefront": "archive on the storefront"}.get(
            change["system"], f"disable on {change['system']}")
        return f"`{key}` {verb} (deleted in the ERP)"
    if change["kind"] == "taxonomy":
        cat = c.get("category") or {}
        return (f"category table (proposal {key}, approved by {c.get('approved_by')}): "
                f"{len(cat.get('added') or [])} added, {len(cat.get('removed') or [])} removed, "
                f"{len(cat.get('changed') or [])} changed")
    if change["system"] != "storefront":
        return f"`{key}` content update on {change['system']} ({len(c.get('skus') or [])} SKU(s))"
    return f"`{key}` content update ({', '.join(sorted(c.get('fields') or {})) or 'fields'})"


def summary_markdown(changes: Sequence[Mapping[str, Any]]) -> str:
    """The approval's body: counts per kind and window, then the first ``LISTED`` changes."""
    if not changes:
        return "Nothing is held."
    per: dict[tuple[str, str], int] = {}
    for ch in changes:
        per[(ch["kind"], ch["window"])] = per.get((ch["kind"], ch["window"]), 0) + 1
    lines = [f"**{len(changes)} held change(s)** to apply now, through the flows that held them:", ""]
    lines += [f"- {n} {kind.replace('_', ' ')} held by window `{window}`" for (kind, window), n in sorted(per.items())]
    lines += ["", "| id | kind | change | held |", "| --- | --- | --- | --- |"]
    lines += [f"| {ch['id']} | {ch['kind']} | {describe(ch)} | {str(ch['held_at'])[:16]} |" for ch in changes[:LISTED]]
    if len(changes) > LISTED:
        lines.append(f"\n... and {len(changes) - LISTED} more (the Freeze windows page lists them all).")
    return "\n".join(lines)


def open_release(*, dag_id: str | None, run_id: str | None, kinds: Sequence[str] | None = None,
                 hub_url: str | None = None) -> dict[str, Any]:
    """Open a release run and list what is held now (those, and only those, are what an approval releases).
    With nothing held, the run is finished here."""
    ctx = RunContext.open(FLOW, load_id=steps.run_load_id(FLOW, run_id), dag_id=dag_id, run_id=run_id,
                          hub_url=hub_url)
    changes = held(hub_url, kinds=kinds)
    ctx.stage("freeze:listed", ({"id": str(ch["id"])} for ch in changes), key="id")
    out = {"load_id": ctx.load_id, "held": len(changes), "summary": summary_markdown(changes),
           "windows": [w.as_dict() for w in calendar.load_calendar().current()]}
    if not changes:
        ctx.finish(details={"released": [], "note": "nothing held"})
    return out


def release(load_id: str, response: Mapping[str, Any] | None, systems: Any) -> dict[str, Any]:
    """Apply the changes listed when the release run opened, if the person chose Approve; otherwise keep them held.

    ``response`` is the HITL operator's answer (``chosen_options``, ``responded_by_user``); no answer by the
    deadline keeps everything held."""
    ctx = RunContext.attach(load_id)
    ids = [int(r["id"]) for r in ctx.staged("freeze:listed")]
    chosen = list((response or {}).get("chosen_options") or [])
    user = (response or {}).get("responded_by_user") or None
    who = str(user.get("name") or user.get("id")) if isinstance(user, Mapping) else None
    changes = held(ctx.hub_url, ids=ids)
    if chosen != [APPROVE] or who is None:
        for ch in changes:
            ctx.audit(ch["system"], ch["entity"], ch["record_key"], "release", "kept_held",
                      changes={"held_change": ch["id"], "chosen_options": chosen, "by": who})
        ctx.flush_audit()
        ctx.finish(details={"released": [], "kept_held": [ch["id"] for ch in changes], "by": who})
        return {"load_id": load_id, "approved": False, "released": 0, "dead_lettered": 0,
                "kept_held": len(changes)}
    # one key per record: a product held on the storefront and on a channel is released on both by the one key
    ctx.stage(RELEASING, ({"sku": key} for key in sorted({_releasing_key(ch) for ch in changes})))
    outcome: dict[int, str] = {}
    shop = [ch for ch in changes if ch["kind"] in ("category_move", "bulk_content") and ch["system"] == "storefront"]
    if shop:
        outcome.update(_release_products(ctx, systems, shop))
    on_channels = [ch for ch in changes if ch["kind"] == "bulk_content" and ch["system"] != "storefront"]
    if on_channels:
        outcome.update(_release_channel_products(ctx, systems, on_channels))
    deletions = [ch for ch in changes if ch["kind"] == "deletion"]
    if deletions:
        outcome.update(_release_deletions(ctx, systems, deletions))
    for ch in (ch for ch in changes if ch["kind"] == "taxonomy"):
        outcome[ch["id"]] = _release_taxonomy(ctx, ch, who, systems)
    now = datetime.now(UTC)
    with session_scope(ctx.hub_url) as s:
        for row in s.scalars(select(HeldChange).where(HeldChange.id.in_(list(outcome)))).all():
            row.status, row.released_at, row.released_by, row.release_load_id = outcome[row.id], now, who, load_id
    for ch in changes:
        ctx.audit(ch["system"], ch["entity"], ch["record_key"], "release", outcome.get(ch["id"], "held"),
                  changes={"held_change": ch["id"], "by": who})
    ctx.flush_audit()
    released = [i for i, st in outcome.items() if st == "released"]
    failed = [i for i, st in outcome.items() if st == "dead_lettered"]
    ctx.finish(details={"released": released, "dead_lettered": failed, "by": who})
    return {"load_id": load_id, "approved": True, "released": len(released), "dead_lettered": len(failed),
            "superseded": sum(1 for st in outcome.values() if st == "superseded"), "kept_held": 0}


def _releasing_key(ch: Mapping[str, Any]) -> str:
    if ch["kind"] == "deletion":
        return f"{ch['system']}:{ch['record_key']}"
    if ch["kind"] == "taxonomy":
        return f"proposal:{ch['record_key']}"
    return str(ch["record_key"])


def _release_products(ctx: RunContext, systems: Any, changes: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Publish the held products' families again, re-read from the PIM, through the nightly's publish (the path a
    replay takes); the hold lets them through in this run."""
    from catalog_sync.flows import replay

    skus = sorted({str(ch["record_key"]) for ch in changes})
    replay._replay_storefront(ctx, systems, skus)
    delivered = {key for system, key in replay._delivered_keys(ctx.load_id, ctx.hub_url) if system == "storefront"}
    return {int(ch["id"]): "released" if ch["record_key"] in delivered else "dead_lettered" for ch in changes}


def _release_channel_products(ctx: RunContext, systems: Any, changes: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Send the held families again to the channel that held them, re-read from the PIM, through the channel's
    own publish (the path a channel replay takes: the business-rules gate, the channel's shaping, its fingerprints
    forgotten); the hold lets them through in this run. A channel down dead-letters them on its hop."""
    from catalog_sync.flows import replay

    out: dict[int, str] = {}
    for channel in sorted({str(ch["system"]) for ch in changes}):
        mine = [ch for ch in changes if ch["system"] == channel]
        if channel not in systems.channels:
            log.warning("no client for channel %s here: its %d held change(s) stay held", channel, len(mine))
            continue
        replay._replay_channel(ctx, systems, channel, sorted({str(ch["record_key"]) for ch in mine}))
        delivered = {key for system, key in replay._delivered_keys(ctx.load_id, ctx.hub_url) if system == channel}
        out.update({int(ch["id"]): "released" if set(ch["change"].get("skus") or [ch["record_key"]]) <= delivered
                    else "dead_lettered" for ch in mine})
    return out


def _release_deletions(ctx: RunContext, systems: Any, changes: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Apply held deletions through the weekly reconciliation's own disable and archive (and a channel's
    disable)."""
    from catalog_sync.flows import reconcile

    outcome: dict[str, Any] = {"disabled": [], "archived": [], "unchanged": [], "failed": []}
    for system in sorted({str(ch["system"]) for ch in changes}):
        plan = [dict(ch["change"]) for ch in changes if ch["system"] == system]
        counts = {"delivered": 0, "unchanged": 0, "dead_lettered": 0}
        reconcile.apply_for(system)(ctx, systems, plan, outcome, counts)
        ctx.count(reconcile.hop_of(system), read=len(plan), **counts)
    failed = set(outcome["failed"])
    return {int(ch["id"]): "dead_lettered" if f"{ch['system']}:{ch['record_key']}" in failed else "released"
            for ch in changes}


def _release_taxonomy(ctx: RunContext, change: Mapping[str, Any], who: str | None, systems: Any) -> str:
    """Apply a held category-table approval through the reference flow's own decision."""
    from catalog_sync import refdata
    from catalog_sync.flows import reference

    try:
        reference.apply_decision(ctx.load_id, int(change["record_key"]),
                                 {"chosen_options": [reference.APPROVE], "responded_by_user": {"name": who}},
                                 systems)
    except refdata.ProposalNotOpen:  # a later refresh superseded it: its own approval decides
        return "superseded"
    return "released"


# --- what the UI and the trace show ---------------------------------------------------------------------------


def overview(session: Any, limit: int = 200) -> dict[str, Any]:
    """The Freeze windows page: the calendar (active and upcoming windows, or its error), the changes held now
    and the latest releases, each waiting release linked to its Airflow approval."""
    try:
        cal = calendar.load_calendar()
        active, upcoming, error = cal.current(), cal.upcoming(), None
    except (calendar.FreezeCalendarError, OSError) as exc:
        active, upcoming, error = [], [], str(exc)
    rows = session.scalars(select(HeldChange).where(HeldChange.status == "held").order_by(HeldChange.id)
                           .limit(limit)).all()
    total = int(session.scalar(select(func.count()).select_from(HeldChange).where(HeldChange.status == "held")) or 0)
    done = session.scalars(select(HeldChange).where(HeldChange.status != "held")
                           .order_by(HeldChange.released_at.desc(), HeldChange.id.desc()).limit(20)).all()
    waiting = session.execute(select(SyncRun.run_id).where(SyncRun.flow == FLOW, SyncRun.status == "running")
                              .order_by(SyncRun.started_at.desc()).limit(1)).scalar()
    held_rows = [{**_row(r), "what": describe(_row(r))} for r in rows]
    per_kind: dict[str, int] = {}
    for r in held_rows:
        per_kind[r["kind"]] = per_kind.get(r["kind"], 0) + 1
    return {"active": [w.as_dict() for w in active], "upcoming": [w.as_dict() for w in upcoming[:5]],
            "calendar_error": error, "calendar_path": str(calendar.calendar_path()), "held": held_rows,
            "held_total": total, "per_kind": per_kind,
            "released": [{**_row(r), "what": describe(_row(r))} for r in done],
            "approval_path": APPROVAL_PATH.format(run_id=waiting) if waiting else None}


def held_for_sku(sku: str, hub_url: str | None = None) -> list[dict[str, Any]]:
    """The changes held now for ``sku`` (a product's own, or its family's: a variant's category moves with its
    parent), for the SKU trace."""
    with session_scope(hub_url) as s:
        rows = s.scalars(select(HeldChange).where(HeldChange.status == "held").order_by(HeldChange.id)).all()
        out = []
        for r in rows:
            row = _row(r)
            if r.record_key == sku or sku in (row["change"].get("skus") or []):
                out.append(json_safe({**row, "what": describe(row)}))
        return out
