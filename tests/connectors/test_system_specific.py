"""What only one system does, over real HTTP to the sandbox: the ERP change feed, storefront inventory
idempotency, the CDN's cache and purges, DAM binaries, PIM product models."""

from __future__ import annotations

import hashlib
import socket
from typing import Any

import pytest

from catalog_sync.connectors import (
    Attempt,
    CdnClient,
    ClientOptions,
    ConfigurationError,
    Outcome,
    ReadResult,
    RetryPolicy,
    TransientError,
    build_client,
)
from catalog_sync.connectors.mapping import (
    akeneo_product_to_canonical,
    canonical_to_akeneo_product_model,
    canonical_to_shopify_product,
    empty_record,
)
from catalog_sync.domain import System

RETRY = RetryPolicy(max_attempts=5, base=0.05, cap=0.5, max_retry_after=5)


def client(sandbox: Any, system: System, **options: Any) -> Any:
    return build_client(system, f"{sandbox.url.rstrip('/')}/{system.value}", sandbox.credentials[system.value],
                        ClientOptions(retry=RETRY, **options))


def test_erp_change_feed_is_read_in_order_up_to_the_frozen_bound(fresh_sandbox: Any) -> None:
    erp = client(fresh_sandbox, System.ERP)
    head = erp.last_seq()
    stock = next(iter(erp.iter_stock())).records[0]
    assert erp.set_stock(stock["sku"], stock["location"], stock["quantity"] + 3).ok
    assert erp.set_price(stock["sku"], 12.5).ok
    bound = erp.last_seq()
    assert bound == head + 2
    assert erp.set_stock(stock["sku"], stock["location"], 0).ok  # after the bound: not this run's work
    result = ReadResult.collect(erp.iter_changes(after=head, until=bound, limit=1))
    assert [(c["seq"], c["topic"]) for c in result.records] == [(head + 1, "stock"), (head + 2, "price")]
    assert result.cursor == bound
    assert ReadResult.collect(erp.iter_changes(after=bound, until=bound)).records == []


def _publish(shop: Any, sku: str) -> dict[str, Any]:
    record = empty_record()
    record.update(sku=sku, product_type="simple", lifecycle_status="active", name=f"Specific {sku}",
                  description="<p>First copy</p>", reference_price=20.0)
    result = shop.upsert_product(canonical_to_shopify_product(record))
    assert result.outcome is Outcome.OK, result.message
    product = shop.find_by_handle(result.key)
    assert product is not None
    return dict(product)


def cdn(sandbox: Any, **options: Any) -> CdnClient:
    return build_client(System.CDN, f"{sandbox.url}/cdn", sandbox.credentials["cdn"],
                        ClientOptions(retry=RETRY, **options), site_url=f"{sandbox.url}/cdn/edge")


def test_storefront_upsert_by_handle_and_cdn_purge(fresh_sandbox: Any) -> None:
    shop, edge = client(fresh_sandbox, System.STOREFRONT), cdn(fresh_sandbox)
    product = _publish(shop, "SPEC-CACHE-1")
    handle = product["handle"]
    assert edge.shopper_page(handle).cache == "MISS"
    cached = edge.shopper_page(handle)
    assert cached.cache == "HIT" and "Specific SPEC-CACHE-1" in cached.html
    record = empty_record()
    record.update(sku="SPEC-CACHE-1", product_type="simple", lifecycle_status="active", name="Renamed product",
                  description="<p>First copy</p>", reference_price=20.0)
    desired = canonical_to_shopify_product(record)
    assert desired["handle"] == handle
    update = shop.upsert_product(desired)
    assert update.outcome is Outcome.OK and "title" in (update.message or "")
    assert shop.upsert_product(desired).outcome is Outcome.UNCHANGED
    assert len(ReadResult.collect(shop.iter_products(handle=handle)).records) == 1  # updated, not duplicated
    assert "Renamed product" not in edge.shopper_page(handle).html  # still the CDN's copy
    assert "Renamed product" in shop.shopper_page(handle).html  # the storefront's own page is current
    purged = edge.purge_pages([handle])
    assert set(purged) == {handle} and purged[handle]
    fresh = edge.shopper_page(handle)
    assert fresh.cache == "MISS" and "Renamed product" in fresh.html
    # by URL too: the page's address as shoppers use it
    shop.upsert_product({**desired, "title": "Renamed again"})
    assert "Renamed again" not in edge.shopper_page(handle).html
    assert edge.purge_url(edge.page_url(handle))
    assert "Renamed again" in edge.shopper_page(handle).html


def test_cdn_purges_go_out_256_keys_to_a_call(fresh_sandbox: Any) -> None:
    calls: list[Attempt] = []
    edge = cdn(fresh_sandbox, on_attempt=calls.append)
    handles = [f"product-{n}" for n in range(300)]
    assert len(edge.purge_pages(handles)) == 300
    assert [(a.method, a.status) for a in calls] == [("POST", 200), ("POST", 200)]
    assert edge.surrogate_key("chaz") == "product-chaz"
    with pytest.raises(ConfigurationError):
        CdnClient(f"{fresh_sandbox.url}/cdn", fresh_sandbox.credentials["cdn"], surrogate_key_format="page-{id}")


def test_an_unreachable_cdn_raises_rather_than_reporting_a_purge() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    edge = CdnClient(f"http://127.0.0.1:{port}", {"api_token": "t0ken-x", "service_id": "svc"},
                     ClientOptions(retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.02)))
    with pytest.raises(TransientError, match="cdn: POST /service/svc/purge"):
        edge.purge_pages(["chaz"])


def test_dam_binary_matches_its_checksum(fresh_sandbox: Any) -> None:
    dam = client(fresh_sandbox, System.DAM)
    asset = next(iter(dam.iter_assets())).records[0]
    content = dam.download(asset)
    assert content and hashlib.sha256(content).hexdigest() == asset["checksum"]


def test_pim_product_models_round_trip(fresh_sandbox: Any) -> None:
    pim = client(fresh_sandbox, System.PIM)
    model = next(iter(pim.iter_product_models())).records[0]
    axes = pim.family_variant_axes(model["family"])[model["family_variant"]]
    record = akeneo_product_to_canonical(model, axes=axes)
    assert record["product_type"] == "configurable" and record["axes"]
    record["meta_title"] = "Parent meta title"
    payload = canonical_to_akeneo_product_model(record, family=model["family"],
                                                family_variant=model["family_variant"])
    payload["categories"] = model["categories"]  # codes already, as the PIM holds them
    [result] = pim.upsert_product_models([payload])
    assert result.outcome is Outcome.OK and result.status == 204, result.message
    back = pim.get_product_model(model["code"])
    assert back is not None and akeneo_product_to_canonical(back)["meta_title"] == "Parent meta title"


def _shop_record(sku: str, name: str, price: float) -> dict[str, Any]:
    record = empty_record()
    record.update(sku=sku, product_type="simple", lifecycle_status="active", name=name, reference_price=price)
    return canonical_to_shopify_product(record)


def test_storefront_bulk_upsert_isolates_a_refused_product_and_skips_unchanged_ones(fresh_sandbox: Any) -> None:
    shop = client(fresh_sandbox, System.STOREFRONT)
    products = [_shop_record(f"SPEC-BULK-{i}", f"Bulk {i}", 10 + i) for i in range(3)]
    refused = {**_shop_record("SPEC-BULK-X", "Refused", 1), "variants": [{"sku": "SPEC-BULK-X", "price": "NaN"}]}
    first = shop.upsert_products([products[0], refused, *products[1:]])
    assert [(r.outcome, r.message) for r in first] == [
        (Outcome.OK, "created"), (Outcome.FAILED, first[1].message), (Outcome.OK, "created"), (Outcome.OK, "created")]
    assert first[1].status == 422 and "variants.0.price" in (first[1].message or "")
    assert first[0].response["variants"][0]["inventory_item_id"]  # what the flows keep as external ids
    assert shop.find_by_handle(refused["handle"]) is None

    renamed = {**products[2], "title": "Bulk two, renamed"}
    second = shop.upsert_products([products[0], products[1], renamed])
    assert [r.outcome for r in second] == [Outcome.UNCHANGED, Outcome.UNCHANGED, Outcome.OK]
    assert second[2].message == "updated: title"
    stored = shop.find_by_handles([p["handle"] for p in products])
    assert stored[renamed["handle"]]["title"] == "Bulk two, renamed" and len(stored) == 3
    assert stored[products[0]["handle"]]["variants"][0]["price"] == "10.00"


def test_storefront_bulk_upsert_reports_what_went_out_before_an_outage(fresh_sandbox: Any) -> None:
    from catalog_sync.connectors import ConnectorError
    from catalog_sync.connectors import storefront as module

    shop = client(fresh_sandbox, System.STOREFRONT)
    sizes = [str(k) for k in range(10)]
    products = [{**_shop_record(f"SPEC-OUT-{i}", f"Outage {i}", 5), "options": [{"name": "Size", "values": sizes}],
                 "variants": [{"sku": f"SPEC-OUT-{i}-{k}", "option1": k, "price": "5.00"} for k in sizes]}
                for i in range(module.PRODUCTS_PER_REQUEST + 2)]
    existing = {}  # read before the outage, so only the writes meet it
    calls = {"n": 0, "first": 0}
    real = shop.graphql

    def flaky(query: str, variables: Any, cost: float | None = None) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            calls["first"] = query.count("productSet(")
        if calls["n"] == 2:
            fresh_sandbox.set_faults("storefront", error_rate=1.0)
        return real(query, variables, cost)

    shop.graphql = flaky
    try:
        shop.upsert_products(products, existing=existing)
        raise AssertionError("the outage did not surface")
    except ConnectorError as exc:
        # the first request took as many products as its cost allowed: 34 points each (10, the product, its
        # userErrors, and a variants(first: 10) connection of two-point nodes), so 29, not PRODUCTS_PER_REQUEST
        assert calls["first"] == 1000 // 34 < module.PRODUCTS_PER_REQUEST
        assert [r.outcome for r in exc.partial_results] == [Outcome.OK] * calls["first"]
    finally:
        fresh_sandbox.clear_faults()
    assert len(shop.find_by_handles([p["handle"] for p in products])) == calls["first"]


def test_storefront_bulk_inventory_isolates_bad_levels_and_replays_idempotently(fresh_sandbox: Any) -> None:
    from catalog_sync.connectors.storefront import LevelWrite

    shop = client(fresh_sandbox, System.STOREFRONT)
    items = [_publish(shop, f"SPEC-LV-{i}")["variants"][0]["inventory_item_id"] for i in range(2)]
    location = shop.locations()[0]["id"]
    levels = [LevelWrite("a", "SPEC-LV-0", location, items[0], 4, 201),
              LevelWrite("bad", "NOPE", location, 999_999_999, 1, 202),
              LevelWrite("b", "SPEC-LV-1", location, items[1], 6, 203)]
    first = shop.set_inventory_levels(levels)
    assert [(r.key, r.outcome) for r in first] == [("a", Outcome.OK), ("bad", Outcome.FAILED), ("b", Outcome.OK)]
    assert "inventoryItemId" in (first[1].message or "") and first[1].status == 422

    def level(item: int) -> int:
        return next(lv["available"] for lv in shop.inventory_levels([item]) if lv["location_id"] == location)

    assert [level(i) for i in items] == [4, 6]
    later = shop.set_inventory_levels([LevelWrite("a", "SPEC-LV-0", location, items[0], 9, 204)])
    assert later[0].outcome is Outcome.OK and level(items[0]) == 9
    replay = shop.set_inventory_levels(levels)  # the first run again, after a later change
    assert [(r.outcome, r.message) for r in replay if r.ok] == [(Outcome.UNCHANGED, "replayed")] * 2
    assert [level(i) for i in items] == [9, 6]  # the late replay did not undo change 204


def test_storefront_graphql_waits_out_its_cost_bucket(fresh_sandbox: Any) -> None:
    fresh_sandbox.settings(storefront_points_max=100, storefront_points_restore_per_s=50)
    seen: list[Any] = []
    shop = client(fresh_sandbox, System.STOREFRONT, on_attempt=seen.append)
    products = [_shop_record(f"SPEC-THR-{i}", f"Throttled {i}", 3) for i in range(5)]  # 100 points a call
    for _ in range(3):  # the third call finds the bucket empty: the client paces itself and is never refused
        assert all(r.ok for r in shop.upsert_products(products, existing={}))
    assert shop.throttled_seconds > 0.5 and [a.error for a in seen] == [None] * 3
    # A client that has not seen the bucket yet is told THROTTLED, waits until the points are back, and succeeds.
    attempts: list[Any] = []
    other = client(fresh_sandbox, System.STOREFRONT, on_attempt=attempts.append)
    assert all(r.ok for r in other.upsert_products(products, existing={}))
    assert [a.error for a in attempts] == ["http_429", None] and attempts[0].waited >= 0.1


def test_dam_reads_many_assets_by_id_and_heals_garbled_records(fresh_sandbox: Any) -> None:
    dam = client(fresh_sandbox, System.DAM)
    assets = next(iter(dam.iter_assets())).records[:30]
    ids = [str(a["id"]) for a in assets]
    found, malformed = dam.get_assets([*ids, "AST-NOT-THERE"])
    assert sorted(found) == sorted(ids) and malformed == {}
    assert found[ids[0]]["checksum"] == assets[0]["checksum"]
    # a quarter of the records garbled on the way (identifiers dropped, strings in number fields): re-read
    reads: list[Any] = []
    garbled = client(fresh_sandbox, System.DAM, on_attempt=reads.append)
    fresh_sandbox.set_faults("dam", malformed_rate=0.25, seed=3)
    try:
        healed, malformed = garbled.get_assets(ids)
    finally:
        fresh_sandbox.clear_faults()
    assert len(reads) > 1 and malformed == {} and {k: v["checksum"] for k, v in healed.items()} == {k: v["checksum"] for k, v in found.items()}


def test_storefront_barcode_and_weight_emptied_upstream_are_cleared(fresh_sandbox: Any) -> None:
    """productSet keeps a variant field it is not sent (Shopify's rule, which the sandbox follows): an emptied
    barcode goes out as an explicit null and an emptied weight as Shopify's 0, read back as no weight."""
    shop = client(fresh_sandbox, System.STOREFRONT)
    record = empty_record()
    record.update(sku="CLEAR-1", product_type="simple", lifecycle_status="active", name="Clearing test",
                  description="<p>Copy</p>", reference_price=20.0, upc="0123456789012", weight=1.5,
                  weight_unit="lbs")
    assert shop.upsert_product(canonical_to_shopify_product(record)).outcome is Outcome.OK
    handle = canonical_to_shopify_product(record)["handle"]
    (variant,) = shop.find_by_handle(handle)["variants"]
    assert (variant["barcode"], variant["weight"], variant["weight_unit"]) == ("0123456789012", 1.5, "lb")

    # a variant sent without its barcode keeps it, as on Shopify
    desired = canonical_to_shopify_product(record)
    desired["variants"] = [{k: v for k, v in desired["variants"][0].items() if k != "barcode"}]
    desired["title"] = "Clearing test, renamed"
    assert shop.upsert_product(desired).outcome is Outcome.OK
    assert shop.find_by_handle(handle)["variants"][0]["barcode"] == "0123456789012"

    record.update(upc=None, weight=None, weight_unit=None, name="Clearing test, emptied")
    result = shop.upsert_product(canonical_to_shopify_product(record))
    assert result.outcome is Outcome.OK, result.message
    (variant,) = shop.find_by_handle(handle)["variants"]
    assert (variant["barcode"], variant["weight"], variant["weight_unit"]) == (None, None, None)
    assert shop.upsert_product(canonical_to_shopify_product(record)).outcome is Outcome.UNCHANGED
