"""The storefront client on Shopify's GraphQL Admin 2026-04, over real HTTP to the sandbox shop: location map,
bulk first load, the variant creation throttle and the schedule of creates it leads to."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from catalog_sync.connectors import ConfigurationError, Disposition, Outcome
from catalog_sync.connectors.storefront import StorefrontClient, creation_schedule
from catalog_sync.flows.systems import Systems


def _shop(sandbox: Any, **kwargs: Any) -> StorefrontClient:
    sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    return StorefrontClient(f"{sandbox.url}/storefront", sandbox.credentials["storefront"]["access_token"], **kwargs)


def _product(handle: str, variants: int = 2, price: str = "10.00") -> dict[str, Any]:
    sizes = [str(k) for k in range(variants)]
    return {"handle": handle, "title": handle.title(), "status": "active",
            "options": [{"name": "Size", "values": sizes}],
            "variants": [{"sku": f"{handle}-{k}".upper(), "option1": k, "price": price} for k in sizes]}


def test_location_map_names_each_shop_location_by_gid_or_name_and_refuses_what_it_cannot_place(
        fresh_sandbox: Any) -> None:
    shop = _shop(fresh_sandbox, location_map={"DC-EAST": "gid://shopify/Location/1", "STORE-NYC": "New York store"})
    codes = {loc["id"]: loc["erp_location"] for loc in shop.locations()}
    assert codes == {1: "DC-EAST", 2: None, 3: "STORE-NYC"}  # the sandbox no longer says which ERP code is which
    with pytest.raises(ConfigurationError, match="'DC-WEST' to 'Warehouse 9', which is not a location"):
        _shop(fresh_sandbox, location_map={"DC-WEST": "Warehouse 9"}).locations()
    with pytest.raises(ConfigurationError, match="'DC-EAST' and 'DC-WEST' to one Shopify location"):
        _shop(fresh_sandbox, location_map={"DC-EAST": "gid://shopify/Location/1",
                                           "DC-WEST": "East distribution centre"}).locations()
    assert all(loc["erp_location"] is None for loc in _shop(fresh_sandbox).locations())  # no map: nothing mapped


def test_bulk_first_load_reads_every_line_back_and_fails_a_refused_product_alone(fresh_sandbox: Any) -> None:
    shop = _shop(fresh_sandbox, bulk_threshold=3, bulk_poll_s=0.05)
    bad = {**_product("bulk-bad"), "variants": [{"sku": "BULK-BAD", "option1": "0", "price": "NaN"}]}
    products = [_product("bulk-a"), bad, _product("bulk-b"), _product("bulk-c")]
    results = shop.upsert_products(products, existing={})
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.FAILED, Outcome.OK, Outcome.OK]
    assert results[1].disposition is Disposition.DEAD_LETTER and "variants.0.price" in (results[1].message or "")
    assert [r.message for r in results if r.ok] == ["created"] * 3  # as paced creates say: the flows key on it
    assert len(shop.bulk_operations) == 1 and all(r.response["bulk_operation"] == shop.bulk_operations[0]
                                                  for r in results if r.ok)
    assert all(v["inventory_item_id"] for r in results if r.ok for v in r.response["variants"])
    found = shop.find_by_handles([p["handle"] for p in products])
    assert sorted(found) == ["bulk-a", "bulk-b", "bulk-c"]
    # under the threshold, creates go out as paced productSet requests: no new bulk operation
    assert shop.upsert_products([_product("bulk-d")], existing={})[0].ok and len(shop.bulk_operations) == 1


def test_variant_creation_throttle_defers_creates_without_dead_lettering_them(fresh_sandbox: Any) -> None:
    shop = _shop(fresh_sandbox)
    held = shop.variant_count()
    # the store sits at Shopify's 50,000-variant threshold; 5 new variants a day stands for 1,000
    fresh_sandbox.settings(storefront_variants_offset=50_000 - held, storefront_variant_daily_limit=5)
    assert shop.variant_count() == 50_000
    results = shop.upsert_products([_product(f"thr-{n}") for n in range(3)], existing={})
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK, Outcome.FAILED]
    assert results[2].status == 429 and results[2].disposition is Disposition.RETRY
    assert "Daily variant creation limit reached" in (results[2].message or "")
    # updates of existing variants create nothing and go through
    assert shop.upsert_product({**_product("thr-0", price="12.00")}).ok


def test_creation_schedule_puts_what_matters_first_and_dates_the_rest() -> None:
    today = date(2026, 12, 2)
    products = [{"handle": h, "variants": [{}] * n, "rank": r}
                for h, n, r in [("archived", 3, 9), ("hero", 4, 0), ("in-stock", 4, 1), ("season", 3, 2),
                                ("huge", 7, 3)]]
    plan = creation_schedule(products, 50_000, today, rank=lambda p: p["rank"], daily_limit=5)
    assert [(p["handle"], day) for p, day in plan] == [
        ("hero", today), ("in-stock", date(2026, 12, 3)), ("season", date(2026, 12, 4)), ("huge", None),
        ("archived", date(2026, 12, 5))]
    # below the threshold creates are free until it is reached, then the daily allowance counts
    free = creation_schedule(products, 49_990, today, rank=lambda p: p["rank"], daily_limit=5)
    assert [day for _, day in free][:3] == [today, today, today] and free[3][1] is None


def test_sandbox_systems_map_the_demo_locations(fresh_sandbox: Any) -> None:
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        assert {loc["erp_location"] for loc in systems.storefront.locations()} == {"DC-EAST", "DC-WEST", "STORE-NYC"}
    finally:
        systems.close()
