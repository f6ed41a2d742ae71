"""Seasonal republish: triage every SKU of a season's scope along the lifecycle chain, then (unless a dry run)
repair what the operator allowed and republish in one coordinated pass.

Steps, each an Airflow task of ``dags/seasonal_republish.py`` (and callable in-process through ``run``):

1. ``open_run``: register the run; the scope and the allowed repairs are staged with it.
2. ``triage``: read each SKU and variant in scope from every system and walk the chain of ``catalog_sync.trace``
   (ERP lifecycle, DAM assets, PIM against ERP, storefront feed, shopper page, supplier write-back). Nothing
   is written to any system.
3. ``repair`` (skipped on a dry run), in the order the lifecycle signal travels, each phase re-reading the systems
   so it acts on what the previous phase left: the ERP lifecycle (only with ``activate_erp``: the ERP owns it),
   DAM dates and links, stale supplier submissions quarantined; then the PIM brought in line with the ERP (state,
   enabled, asset links); then the storefront product republished (status from the ERP, title from the PIM, the
   gallery the nightly would publish: :func:`family_gallery`) and its page purged from the CDN's cache.
4. ``verify``: read everything again, check the live page for the lead (seasonal) image, store one ``diagnosis``
   row per SKU (first broken link, findings, actions, dry run, and the SKU's launch runbook: each link of the
   chain with what was wrong, what was changed by which repair, what holds now and what is left to do by hand,
   ``catalog_sync.flows.runbook``) and account for each SKU on the ``triage`` hop:
   delivered when it was repaired and now holds, unchanged when nothing needed fixing (or on a dry run),
   dead-lettered when a repair failed, was not allowed, or the SKU is still broken.
5. ``finish``: close the run; the hop's counters must reconcile.

Invariant: a dry run writes to no external system; the hub gets its diagnosis rows, audit and counters only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select

from catalog_sync.connectors import ConnectorError, Outcome, WriteResult
from catalog_sync.connectors.mapping import akeneo_asset_links, category_code, lifecycle_option_code
from catalog_sync.domain import LifecycleStatus
from catalog_sync.engine.run import RunContext, chunked, json_safe
from catalog_sync.flows import cold, runbook, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.governance.loops import held_fields
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import Diagnosis, utcnow
from catalog_sync.showable import ROLE_ORDER, storefront_images, storefront_region
from catalog_sync.trace import (
    LINK_SYSTEM,
    REPAIRS,
    Finding,
    Reader,
    SkuState,
    eligible,
    evaluate,
    expected_storefront_status,
    explain,
    parse_ts,
    read_sku,
    rendition,
)

log = logging.getLogger(__name__)

FLOW = "seasonal_republish"
#: Every SKU in scope is read once and ends delivered, unchanged or dead-lettered on this hop.
HOP = "triage"
#: Lifecycle states a seasonal push may lift to active. A discontinued item stays discontinued: bringing one
#: back is a buying decision for the ERP's owners, not something a republish should do on the side.
ACTIVATABLE: Final[frozenset[str]] = frozenset({LifecycleStatus.DRAFT.value, LifecycleStatus.PRE_ACTIVE.value,
                                                LifecycleStatus.SEASONAL_HOLD.value})
_PARAMS_STAGE = "_params"


class ScopeError(ValueError):
    """The run was given nothing to work on, or a repair name it does not know."""


# --- parameters and scope ---------------------------------------------------------------------------------------


def normalise_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's parameters with defaults: a dry run that may, if asked, make every repair."""
    params = dict(params or {})
    repairs = params.get("repairs")
    repairs = list(REPAIRS) if repairs is None else [str(r) for r in repairs]
    unknown = sorted(set(repairs) - set(REPAIRS))
    if unknown:
        raise ScopeError(f"unknown repair(s) {unknown}; choose from {list(REPAIRS)}")

    def strings(value: Any) -> list[str]:
        if value in (None, ""):
            return []
        items = [value] if isinstance(value, str) else list(value)
        return sorted({str(v).strip() for v in items if str(v).strip()})

    skus, categories = strings(params.get("skus")), strings(params.get("categories"))
    if not skus and not categories:
        # A whole-catalog sweep is ~10 calls per SKU: it must be asked for by category, never happen by default.
        raise ScopeError("name the SKUs or the categories of the season to republish")
    dry_run = params.get("dry_run", True)
    channels = params.get("channels", True)
    return {"season": str(params.get("season") or "").strip(), "skus": skus, "categories": categories,
            "dry_run": dry_run if isinstance(dry_run, bool) else str(dry_run).lower() not in ("false", "0", "no"),
            "repairs": [r for r in REPAIRS if r in repairs],
            "channels": channels if isinstance(channels, bool) else str(channels).lower() not in ("false", "0", "no")}


def resolve_scope(systems: Systems, skus: Sequence[str], categories: Sequence[str]) -> list[str]:
    """Every SKU and variant in scope: named SKUs (a parent brings its variants) and the members of categories."""
    wanted: set[str] = set()
    parents: set[str] = set()
    for sku in skus:
        wanted.add(sku)
        if systems.pim.get_product_model(sku) is not None:
            parents.add(sku)
    codes = {category_code(c) for c in categories} | set(categories)
    if codes:
        for page in systems.pim.iter_product_models():
            for model in page.records:
                if codes & set(model.get("categories") or []):
                    wanted.add(str(model["code"]))
                    parents.add(str(model["code"]))
        for page in systems.pim.iter_products():
            for product in page.records:
                # the nightly's parent stubs carry no family: they are the parent's link holders, not products
                if product.get("family") and codes & set(product.get("categories") or []):
                    wanted.add(str(product["identifier"]))
    for batch in chunked(sorted(parents), 100):
        for page in systems.pim.iter_products(search={"parent": [{"operator": "IN", "value": list(batch)}]}):
            wanted.update(str(p["identifier"]) for p in page.records)
    return sorted(wanted)


def _params(ctx: RunContext) -> dict[str, Any]:
    staged = ctx.staged(_PARAMS_STAGE)
    if not staged:
        raise LookupError(f"run {ctx.load_id} has no staged parameters; was it opened by republish.open_run?")
    return dict(staged[0]["params"])


def _launch_time(ctx: RunContext) -> datetime:
    """The run's frozen launch instant: DAM dates are brought forward to it, so a retried task writes the same."""
    with session_scope(ctx.hub_url) as s:
        run = repo.get_run(s, ctx.load_id)
    end = (run or {}).get("window_end") or datetime.now(UTC)
    return end if end.tzinfo else end.replace(tzinfo=UTC)


# --- 1. open ----------------------------------------------------------------------------------------------------


def open_run(params: Mapping[str, Any] | None, *, dag_id: str | None = None, run_id: str | None = None,
             hub_url: str | None = None) -> str:
    """Register the run with its validated parameters; returns the load id."""
    clean = normalise_params(params)
    now = datetime.now(UTC)
    ctx = RunContext.open(FLOW, load_id=steps.run_load_id(FLOW, run_id), dag_id=dag_id, run_id=run_id,
                          window_start=now, window_end=now, hub_url=hub_url)
    ctx.stage(_PARAMS_STAGE, [{"key": "params", "params": clean}], key="key")
    return ctx.load_id


# --- 2. triage --------------------------------------------------------------------------------------------------


def _diagnose(state: SkuState, now: datetime) -> dict[str, Any]:
    findings = evaluate(state, now)
    if not state.known:
        findings["erp_lifecycle"] = [Finding("erp_lifecycle", "no system knows this SKU", None, state.sku)]
    flat = [f.as_dict() for link in findings for f in findings[link]]
    broken = next((link for link, found in findings.items() if found), None)
    return {"sku": state.sku, "root_sku": state.root_sku, "handle": state.handle, "broken_link": broken,
            "findings": flat}


def triage(load_id: str, systems: Systems, hub_url: str | None = None) -> dict[str, Any]:
    """Walk the chain for every SKU in scope and stage what was found; writes to no external system."""
    ctx = RunContext.attach(load_id, hub_url)
    params = _params(ctx)
    scope = resolve_scope(systems, params["skus"], params["categories"])
    reader = Reader(systems)
    diagnoses = []
    for sku in scope:
        started = utcnow()
        diagnosis = _diagnose(read_sku(reader, sku), reader.now)
        diagnoses.append(diagnosis)
        ctx.audit("hub", "triage", sku, "read", "ok", started_at=started,
                  response={"broken_link": diagnosis["broken_link"], "findings": len(diagnosis["findings"])})
    ctx.count(HOP, read=len(diagnoses))
    ctx.stage("triage", diagnoses)
    ctx.flush_audit()
    by_link: dict[str, int] = defaultdict(int)
    for d in diagnoses:
        if d["broken_link"]:
            by_link[d["broken_link"]] += 1
    return {"season": params["season"], "skus": len(diagnoses), "broken": dict(by_link),
            "dry_run": params["dry_run"]}


def is_dry_run(load_id: str, hub_url: str | None = None) -> bool:
    return bool(_params(RunContext.attach(load_id, hub_url))["dry_run"])


# --- 3. repair and republish ------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Actions:
    """What the repair phases did, by (repair, target); handed to each SKU whose findings asked for it."""

    done: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)

    def note(self, repair: str, target: str, system: str, status: str, detail: str) -> None:
        self.done[(repair, target)] = {"repair": repair, "target": target, "system": system, "status": status,
                                       "detail": detail}


def _write(ctx: RunContext, actions: _Actions, repair: str, system: str, entity: str, key: str,
           result: WriteResult, before: Mapping[str, Any], after: Mapping[str, Any], target: str | None = None) -> bool:
    """Audit one repairing write, log its field deltas, and note the action; True when the system took it."""
    changes = None
    if result.outcome is Outcome.OK:
        changes = ctx.record_deltas(system, entity, key, dict(before), dict(after), source=FLOW)
    outcome = {Outcome.OK: "ok", Outcome.UNCHANGED: "unchanged", Outcome.FAILED: "error"}[result.outcome]
    ctx.audit(system, entity, key, "write", outcome, request=result.sent,
              response={"status": result.status, "message": result.message}, changes=changes)
    status = {"ok": "done", "unchanged": "unchanged", "error": "failed"}[outcome]
    detail = result.message or ", ".join(f"{f}: {d['before']} -> {d['after']}" for f, d in (changes or {}).items())
    actions.note(repair, target or key, system, status, detail or "already as wanted")
    return result.ok


def _failed(key: str, exc: ConnectorError, sent: Any = None) -> WriteResult:
    return WriteResult.failure(key, exc, sent)


def _phase_sources(ctx: RunContext, systems: Systems, diagnoses: Sequence[Mapping[str, Any]],
                   allowed: set[str], launch: datetime, actions: _Actions) -> None:
    """ERP lifecycle, DAM dates and tags, supplier quarantine: the sources every later phase reads from."""
    wanted: dict[str, set[tuple[str, str]]] = defaultdict(set)  # repair -> {(target, sku)}
    for d in diagnoses:
        for f in d["findings"]:
            if f["repair"] in ("activate_erp", "dam_dates", "dam_links", "supplier_quarantine"):
                wanted[f["repair"]].add((f["target"], d["sku"]))
    for repair in ("activate_erp", "dam_dates", "dam_links", "supplier_quarantine"):
        if repair not in allowed:
            for target, _sku in wanted[repair]:
                actions.note(repair, target, "", "not_allowed", f"repair {repair} was not allowed for this run")
    if "activate_erp" in allowed:
        for target in sorted({t for t, _ in wanted["activate_erp"]}):
            item = systems.erp.get_item(target)
            current = (item or {}).get("lifecycle_status")
            if item is None or current not in ACTIVATABLE:
                actions.note("activate_erp", target, "erp", "refused",
                             f"ERP lifecycle {current} is not lifted by a seasonal push" if item else "not in the ERP")
                continue
            payload = {"sku": target, "lifecycle_status": LifecycleStatus.ACTIVE.value}
            try:
                result = systems.erp.put_item(payload)
            except ConnectorError as exc:
                result = _failed(target, exc, payload)
            _write(ctx, actions, "activate_erp", "erp", "product", target, result,
                   {"lifecycle_status": current}, {"lifecycle_status": LifecycleStatus.ACTIVE.value})
    if "dam_dates" in allowed:
        for target in sorted({t for t, _ in wanted["dam_dates"]}):
            asset = systems.dam.get_asset(target) or {}
            fields = {"valid_from": launch.isoformat()}
            try:
                result = systems.dam.update_asset(target, fields)
            except ConnectorError as exc:
                result = _failed(target, exc, fields)
            _write(ctx, actions, "dam_dates", "dam", "asset", target, result,
                   {"valid_from": asset.get("valid_from")}, fields)
    if "dam_links" in allowed:
        for target, sku in sorted(wanted["dam_links"]):
            linked = systems.dam.get_asset(target)
            if linked is None or linked.get("sku") is not None:
                continue  # a missing or re-assigned asset is fixed on the PIM side (its link dropped)
            # An orphan the PIM still links to this SKU: tag it back, the PIM record is its last known owner.
            fields = {"sku": sku}
            try:
                result = systems.dam.update_asset(target, fields)
            except ConnectorError as exc:
                result = _failed(target, exc, fields)
            _write(ctx, actions, "dam_links", "dam", "asset", target, result, {"sku": None}, fields)
    if "supplier_quarantine" in allowed:
        for target, sku in sorted(wanted["supplier_quarantine"]):
            sub = systems.supplier.get_submission(target) or {}
            reason = (f"lifecycle flag {sub.get('lifecycle_flag')!r} contradicts the ERP (active); the ERP owns "
                      "lifecycle_status, so this submission is held for review")
            try:
                result = systems.supplier.decide(target, "quarantined", reason)
            except ConnectorError as exc:
                result = _failed(target, exc, {"status": "quarantined", "reason": reason})
            if _write(ctx, actions, "supplier_quarantine", "supplier", "submission", target, result,
                      {"status": sub.get("status")}, {"status": "quarantined"}):
                ctx.dead_letter([{
                    "entity": "submission", "record_key": sku, "source_system": "supplier", "target_system": "pim",
                    "reason_kind": "ownership", "expectation": "lifecycle_status", "reason": reason,
                    "payload": {"submission": json_safe(sub)},
                }], hop=None)  # a finding about a SKU counted on the triage hop, not a lost record
    ctx.flush_audit()


def _phase_pim(ctx: RunContext, systems: Systems, scope: Sequence[str], allowed: set[str],
               actions: _Actions) -> None:
    """The PIM brought in line with the ERP (lifecycle, enabled) and with the DAM (asset links)."""
    reader = Reader(systems)
    for sku in scope:
        state = read_sku(reader, sku)
        findings = evaluate(state, reader.now)
        if findings["pim_vs_erp"] and state.erp is not None:
            if "pim_state" not in allowed:
                actions.note("pim_state", sku, "pim", "not_allowed", "repair pim_state was not allowed for this run")
            else:
                _align_pim_state(ctx, systems, state, actions)
        link_fixes = [f for f in findings["dam_assets"] if f.repair == "dam_links"]
        if link_fixes:
            if "dam_links" not in allowed:
                for f in link_fixes:
                    actions.note("dam_links", f.target, "pim", "not_allowed", "repair dam_links was not allowed")
            else:
                _align_links(ctx, systems, state, reader.now, actions)
    ctx.flush_audit()


def _align_pim_state(ctx: RunContext, systems: Systems, state: SkuState, actions: _Actions) -> None:
    lifecycle = str((state.erp or {}).get("lifecycle_status"))
    (allowed,) = steps.check_ownership(ctx, [{"sku": state.sku, "lifecycle_status": lifecycle}], writer="erp",
                                       target="pim", hop=HOP)
    if "lifecycle_status" not in allowed:
        actions.note("pim_state", state.sku, "pim", "refused",
                     "the ownership rules refuse this write, or lifecycle_status is held in a write-back loop")
        return
    values = {"lifecycle_status": [{"locale": None, "scope": None, "data": lifecycle_option_code(lifecycle)}]}
    before: dict[str, Any] = {"lifecycle_status": (state.pim or {}).get("lifecycle_status")}
    after: dict[str, Any] = {"lifecycle_status": lifecycle}
    try:
        if state.pim_kind == "product_model":
            (result,) = systems.pim.upsert_product_models([{"code": state.sku, "values": values}])
        else:
            enabled = lifecycle == LifecycleStatus.ACTIVE.value  # only an active item is sellable, so enabled
            before["enabled"], after["enabled"] = state.pim_enabled, enabled
            (result,) = systems.pim.upsert_products([{"identifier": state.sku, "enabled": enabled,
                                                       "values": values}])
    except ConnectorError as exc:
        result = _failed(state.sku, exc, values)
    _write(ctx, actions, "pim_state", "pim", "product", state.sku, result, before, after)


def _embargoed_lead(asset: Mapping[str, Any], now: datetime) -> bool:
    """A lead image (seasonal, hero) waiting for its window: the dam_dates repair decides about it, not unlinking."""
    start = parse_ts(asset.get("valid_from"))
    return asset.get("role") in {"seasonal", "hero"} and start is not None and start > now


def _align_links(ctx: RunContext, systems: Systems, state: SkuState, now: datetime, actions: _Actions) -> None:
    by_id = {str(a.get("id")): a for a in state.assets}
    # a link stays while its asset is this SKU's (or lost its SKU: the orphan repair is the DAM's) and showable
    keep = [aid for aid in state.pim_links
            if not by_id.get(aid, {}).get("missing") and by_id.get(aid, {}).get("sku") in (state.sku, None)
            and (aid not in by_id or eligible(by_id[aid], now) or _embargoed_lead(by_id[aid], now))]
    add = [str(a.get("id")) for a in state.eligible_assets(now) if str(a.get("id")) not in keep]
    # the one gallery order (catalog_sync.showable), as the nightly links and publishes
    links = sorted(keep + add, key=lambda aid: (ROLE_ORDER.get(str(by_id.get(aid, {}).get("role") or ""), 9), aid))
    if links == state.pim_links:
        return
    letter = held_fields("pim", "product", ctx.hub_url).get(state.sku, {})
    if "asset_links" in letter:
        actions.note("dam_links", state.sku, "pim", "refused", "asset_links is held in a write-back loop (dead "
                     f"letter {letter['asset_links']}); release it on the Dead letters page first")
        return
    # As the nightly does: a parent's links go to its product model, a product's to the product (a parent's code
    # sent to the products endpoint would create a stray family-less product beside the model).
    models = {state.sku} if state.pim_kind == "product_model" else set()
    try:
        (result,) = cold.write_asset_links(systems, {state.sku: links}, models)
    except ConnectorError as exc:
        result = _failed(state.sku, exc, {"asset_links": akeneo_asset_links(links)})
    _write(ctx, actions, "dam_links", "pim", "product", state.sku, result, {"asset_links": state.pim_links},
           {"asset_links": links})
    for f in [*add, *(set(state.pim_links) - set(keep))]:
        actions.done.setdefault(("dam_links", f), actions.done[("dam_links", state.sku)])


def _phase_storefront(ctx: RunContext, systems: Systems, scope: Sequence[str], allowed: set[str],
                      actions: _Actions) -> None:
    """Republish each family whose storefront product disagrees, then purge the pages shoppers would get stale."""
    reader = Reader(systems)
    states = [read_sku(reader, sku) for sku in scope]
    families: dict[str, list[SkuState]] = defaultdict(list)
    purge: set[str] = set()
    for state in states:
        findings = evaluate(state, reader.now)
        if findings["storefront_feed"]:
            families[state.root_sku].append(state)
        if findings["shopper_page"] and state.handle:
            purge.add(state.handle)
    for root, members in sorted(families.items()):
        if "storefront" not in allowed:
            actions.note("storefront", root, "storefront", "not_allowed", "repair storefront was not allowed")
            continue
        handle = _republish(ctx, systems, members, reader.now, actions)
        if handle:
            purge.add(handle)
    if purge:
        if "cache" not in allowed:
            for handle in sorted(purge):
                actions.note("cache", handle, "cdn", "not_allowed", "repair cache was not allowed")
        else:
            # The CDN's copy of each page, not the storefront, is what shoppers were served stale.
            outcomes = steps.purge_pages(ctx, systems, {handle: handle for handle in sorted(purge)}, hop=None)
            for handle, (outcome, detail) in outcomes.items():
                actions.note("cache", handle, "cdn", _PURGE_STATUS[outcome], detail)
    ctx.flush_audit()


#: A page purge's outcome (``steps.purge_pages``) as the status of the ``cache`` repair.
_PURGE_STATUS: Final[dict[str, str]] = {"purged": "done", "skipped": "skipped", "failed": "failed"}


def _republish(ctx: RunContext, systems: Systems, members: Sequence[SkuState], now: datetime,
               actions: _Actions) -> str | None:
    """Write one family's storefront product (status from the ERP, title from the PIM, approved images)."""
    head = members[0]
    root = head.root_sku
    status = expected_storefront_status(head)
    shop = head.storefront
    known = {rendition(a): a for m in members for a in m.assets if rendition(a)}
    wanted = [rendition(a) for m in members for a in m.eligible_assets(now) if str(a.get("id")) in set(m.pim_links)]
    if shop is None:
        if status != "active" or head.root_pim is None:
            actions.note("storefront", root, "storefront", "refused", "nothing the PIM may publish for this family")
            return None
        from catalog_sync.flows.cold import is_fixed_bundle, kit_refusal

        refusal = kit_refusal(head.root_pim) or (
            "fixed-price bundle: the nightly publishes it as a Shopify product fixed bundle of its components; a "
            "republish never creates one as a simple product" if is_fixed_bundle(head.root_pim) else None)
        if refusal is not None:  # a kit is never republished as a simple product, as the nightly never publishes it
            actions.note("storefront", root, "storefront", "refused", refusal)
            return None
        product = _new_product(systems, root, wanted, known)
        before: dict[str, Any] = {"status": None, "title": None}
        image_before: list[str] = []
    else:
        current = [str(i.get("src")) for i in shop.get("images") or []]
        gallery = family_gallery(systems, root, now)
        if gallery is None:  # no family in the PIM to build it from: only what the rule hides comes down
            kept = [src for src in current if src not in known or eligible(known[src], now)]
            gallery = [{"src": src, "alt": (known.get(src) or {}).get("filename"), "position": i}
                       for i, src in enumerate(kept, start=1)]
        product = {"handle": shop["handle"], "status": status or shop.get("status"),
                   "title": (head.root_pim or {}).get("name") or shop.get("title"), "images": gallery}
        before = {"status": shop.get("status"), "title": shop.get("title")}
        image_before = current
    try:
        result = dataclasses.replace(systems.storefront.upsert_product(product), key=root)
    except ConnectorError as exc:
        result = _failed(root, exc, product)
    ok = _write(ctx, actions, "storefront", "storefront", "product", root, result, before,
                {"status": product.get("status"), "title": product.get("title")})
    if result.outcome is Outcome.OK:
        ctx.record_deltas("storefront", "images", root, {"images": image_before},
                          {"images": [i["src"] for i in product.get("images") or []]})
        if result.response and result.message == "created":
            steps.save_external_ids("storefront", "product", {root: (str(result.response["id"]), {
                "handle": result.response.get("handle"), "status": result.response.get("status")})}, ctx.hub_url)
    return str(product["handle"]) if ok else None


def family_gallery(systems: Systems, root: str, now: datetime) -> list[dict[str, Any]] | None:
    """The storefront gallery of ``root``'s family as the nightly publishes it: its PIM asset links, the DAM's
    current assets, the one rule and order (``showable.storefront_images``). None when the PIM has no such family,
    or one of its linked assets cannot be read (the nightly leaves such a gallery as it is, and so does this)."""
    families = cold._families(systems, [root])
    if not families:
        return None
    ids = cold.family_asset_ids(families[0])
    assets, malformed = systems.dam.get_assets(ids)
    if malformed:
        return None
    return storefront_images([assets[aid] for aid in ids if aid in assets], now, storefront_region())


def _new_product(systems: Systems, root: str, srcs: Sequence[str | None],
                 known: Mapping[str | None, Mapping[str, Any]]) -> dict[str, Any]:
    """A storefront product for a family the storefront never had, built as the nightly builds it."""
    from catalog_sync.connectors.mapping import canonical_to_shopify_product
    from catalog_sync.flows.cold import _families, _stocked_unshipped

    (family,) = _families(systems, [root])
    parent = {**family["parent"], "lifecycle_status": LifecycleStatus.ACTIVE.value}
    assets = [dict(known[s]) for s in srcs if s in known]
    return canonical_to_shopify_product(parent, family["rows"], images=assets,
                                        stocked=_stocked_unshipped(systems, [family]))


def repair(load_id: str, systems: Systems, hub_url: str | None = None) -> dict[str, Any]:
    """The allowed repairs and the coordinated republish; a dry run returns at once and writes nothing."""
    ctx = RunContext.attach(load_id, hub_url)
    params = _params(ctx)
    if params["dry_run"]:
        return {"skipped": "dry run"}
    allowed = set(params["repairs"])
    diagnoses = ctx.staged("triage")
    broken = [d for d in diagnoses if d["broken_link"]]
    actions = _Actions()
    _phase_sources(ctx, systems, broken, allowed, _launch_time(ctx), actions)
    scope = [d["sku"] for d in broken]
    _phase_pim(ctx, systems, scope, allowed, actions)
    _phase_storefront(ctx, systems, scope, allowed, actions)
    ctx.stage("actions", [{"key": f"{r}|{t}", **a} for (r, t), a in sorted(actions.done.items())], key="key")
    tally: dict[str, int] = defaultdict(int)
    for a in actions.done.values():
        tally[a["status"]] += 1
    families = _stage_channel_families(ctx, systems, diagnoses, allowed, bool(params.get("channels", True)))
    return {"skus": len(broken), "actions": dict(tally), "channel_families": families}


# --- 3b. the other sales channels -------------------------------------------------------------------------------

#: The stage of the families every declared channel is sent again (``families_ready``, the gate's output).
_CHANNELS_PLANNED = "channels:planned"


def _stage_channel_families(ctx: RunContext, systems: Systems, diagnoses: Sequence[Mapping[str, Any]],
                            allowed: set[str], wanted: bool) -> int:
    """After the storefront's repair, stage the families of every SKU in scope for the declared channels, re-read
    from the PIM (so the repairs above count) and through the nightly's business-rules gate, as a channel replay
    does. Done when the run may republish (``storefront`` allowed) and the ``channels`` parameter is on; the
    families the gate refuses are dead-lettered on the storefront hop as in a replay, the rest counted unchanged
    there (this step does not write to the storefront)."""
    roots = sorted({str(d["root_sku"] or d["sku"]) for d in diagnoses})
    if not wanted or "storefront" not in allowed or not roots:
        ctx.stage(_CHANNELS_PLANNED, [{"key": "planned", "planned": False}], key="key")
        return 0
    ready = cold.restage_families(ctx, systems, roots)
    ctx.count(cold.PIM_STOREFRONT, unchanged=ready)  # this step does not write to the storefront
    ctx.stage(_CHANNELS_PLANNED, [{"key": "planned", "planned": True}], key="key")
    return ready


def republish_channel(load_id: str, channel_name: str, systems: Systems, hub_url: str | None = None,
                      ) -> dict[str, Any]:
    """Send the staged families the declared channel ``channel_name`` sells to it again through its nightly
    publish (``flows.channels.publish_channel``: its shaping, its hop, its outage isolation), after forgetting the
    channel's fingerprints of those families so they are sent even when unchanged. Each family's result is staged
    for ``verify`` as an action of repair ``channel``. A channel down dead-letters its records on its own hop; the
    storefront's repair and this run go on."""
    from sqlalchemy import update

    from catalog_sync.flows.channels import publish_channel
    from catalog_sync.governance.channels import load_channels
    from catalog_sync.hub.models import DeadLetter, HeldChange, RecordFingerprint

    ctx = RunContext.attach(load_id, hub_url)
    planned = ctx.staged(_CHANNELS_PLANNED)
    channel = load_channels().channel(channel_name)
    if not planned or not planned[0].get("planned") or not channel.enabled:
        return {"channel": channel_name, "skipped": "no channel republish in this run"}
    sold = [fam for page in ctx.iter_staged("families_ready") for fam in page if channel.sells_family(fam)]
    roots = sorted(str(fam["sku"]) for fam in sold)
    client = systems.channels.get(channel.name)
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"channel": channel.name, "families": len(roots)}
    if client is None:
        detail = f"no client for {channel.name} here: configure its connection {channel.connection_id}"
        rows = [{"key": f"{channel.name}|{root}", "root": root, "status": "not_sent", "detail": detail}
                for root in roots]
        result["down"] = detail
    elif roots:
        with session_scope(ctx.hub_url) as s:
            # forgotten, not deleted: a hash no content has makes the publish send the family again, while the
            # hub still knows the channel holds it (a freeze's bulk rule counts what the channel holds)
            s.execute(update(RecordFingerprint).where(RecordFingerprint.system == channel.name,
                                                      RecordFingerprint.entity == "product",
                                                      RecordFingerprint.record_key.in_(roots))
                      .values(content_hash="forgotten by a republish"))
        result.update(publish_channel(load_id, channel.name, systems, client))
        with session_scope(ctx.hub_url) as s:
            refused = {str(key): str(reason) for key, reason in s.execute(
                select(DeadLetter.record_key, DeadLetter.reason).where(
                    DeadLetter.load_id == load_id, DeadLetter.target_system == channel.name))}
            # a freeze holding bulk content changes holds a bulk republish to the channel as it holds the nightly's
            frozen = {str(k): str(w) for k, w in s.execute(select(HeldChange.record_key, HeldChange.window).where(
                HeldChange.load_id == load_id, HeldChange.system == channel.name, HeldChange.status == "held"))}
        for fam in sold:
            skus = [str(r["sku"]) for r in [fam["parent"], *fam["rows"]]]
            failed = [sku for sku in skus if sku in refused]
            status = "held" if str(fam["sku"]) in frozen else "dead_lettered" if failed else "published"
            detail = (f"held by freeze window {frozen[str(fam['sku'])]} until freeze_release" if status == "held"
                      else "; ".join(f"{sku}: {refused[sku]}" for sku in failed[:3])
                      or f"{len(skus)} SKU(s) sent to {channel.name}")
            rows.append({"key": f"{channel.name}|{fam['sku']}", "root": str(fam["sku"]), "status": status,
                         "detail": detail})
    ctx.stage(f"channel_actions:{channel.name}", rows, key="key")
    return result


def _channel_actions(ctx: RunContext) -> dict[str, list[dict[str, Any]]]:
    """Each family root's channel results (repair ``channel``, target ``<channel>:<root>``), for ``verify``."""
    from catalog_sync.governance.channels import load_channels

    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for channel in load_channels().enabled():
        for row in ctx.staged(f"channel_actions:{channel.name}"):
            out[str(row["root"])].append({"repair": "channel", "target": f"{channel.name}:{row['root']}",
                                          "system": channel.name, "status": row["status"],
                                          "detail": row["detail"]})
    return out


# --- 4. verify --------------------------------------------------------------------------------------------------


def _actions_for(diagnosis: Mapping[str, Any], actions: Mapping[tuple[str, str], dict[str, Any]],
                 handle: str | None) -> list[dict[str, Any]]:
    """The actions taken on a SKU's behalf: those its findings asked for, plus its family's republish and purge."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    sku, root = diagnosis["sku"], diagnosis["root_sku"]
    for f in diagnosis["findings"]:
        if f["repair"] and (f["repair"], f["target"]) in actions:
            out[(f["repair"], f["target"])] = actions[(f["repair"], f["target"])]
    for key in (("pim_state", sku), ("dam_links", sku), ("storefront", root), ("cache", handle or "")):
        if key in actions:
            out[key] = actions[key]
    return list(out.values())


def verify(load_id: str, systems: Systems, hub_url: str | None = None) -> dict[str, Any]:
    """Read every SKU again, store its diagnosis, and account for it on the triage hop."""
    ctx = RunContext.attach(load_id, hub_url)
    params = _params(ctx)
    dry_run = bool(params["dry_run"])
    diagnoses = ctx.staged("triage")
    actions = {(a["repair"], a["target"]): {k: a[k] for k in ("repair", "target", "system", "status", "detail")}
               for a in ctx.staged("actions")}
    reader = Reader(systems)
    rows, letters = [], []
    counts = {"delivered": 0, "unchanged": 0, "dead_lettered": 0}
    # a channel's result is reported with the SKU, never its triage outcome: its letters are the channel's own
    on_channels = _channel_actions(ctx) if not dry_run else {}
    for d in diagnoses:
        taken: list[dict[str, Any]] = []
        after: dict[str, Any] | None = None
        if dry_run:
            outcome = "unchanged"
            planned: dict[tuple[str, str], dict[str, Any]] = {}
            for f in d["findings"]:
                if f["repair"]:
                    planned.setdefault((f["repair"], f["target"]), {
                        "repair": f["repair"], "target": f["target"], "system": LINK_SYSTEM[f["link"]],
                        "status": "planned" if f["repair"] in params["repairs"] else "not_allowed",
                        "detail": f["detail"]})
            taken = list(planned.values())
        elif not d["broken_link"]:
            outcome = "unchanged"
            taken = list(on_channels.get(str(d["root_sku"] or d["sku"]), []))
        else:
            state = read_sku(reader, d["sku"])
            after = explain(state, reader.now, ctx.hub_url, with_hub=False)
            # the channels' results first: the verify line stays the last action
            taken = [*_actions_for(d, actions, state.handle), *on_channels.get(str(d["root_sku"] or d["sku"]), [])]
            failed = [a for a in taken if a["status"] in ("failed", "refused", "not_allowed")]
            still = after["broken_link"]
            taken.append({"repair": "verify", "target": d["sku"], "system": "storefront",
                          "status": "holds" if still is None else "still_broken", "detail": after["verdict"]})
            if still is None and not [a for a in failed if a["status"] == "failed"]:
                outcome = "delivered"
            else:
                outcome = "dead_lettered"
                api_failure = any(a["status"] == "failed" for a in failed)
                link = still or d["broken_link"]
                letters.append({
                    "entity": "product", "record_key": d["sku"], "source_system": LINK_SYSTEM[link],
                    "target_system": "storefront", "reason_kind": "api" if api_failure else "gate",
                    "expectation": f"triage:{link}",
                    "reason": "; ".join(f"{a['repair']} {a['target']}: {a['status']} ({a['detail']})"
                                        for a in failed) or after["verdict"],
                    "payload": {"findings": d["findings"], "after": after["chain"]},
                })
        counts[outcome] += 1
        book = runbook.build(d, taken, outcome=outcome, dry_run=dry_run, after=after)
        rows.append({"load_id": load_id, "sku": d["sku"], "broken_link": d["broken_link"],
                     "findings": json_safe(d["findings"]), "actions": json_safe(taken), "dry_run": dry_run,
                     "runbook": json_safe(book), "created_at": utcnow()})
        ctx.audit("hub", "diagnosis", d["sku"], "write", "ok",
                  changes={"broken_link": d["broken_link"], "outcome": outcome, "actions": len(taken)})
    with session_scope(ctx.hub_url) as s:
        repo.upsert(s, Diagnosis.__table__, rows, key=["load_id", "sku"])  # type: ignore[arg-type]
    if letters:
        ctx.dead_letter(letters, hop=None)  # counted with the others just below
    ctx.count(HOP, **counts)
    ctx.flush_audit()
    return {**counts, "dry_run": dry_run}


# --- 5. finish, and the whole run in-process --------------------------------------------------------------------


def finish(load_id: str, hub_url: str | None = None) -> dict[str, Any]:
    """Close the run (it fails when a SKU was read but never accounted for)."""
    ctx = RunContext.attach(load_id, hub_url)
    params = _params(ctx)
    counts = ctx.finish(details={"season": params["season"], "dry_run": params["dry_run"],
                                 "repairs": params["repairs"], "skus": params["skus"],
                                 "categories": params["categories"]})
    return {"counts": counts, "hops": ctx.hop_counts()}


def fail(load_id: str, error: str, hub_url: str | None = None) -> None:
    RunContext.attach(load_id, hub_url).fail(error)


def run(params: Mapping[str, Any], systems: Systems, *, run_id: str | None = None,
        hub_url: str | None = None) -> dict[str, Any]:
    """Every step in one process (the CLI and the tests); the DAG runs the same steps as tasks."""
    load_id = open_run(params, dag_id=None, run_id=run_id, hub_url=hub_url)
    try:
        from catalog_sync.governance.channels import load_channels

        triaged = triage(load_id, systems, hub_url)
        repaired = repair(load_id, systems, hub_url)
        if not repaired.get("skipped"):
            repaired["channels"] = [republish_channel(load_id, c.name, systems, hub_url)
                                    for c in load_channels().enabled()]
        verified = verify(load_id, systems, hub_url)
        done = finish(load_id, hub_url)
    except Exception as exc:
        fail(load_id, f"{type(exc).__name__}: {exc}", hub_url)
        raise
    return {"load_id": load_id, "triage": triaged, "repair": repaired, "verify": verified, **done}


#: The repairs a showable-rule change can need, in the republish's order: the PIM links, the storefront gallery
#: (and status), the page cache. What the image_windows sweep and the weekly reconciliation allow.
SHOWABLE_REPAIRS: Final[tuple[str, ...]] = ("dam_links", "storefront", "cache")


def repair_showable(systems: Systems, skus: Sequence[str], *, reason: str, run_id: str,
                    hub_url: str | None = None) -> dict[str, Any]:
    """Repair ``skus`` whose shopper-visible state drifted from the showable rule: a republish run (not a dry run)
    limited to :data:`SHOWABLE_REPAIRS`, each SKU verified on the live page and the pages it changed purged from
    the CDN. Returns the run's load id and how its SKUs ended (the ``triage`` hop)."""
    # a gallery repair is the storefront's: the channels' content did not change, so nothing is sent to them
    done = run({"season": reason, "skus": list(skus), "dry_run": False, "repairs": list(SHOWABLE_REPAIRS),
                "channels": False},
               systems, run_id=run_id, hub_url=hub_url)
    hop = (done.get("hops") or {}).get(HOP) or {}
    return {"load_id": done["load_id"],
            "repaired": {k: int(hop.get(k, 0)) for k in ("read", "delivered", "unchanged", "dead_lettered")}}


def diagnoses(load_id: str, hub_url: str | None = None) -> dict[str, dict[str, Any]]:
    """The diagnosis rows of one run, by SKU."""
    from sqlalchemy import select

    with session_scope(hub_url) as s:
        found = s.scalars(select(Diagnosis).where(Diagnosis.load_id == load_id)).all()
        return {d.sku: {c.name: getattr(d, c.name) for c in Diagnosis.__table__.columns} for d in found}


__all__ = ["FLOW", "HOP", "SHOWABLE_REPAIRS", "ScopeError", "diagnoses", "fail", "family_gallery", "finish",
           "is_dry_run", "normalise_params", "open_run", "repair", "repair_showable", "republish_channel", "resolve_scope",
           "run", "triage",
           "verify"]
