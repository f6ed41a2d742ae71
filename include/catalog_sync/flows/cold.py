"""The nightly cold-data flow: ERP master data and DAM asset links into the PIM, then the PIM's enriched content
out to the storefront; product data first, images afterwards in separate chunks.

Hops and what each counts (``read == delivered + unchanged + dead_lettered`` on each):

- ``erp->pim``: ERP items changed in the window, written to the PIM as ERP-owned attributes.
- ``dam->pim``: DAM assets changed in the window, turned into PIM asset links.
- ``pim->storefront``: products (a configurable parent with its variants, or a simple product) published.
- ``dam->storefront``: the image sets of published products, in chunks.
- ``erp->storefront``: opening stock of newly published variants (hot data, straight from the ERP).
- ``supplier->pim``: pending supplier submissions, written field by field under the ownership rules.
- ``storefront->cdn``: the pages of the products published, purged from the CDN's cache once their images are
  written (skipped, and audited as such, in a deployment without a CDN).

Cursors (``erp/items``, ``dam/assets``, ``pim/products``) commit in ``finish`` only, after every write and gate.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from catalog_sync.connectors import ConnectorError, Disposition, Outcome, ReadResult, RecordError, WriteResult
from catalog_sync.connectors.mapping import (
    akeneo_asset_links,
    akeneo_empty_values,
    akeneo_product_to_canonical,
    canonical_to_akeneo_product,
    canonical_to_akeneo_product_model,
    canonical_to_akeneo_values,
    canonical_to_shopify_product,
    erp_item_to_canonical,
    storefront_handle,
)
from catalog_sync.connectors.pim import identifier_in
from catalog_sync.connectors.storefront import LevelWrite, creation_schedule
from catalog_sync.domain import STOREFRONT_STATUS, AssetStatus, LifecycleStatus, is_kit, item_type_of, ships
from catalog_sync.engine import run as engine_run
from catalog_sync.engine.keys import KeySet
from catalog_sync.engine.run import RunContext, chunked, chunked_iter, json_safe, run_task
from catalog_sync.flows import freeze, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.governance.loops import detect as detect_loops
from catalog_sync.governance.loops import held_fields
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.progress import Progress
from catalog_sync.showable import ROLE_ORDER as SHOWABLE_ROLE_ORDER
from catalog_sync.showable import showable, storefront_images, storefront_region

log = logging.getLogger(__name__)

FLOW = "cold_data_nightly"
ERP_PIM = "erp->pim"
DAM_PIM = "dam->pim"
PIM_STOREFRONT = "pim->storefront"
IMAGES = "dam->storefront"
STOCK = "erp->storefront"
SUPPLIER_PIM = "supplier->pim"
PAGES = "storefront->cdn"

#: Cursors this flow owns: (system, stream) -> the stage holding the value to commit at the end.
CURSORS = {("erp", "items"): "_cursor:erp/items", ("dam", "assets"): "_cursor:dam/assets",
           ("pim", "products"): "_cursor:pim/products"}
#: The ERP-owned attributes the PIM keeps a copy of.
ERP_FIELDS_IN_PIM = ("sku", "parent_sku", "product_type", "item_type", "components", "kit_pricing",
                     "lifecycle_status", "upc", "product_group", "uom", "weight", "weight_unit", "country_of_origin",
                     "vendor_name", "reference_price", "currency")
#: Those of them the PIM keeps as attribute values (the others shape the record: its key, parent and type; a kit's
#: components travel as the product's associations).
ERP_VALUES_IN_PIM = ("item_type", "kit_pricing", "lifecycle_status", "upc", "product_group", "uom", "weight", "weight_unit",
                     "country_of_origin", "vendor_name", "reference_price", "currency")


# --- run bookkeeping -------------------------------------------------------------------------------------------


def open_run(*, dag_id: str | None, run_id: str | None, window_start: datetime | None,
             window_end: datetime | None, hub_url: str | None = None) -> str:
    """Register the run; its window's end is the frozen upper bound of every delta read."""
    end = window_end or datetime.now(UTC)
    ctx = RunContext.open(FLOW, load_id=steps.run_load_id(FLOW, run_id), dag_id=dag_id, run_id=run_id,
                          window_start=window_start, window_end=end, hub_url=hub_url)
    return ctx.load_id


def open_run_task(*, dag_id: str | None, run_id: str | None, window_start: datetime | None,
                  window_end: datetime | None, hub_url: str | None = None) -> str:
    """``open_run`` as the DAG's first task: once opened, a retried or cleared ``open_run`` leaves the run as it
    is (re-opening a finished run would mark it running again, with nothing left to finish it)."""
    def opened(_load_id: str) -> str:
        return open_run(dag_id=dag_id, run_id=run_id, window_start=window_start, window_end=window_end,
                        hub_url=hub_url)

    if not run_id:  # no Airflow run to be idempotent within: a run of its own
        return opened("")
    return str(run_task("open_run", steps.run_load_id(FLOW, run_id), opened, hub_url=hub_url))


def _window_end(ctx: RunContext) -> datetime:
    with session_scope(ctx.hub_url) as s:
        run = repo.get_run(s, ctx.load_id)
    end = run["window_end"] if run else None
    if end is None:
        return datetime.now(UTC)
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _cursor(ctx: RunContext, system: str, stream: str) -> str | None:
    with session_scope(ctx.hub_url) as s:
        return repo.get_cursor(s, system, stream)


def _stage_cursor(ctx: RunContext, system: str, stream: str, value: datetime) -> None:
    ctx.stage(CURSORS[(system, stream)], [{"stream": f"{system}/{stream}", "value": value.isoformat()}], key="stream")


# --- ERP -> PIM ----------------------------------------------------------------------------------------------


def extract_erp(load_id: str, systems: Systems) -> dict[str, int]:
    """Read the ERP items changed since the committed cursor, up to the run's frozen upper bound.

    Streamed: pages are gathered up to ``STAGE_BATCH`` items, which are then counted, audited and staged before the
    next page is read, so the task holds a batch of the delta, never the whole of it (a first run reads the whole
    catalog)."""
    ctx = RunContext.attach(load_id)
    upper = _window_end(ctx)
    since = _cursor(ctx, "erp", "items")
    ctx.clear_stage("erp_items")  # a retry stages the delta again, whole
    read = malformed = pages = 0
    records: list[dict[str, Any]] = []

    def stage_batch() -> int:
        ctx.count(ERP_PIM, read=len(records))
        for r in records:
            ctx.audit("erp", "product", r["sku"], "read", "ok")
        ctx.flush_audit()
        n = ctx.stage_more("erp_items", records)
        records.clear()
        return n

    for page in systems.erp.iter_items(updated_since=since):
        pages += 1
        for item in page.records:
            changed = _parse_ts(item.get("updated_at"))
            if changed is not None and changed > upper:
                continue  # the next run's window
            record = erp_item_to_canonical(item)
            record["updated_at"] = item.get("updated_at")
            records.append(record)
        malformed += steps.dead_letter_read_errors(ctx, page.errors, hop=ERP_PIM, entity="product", source="erp",
                                                   target="pim")
        if len(records) >= engine_run.STAGE_BATCH:
            read += stage_batch()
    read += stage_batch()
    _stage_cursor(ctx, "erp", "items", upper)
    return {"read": read, "malformed": malformed, "pages": pages}


def gate_master_data(load_id: str) -> dict[str, int]:
    """Normalise units, vendors and countries, refuse duplicates, and pass the syntax gate (layer 0).

    Batched (``quality.batching``): a first pass over the staged delta keeps only the hashes of each record's SKU
    and UPC, so records that could be each other's duplicates are checked in one batch; the second pass normalises,
    refuses duplicates and gates one batch at a time, staging what passed as it goes."""
    from catalog_sync import refdata
    from catalog_sync.quality.batching import gate_batch_size, plan_batches
    from catalog_sync.transforms import (
        duplicate_links,
        duplicates_to_dead_letters,
        find_duplicates,
        issues_to_dead_letters,
        normalise_record,
    )

    ctx = RunContext.attach(load_id)
    reference = refdata.applied(ctx.hub_url)  # the approved unit and country tables, read once for the batch
    ref = reference.reference_data()

    def normalised() -> Iterator[tuple[dict[str, Any], dict[str, Any], list[Any]]]:
        for page in ctx.iter_staged("erp_items"):
            for record in page:
                normal, issues = normalise_record(record, ref=ref)
                yield (record if issues else {}, normal, issues)  # the raw record only for a dead letter

    plan = plan_batches(([n] if not issues else [] for _, n, issues in normalised()), duplicate_links,
                        gate_batch_size())
    gate = steps.BatchedGate(ctx, "products.l0", layer=0, entity="products", hop=ERP_PIM, source_system="erp",
                             target_system="pim", now=_window_end(ctx), columns=plan.columns,
                             unit_codes=reference.unit_value_sets())
    totals = {"in": 0, "transform_failed": 0, "duplicates": 0, "passed": 0}

    def passing() -> Iterator[dict[str, Any]]:
        for batch in plan.batches(normalised(), lambda unit: 0 if unit[2] else 1):
            clean: list[dict[str, Any]] = []
            letters: list[dict[str, Any]] = []
            for record, normal, issues in batch:
                if issues:
                    letters += issues_to_dead_letters(record, issues, load_id=load_id, flow=FLOW, entity="product",
                                                      source_system="erp", target_system="pim")
                else:
                    clean.append(normal)
            ctx.dead_letter(letters, hop=ERP_PIM)
            unique, duplicates = find_duplicates(clean)
            unique = list(unique)
            dup_positions = {d.position for d in duplicates}
            if duplicates:
                ctx.dead_letter(duplicates_to_dead_letters(duplicates, load_id=load_id, flow=FLOW, entity="product",
                                                           source_system="erp", target_system="pim"), hop=None)
                ctx.count(ERP_PIM, dead_lettered=len(dup_positions))
            # an exact repeat of a record already in the delta
            ctx.count(ERP_PIM, unchanged=len(clean) - len(unique) - len(dup_positions))
            passed = gate.check(unique)
            totals["in"] += len(batch)
            totals["transform_failed"] += len({letter["record_key"] for letter in letters})
            totals["duplicates"] += len(dup_positions)
            totals["passed"] += len(passed)
            yield from passed
            del batch, clean, unique, duplicates, passed  # not held while the next batch is read
        gate.close()  # the gate's policy over the whole delta: a hard gate breached fails the run here

    ctx.stage("erp_ready", passing())
    return totals


def _pim_values(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{f: r.get(f) for f in ERP_FIELDS_IN_PIM} for r in records]


def _current_pim(systems: Systems, skus: Sequence[str], models: bool) -> dict[str, dict[str, Any]]:
    """Current PIM state of ``skus`` as canonical records (the before-values of the delta log)."""
    out: dict[str, dict[str, Any]] = {}
    for batch in chunked(list(skus), 100):
        if models:
            pages = systems.pim.iter_product_models(search=identifier_in(batch))
        else:
            pages = systems.pim.iter_products(search={"identifier": [{"operator": "IN", "value": list(batch)}]})
        for page in pages:
            for product in page.records:
                canonical = akeneo_product_to_canonical(product)
                out[str(canonical["sku"])] = canonical
    return out


def load_pim(load_id: str, systems: Systems) -> dict[str, int]:
    """Write ERP-owned attributes into the PIM: parents as product models first, then variants and simples.

    Unchanged records (same content hash as last delivered) are not sent at all; every sent record is
    audited, its changed fields logged for rollback, and a per-item 422 dead-letters that record only.

    Under ``run_task`` (the DAG) the work is a plan and numbered batches, each committed with its counts, audit
    rows and fingerprints: a retry of a task killed after three batches writes batch four onwards, from the plan
    the first attempt made (so the fingerprints it saved do not turn its own batches into "unchanged").
    """
    ctx = RunContext.attach(load_id)
    unchanged = 0
    if not ctx.committed("plan"):
        with ctx.part("plan"):
            # page by page over the gated delta: each page's records checked, compared with their fingerprints
            # and staged under a position that sorts parents first (a variant's model must exist before the
            # variant), kits last (Akeneo refuses an association with a product it does not hold yet), each group
            # in SKU order
            ctx.clear_stage("pim_plan")
            for page in ctx.iter_staged("erp_ready"):
                ready = steps.check_ownership(ctx, _pim_values(page), writer="erp", target="pim", hop=ERP_PIM)
                hashes = {r["sku"]: repo.content_hash(r) for r in ready}
                with session_scope(ctx.hub_url) as s:
                    known = repo.fingerprints(s, "pim", "product", keys=list(hashes))
                changed = [r for r in ready if known.get(r["sku"]) != hashes[r["sku"]]]
                unchanged += len(ready) - len(changed)
                ctx.stage_more("pim_plan", [{"position": f"{_plan_group(r)}:{r['sku']}", "record": r,
                                             "hash": hashes[r["sku"]]} for r in changed], key="position")
            ctx.count(ERP_PIM, unchanged=unchanged)
    totals = {"delivered": 0, "unchanged": unchanged, "dead_lettered": 0, "resumed_batches": 0}
    progress = Progress("load_pim", total=ctx.count_staged("pim_plan"))
    held = held_fields("pim", "product", ctx.hub_url)  # left out by check_ownership; must not be emptied either
    for number, (is_model, batch) in enumerate(_plan_batches(ctx, systems.pim.batch_size)):
        part = f"batch:{number}"
        if ctx.committed(part):
            totals["resumed_batches"] += 1
            progress.add(len(batch))
            continue
        with ctx.part(part):
            records = [p["record"] for p in batch]
            hashes = {p["record"]["sku"]: p["hash"] for p in batch}
            before = _current_pim(systems, [r["sku"] for r in records], models=is_model)
            payloads = [
                (_model_payload if is_model else _product_payload)(r, before.get(r["sku"]), held.get(r["sku"], {}))
                for r in records
            ]
            try:
                results = (systems.pim.upsert_product_models if is_model else systems.pim.upsert_products)(payloads)
            except RecordError as exc:
                steps.failed_batch(ctx, [r["sku"] for r in records], exc, hop=ERP_PIM, entity="product",
                                   source="erp", target="pim", payloads={r["sku"]: r for r in records})
                totals["dead_lettered"] += len(records)
                progress.add(len(batch))
                continue
            counts = steps.deliver(ctx, results, hop=ERP_PIM, system="pim", entity="product", source_system="erp",
                                   before=before, fields_of=steps.by_key({r["sku"]: r for r in records}))
            for name, n in counts.items():
                totals[name] += n
            with session_scope(ctx.hub_url) as s:
                repo.save_fingerprints(s, "pim", "product", {res.key: hashes[res.key] for res in results
                                                             if res.ok and res.key in hashes}, load_id)
            progress.add(len(batch))
    progress.finish()
    if ctx.task is not None:
        totals.update({k: v for k, v in ctx.hop_counts(task_only=True).get(ERP_PIM, {}).items() if k in totals})
    return totals


def _plan_group(record: Mapping[str, Any]) -> int:
    """The PIM write order of a record: 0 a configurable parent (a product model), 1 a product, 2 a kit."""
    if record.get("product_type") == "configurable":
        return 0
    return 2 if is_kit(record) else 1


def _plan_batches(ctx: RunContext, size: int) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
    """The staged PIM plan in write batches of at most ``size``, product models apart from products, numbered
    the same way by every attempt (the plan is fixed by the first); read a page at a time."""
    batch: list[dict[str, Any]] = []
    model: bool | None = None
    for page in ctx.iter_staged("pim_plan"):
        for entry in page:
            is_model = entry["position"].startswith("0:")
            if batch and (len(batch) == size or is_model != model):
                yield bool(model), batch
                batch = []
            model = is_model
            batch.append(entry)
    if batch:
        yield bool(model), batch


def _product_payload(record: Mapping[str, Any], current: Mapping[str, Any] | None,
                     held: Collection[str] = ()) -> dict[str, Any]:
    product = canonical_to_akeneo_product(record)
    # Only the ERP-owned values travel: content the PIM owns is never touched by this hop.
    _empty_what_the_erp_emptied(product, record, current, held)
    return product


def _model_payload(record: Mapping[str, Any], current: Mapping[str, Any] | None,
                   held: Collection[str] = ()) -> dict[str, Any]:
    merged = dict(record)
    if current and current.get("axes"):
        merged["axes"] = current["axes"]
    model = canonical_to_akeneo_product_model(merged)
    if current is not None:
        # An existing model keeps its family variant: it is the PIM's modelling decision, not the ERP's.
        model.pop("family_variant", None)
        model.pop("family", None)
    _empty_what_the_erp_emptied(model, record, current, held)
    return model


def _empty_what_the_erp_emptied(payload: dict[str, Any], record: Mapping[str, Any],
                                current: Mapping[str, Any] | None, held: Collection[str] = ()) -> None:
    """Add explicit nulls for the ERP-owned values the ERP no longer holds (null, or left out of the item) but the
    PIM still does. Left out of the PATCH they would stay in the PIM, and from there on the storefront, while
    the delta log said they were emptied. Only values the PIM holds are sent: a null for an attribute a record
    never had is noise (and one a product model does not carry at its level)."""
    if not current:
        return
    # a field held in a write-back loop is absent from the record because it is held, not because it was emptied
    emptied = [f for f in ERP_VALUES_IN_PIM
               if f not in held and record.get(f) in (None, "") and current.get(f) not in (None, "", [])]
    for attribute, entries in akeneo_empty_values(emptied).items():
        # a value the record still carries (a price whose currency is missing) is sent as it is, not emptied
        payload["values"].setdefault(attribute, entries)


# --- DAM -> PIM ----------------------------------------------------------------------------------------------


def link_assets(load_id: str, systems: Systems) -> dict[str, int]:
    """Link approved DAM assets (inside their validity and rights windows) to their products in the PIM.

    Assets still in draft or review are not yet for the PIM (counted unchanged); approved assets that fail the
    gates (outside their window, pointing at no SKU) are dead-lettered with the reason, so an orphan or a
    pre-staged seasonal image is visible instead of silently missing.

    Bounded by batch, not by the delta (issue #19), in three passes:

    1. the DAM's delta is staged page by page as it is read (``dam_approved``, keyed so that one SKU's assets are
       next to each other in key order, :func:`_asset_stage_key`);
    2. the hard syntax gate (``assets.l0``) runs over the whole delta a batch at a time, each asset staged again
       with its verdict (``dam_l0``); a breach fails the task here, before any link is written;
    3. the rest goes a batch of whole SKUs at a time (:func:`sku_batches`): the window and orphan gates, the
       SKU's full set of links worked out and written, every asset accounted.
    """
    from catalog_sync.quality.batching import gate_batch_size

    ctx = RunContext.attach(load_id)
    upper = _window_end(ctx)
    since = _cursor(ctx, "dam", "assets")
    size = gate_batch_size()
    totals = {"read": 0, "approved": 0, "linked_products": 0, "dead_lettered_assets": 0}

    def approved_assets() -> Iterator[dict[str, Any]]:
        position = 0
        for page in systems.dam.iter_assets(updated_since=since):
            steps.dead_letter_read_errors(ctx, page.errors, hop=DAM_PIM, entity="asset", source="dam", target="pim")
            for asset in page.records:
                if (_parse_ts(asset.get("updated_at")) or upper) > upper:
                    continue  # changed after the window froze: the next run's
                totals["read"] += 1
                if asset.get("status") != AssetStatus.APPROVED.value:
                    continue
                totals["approved"] += 1
                position += 1
                yield dict(asset, asset_id=str(asset.get("id")), _key=_asset_stage_key(asset, position))

    ctx.stage("dam_approved", approved_assets(), key="_key")
    ctx.count(DAM_PIM, read=totals["read"], unchanged=totals["read"] - totals["approved"])

    l0 = steps.BatchedGate(ctx, "assets.l0", layer=0, entity="assets", key="asset_id", hop=DAM_PIM,
                           source_system="dam", target_system="pim", now=upper)

    def syntax_checked() -> Iterator[dict[str, Any]]:
        for batch in _staged_sku_batches(ctx, "dam_approved", size):
            # two copies of one asset share their verdict: the gate keys rows by asset id
            passed = {str(a["asset_id"]) for a in l0.check([_unstaged(a) for a in batch])}
            yield from (dict(a, _l0=str(a["asset_id"]) in passed) for a in batch)
        l0.close()  # a hard gate breached over the whole delta fails the task here: nothing is linked yet

    ctx.stage("dam_l0", syntax_checked(), key="_key")
    l1 = steps.BatchedGate(ctx, "assets.l1", layer=1, entity="assets", key="asset_id", hop=DAM_PIM,
                           source_system="dam", target_system="pim", now=upper)
    l2 = steps.BatchedGate(ctx, "assets.l2", layer=2, entity="assets", key="asset_id", hop=DAM_PIM,
                           source_system="dam", target_system="pim", now=upper, known_skus=frozenset())
    region = storefront_region()
    ctx.clear_stage("pim_touched_assets")
    for batch in _staged_sku_batches(ctx, "dam_l0", size):
        linked, failed = _link_batch(ctx, systems, batch, l1, l2, upper, region)
        totals["linked_products"] += linked
        totals["dead_lettered_assets"] += failed
    l1.close()
    l2.close()
    ctx.clear_stage("dam_approved")
    ctx.clear_stage("dam_l0")
    _stage_cursor(ctx, "dam", "assets", upper)
    return totals


def _asset_stage_key(asset: Mapping[str, Any], position: int) -> str:
    """A staged asset's key: a fixed-width hash of its SKU first, so that key order (the order ``iter_staged``
    reads in, whatever the database's collation does with punctuation) keeps one SKU's assets together; then its
    place in the read, so two copies of one asset stay two rows for the gates to judge."""
    from hashlib import blake2b

    sku = str(asset.get("sku") or "")
    return f"{blake2b(sku.encode(), digest_size=8).hexdigest()}{position:012d}"


def _unstaged(asset: Mapping[str, Any]) -> dict[str, Any]:
    """A staged asset as the DAM gave it (with ``asset_id``), without the staging's own fields."""
    return {k: v for k, v in asset.items() if k not in ("_key", "_l0")}


def _staged_sku_batches(ctx: RunContext, stage: str, size: int) -> Iterator[list[dict[str, Any]]]:
    return sku_batches(ctx.iter_staged(stage, min(size, engine_run.STAGE_BATCH)), size)


def sku_batches(pages: Iterable[list[dict[str, Any]]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Pages of a stage written with :func:`_asset_stage_key`, read in key order, regrouped into batches of about
    ``size`` assets that never split a SKU's assets between two batches (a cross-row check, such as one link per
    asset and SKU, sees the SKU whole; a SKU with more than ``size`` assets is one bigger batch)."""
    pending: list[dict[str, Any]] = []
    for page in pages:
        pending.extend(page)
        if len(pending) < size:
            continue
        last_group = str(pending[-1]["_key"])[:16]
        cut = len(pending)
        while cut and str(pending[cut - 1]["_key"])[:16] == last_group:
            cut -= 1
        if cut:
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending


def _link_batch(ctx: RunContext, systems: Systems, approved: Sequence[Mapping[str, Any]], l1: steps.BatchedGate,
                l2: steps.BatchedGate, upper: datetime, region: str | None) -> tuple[int, int]:
    """One batch of whole SKUs' approved assets (with their syntax verdict): gate, link, account. Returns (products
    whose links were written, assets dead-lettered because the PIM refused their links)."""
    assets = [_unstaged(a) for a in approved if a.get("_l0")]
    passed = l1.check(assets)
    linked_skus = {str(a["sku"]) for a in passed if a.get("sku")}
    # an approved asset held back by a gate (its rights ended, its window closed) may still be linked from before:
    # its SKU's links are worked out again below, so the link goes instead of lingering in the PIM
    held_back = {str(a["sku"]) for a in approved if a.get("sku")} - linked_skus
    known = _existing_pim_skus(systems, linked_skus | held_back)
    passed = l2.check(passed, known_skus=frozenset(known))
    by_sku: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for asset in passed:
        by_sku[str(asset["sku"])].append(asset)
    for sku in sorted(held_back & set(known)):
        by_sku.setdefault(sku, [])
    # The full set of eligible links per SKU: earlier approved assets of the SKU stay linked.
    current, models = _current_links_and_kinds(systems, list(by_sku))
    roles = {str(a["id"]): a.get("role") for a in passed}
    earlier = _earlier_assets(systems, {aid for sku in by_sku for aid in current.get(sku, []) if aid not in roles})
    roles.update({aid: (a or {}).get("role") for aid, a in earlier.items()})
    # an earlier link stays only while its asset is still showable: expired rights or a closed window unlink it
    hidden = {aid for aid, a in earlier.items() if a is not None and not showable(a, upper, region)}
    products = []
    asset_to_sku: dict[str, str] = {}
    for sku, group in sorted(by_sku.items()):
        kept = set(current.get(sku, [])) - hidden
        if not group and kept == set(current.get(sku, [])):
            continue  # only a held-back asset changed, and it was not linked: nothing to write
        links = sorted(kept | {str(a["id"]) for a in group}, key=_link_order(roles))
        products.append({"sku": sku, "asset_links": links})
        for a in group:
            asset_to_sku[str(a["id"])] = sku
    allowed = steps.check_ownership(ctx, products, writer="dam", target="pim", hop=DAM_PIM)
    # Links held in a write-back loop are not written; their assets count as unchanged (the hold has the letter).
    held = {str(p["sku"]) for p in allowed if "asset_links" not in p}
    allowed = [p for p in allowed if str(p["sku"]) not in held]
    delivered: set[str] = set()
    for batch in chunked(allowed, systems.pim.batch_size):
        wanted = {p["sku"]: p.get("asset_links") or [] for p in batch}
        for res in write_asset_links(systems, wanted, models):
            ctx.audit("pim", "product", res.key, "write", res.outcome.value, request=res.sent,
                      response={"status": res.status, "message": res.message})
            if res.ok:
                delivered.add(res.key)
                ctx.record_deltas("pim", "product", res.key, {"asset_links": current.get(res.key)},
                                  {"asset_links": wanted[res.key]}, source="dam")
    # Account per asset: delivered when its SKU's links were written, dead-lettered otherwise.
    failed_assets = [aid for aid, sku in asset_to_sku.items() if sku not in delivered and sku not in held]
    kept_back = sum(1 for sku in asset_to_sku.values() if sku in held)
    ctx.count(DAM_PIM, delivered=len(asset_to_sku) - len(failed_assets) - kept_back, unchanged=kept_back)
    if failed_assets:
        ctx.dead_letter([{"entity": "asset", "record_key": aid, "source_system": "dam", "target_system": "pim",
                          "reason_kind": "api", "reason": f"PIM refused the asset links of {asset_to_sku[aid]}"}
                         for aid in failed_assets], hop=DAM_PIM)
    ctx.flush_audit()
    ctx.stage_more("pim_touched_assets", [{"sku": s} for s in delivered])
    return len(delivered), len(failed_assets)


def _link_order(roles: Mapping[str, Any]) -> Any:
    """The gallery order of :mod:`catalog_sync.showable` (seasonal, hero, gallery, swatch), each by asset id: the
    same order whichever run (or retry) linked which asset, so a product's links never depend on how its assets
    were read."""
    return lambda aid: (SHOWABLE_ROLE_ORDER.get(roles.get(aid) or "", 9), aid)


def _earlier_assets(systems: Systems, asset_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Assets linked by earlier runs (only those this run did not read itself). One malformed at the source is
    None: its role is not known (it sorts after the known ones) and it is left linked."""
    wanted = sorted(asset_ids)
    found, _malformed = systems.dam.get_assets(wanted)
    return {aid: found.get(aid) for aid in wanted}


def _existing_pim_skus(systems: Systems, skus: Iterable[str]) -> set[str]:
    found: set[str] = set()
    wanted = sorted(skus)
    for batch in chunked(wanted, 100):
        for page in systems.pim.iter_products(search={"identifier": [{"operator": "IN", "value": list(batch)}]}):
            found.update(str(p["identifier"]) for p in page.records)
        missing = [s for s in batch if s not in found]
        if missing:
            for page in systems.pim.iter_product_models(search=identifier_in(missing)):
                found.update(str(p["code"]) for p in page.records)
    return found


def _current_links_and_kinds(systems: Systems, skus: Sequence[str]) -> tuple[dict[str, list[str]], set[str]]:
    """Current PIM asset links of ``skus``, and which of them are product models (configurable parents)."""
    products = _current_pim(systems, skus, models=False)
    models = _current_pim(systems, [s for s in skus if s not in products], models=True)
    links = {sku: list(rec.get("asset_links") or []) for sku, rec in {**models, **products}.items()}
    return links, set(models)


def write_asset_links(systems: Systems, links: Mapping[str, Sequence[str]], models: set[str]) -> list[Any]:
    """PATCH asset links, products and product models each through their own endpoint (a parent's code sent
    to the products endpoint would create a stray product beside the model)."""
    def values(sku: str) -> dict[str, Any]:
        return {"asset_links": akeneo_asset_links(links[sku])}

    results: list[Any] = []
    plain = [sku for sku in links if sku not in models]
    parents = [sku for sku in links if sku in models]
    if plain:
        results += systems.pim.upsert_products([{"identifier": sku, "values": values(sku)} for sku in plain])
    if parents:
        results += systems.pim.upsert_product_models([{"code": sku, "values": values(sku)} for sku in parents])
    return results


# --- supplier portal -> PIM ----------------------------------------------------------------------------------

#: The supplier portal's own lifecycle flag, as the canonical attribute it claims to set.
SUPPLIER_FLAG_TO_LIFECYCLE = {"active": LifecycleStatus.ACTIVE.value, "inactive": LifecycleStatus.DISCONTINUED.value}


def writeback_supplier(load_id: str, systems: Systems) -> dict[str, int]:
    """Write pending supplier submissions back toward the PIM, field by field under the ownership rules.

    Suppliers may propose content (they are contributors of a few PIM attributes); their lifecycle flag is often
    stale and is never written: it is refused and dead-lettered with the reason, so a supplier can no longer
    switch a product off behind the ERP's back. Each submission is then decided in the portal.
    """
    ctx = RunContext.attach(load_id)
    result = ReadResult.collect(systems.supplier.iter_submissions(status="pending"))
    steps.dead_letter_read_errors(ctx, result.errors, hop=SUPPLIER_PIM, entity="product", source="supplier",
                                  target="pim")
    submissions = result.records
    ctx.count(SUPPLIER_PIM, read=len(submissions))
    counts = {"delivered": 0, "unchanged": 0, "dead_lettered": 0, "refused_fields": 0, "ignored_fields": 0}
    accepted: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    claims = {str(sub["id"]): _claimed(sub) for sub in submissions}
    owners = _erp_values(systems, [str(sub["sku"]) for sub in submissions
                                   if set(claims[str(sub["id"])]) & _ERP_FIELDS_SUPPLIERS_RESTATE])
    held = held_fields("pim", "product", ctx.hub_url) if submissions else {}
    for sub in submissions:
        claimed = claims[str(sub["id"])]
        # Restating the owner's current value changes nothing: recorded as ignored (audited, counted), never a
        # refusal. Only a field the supplier does not own and would change is refused.
        erp = owners.get(str(sub["sku"])) or {}
        same = sorted(f for f in set(claimed) & _ERP_FIELDS_SUPPLIERS_RESTATE if f in erp and claimed[f] == erp[f])
        if same:
            counts["ignored_fields"] += len(same)
            ctx.audit("supplier", "submission", str(sub["id"]), "ignore", "unchanged", request={f: claimed[f] for f in same},
                      response={"message": f"equal to the ERP's current value, nothing to change: {', '.join(same)}"})
            for f in same:
                del claimed[f]
        record = {"sku": sub["sku"], **claimed}
        (allowed,) = steps.check_ownership(ctx, [record], writer="supplier", target="pim", hop=SUPPLIER_PIM)
        kept_back = sorted(set(claimed) & set(held.get(str(sub["sku"]), {})))
        refused = sorted(set(claimed) - set(allowed) - set(kept_back))
        counts["refused_fields"] += len(refused)
        content = {k: v for k, v in allowed.items() if k != "sku"}
        note = "; ".join([*([f"not written (owned elsewhere): {', '.join(refused)}"] if refused else []),
                          *([f"not written (held in a write-back loop until an operator releases it): "
                             f"{', '.join(kept_back)}"] if kept_back else [])])
        if not content:
            ctx.count(SUPPLIER_PIM, unchanged=1)
            counts["unchanged"] += 1
            systems.supplier.decide(sub["id"], "rejected", note or "nothing to write")
            ctx.audit("supplier", "submission", str(sub["id"]), "write", "unchanged", response={"message": note})
            continue
        accepted.append((sub, content, note))
    # A hundred PIM writes to a batch, their before-values read in one search. A SKU with a second submission
    # starts the next batch, so that the second write's before-values include the first.
    for batch in _distinct_sku_batches(accepted, 100):
        current = _current_pim(systems, [str(sub["sku"]) for sub, _, _ in batch], models=False)
        written = systems.pim.upsert_products([{"identifier": sub["sku"], "values": canonical_to_akeneo_values(content)}
                                               for sub, content, _ in batch])
        results = [dataclasses.replace(res, key=str(sub["sku"])) for res, (sub, _, _) in zip(written, batch, strict=True)]
        c = steps.deliver(ctx, results, hop=SUPPLIER_PIM, system="pim", entity="product", source_system="supplier",
                          before={r.key: current.get(r.key, {}) for r in results},
                          fields_of=steps.by_key({str(sub["sku"]): content for sub, content, _ in batch}))
        for name, n in c.items():
            counts[name] += n
        for res, (sub, _, note) in zip(results, batch, strict=True):
            systems.supplier.decide(sub["id"], "accepted" if res.ok else "quarantined", note or (res.message or ""))
    return counts


#: ERP-owned fields a supplier submission carries (its lifecycle flag): compared with the ERP before any refusal.
_ERP_FIELDS_SUPPLIERS_RESTATE = frozenset({"lifecycle_status"})


def _claimed(sub: Mapping[str, Any]) -> dict[str, Any]:
    """What a submission asks to change, its lifecycle flag as the lifecycle status it stands for."""
    claimed = dict(sub.get("changes") or {})
    if sub.get("lifecycle_flag") in SUPPLIER_FLAG_TO_LIFECYCLE:
        claimed["lifecycle_status"] = SUPPLIER_FLAG_TO_LIFECYCLE[sub["lifecycle_flag"]]
    return claimed


def _erp_values(systems: Systems, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ERP's current lifecycle of ``skus``, as the fields a supplier may restate."""
    return {sku: {"lifecycle_status": value} for sku, value in _erp_lifecycle(systems, skus).items()}


def _distinct_sku_batches(
    items: Sequence[tuple[dict[str, Any], dict[str, Any], str]], size: int
) -> Iterator[list[tuple[dict[str, Any], dict[str, Any], str]]]:
    """``items`` in order, in batches of at most ``size`` in which no SKU appears twice."""
    batch: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    seen: set[str] = set()
    for item in items:
        sku = str(item[0]["sku"])
        if len(batch) == size or sku in seen:
            yield batch
            batch, seen = [], set()
        batch.append(item)
        seen.add(sku)
    if batch:
        yield batch


# --- PIM -> storefront ---------------------------------------------------------------------------------------


def extract_pim(load_id: str, systems: Systems) -> dict[str, int]:
    """Find the products whose PIM record changed since the last publish and stage each as a family
    (a configurable parent with all its variants, or a simple product) ready for the storefront."""
    ctx = RunContext.attach(load_id)
    upper = datetime.now(UTC)  # includes what this run itself just wrote into the PIM
    since = _cursor(ctx, "pim", "products")
    # Only each changed product's family root is kept from the read (a string a family, not the products); the
    # families are then read back 100 roots at a time and staged as each batch comes.
    roots: set[str] = set()
    changed = 0
    for page in systems.pim.iter_products(updated_after=since):
        steps.dead_letter_read_errors(ctx, page.errors, hop=PIM_STOREFRONT, entity="product", source="pim",
                                      target="storefront")
        changed += len(page.records)
        roots.update(str(p.get("parent") or p["identifier"]) for p in page.records)
    for page in systems.pim.iter_product_models(updated_after=since):
        roots.update(str(m["code"]) for m in page.records)
    ctx.clear_stage("families")
    categories: set[str] = set()
    families = 0
    for batch in _family_batches(systems, sorted(roots)):
        ctx.count(PIM_STOREFRONT, read=len(batch))
        families += ctx.stage_more("families", batch)
        categories.update(c for f in batch for r in [f["parent"], *f["rows"]] for c in (r.get("categories") or []))
    ctx.stage("taxonomy", [{"sku": c} for c in sorted(categories)])
    _stage_cursor(ctx, "pim", "products", upper)
    return {"changed_products": changed, "families": families}


def _families(systems: Systems, roots: Sequence[str]) -> list[dict[str, Any]]:
    """The families of ``roots`` (configurable parents or simple products), in key order."""
    return sorted((f for batch in _family_batches(systems, roots) for f in batch), key=lambda f: f["sku"])


def _family_batches(systems: Systems, roots: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """The families of ``roots``, read from the PIM 100 roots at a time, one list per 100 roots."""
    axes_cache: dict[str, dict[str, list[str]]] = {}
    for batch in chunked(list(roots), 100):
        yield _family_batch(systems, batch, axes_cache)


def _family_batch(systems: Systems, batch: Sequence[str], axes_cache: dict[str, dict[str, list[str]]],
                  ) -> list[dict[str, Any]]:
    families: dict[str, dict[str, Any]] = {}
    for page in systems.pim.iter_product_models(search=identifier_in(batch)):
        for model in page.records:
            family = str(model.get("family") or "")
            if family not in axes_cache:
                axes_cache[family] = systems.pim.family_variant_axes(family) if family else {}
            axes = axes_cache[family].get(str(model.get("family_variant") or ""), [])
            parent = akeneo_product_to_canonical(model, axes=axes)
            families[str(model["code"])] = {"sku": str(model["code"]), "parent": parent, "rows": []}
    for page in systems.pim.iter_products(search={"parent": [{"operator": "IN", "value": list(batch)}]}):
        for product in page.records:
            fam = families.get(str(product.get("parent")))
            if fam is not None:
                fam["rows"].append(akeneo_product_to_canonical(product))
    simple = [s for s in batch if s not in families]
    if simple:
        for page in systems.pim.iter_products(search={"identifier": [{"operator": "IN", "value": simple}]}):
            for product in page.records:
                if product.get("parent"):
                    continue
                rec = akeneo_product_to_canonical(product)
                families[str(rec["sku"])] = {"sku": str(rec["sku"]), "parent": rec, "rows": []}
    for fam in families.values():
        # Variants inherit the parent's content where they have none of their own (Akeneo's model levels).
        for row in fam["rows"]:
            for field in ("name", "description", "short_description", "meta_title", "meta_description",
                          "categories", "category", "product_group"):
                if row.get(field) in (None, "", []):
                    row[field] = fam["parent"].get(field)
        fam["rows"].sort(key=lambda r: str(r["sku"]))
    return [families[k] for k in sorted(families)]


#: Layer-1 findings that do not hold back a family the storefront already sells. A required attribute the PIM has
#: emptied on such a family is its owner withdrawing that copy (a claim that must come off the site, say): held
#: back, the family would keep the withdrawn copy on sale, so it is published empty and the finding stays open
#: in the dead letters until a merchandiser fills the attribute. A family never published is still held.
WITHDRAWALS = frozenset({"products.l1.family_attributes_filled"})


def restage_families(ctx: RunContext, systems: Systems, roots: Sequence[str]) -> int:
    """Stage the families of ``roots`` re-read from the PIM and put them through the business-rules gate, as the
    nightly's ``extract_pim`` and ``gate_channel_content`` do, for a run that publishes a few families again (a
    replay, the republish's channel step); counted read on the storefront's hop. Returns how many are ready."""
    families = _families(systems, roots)
    ctx.count(PIM_STOREFRONT, read=len(families))
    ctx.stage("families", families)
    ctx.stage("taxonomy", [{"sku": c} for c in sorted({c for f in families for r in [f["parent"], *f["rows"]]
                                                       for c in (r.get("categories") or [])})])
    gate_channel_content(ctx.load_id)
    return ctx.count_staged("families_ready")


def kit_refusal(record: Mapping[str, Any]) -> str | None:
    """Why the storefront channel (Shopify) cannot carry this kit, or None when it can (a fixed-price bundle: a
    Shopify product fixed bundle, see :func:`is_fixed_bundle`) or the record is no kit.

    Shopify has no grouped products, and prices a bundle as one product (its own variant's price), so a bundle
    priced from the components chosen has no place there. Either way the components are products of their own
    and are published as such.
    """
    kind = item_type_of(record)
    if kind == "grouped":
        return ("grouped product: the storefront channel (Shopify) carries no grouped products (a grouped product "
                "is no product in Shopify); its components are published on their own")
    if kind == "bundle" and record.get("kit_pricing") != "fixed":
        return ("dynamic-price bundle: the storefront channel (Shopify) sells a bundle at one fixed price of its "
                "own, not one summed from the components chosen; its components are published on their own")
    return None


def is_fixed_bundle(record: Mapping[str, Any]) -> bool:
    """A bundle with a price of its own: published as a Shopify product fixed bundle (``productBundleCreate``)."""
    return item_type_of(record) == "bundle" and record.get("kit_pricing") == "fixed"


def _refuse_kits(ctx: RunContext, families: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The families the storefront channel can carry; each kit is dead-lettered with the reason it cannot."""
    letters, kept = [], []
    for fam in families:
        reason = kit_refusal(fam["parent"])
        if reason is None:
            kept.append(fam)
            continue
        components = ", ".join(str(c.get("sku")) for c in fam["parent"].get("components") or []) or "none"
        letters.append({"entity": "product", "record_key": fam["sku"], "source_system": "pim",
                        "target_system": "storefront", "reason_kind": "channel",
                        "reason": f"{reason} (components: {components})"})
    ctx.dead_letter(letters, hop=PIM_STOREFRONT)
    return kept


def gate_channel_content(load_id: str) -> dict[str, int]:
    """Business rules (layer 1) on every record of every staged family; a family with a quarantined parent is
    held back whole, a quarantined variant is left out of its family (but see :data:`WITHDRAWALS`). A kit the
    channel cannot carry (:func:`kit_refusal`) is dead-lettered with its reason before the rules run.

    Batched (``quality.batching``): a first pass keeps only the hashes of each family's SKUs, parent SKUs and UPCs,
    so families a cross-row rule compares (a SKU or UPC on two families, a variant whose parent is in another
    family) are checked in one batch; the second pass gates whole families one batch at a time."""
    from catalog_sync import refdata
    from catalog_sync.quality.batching import gate_batch_size, plan_batches

    ctx = RunContext.attach(load_id)
    # the approved category table (catalog_sync.refdata); before any approval, the categories read in this run
    approved_categories = refdata.applied(ctx.hub_url).categories()
    taxonomy = sorted(approved_categories) if approved_categories is not None else [
        r["sku"] for r in ctx.staged("taxonomy")]

    def rows_of(fam: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{**fam["parent"], "_family": fam["sku"]}, *({**r, "_family": fam["sku"]} for r in fam["rows"])]

    carried = (fam for page in ctx.iter_staged("families") for fam in page if kit_refusal(fam["parent"]) is None)
    plan = plan_batches((rows_of(fam) for fam in carried), _family_links, gate_batch_size())
    gate = steps.BatchedGate(ctx, "products.l1", layer=1, entity="products", hop=None, source_system="pim",
                             target_system="storefront", now=_window_end(ctx), columns=plan.columns,
                             taxonomy=taxonomy)
    totals = {"families": 0, "kits_refused": 0, "held": 0, "ready": 0, "withdrawn_content": 0}

    def families() -> Iterator[dict[str, Any]]:
        for page in ctx.iter_staged("families"):
            kept = _refuse_kits(ctx, page)
            totals["families"] += len(page)
            totals["kits_refused"] += len(page) - len(kept)
            yield from kept

    def ready() -> Iterator[dict[str, Any]]:
        for batch in plan.batches(families(), lambda fam: 1 + len(fam["rows"])):
            failures: dict[str, list[str]] = {}
            passed = gate.check([row for fam in batch for row in rows_of(fam)], failures=failures)
            ok = {str(r["sku"]) for r in passed}
            live = steps.external_ids("storefront", "product", [fam["sku"] for fam in batch], ctx.hub_url)
            withdrawn = {sku for fam in batch if fam["sku"] in live
                         for sku in [str(fam["sku"]), *(str(r["sku"]) for r in fam["rows"])]
                         if failures.get(sku) and set(failures[sku]) <= WITHDRAWALS}
            ok |= withdrawn
            totals["withdrawn_content"] += len(withdrawn)
            for fam in batch:
                if fam["sku"] not in ok:
                    totals["held"] += 1
                    continue
                fam["rows"] = [r for r in fam["rows"] if str(r["sku"]) in ok]
                totals["ready"] += 1
                yield fam
            del batch, passed, failures, fam  # not held while the next batch is read
        gate.close()

    ctx.stage("families_ready", ready())
    ctx.count(PIM_STOREFRONT, dead_lettered=totals["held"])
    return totals


def _family_links(row: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """What the products layer-1 rules compare a row with other rows by: its SKU (unique; a parent's children and
    axes), its parent SKU (the parent present) and its UPC (unique). See ``quality.batching``."""
    links = [("sku", row.get("sku")), ("sku", row.get("parent_sku")), ("upc", row.get("upc"))]
    return [(kind, v) for kind, v in links if v is not None and not (isinstance(v, float) and v != v)]


@dataclasses.dataclass(slots=True)
class _Create:
    """A planned product new to the storefront, in the few fields the variant creation throttle ranks it by."""

    position: str  # its key in the stage ``publish_plan``
    sku: str
    handle: str
    status: str | None  # the storefront status it is planned with
    lifecycle: str | None  # its family's lifecycle status in the ERP (None: unknown there)
    variants: int
    in_stock: bool = False  # one of its variants at least is in stock in the ERP


#: The ERP's lifecycle statuses, as the numbers a KeySet keeps; -1 is a status the ERP has and this list has not.
_LIFECYCLES = [status.value for status in LifecycleStatus]


@dataclasses.dataclass
class _LiveFacts:
    """What the ERP says now of a run's families, read once for the whole run (hot data, owned by the ERP: a
    publish shows it, never the PIM's copy): each family root's lifecycle status, each SKU's live price, and which
    of the items with nothing to ship it keeps stock for. Held as KeySets: 16 bytes a SKU."""

    lifecycle: KeySet
    prices: KeySet
    stocked: KeySet

    def status(self, root: str) -> str | None:
        """The root's ERP lifecycle status, None when the ERP has none (or one this project does not know)."""
        code = self.lifecycle.get(root)
        return None if code is None or code < 0 else _LIFECYCLES[int(code)]


def _live_facts(ctx: RunContext, systems: Systems) -> _LiveFacts:
    """Read :class:`_LiveFacts` for the families of ``families_ready``: the stage is read once for its keys, then
    the ERP once for each kind of fact (a request a SKU for a handful, a paged scan for a catalog's worth)."""
    from catalog_sync.flows.hot import BULK_READ_AFTER

    roots, skus, unshipped = KeySet(keep=200), KeySet(keep=BULK_READ_AFTER), KeySet(keep=BULK_READ_AFTER)
    for page in ctx.iter_staged("families_ready"):
        for fam in page:
            roots.add(str(fam["sku"]))
            for row in [fam["parent"], *fam["rows"]]:
                skus.add(str(row["sku"]))
            for row in fam["rows"] or [fam["parent"]]:
                if not ships(row):
                    unshipped.add(str(row["sku"]))
    facts = _LiveFacts(KeySet(), KeySet(), KeySet())

    def code(status: Any) -> float:
        return float(_LIFECYCLES.index(status)) if status in _LIFECYCLES else -1.0

    for sku, item in _erp_items(systems, roots):
        facts.lifecycle.add(sku, code(item.get("lifecycle_status")))
    if len(roots):
        for price in _erp_scan(systems.erp.iter_prices, skus):
            if price.get("price") is not None:
                facts.prices.add(str(price["sku"]), float(price["price"]))
    for level in _erp_scan(systems.erp.iter_stock, unshipped):
        facts.stocked.add(str(level["sku"]))
    return facts


def _erp_items(systems: Systems, keys: KeySet) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(sku, item)`` for the ERP items of ``keys``: a request a SKU while ``keys`` keeps its few (the ERP's
    item endpoint), else one paged scan of the item list keeping only these SKUs."""
    if keys.few is not None:
        for sku in dict.fromkeys(keys.few):
            item = systems.erp.get_item(sku)
            if item:
                yield sku, item
        return
    for page in systems.erp.iter_items():
        for item in page.records:
            if str(item.get("sku")) in keys:
                yield str(item["sku"]), item


def _erp_scan(read: Callable[..., Iterable[Any]], keys: KeySet) -> Iterator[dict[str, Any]]:
    """The records of ``read`` (an ERP stream with a per-SKU filter) whose SKU is one of ``keys``: a request a SKU
    while ``keys`` keeps its few, else one paged scan of the whole stream (see ``flows.hot._erp_pages``)."""
    from catalog_sync.flows.hot import _erp_pages

    if keys.few == []:
        return
    pages = _erp_pages(read, set(keys.few)) if keys.few is not None else read()
    for page in pages:
        for record in page.records:
            if str(record.get("sku")) in keys:
                yield record


def _defer_creates(ctx: RunContext, systems: Systems, creates: Sequence[_Create], create_variants: KeySet,
                   ) -> set[str]:
    """Shopify's variant creation throttle (past 50,000 variants, 1,000 new a day): when this run's creates would
    meet it, they are ranked (active first, then in stock, then in season) and only what today allows goes out; the
    rest is counted unchanged and audited ``pending`` with the day it can go (it is sent again on a later run,
    having no fingerprint yet). Neither a dead letter nor a failure: nothing is wrong with those products.

    Judged over the whole run's creates, held as their keys and counts (``create_variants``: the hashes of their
    variants' SKUs); which of them have a variant in stock is found by reading the ERP's stock once, then the plan's
    variant SKUs a page at a time. Returns the plan positions of the creates that wait."""
    needed = sum(max(1, c.variants) for c in creates)
    if not creates:
        return set()
    shop = systems.storefront
    held = shop.variant_count()
    if held + needed <= shop.variant_threshold:
        return set()
    in_stock = KeySet()
    for level in _erp_scan(systems.erp.iter_stock, create_variants):
        if int(level.get("quantity") or 0) > 0:
            in_stock.add(str(level["sku"]))
    by_position = {c.position: c for c in creates}
    for page in ctx.iter_staged("publish_plan"):
        for entry in page:
            create = by_position.get(entry["position"])
            if create is not None:
                create.in_stock = any(v in in_stock for v in entry["variant_skus"])
    del by_position, in_stock
    season = {LifecycleStatus.ACTIVE.value: 0, LifecycleStatus.SEASONAL_HOLD.value: 1}

    def rank(create: _Create) -> tuple[bool, bool, int]:
        return (create.status != "active", not create.in_stock, season.get(str(create.lifecycle), 2))

    today = datetime.now(UTC).date()
    plan = creation_schedule(creates, held, today, rank=rank, size=lambda c: c.variants,
                             threshold=shop.variant_threshold, daily_limit=shop.variant_daily_limit)
    waiting: set[str] = set()
    for create, day in plan:
        if day == today:
            continue
        waiting.add(create.position)
        when = "never in one piece: more variants than a day allows" if day is None else day.isoformat()
        ctx.count(PIM_STOREFRONT, unchanged=1)
        ctx.audit("storefront", "product", create.sku, "write", "pending",
                  response={"message": f"pending: Shopify's variant creation limit; goes {when}",
                            "scheduled_for": None if day is None else day.isoformat(),
                            "variants": create.variants})
    ctx.flush_audit()
    return waiting


def publish_products(load_id: str, systems: Systems) -> dict[str, int]:
    """Create or update each family's storefront product (content from the PIM, status from the ERP).

    The PIM only publishes families whose lifecycle copy is active; others are suppressed (counted unchanged and
    audited) exactly as a PIM channel would, so a stale PIM state shows up as a missing product, not a wrong one.

    Under ``run_task`` (the DAG) the work is a plan (what goes out, fixed by the first attempt) and slices of
    ``PUBLISH_SLICE`` products, each committed with its counts, audit rows and external ids: a retry writes only
    the slices no attempt committed, then the opening stock still owed.
    """
    ctx = RunContext.attach(load_id)
    suppressed = sum(1 for page in ctx.iter_staged("families_ready") for fam in page
                     if fam["parent"].get("lifecycle_status") != LifecycleStatus.ACTIVE.value)
    counts = {"delivered": 0, "unchanged": 0, "dead_lettered": 0}
    if not ctx.committed("plan"):
        with ctx.part("plan"):
            families, planned = _publish_plan(ctx, systems)
            bundles = ctx.count_staged("publish_bundles")
            counts["unchanged"] += families - planned - bundles - suppressed

    # Bulk writes (the storefront's productSet, PRODUCTS_PER_REQUEST to a request), committed slice by slice: a task
    # killed mid-way leaves at most one slice written but uncommitted, which its retry writes again and the
    # storefront takes as updates. When the storefront stops answering, the writes that did go out are recorded,
    # then it raises (the slice stays uncommitted). The plan is read a slice at a time, with the slice's families
    # and storefront ids.
    slices = 0
    for number, outgoing_slice in enumerate(ctx.iter_staged("publish_plan", PUBLISH_SLICE)):
        slices += 1
        if ctx.committed(f"slice:{number}"):
            continue
        skus = [p["sku"] for p in outgoing_slice]
        by_sku = ctx.staged_by_keys("families_ready", skus)
        ids = steps.external_ids("storefront", "product", skus, ctx.hub_url)
        with ctx.part(f"slice:{number}"):
            written = _publish_slice(ctx, systems, number, [(by_sku[p["sku"]], p["product"], p["digest"])
                                                            for p in outgoing_slice], ids)
        for name, n in written.items():
            counts[name] += n
    # Fixed bundles last: Shopify's bundle takes products already on the shop as its components
    if not ctx.committed("bundles"):
        with ctx.part("bundles"):
            written = _publish_bundles(ctx, systems)
        for name, n in written.items():
            counts[name] += n
    def published() -> Iterator[dict[str, Any]]:  # {sku, digest} of what this run published, slice by slice
        for number in range(slices):
            yield from ctx.staged(f"published:{number}")
        yield from ctx.staged("published:bundles")

    # Opening stock of the variants of every product this run published that still owes it (a product created
    # now, or by an attempt killed before its stock was written). Held as keys: the owing products' SKUs and their
    # variants' SKUs; the stock levels are staged as the ERP is read, then written a page at a time.
    owed: set[str] = set()
    for batch in chunked_iter((row["sku"] for row in published()), engine_run.STAGE_BATCH):
        owed.update(sku for sku, (_, extra) in steps.external_ids("storefront", "product", batch, ctx.hub_url).items()
                    if (extra or {}).get("opening_stock") == "owed")
    from catalog_sync.flows.hot import BULK_READ_AFTER

    owed_variants = KeySet(keep=BULK_READ_AFTER)
    for page in ctx.iter_staged("publish_plan"):
        for entry in page:
            if entry["sku"] in owed:
                for variant in entry["variant_skus"]:
                    owed_variants.add(variant)
    _opening_stock(ctx, systems, owed_variants)
    del owed_variants
    for batch in chunked_iter(sorted(owed), engine_run.STAGE_BATCH):
        marked = steps.external_ids("storefront", "product", batch, ctx.hub_url)
        steps.save_external_ids("storefront", "product", {sku: (pid, {**(extra or {}), "opening_stock": "written"})
                                                          for sku, (pid, extra) in marked.items()}, ctx.hub_url)
    # Last: a product counts as published-as-is only once everything it owed is written (a task killed before
    # here re-sends its stock, which the storefront's idempotency keys make a no-op).
    for batch in chunked_iter(published(), engine_run.STAGE_BATCH):
        with session_scope(ctx.hub_url) as s:
            repo.save_fingerprints(s, "storefront", "product", {row["sku"]: row["digest"] for row in batch}, load_id)
    ctx.stage("published", ({"sku": k} for k in sorted({row["sku"] for row in published()})))
    if ctx.task is not None:  # what every attempt of this task counted, resumed slices included
        task_counts = ctx.hop_counts(task_only=True).get(PIM_STOREFRONT, {})
        counts = {name: task_counts.get(name, 0) for name in counts}
        counts["unchanged"] -= suppressed  # reported on their own, as before
    return {**counts, "suppressed": suppressed}


def _publish_plan(ctx: RunContext, systems: Systems) -> tuple[int, int]:
    """Stage ``publish_plan``, the products to send in family order, and ``publish_bundles``: suppressed families
    and unchanged ones are counted (and the suppressed audited) here, once; each planned entry holds the product,
    its digest and its variants' SKUs. Returns (families, entries planned).

    Streamed: the families are read a page at a time, twice. What needs the whole run is held as hashes and small
    values (:class:`_LiveFacts`, the creates' variant SKUs) or one small record a new product (the creates, ranked
    over the whole run for Shopify's variant creation throttle)."""
    from catalog_sync.flows.hot import BULK_READ_AFTER

    facts = _live_facts(ctx, systems)
    bundles: list[dict[str, Any]] = []
    creates: list[_Create] = []
    create_variants = KeySet(keep=BULK_READ_AFTER)
    families = 0

    def entries() -> Iterator[dict[str, Any]]:
        nonlocal families
        position = 0
        for page in ctx.iter_staged("families_ready"):
            families += len(page)
            keys = [f["sku"] for f in page]
            with session_scope(ctx.hub_url) as s:
                known = repo.fingerprints(s, "storefront", "product", keys=keys)
            ids = steps.external_ids("storefront", "product", keys, ctx.hub_url)
            prices = {sku: price for fam in page for sku in (str(r["sku"]) for r in [fam["parent"], *fam["rows"]])
                      if (price := facts.prices.get(sku)) is not None}
            for fam in page:
                parent = fam["parent"]
                if parent.get("lifecycle_status") != LifecycleStatus.ACTIVE.value:
                    ctx.count(PIM_STOREFRONT, unchanged=1)
                    ctx.audit("storefront", "product", fam["sku"], "write", "unchanged",
                              response={"message": f"suppressed: PIM lifecycle is {parent.get('lifecycle_status')}"})
                    continue
                product = canonical_to_shopify_product({k: v for k, v in parent.items() if k != "lifecycle_status"},
                                                       fam["rows"], prices=prices, stocked=facts.stocked)
                product.pop("images", None)  # images travel in their own chunked step
                status = facts.status(fam["sku"])
                product["status"] = STOREFRONT_STATUS[LifecycleStatus(status)] if status is not None else "draft"
                # The asset links are part of what was published: a family whose gallery changed goes out again,
                # so its images step runs (a link made by a later try of the same run would otherwise never be
                # shown).
                digest = repo.content_hash({**product, "asset_links": family_asset_ids(fam)})
                if is_fixed_bundle(parent):
                    # a Shopify product fixed bundle: written after the slices, once its components are on the
                    # shop; the quantities are the ERP's (the PIM's associations hold the SKUs only): one read a
                    # bundle
                    item = systems.erp.get_item(str(fam["sku"])) or {}
                    components = [{"sku": str(c.get("sku")), "quantity": c.get("quantity")}
                                  for c in item.get("components") or parent.get("components") or []]
                    digest = repo.content_hash({**product, "components": components})
                if known.get(fam["sku"]) == digest and fam["sku"] in ids:
                    ctx.count(PIM_STOREFRONT, unchanged=1)
                    continue
                if is_fixed_bundle(parent):
                    bundles.append({"sku": fam["sku"], "product": json_safe(product), "digest": digest,
                                    "components": components})
                    continue
                entry = {"position": f"{position:08d}", "sku": fam["sku"], "product": json_safe(product),
                         "digest": digest, "variant_skus": [str(v.get("sku")) for v in product.get("variants") or []]}
                position += 1
                if fam["sku"] not in ids:
                    creates.append(_Create(entry["position"], fam["sku"], product["handle"], product.get("status"),
                                           status, len(entry["variant_skus"])))
                    for variant in entry["variant_skus"]:
                        create_variants.add(variant)
                yield entry
            ctx.flush_audit()

    planned = ctx.stage("publish_plan", entries(), key="position")
    # Shopify's variant creation throttle: creates past what today allows wait (audited pending), counted once here
    waiting = _defer_creates(ctx, systems, creates, create_variants)
    ctx.drop_staged("publish_plan", waiting)
    # the families that wait, for the consistency gate: not on the storefront yet, and nothing wrong with that
    ctx.stage("publish_waiting", ({"sku": c.sku} for c in creates if c.position in waiting))
    ctx.stage("publish_bundles", bundles)
    ctx.flush_audit()
    return families, planned - len(waiting)


def _stocked_unshipped(systems: Systems, families: Sequence[Mapping[str, Any]]) -> set[str]:
    """Which of the families' items with nothing to ship (virtual, downloadable) the ERP keeps stock for: only
    those are stock-tracked in the shop (a licence key pool, say); the rest are sold without a count."""
    return _stocked_skus(systems, [str(r["sku"]) for fam in families for r in (fam["rows"] or [fam["parent"]])
                                   if not ships(r)])


def _stocked_skus(systems: Systems, unshipped: Sequence[str]) -> set[str]:
    """Which of ``unshipped`` (items with nothing to ship) the ERP keeps stock for (see _stocked_unshipped)."""
    if not unshipped:
        return set()
    from catalog_sync.flows.hot import _erp_stock

    return {sku for sku, levels in _erp_stock(systems, unshipped).items() if levels}


def _publish_slice(ctx: RunContext, systems: Systems, number: int,
                   outgoing_slice: Sequence[tuple[Mapping[str, Any], dict[str, Any], str]],
                   ids: Mapping[str, tuple[str, dict[str, Any] | None]]) -> dict[str, int]:
    """Write one slice of products and record it: audit, deltas, counts, external ids, and the stage
    ``published:<number>`` of the SKUs it published with their digests. Returns the slice's counts."""
    failure: ConnectorError | None = None
    shown: dict[str, dict[str, Any]] = {}
    try:
        # read here rather than inside the write, so the delta log gets the storefront's own before-values
        shown = systems.storefront.find_by_handles([product["handle"] for _, product, _ in outgoing_slice])
        # a declared freeze holds category moves and bulk content changes instead of writing them
        outgoing_slice = freeze.hold_in_publish(ctx, outgoing_slice, shown, PIM_STOREFRONT)
        answered = systems.storefront.upsert_products([product for _, product, _ in outgoing_slice], existing=shown)
    except ConnectorError as exc:
        failure, answered = exc, list(exc.partial_results)
    by_handle = {r.key: r for r in answered}
    results: list[WriteResult] = []
    befores: dict[str, dict[str, Any]] = {}
    afters: dict[str, dict[str, Any]] = {}
    product_ids: dict[str, tuple[str, dict[str, Any]]] = {}
    variant_ids: dict[str, tuple[str, dict[str, Any]]] = {}
    published: list[dict[str, Any]] = []
    for fam, product, digest in outgoing_slice:
        sent = by_handle.get(product["handle"])
        if sent is None:  # not sent: the storefront stopped answering first
            continue
        # Audited under the SKU (the business key), not the storefront handle.
        result = dataclasses.replace(sent, key=fam["sku"])
        results.append(result)
        was = shown.get(product["handle"]) or {}
        befores[result.key] = {"status": was.get("status", (ids.get(fam["sku"], ("", None))[1] or {}).get("status")),
                               **{f: was.get(f) for f in PUBLISHED_FIELDS if f != "status"}}
        afters[result.key] = {f: product.get(f) for f in PUBLISHED_FIELDS}
        if not (result.ok and result.response):
            continue
        published.append({"sku": fam["sku"], "digest": digest})
        variants = {str(v.get("sku")): v for v in result.response.get("variants") or []}
        # A product new to the hub owes its variants their opening stock until that is written. "New" covers
        # created now, created by a task killed before it could record the product (the storefront answers
        # the retry's write as an update), and the mark left by a task killed before the stock was written.
        owed = (result.message == "created" or fam["sku"] not in ids
                or (ids[fam["sku"]][1] or {}).get("opening_stock") == "owed")
        product_ids[fam["sku"]] = (str(result.response["id"]), {
            "handle": result.response.get("handle"), "status": result.response.get("status"),
            "opening_stock": "owed" if owed else "written"})
        variant_ids.update({
            sku: (str(v.get("id")), {"inventory_item_id": v.get("inventory_item_id"),
                                     "product_id": result.response["id"], "handle": result.response.get("handle")})
            for sku, v in variants.items()})
    counts = steps.deliver(ctx, results, hop=PIM_STOREFRONT, system="storefront", entity="product",
                           source_system="pim", before=befores, fields_of=steps.by_key(afters))
    if product_ids:
        steps.save_external_ids("storefront", "product", product_ids, ctx.hub_url)
        steps.save_external_ids("storefront", "variant", variant_ids, ctx.hub_url)
    ctx.stage(f"published:{number}", published)
    if failure is not None:
        raise failure
    return counts


def _publish_bundles(ctx: RunContext, systems: Systems) -> dict[str, int]:
    """Write the plan's fixed bundles as Shopify product fixed bundles, their components being the storefront
    products of the components' SKUs. A bundle whose components are not all products on the shop (a variant of a
    configurable product, a component held back or refused) is dead-lettered saying which; having no fingerprint,
    it goes out again on the next run. Records counts, audit, external ids and ``published:bundles``."""
    entries = ctx.staged("publish_bundles")
    component_ids = steps.external_ids("storefront", "product", sorted(
        {c["sku"] for e in entries for c in e["components"]}), ctx.hub_url)
    own = steps.external_ids("storefront", "product", [e["sku"] for e in entries], ctx.hub_url)
    results: list[WriteResult] = []
    letters: list[dict[str, Any]] = []
    product_ids: dict[str, tuple[str, dict[str, Any]]] = {}
    published: list[dict[str, Any]] = []
    failure: ConnectorError | None = None
    for entry in entries:
        sku, product = entry["sku"], entry["product"]
        missing = [c["sku"] for c in entry["components"] if c["sku"] not in component_ids]
        fractional = [c["sku"] for c in entry["components"] if c.get("quantity") is None
                      or float(c["quantity"]) != int(float(c["quantity"]))]
        reason = None
        if missing:
            reason = (f"fixed-price bundle: the storefront channel (Shopify) makes a bundle of products already "
                      f"on the shop; not there as products of their own: {', '.join(missing)} (a variant of a "
                      f"configurable product, or not published); the bundle goes out once they are")
        elif fractional:
            reason = (f"fixed-price bundle: the storefront channel (Shopify) takes whole component quantities; "
                      f"fractional or unknown: {', '.join(fractional)}")
        if reason:
            letters.append({"entity": "product", "record_key": sku, "source_system": "pim",
                            "target_system": "storefront", "reason_kind": "channel",
                            "expectation": "bundle_components", "reason": reason, "payload": entry})
            ctx.audit("storefront", "product", sku, "write", "dead_lettered", request=entry,
                      response={"message": reason})
            continue
        components = [(component_ids[c["sku"]][0], int(float(c["quantity"]))) for c in entry["components"]]
        known = own.get(sku)
        try:
            result = systems.storefront.upsert_bundle(product, components, known[0] if known else None)
        except ConnectorError as exc:  # the storefront stopped answering: record what went out, then raise
            failure = exc
            break
        if not result.ok:
            result = dataclasses.replace(
                result, message=f"fixed-price bundle refused by the storefront channel (Shopify): {result.message}")
        result = dataclasses.replace(result, key=sku)
        results.append(result)
        if result.ok and result.response:
            published.append({"sku": sku, "digest": entry["digest"]})
            product_ids[sku] = (str(result.response["id"]), {
                "handle": result.response.get("handle"), "status": result.response.get("status"),
                "bundle": True, "opening_stock": "none"})
    ctx.dead_letter(letters, hop=PIM_STOREFRONT)
    counts = steps.deliver(ctx, results, hop=PIM_STOREFRONT, system="storefront", entity="product",
                           source_system="pim")
    counts["dead_lettered"] += len({x["record_key"] for x in letters})
    if product_ids:
        steps.save_external_ids("storefront", "product", product_ids, ctx.hub_url)
    ctx.stage("published:bundles", published)
    if failure is not None:
        raise failure
    return counts


#: Storefront products written between two records of them in the hub (see publish_products): two productSet
#: requests' worth.
PUBLISH_SLICE = 100
#: Storefront product fields the delta log keeps before- and after-values of (what a rollback can put back).
PUBLISHED_FIELDS = ("status", "title", "body_html", "vendor")


def _erp_lifecycle(systems: Systems, skus: Sequence[str]) -> dict[str, str | None]:
    """The ERP's lifecycle status of ``skus`` (a request each for a few hundred, a paged scan past them)."""
    return {sku: item.get("lifecycle_status") for sku, item in _erp_items(systems, KeySet(skus, keep=200))}


def _opening_stock(ctx: RunContext, systems: Systems, variant_skus: KeySet) -> None:
    """Stock of freshly created storefront variants, straight from the ERP (hot data never passes the PIM):
    each ERP location's quantity at the storefront location that mirrors it, as the hot path keeps it.

    Streamed: the levels of ``variant_skus`` are staged (``opening_levels``, one record a level) as the ERP's
    stock is read, then written a page of levels at a time with that page's storefront variants."""
    ctx.clear_stage("opening_levels")
    if not len(variant_skus):
        return
    ctx.stage_more("opening_levels", ({"key": f"{level['sku']}@{level['location']}", "sku": str(level["sku"]),
                                       "location": str(level["location"]), "quantity": level.get("quantity")}
                                      for level in _erp_scan(systems.erp.iter_stock, variant_skus)), key="key")
    mirror: dict[str, Any] | None = None
    for page in ctx.iter_staged("opening_levels"):
        variants = steps.external_ids("storefront", "variant", {level["sku"] for level in page}, ctx.hub_url)
        levels = [level for level in page if level["sku"] in variants]
        if not levels:
            continue
        if mirror is None:
            mirror = {str(loc.get("erp_location")): loc["id"] for loc in systems.storefront.locations()
                      if loc.get("erp_location")}
        _write_opening_levels(ctx, systems, mirror, {sku: extra or {} for sku, (_, extra) in variants.items()},
                              levels)


def _write_opening_levels(ctx: RunContext, systems: Systems, mirror: Mapping[str, Any],
                          variants: Mapping[str, Mapping[str, Any]], levels: Sequence[Mapping[str, Any]]) -> None:
    """Write one page of opening stock levels ``{sku, location, quantity}`` of the storefront ``variants``."""
    ctx.count(STOCK, read=sum(1 for level in levels if level["location"] in mirror))
    results: list[WriteResult] = [
        WriteResult(f"{level['sku']}@{level['location']}", Outcome.FAILED, None,
                    f"ERP location {level['location']!r} is not in the storefront connection's location_map",
                    disposition=Disposition.DEAD_LETTER)
        for level in levels if level["location"] not in mirror]
    writes: list[LevelWrite] = []
    for level in levels:
        sku, location = level["sku"], level["location"]
        if location not in mirror:
            continue
        key = f"{sku}@{location}"
        item_id = variants[sku].get("inventory_item_id")
        if item_id is None:
            results.append(WriteResult(key, Outcome.FAILED, None, "the storefront gave the variant no inventory item"))
        else:
            writes.append(LevelWrite(key, sku, mirror[location], item_id, int(level["quantity"] or 0),
                                     f"opening:{ctx.load_id}"))
    # 250 levels to a call; each call's idempotency key comes from the levels it sets, so a retried task's
    # identical call changes nothing.
    try:
        results += systems.storefront.set_inventory_levels(writes)
    except ConnectorError as exc:  # the storefront stopped answering: what was written is recorded, then it fails
        steps.deliver(ctx, results + list(exc.partial_results), hop=STOCK, system="storefront", entity="inventory",
                      source_system="erp")
        raise
    steps.deliver(ctx, results, hop=STOCK, system="storefront", entity="inventory", source_system="erp")


def plan_image_chunks(load_id: str, chunk_size: int = 200) -> list[int]:
    """Chunk numbers of the image step, so images run as separate (mapped) tasks after the product data."""
    ctx = RunContext.attach(load_id)
    n = ctx.count_staged("published")
    return list(range((n + chunk_size - 1) // chunk_size)) if n else []


def family_asset_ids(fam: Mapping[str, Any]) -> list[str]:
    """The family's gallery: the parent's asset links first, then each variant's by SKU, each asset once; the
    same whatever order the PIM listed the variants in (a page read again may come back reordered)."""
    asset_ids: list[str] = []
    for rec in [fam["parent"], *sorted(fam["rows"], key=lambda r: str(r["sku"]))]:
        asset_ids.extend(a for a in rec.get("asset_links") or [] if a not in asset_ids)
    return asset_ids


def publish_images(load_id: str, chunk: int, systems: Systems, chunk_size: int = 200) -> dict[str, int]:
    """Attach each published product's approved images (hero first) from its PIM asset links.

    The chunk's assets are read from the DAM and its galleries written to the storefront in bulk; what each
    outcome means for the run is recorded afterwards, product by product, in SKU order.
    """
    ctx = RunContext.attach(load_id)
    # the chunk's own products and their families, read by key: a chunk holds chunk_size families at most
    published = [r["sku"] for r in ctx.staged_page("published", chunk, chunk_size)]
    families = ctx.staged_by_keys("families_ready", published)
    ctx.count(IMAGES, read=len(published))
    counts = {"delivered": 0, "unchanged": 0, "dead_lettered": 0}

    assets, malformed = systems.dam.get_assets(aid for sku in published for aid in family_asset_ids(families[sku]))
    now, region = _window_end(ctx), storefront_region()
    ready: list[tuple[str, str, list[dict[str, Any]]]] = []
    for sku in published:
        gallery = family_asset_ids(families[sku])
        broken = next((malformed[aid] for aid in gallery if aid in malformed), None)
        if broken is not None:  # a gallery with a hole in it is not published: it keeps its images
            ctx.dead_letter([{"entity": "images", "record_key": sku, "source_system": "dam",
                              "target_system": "storefront", "reason_kind": "api", "gate_layer": 0,
                              "expectation": "record_schema", "reason": f"asset {broken.record_key}: {broken.reason}",
                              "payload": {"asset_links": gallery}}], hop=IMAGES)
            counts["dead_lettered"] += 1
            continue
        # the one showable rule and the one gallery order (catalog_sync.showable), as every other flow applies them
        images = storefront_images([assets[aid] for aid in gallery if aid in assets], now, region)
        ready.append((sku, storefront_handle(families[sku]["parent"]), images))

    # The chunk's products are read in batches and their galleries written as bulk productSet mutations.
    failure: ConnectorError | None = None
    existing: dict[str, dict[str, Any]] = {}
    answered: list[WriteResult] = []
    try:
        existing = systems.storefront.find_by_handles([handle for _, handle, _ in ready])
        answered = systems.storefront.upsert_products(
            [{"handle": handle, "images": images} for _, handle, images in ready], existing=existing)
    except ConnectorError as exc:  # the storefront is down: the writes that went out are recorded first
        failure, answered = exc, list(exc.partial_results)
    by_handle = {r.key: r for r in answered}
    results: list[WriteResult] = []
    previous: dict[str, dict[str, Any]] = {}
    sent: dict[str, dict[str, Any]] = {}
    for sku, handle, images in ready:
        if handle not in by_handle:
            continue
        results.append(dataclasses.replace(by_handle[handle], key=sku))
        previous[sku] = {"images": [i.get("src") for i in (existing.get(handle) or {}).get("images") or []]}
        sent[sku] = {"images": [i["src"] for i in images]}
    c = steps.deliver(ctx, results, hop=IMAGES, system="storefront", entity="images", source_system="dam",
                      before=previous, fields_of=steps.by_key(sent))
    if failure is not None:  # every write that did go out is in the delta log; the retry does the rest
        raise failure
    # Every product of the chunk was published by this run (its content or status changed, then its images):
    # the CDN would go on serving each one's old page. Purged here, once the page is complete, and whatever the
    # image step found: a retried chunk purges again, which costs a cache miss and nothing else.
    steps.purge_pages(ctx, systems, {sku: storefront_handle(families[sku]["parent"]) for sku in published}, hop=PAGES)
    return {name: counts[name] + c.get(name, 0) for name in counts}


# --- consistency and finish ----------------------------------------------------------------------------------


def check_consistency(load_id: str, systems: Systems) -> dict[str, int]:
    """Cross-system gate (layer 2) on this run's published families: ERP and PIM agree, variants follow their
    parent, the storefront shows what the PIM published. Findings are alerts on delivered data, not losses.

    Streamed: a first pass over the staged families keeps their SKUs (keys only) and plans the gate's batches
    (``quality.batching``); the ERP values of those SKUs are staged as the ERP is read; then each batch of families
    is joined with its ERP values and its storefront products and gated, one batch at a time."""
    from catalog_sync.quality.batching import gate_batch_size, plan_batches

    ctx = RunContext.attach(load_id)
    wanted = KeySet(keep=200)  # the run's SKUs, hashed (16 bytes a SKU)

    def records(fam: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [fam["parent"], *fam["rows"]]

    def keyed(fam: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        for r in records(fam):
            wanted.add(str(r["sku"]))
        return records(fam)

    plan = plan_batches((keyed(fam) for page in ctx.iter_staged("families_ready") for fam in page), _family_links,
                        gate_batch_size())
    if not plan.rows:
        return {"checked": 0}
    ctx.clear_stage("consistency_erp")
    ctx.stage_more("consistency_erp", _erp_values_of(systems, wanted))
    wanted = KeySet()  # let the hashes go before the batches
    gate = steps.BatchedGate(ctx, "products.l2", layer=2, entity="products", hop=None, source_system="erp",
                             target_system="pim", now=_window_end(ctx))
    checked = consistent = 0
    families = (fam for page in ctx.iter_staged("families_ready") for fam in page)
    for batch in plan.batches(families, lambda fam: 1 + len(fam["rows"])):
        skus = [str(r["sku"]) for fam in batch for r in records(fam)]
        erp = ctx.staged_by_keys("consistency_erp", skus)
        roots = [fam["sku"] for fam in batch]
        # On the storefront: written by this run, or already there and unchanged (a cleared run re-executed, or a
        # family whose content did not change) — the storefront's own answer is what is compared, either way.
        published = set(ctx.staged_by_keys("published", roots)) | set(
            steps.external_ids("storefront", "product", roots, ctx.hub_url))
        # A family waiting on Shopify's variant creation throttle (audited pending by publish_products) is not on
        # the storefront by design: its status is not compared until it goes out.
        waiting = set(ctx.staged_by_keys("publish_waiting", roots)) - published
        shown = systems.storefront.find_by_handles([storefront_handle(f["parent"]) for f in batch
                                                    if f["sku"] in published])
        rows = []
        for fam in batch:
            shop = shown.get(storefront_handle(fam["parent"])) if fam["sku"] in published else None
            for rec in records(fam):
                e = erp.get(str(rec["sku"]), {})
                rows.append({
                    "sku": rec["sku"], "parent_sku": rec.get("parent_sku"),
                    "erp_lifecycle_status": e.get("lifecycle_status"),
                    "pim_lifecycle_status": rec.get("lifecycle_status"),
                    "erp_weight": e.get("weight"), "pim_weight": rec.get("weight"),
                    "erp_reference_price": e.get("reference_price"), "pim_reference_price": rec.get("reference_price"),
                    "pim_status": None if fam["sku"] in waiting
                    else "active" if rec.get("lifecycle_status") == "active" else "draft",
                    "storefront_status": (shop or {}).get("status") if shop else None,
                    "pim_name": fam["parent"].get("name") if shop else None,
                    "storefront_title": (shop or {}).get("title") if shop else None,
                })
        checked += len(rows)
        consistent += len(gate.check(rows))
        del batch, rows, erp, shown  # not held while the next batch is read
    gate.close()
    return {"checked": checked, "consistent": consistent}


#: The ERP values the consistency gate compares.
_CONSISTENCY_ERP = ("sku", "lifecycle_status", "weight", "reference_price")


def _erp_values_of(systems: Systems, skus: KeySet) -> Iterator[dict[str, Any]]:
    """The ERP's values of ``skus`` as the ERP is read (see :func:`_erp_items`)."""
    for sku, item in _erp_items(systems, skus):
        canonical = erp_item_to_canonical(item)
        yield {**{f: canonical.get(f) for f in _CONSISTENCY_ERP}, "sku": sku}


def finish(load_id: str) -> dict[str, Any]:
    """Commit the cursors (the writes and gates behind them all succeeded), write KPIs, close the run."""
    ctx = RunContext.attach(load_id)
    if ctx.unaccounted():
        ctx.finish()  # raises RecordsUnaccounted and fails the run; the cursors stay where they were
    with session_scope(ctx.hub_url) as s:
        for (system, stream), stage in CURSORS.items():
            staged = ctx.staged(stage)
            if staged:
                repo.commit_cursor(s, system, stream, "updated_at", staged[0]["value"], load_id)
    _write_kpis(ctx)
    loops = detect_loops(ctx)  # fields this night's writes put back into a write-back loop are held from now on
    quiet = not any(c["read"] for c in ctx.hop_counts().values())
    if quiet:
        log.info("%s: a quiet night: no ERP item, DAM asset, supplier submission or PIM product changed in the "
                 "window; nothing was written and the run succeeds", load_id)
    held = [f"{h['record_key']}.{h['field']}" for h in loops]
    counts = ctx.finish(details={"quiet": quiet, "write_loops_held": held})
    return {"counts": counts, "hops": ctx.hop_counts(), "quiet": quiet, "write_loops_held": held}


#: The attributes the completeness KPI counts.
KPI_REQUIRED = ("name", "description", "category", "upc", "weight", "lifecycle_status")
#: Families read to a page for the completeness KPI (a family holds its variants: a page of families is many rows).
KPI_PAGE = 500


def _write_kpis(ctx: RunContext) -> None:
    """Completeness of the published content and first-time pass rate of this run's gates."""
    import pandas as pd

    from catalog_sync.hub.models import DqResult
    from catalog_sync.quality.kpis import completeness, write_kpis

    values: dict[str, float] = {}
    # page by page: the share of filled cells over all pages is the pages' shares weighted by their rows
    # (the counted attributes only, so a page costs its keys, not its content; a missing attribute is empty
    # either way)
    filled = rows = 0.0
    for page in ctx.iter_staged("families_ready", KPI_PAGE):
        records = [{a: json_safe(r.get(a)) for a in KPI_REQUIRED} for f in page for r in [f["parent"], *f["rows"]]]
        filled += len(records) * completeness(pd.DataFrame(records, columns=list(KPI_REQUIRED)), KPI_REQUIRED)
        rows += len(records)
    if rows:
        values["completeness"] = filled / rows
    with session_scope(ctx.hub_url) as s:
        from sqlalchemy import select

        results = s.execute(select(DqResult.rows_checked, DqResult.rows_passed).where(
            DqResult.load_id == ctx.load_id, DqResult.layer < 2)).all()
        checked = sum(r[0] for r in results)
        if checked:
            values["first_time_pass_rate"] = sum(r[1] for r in results) / checked
        l2 = s.execute(select(DqResult.rows_checked, DqResult.rows_passed).where(
            DqResult.load_id == ctx.load_id, DqResult.layer == 2, DqResult.entity == "products")).all()
        if l2 and sum(r[0] for r in l2):
            values["accuracy"] = sum(r[1] for r in l2) / sum(r[0] for r in l2)
        if values:
            write_kpis(s, ctx.load_id, values)


def build_docs(load_id: str) -> str | None:
    """Data Docs of what the run's gates validated; a run whose gates validated nothing (a quiet night, or a run
    stopped before its first gate) has none, which is logged, not an error. Returns the index.html URL in the
    shared state store."""
    from catalog_sync.quality.docs import build_data_docs, saved_validations

    if not saved_validations(load_id):
        log.info("%s: no gate validated any record in this run, so there are no Data Docs to build", load_id)
        return None
    return str(build_data_docs(load_id))


def fail(load_id: str, error: str) -> None:
    RunContext.attach(load_id).fail(error)


__all__ = ["ConnectorError", "FLOW", "open_run", "extract_erp", "gate_master_data", "load_pim", "link_assets",
           "writeback_supplier", "extract_pim", "gate_channel_content", "publish_products", "plan_image_chunks", "publish_images",
           "family_asset_ids", "check_consistency", "finish", "build_docs", "fail"]
