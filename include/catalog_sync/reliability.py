"""Reliability harness: run the nightly cold flow end to end and judge the systems' end state.

Used by ``tests/reliability`` and by hand (see RELIABILITY.md). It answers three questions about a run:

- did every hop reconcile (``read == delivered + unchanged + dead_lettered``, from the hub's run counters)?
- does the end state of the systems equal a reference (a fault-free run) for every record not dead-lettered?
- is anything duplicated (storefront handles or variant SKUs, PIM identifiers, open dead letters)?

Nothing here imports Airflow; it drives ``catalog_sync.flows.cold`` exactly as the DAG's tasks do, step by step.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from catalog_sync.connectors.base import ReadResult
from catalog_sync.connectors.http import Attempt
from catalog_sync.connectors.mapping import akeneo_product_to_canonical
from catalog_sync.engine.run import RunContext
from catalog_sync.flows import cold
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter

#: The cold flow's tasks in DAG order (images are mapped chunks after ``publish_products``).
COLD_STEPS: tuple[str, ...] = ("extract_erp", "gate_master_data", "load_pim", "link_assets", "writeback_supplier",
                               "extract_pim", "gate_channel_content", "publish_products", "publish_channels",
                               "publish_channel_images", "publish_images", "check_consistency", "finish")
_NO_SYSTEMS = {"gate_master_data", "gate_channel_content", "finish"}
#: Storefront fields compared between runs (ids and timestamps differ by construction).
_SHOP_FIELDS = ("title", "body_html", "vendor", "product_type", "status", "tags")
_VARIANT_FIELDS = ("sku", "price", "barcode", "option1", "option2", "option3", "weight", "weight_unit",
                   "inventory_quantity")


@dataclass
class FaultTally:
    """An ``on_attempt`` callback counting failed attempts by system and kind (what the faults did to us)."""

    by_kind: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts += 1
            if attempt.error:
                self.by_kind[f"{attempt.system}:{attempt.error}"] += 1

    def kinds(self) -> dict[str, int]:
        """Failed attempts per kind over every system (``http_429``, ``http_503``, ``timeout``...)."""
        out: Counter[str] = Counter()
        for key, n in self.by_kind.items():
            out[key.split(":", 1)[1]] += n
        return dict(sorted(out.items()))

    @property
    def failed(self) -> int:
        return sum(self.by_kind.values())


@dataclass
class ColdRun:
    load_id: str
    status: str | None
    error: str | None
    hops: dict[str, dict[str, int]]
    steps: dict[str, Any]

    def unreconciled(self) -> list[str]:
        """Hops whose counts do not add up (empty when the run lost nothing)."""
        return [f"{hop}: {c}" for hop, c in sorted(self.hops.items())
                if c["read"] != c["delivered"] + c["unchanged"] + c["dead_lettered"]]

    def total(self, counter: str) -> int:
        return sum(c[counter] for c in self.hops.values())


def run_cold(systems: Systems, run_id: str, *, hub_url: str | None = None,
             stop_after: str | None = None) -> ColdRun:
    """Run the cold flow's tasks in order against ``systems`` (``stop_after``: the last step to run).

    A step that raises marks the run failed (as the DAG's failure callback does) and re-raises.
    """
    load_id = cold.open_run(dag_id=cold.FLOW, run_id=run_id, window_start=None, window_end=None, hub_url=hub_url)
    outputs: dict[str, Any] = {}
    try:
        for step in COLD_STEPS:
            outputs[step] = run_step(step, load_id, systems)
            if step == stop_after:
                break
    except Exception as exc:
        cold.fail(load_id, f"{type(exc).__name__}: {exc}")
        raise
    return report(load_id, hub_url, outputs)


def run_step(step: str, load_id: str, systems: Systems) -> Any:
    """One cold task by name (``publish_images`` runs every planned chunk)."""
    if step == "publish_images":
        return [cold.publish_images(load_id, chunk, systems) for chunk in cold.plan_image_chunks(load_id)]
    if step == "publish_channels":  # the DAG's publish_channel_<name> tasks: each enabled channel configured here
        from catalog_sync.flows.channels import publish_channel
        from catalog_sync.governance.channels import load_channels

        return {c.name: publish_channel(load_id, c.name, systems, systems.channels[c.name])
                for c in load_channels().enabled() if c.name in systems.channels}
    if step == "publish_channel_images":  # the DAG's publish_channel_images_<name> tasks, after each channel's
        from catalog_sync.flows.channels import publish_channel_images
        from catalog_sync.governance.channels import load_channels

        return {c.name: publish_channel_images(load_id, c.name, systems, systems.channels[c.name])
                for c in load_channels().enabled() if c.name in systems.channels and c.images is not None}
    fn: Callable[..., Any] = getattr(cold, step)
    return fn(load_id) if step in _NO_SYSTEMS else fn(load_id, systems)


def report(load_id: str, hub_url: str | None = None, outputs: dict[str, Any] | None = None) -> ColdRun:
    """The run's status and per-hop counters as the hub holds them (counter rows, ``SyncRun``)."""
    with session_scope(hub_url) as s:
        run = repo.get_run(s, load_id) or {}
    hops = RunContext(load_id, str(run.get("flow") or cold.FLOW), hub_url).hop_counts() if run else {}
    return ColdRun(load_id, run.get("status"), run.get("error"), hops, outputs or {})


# --- end state -----------------------------------------------------------------------------------------------


def pim_state(systems: Systems) -> dict[str, dict[str, Any]]:
    """Every PIM product and product model as its ERP-owned values (plus asset links), keyed by SKU."""
    out: dict[str, dict[str, Any]] = {}
    for pages in (systems.pim.iter_products(), systems.pim.iter_product_models()):
        result = ReadResult.collect(pages)
        if result.errors:
            raise AssertionError(f"PIM read returned malformed records (switch faults off first): {result.errors[:3]}")
        for product in result.records:
            canonical = akeneo_product_to_canonical(product)
            out[str(canonical["sku"])] = {f: canonical.get(f) for f in (*cold.ERP_FIELDS_IN_PIM, "asset_links")}
    return out


def storefront_state(systems: Systems) -> dict[str, dict[str, Any]]:
    """Every storefront product by handle: its content, variants (by SKU) and image sources."""
    out: dict[str, dict[str, Any]] = {}
    for page in systems.storefront.iter_products():
        if page.errors:
            raise AssertionError(f"storefront read returned malformed records: {page.errors[:3]}")
        for p in page.records:
            out[str(p["handle"])] = {
                **{f: p.get(f) for f in _SHOP_FIELDS},
                "variants": sorted(({f: str(v.get(f)) for f in _VARIANT_FIELDS} for v in p.get("variants") or []),
                                   key=lambda v: v["sku"]),
                "images": [i.get("src") for i in p.get("images") or []],
            }
    return out


def supplier_state(systems: Systems) -> dict[str, dict[str, Any]]:
    """Every supplier submission by id: its SKU and the decision the write-back gave it."""
    result = ReadResult.collect(systems.supplier.iter_submissions(status=None))
    if result.errors:
        raise AssertionError(f"supplier read returned malformed records (switch faults off first): {result.errors[:3]}")
    return {str(s["id"]): {"sku": s.get("sku"), "status": s.get("status")} for s in result.records}


def duplicates(systems: Systems, hub_url: str | None = None) -> dict[str, list[str]]:
    """Everything that exists twice where it must exist once; every list empty means no duplicate anywhere."""
    handles: Counter[str] = Counter()
    variant_skus: Counter[str] = Counter()
    for page in systems.storefront.iter_products():
        for p in page.records:
            handles[str(p["handle"])] += 1
            variant_skus.update(str(v.get("sku")) for v in p.get("variants") or [])
    identifiers: Counter[str] = Counter()
    for page in systems.pim.iter_products():
        identifiers.update(str(p["identifier"]) for p in page.records)
    codes: Counter[str] = Counter()
    for page in systems.pim.iter_product_models():
        codes.update(str(p["code"]) for p in page.records)
    key = (DeadLetter.flow, DeadLetter.entity, DeadLetter.record_key, DeadLetter.target_system,
           DeadLetter.reason_kind, DeadLetter.expectation)
    with session_scope(hub_url) as s:
        letters = s.execute(select(*key, func.count()).where(DeadLetter.status == "open").group_by(*key)
                            .having(func.count() > 1)).all()
    return {
        "storefront_handles": sorted(h for h, n in handles.items() if n > 1),
        "storefront_variant_skus": sorted(k for k, n in variant_skus.items() if n > 1),
        "pim_identifiers": sorted(k for k, n in identifiers.items() if n > 1),
        "pim_model_codes": sorted(k for k, n in codes.items() if n > 1),
        "open_dead_letters": sorted("/".join(map(str, row[:-1])) for row in letters),
    }


def open_dead_letters(hub_url: str | None = None, load_ids: Iterable[str] | None = None) -> list[DeadLetter]:
    with session_scope(hub_url) as s:
        query = select(DeadLetter).where(DeadLetter.status == "open")
        if load_ids is not None:
            query = query.where(DeadLetter.load_id.in_(list(load_ids)))
        rows = list(s.scalars(query).all())
        s.expunge_all()
    return rows


def dead_lettered_skus(letters: Iterable[DeadLetter], references: Iterable[Mapping[str, Any]]) -> set[str]:
    """SKUs the dead letters are about.

    Keys name a SKU directly (``MH01-XS-Black``), a hot change (``stock:MH01-XS-Black@DC-EAST``) or an inventory
    write (``MH01-XS-Black/12``). A record too broken to carry its key (``<items #12>``) is matched back to the
    source record (``references``: ERP items, ERP changes, each with a ``sku``) whose other fields it repeats, so
    "not dead-lettered" is decided per SKU, never guessed.
    """
    refs = list(references)
    skus: set[str] = set()
    for letter in letters:
        key = str(letter.record_key)
        if not key.startswith("<"):
            if ":" in key and key.split(":", 1)[0] in {"stock", "price", "item"}:
                key = key.split(":", 1)[1].split("@", 1)[0]
            elif letter.entity == "inventory":
                key = key.rsplit("/", 1)[0]
            skus.add(key)
            continue
        payload = letter.payload or {}
        if not payload:
            continue
        # The source records agreeing with the most of its fields (a UPC or a change's seq singles one out;
        # shared values such as a status alone match many records, so only the best matches count).
        scored = [(sum(1 for k, v in payload.items() if k in ref and ref[k] == v), ref) for ref in refs]
        best = max((n for n, _ in scored), default=0)
        if best >= 2 and best >= len(payload) - 1:
            skus.update(str(ref["sku"]) for n, ref in scored if n == best)
    return skus


def storefront_exclusions(shop: Mapping[str, Mapping[str, Any]], pim: Mapping[str, Mapping[str, Any]],
                          skus: set[str]) -> set[str]:
    """Storefront handles touched by dead-lettered ``skus``: a product holding one as a variant, or the product of
    a dead-lettered configurable parent (its variants are found through the PIM's ``parent_sku``)."""
    affected = set(skus) | {s for s, rec in pim.items() if rec.get("parent_sku") in skus}
    return {h for h, p in shop.items() if any(v["sku"] in affected for v in p["variants"])}


def differences(reference: Mapping[str, Any], other: Mapping[str, Any], exclude: set[str]) -> dict[str, Any]:
    """Keys whose state differs between two end states, leaving out ``exclude`` (the dead-lettered ones)."""
    out = {}
    for key in sorted(set(reference) | set(other)):
        if key in exclude:
            continue
        if reference.get(key) != other.get(key):
            out[key] = {"reference": reference.get(key), "other": other.get(key)}
    return out
