"""What only one system does, over real HTTP to the sandbox: the ERP change feed, storefront inventory
idempotency and render cache, DAM binaries, PIM product models."""

from __future__ import annotations

import hashlib
from typing import Any

from catalog_sync.connectors import ClientOptions, Outcome, ReadResult, RetryPolicy, build_client
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


def test_storefront_inventory_replay_changes_nothing(fresh_sandbox: Any) -> None:
    shop = client(fresh_sandbox, System.STOREFRONT)
    product = _publish(shop, "SPEC-INV-1")
    item = product["variants"][0]["inventory_item_id"]
    location = shop.locations()[0]["id"]

    def level() -> int:
        return next(lv["available"] for lv in shop.inventory_levels([item]) if lv["location_id"] == location)

    first = shop.set_inventory("SPEC-INV-1", location, item, 5, change_seq=101)
    assert first.outcome is Outcome.OK and level() == 5
    assert shop.set_inventory("SPEC-INV-1", location, item, 7, change_seq=102).outcome is Outcome.OK
    replay = shop.set_inventory("SPEC-INV-1", location, item, 5, change_seq=101)
    assert replay.outcome is Outcome.UNCHANGED and replay.sent["idempotency_key"] == first.sent["idempotency_key"]
    assert level() == 7  # the late replay of change 101 did not undo change 102


def test_storefront_unknown_inventory_item_is_a_record_failure(fresh_sandbox: Any) -> None:
    shop = client(fresh_sandbox, System.STOREFRONT)
    result = shop.set_inventory("NOPE", shop.locations()[0]["id"], 999_999_999, 1, change_seq=1)
    assert result.outcome is Outcome.FAILED and result.status == 422 and "inventory_item_id" in (result.message or "")


def test_storefront_upsert_by_handle_and_render_cache_purge(fresh_sandbox: Any) -> None:
    shop = client(fresh_sandbox, System.STOREFRONT)
    product = _publish(shop, "SPEC-CACHE-1")
    handle = product["handle"]
    assert shop.shopper_page(handle).cache == "MISS"
    cached = shop.shopper_page(handle)
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
    assert "Renamed product" not in shop.shopper_page(handle).html  # still the cached render
    assert handle in shop.purge_cache([handle]).get("purged", [])
    fresh = shop.shopper_page(handle)
    assert fresh.cache == "MISS" and "Renamed product" in fresh.html


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
