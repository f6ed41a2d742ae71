"""The nightly cold flow over the Luma catalog in the sandbox, with a real hub (SQLite, and PostgreSQL in CI).

Issue #4's acceptance: delivered + dead-lettered = read, every dead letter has a reason, a supplier write of
lifecycle status is refused, UoM and vendor variants are normalised, duplicates are dead-lettered, a second run of
the same window writes nothing, and a rollback restores the previous values. Plus replay after a fix.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog_sync import alerting
from catalog_sync.connectors import ReadResult
from catalog_sync.connectors.mapping import akeneo_product_to_canonical
from catalog_sync.flows import cold, replay, rollback
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AuditEvent, DeadLetter, FieldDelta, FieldHold, SyncRun
from catalog_sync.showable import showable, storefront_region, why_hidden
from catalog_sync.transforms import canonical_vendor


@pytest.fixture
def systems(fresh_sandbox: Any) -> Any:
    fresh_sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    bundle = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    yield bundle
    bundle.close()


def erp_to_pim(run_id: str, systems: Systems) -> str:
    load_id = cold.open_run(dag_id="cold_data_nightly", run_id=run_id, window_start=None, window_end=None)
    cold.extract_erp(load_id, systems)
    cold.gate_master_data(load_id)
    cold.load_pim(load_id, systems)
    return load_id


def whole_run(run_id: str, systems: Systems) -> tuple[str, dict[str, Any]]:
    load_id = erp_to_pim(run_id, systems)
    cold.link_assets(load_id, systems)
    cold.writeback_supplier(load_id, systems)
    cold.extract_pim(load_id, systems)
    cold.gate_channel_content(load_id)
    cold.publish_products(load_id, systems)
    for chunk in cold.plan_image_chunks(load_id):
        cold.publish_images(load_id, chunk, systems)
    cold.check_consistency(load_id, systems)
    return load_id, cold.finish(load_id)


def pim_record(systems: Systems, sku: str) -> dict[str, Any]:
    product = systems.pim.get_product(sku)
    assert product is not None, sku
    return akeneo_product_to_canonical(product)


def open_letters(**where: Any) -> list[DeadLetter]:
    with session_scope() as s:
        query = select(DeadLetter).where(DeadLetter.status == "open")
        for name, value in where.items():
            query = query.where(getattr(DeadLetter, name) == value)
        return list(s.scalars(query).all())


def test_luma_moves_through_every_hop_and_reconciles(hub_url: str, fresh_sandbox: Any, systems: Systems) -> None:
    uom = fresh_sandbox.scenario("uom_spelling_variants")["skus"]
    vendor = fresh_sandbox.scenario("vendor_name_variants")
    dups = fresh_sandbox.scenario("duplicate_skus_and_upcs")["skus"]

    load_id, result = whole_run("manual__t1", systems)

    # Every hop reconciles: read == delivered + unchanged + dead-lettered (finish() would have raised otherwise).
    for hop, c in result["hops"].items():
        assert c["read"] == c["delivered"] + c["unchanged"] + c["dead_lettered"], hop
    # The page of every product published is purged from the CDN once its images are on.
    published = result["hops"]["pim->storefront"]["delivered"]
    assert result["hops"]["storefront->cdn"] == {"read": published, "delivered": published, "unchanged": 0,
                                                 "dead_lettered": 0}
    erp = result["hops"]["erp->pim"]
    assert erp["read"] == 2026 + 1  # Luma's 147 parents + 1,847 variants + 32 gear items, + the case-twin SKU
    assert result["hops"]["pim->storefront"]["delivered"] > 140
    with session_scope() as s:
        assert repo.get_run(s, load_id)["status"] == "success"
    # The demo catalog's nightly is no write-back loop: nothing is held, no loop letter, no loop alert.
    assert result["write_loops_held"] == []
    assert not [a for a in alerting.run_alerts(load_id) if a.key.startswith("write_loop:")]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(FieldHold)) == 0

    # Every dead letter carries a reason; the duplicates are among them and never reached the PIM.
    letters = open_letters()
    assert letters and all(letter.reason.strip() for letter in letters)
    dup_letters = {x.record_key for x in letters if x.reason_kind == "duplicate"}
    assert set(dups) <= dup_letters
    for sku in dups:
        assert (systems.pim.get_product(sku) or {}).get("values", {}).get("upc") is None

    # UoM spellings and vendor-name variants arrive normalised.
    for sku in uom:
        assert pim_record_or_model(systems, sku)["uom"] == "EA"
    for change in vendor["changes"]:
        got = pim_record_or_model(systems, change["sku"])["vendor_name"]
        # Every spelling of the vendor lands on the one canonical name its unchanged records carry.
        assert got == canonical_vendor(change["erp"]["canonical"]) != change["erp"]["vendor_name"], (change, got)

    # The supplier portal's lifecycle flag was refused and dead-lettered, its content written.
    refused = open_letters(reason_kind="ownership", source_system="supplier")
    assert refused and {x.expectation for x in refused} == {"lifecycle_status"}
    assert all("supplier" in x.reason and "erp" in x.reason for x in refused)
    # Only a flag that would change the ERP's lifecycle is refused: one restating it is ignored, not a dead letter.
    assert all(pim_record_or_model(systems, x.record_key)["lifecycle_status"] != "discontinued" for x in refused)
    with session_scope() as s:
        ignored = s.scalars(select(AuditEvent).where(AuditEvent.load_id == load_id,
                                                     AuditEvent.action == "ignore")).all()
    assert len(ignored) > len(refused) and all("equal to the ERP's" in i.response["message"] for i in ignored)

    # The storefront shows the published catalogue: an active product with images and stock.
    sku = "MH01"
    product = systems.storefront.find_by_handle(cold.storefront_handle(pim_record_or_model(systems, sku)))
    assert product is not None and product["status"] == "active" and product["images"]
    assert {v["sku"] for v in product["variants"]} >= {"MH01-XS-Black", "MH01-M-Gray"}

    # No image a shopper sees is outside its rights or its validity window (the demo DAM has expired rights on
    # one gallery image in 25: every one of them stays off the storefront), and the others are shown.
    assets = ReadResult.collect(systems.dam.iter_assets()).records
    by_src = {(a.get("renditions") or {}).get("ecommerce"): a for a in assets}
    now = datetime.now(UTC)
    expired = [a for a in assets if a.get("status") == "approved" and not showable(a, now, storefront_region())]
    assert len(expired) > 20  # the rule has something to refuse
    shown = [i["src"] for page in systems.storefront.iter_products() for p in page.records
             for i in p.get("images") or []]
    assert shown and all(src in by_src for src in shown)
    hidden = [(src, why_hidden(by_src[src], now, storefront_region())) for src in shown
              if not showable(by_src[src], now, storefront_region())]
    assert hidden == []


def pim_record_or_model(systems: Systems, sku: str) -> dict[str, Any]:
    model = systems.pim.get_product_model(sku)
    return akeneo_product_to_canonical(model) if model else pim_record(systems, sku)


def test_rerun_of_the_same_window_writes_nothing(hub_url: str, systems: Systems) -> None:
    def ok_writes(load_id: str) -> int:
        with session_scope() as s:
            return int(s.scalar(select(func.count()).where(
                AuditEvent.load_id == load_id, AuditEvent.action == "write", AuditEvent.outcome == "ok")) or 0)

    first = erp_to_pim("manual__same", systems)
    written = ok_writes(first)
    assert written > 2000
    # The same Airflow run again (a cleared task re-runs the hop with the same window): nothing is sent.
    again = erp_to_pim("manual__same", systems)
    assert again == first
    assert ok_writes(again) == written  # the audit trail is append-only: no new write rows
    counts = cold.RunContext.attach(again).hop_counts()["erp->pim"]
    assert counts["delivered"] == 0 and counts["unchanged"] == counts["read"] > 2000


def test_rollback_restores_previous_pim_values(hub_url: str, systems: Systems) -> None:
    sku = "MH01-XS-Black"
    before = pim_record(systems, sku)
    assert before["lifecycle_status"] is None and before["reference_price"] is None  # PIM starts content-only
    load_id = erp_to_pim("manual__rb", systems)
    cold.finish(load_id)
    loaded = pim_record(systems, sku)
    assert loaded["lifecycle_status"] == "active" and loaded["reference_price"] == 52.0

    plan = rollback.plan(load_id)
    assert any(r["record_key"] == sku and r["system"] == "pim" for r in plan["records"])
    result = rollback.rollback(load_id, systems, by="tester", run_id="manual__rollback")
    assert result["restored"] == result["records"] > 2000
    after = pim_record(systems, sku)
    assert after["lifecycle_status"] is None and after["reference_price"] is None
    assert after["name"] == before["name"]  # PIM-owned content untouched
    with pytest.raises(rollback.RollbackRefused):
        rollback.rollback("no-such-run", systems, by="tester")
    # Rolled-back deltas are not rolled back twice.
    assert rollback.plan(load_id)["records"] == []


def test_replay_after_the_source_is_fixed(hub_url: str, fresh_sandbox: Any, systems: Systems) -> None:
    bad = fresh_sandbox.scenario("uom_spelling_variants", ["MH01-XS-Black"])["skus"][0]
    # An ERP unit nobody knows: normalisation refuses it and dead-letters the record.
    systems.erp.put_item({**systems.erp.get_item(bad), "uom": "furlong"})
    load_id = erp_to_pim("manual__replay", systems)
    cold.finish(load_id)
    (letter,) = open_letters(record_key=bad)
    assert letter.reason_kind == "transform" and "uom" in letter.expectation

    still = replay.replay([letter.id], systems, by="tester", run_id="r1")
    assert still["still_open"] == [letter.id]
    with session_scope() as s:
        assert s.get(DeadLetter, letter.id).attempts == 2

    systems.erp.put_item({**systems.erp.get_item(bad), "uom": "EA"})
    done = replay.replay([letter.id], systems, by="tester", run_id="r2")
    assert done["replayed"] == [letter.id]
    assert pim_record(systems, bad)["uom"] == "EA"
    with session_scope() as s:
        assert s.get(DeadLetter, letter.id).status == "replayed"
        runs = s.scalars(select(SyncRun.status).where(SyncRun.load_id == done["load_id"])).all()
    assert runs == ["success"]
    with pytest.raises(replay.ReplayError, match="not open"):
        replay.replay([letter.id], systems, by="tester")


def test_values_emptied_at_their_owner_are_emptied_downstream_and_roll_back(
    hub_url: str, fresh_sandbox: Any, systems: Systems
) -> None:
    """A description a merchandiser removes in the PIM, and a vendor the ERP empties, leave the storefront too."""
    described, vended = "24-MB01", "24-MB02"  # two gear bags, simple products
    first, _ = whole_run("manual__empty1", systems)
    handles = {sku: cold.storefront_handle(pim_record(systems, sku)) for sku in (described, vended)}
    old_body = systems.storefront.find_by_handle(handles[described])["body_html"]
    old_vendor = systems.storefront.find_by_handle(handles[vended])["vendor"]
    assert old_body and old_vendor == pim_record(systems, vended)["vendor_name"]

    # The PIM user clears the description (Akeneo: a null value removes it, and the product's values then lack
    # it); the ERP clerk clears the vendor.
    entries = systems.pim.get_product(described)["values"]["description"]
    (cleared,) = systems.pim.upsert_products([{"identifier": described, "values": {"description": [
        {"locale": e["locale"], "scope": e["scope"], "data": None} for e in entries]}}])
    assert cleared.ok and "description" not in systems.pim.get_product(described)["values"]
    assert systems.erp.put_item({"sku": vended, "vendor_name": None}).ok
    assert systems.cdn is not None
    systems.cdn.shopper_page(handles[described])  # a shopper's visit: the CDN now holds the page as it was
    assert systems.cdn.shopper_page(handles[described]).cache == "HIT"

    second, result = whole_run("manual__empty2", systems)
    assert result["hops"]["pim->storefront"]["dead_lettered"] == 0
    assert pim_record(systems, vended)["vendor_name"] is None  # the ERP's emptiness reached the PIM
    assert systems.storefront.find_by_handle(handles[described])["body_html"] == ""
    # The nightly purged the pages it changed, so shoppers get the emptied description, not the CDN's old copy.
    assert result["hops"]["storefront->cdn"] == {"read": 2, "delivered": 2, "unchanged": 0, "dead_lettered": 0}
    page = systems.cdn.shopper_page(handles[described])
    assert page.cache == "MISS" and '<div class="description"></div>' in page.html
    assert systems.storefront.find_by_handle(handles[vended])["vendor"] in (None, "")
    with session_scope() as s:
        deltas = {(d.system, d.record_key, d.field): (d.before, d.after)
                  for d in s.scalars(select(FieldDelta).where(FieldDelta.load_id == second))}
    assert deltas[("storefront", described, "body_html")] == (old_body, "")
    assert deltas[("pim", vended, "vendor_name")] == (old_vendor, None)
    assert deltas[("storefront", vended, "vendor")] == (old_vendor, None)
    # The missing description is still a finding for the merchandisers, though the emptied copy went out.
    (finding,) = open_letters(record_key=described, load_id=second)
    assert finding.expectation == "products.l1.family_attributes_filled"

    undone = rollback.rollback(second, systems, by="tester", run_id="manual__empty_rollback")
    assert undone["conflicts"] == [] and undone["restored"] == undone["records"] >= 3
    assert systems.storefront.find_by_handle(handles[described])["body_html"] == old_body
    assert systems.storefront.find_by_handle(handles[vended])["vendor"] == old_vendor
    assert pim_record(systems, vended)["vendor_name"] == old_vendor


def test_a_first_load_past_the_variant_threshold_creates_what_today_allows_and_dates_the_rest(
        hub_url: str, fresh_sandbox: Any, systems: Systems) -> None:
    # the store already holds Shopify's 50,000 variants; 120 new ones a day stands for the real 1,000
    fresh_sandbox.settings(storefront_variants_offset=50_000, storefront_variant_daily_limit=120)
    systems.storefront.variant_daily_limit = 120
    # the first active families (the order the plan would take them in on a tie) have nothing in stock
    items = {str(i["sku"]): i for page in systems.erp.iter_items() for i in page.records}
    active_roots = sorted(sku for sku, i in items.items() if not i.get("parent_sku")
                          and i.get("lifecycle_status") == "active")[:40]
    emptied = {sku for sku, i in items.items() if sku in active_roots or i.get("parent_sku") in active_roots}
    levels = [lv for page in systems.erp.iter_stock() for lv in page.records if str(lv["sku"]) in emptied]
    for level in levels:
        assert systems.erp.set_stock(str(level["sku"]), str(level["location"]), 0).ok
    load_id, counts = whole_run("throttled-first-load", systems)

    with session_scope() as s:
        run = s.get(SyncRun, load_id)
        pending = s.scalars(select(AuditEvent).where(AuditEvent.load_id == load_id,
                                                     AuditEvent.outcome == "pending")).all()
        throttled = s.scalar(select(func.count()).where(DeadLetter.load_id == load_id,
                                                        DeadLetter.reason.contains("variant creation")))
        missing = s.scalars(select(DeadLetter.record_key).where(
            DeadLetter.load_id == load_id, DeadLetter.expectation.contains("storefront_status"))).all()
    assert run is not None and run.status == "success"  # every family accounted for: pending is not lost
    assert pending and throttled == 0  # neither dead letters nor failures
    # nor findings of the consistency gate: a family waiting on the throttle is not "missing from the storefront"
    waiting_families = {e.record_key for e in pending}
    assert not [k for k in missing if str(items.get(k, {}).get("parent_sku") or k) in waiting_families]
    days = sorted({e.response["scheduled_for"] for e in pending if e.response["scheduled_for"]})
    assert days and days[0] > run.started_at.date().isoformat()  # the next day onwards, one day per 120 variants
    created = systems.storefront.variant_count() - 50_000
    assert 0 < created <= 120
    # what went first is what matters: every product created today is active
    shown = [p for page in systems.storefront.iter_products() for p in page.records]
    assert shown and all(p["status"] == "active" for p in shown)
    # ranked active first, then in stock, then in season: what went today is a prefix of that order
    stocked = {str(level["sku"]) for page in systems.erp.iter_stock() for level in page.records
               if int(level.get("quantity") or 0) > 0}
    variants: dict[str, list[str]] = {}
    for sku, item in items.items():
        variants.setdefault(str(item.get("parent_sku") or sku), []).append(sku)
    season = {"active": 0, "seasonal_hold": 1}

    def rank(root: str) -> tuple[bool, bool, int]:
        lifecycle = str(items[root].get("lifecycle_status"))
        in_stock = any(v in stocked for v in variants[root] if v != root or len(variants[root]) == 1)
        return (lifecycle != "active", not in_stock, season.get(lifecycle, 2))

    created_roots = {str(items[str(v["sku"])].get("parent_sku") or v["sku"]) for p in shown for v in p["variants"]}
    waiting = {e.record_key for e in pending}
    assert any(rank(r)[1] for r in waiting)  # out of stock, held back
    assert max(rank(r) for r in created_roots) <= min(rank(r) for r in waiting)
