"""The failure modes seen in the field, each as one small scenario against the gate that must catch it."""

from __future__ import annotations

import pandas as pd
import pytest
from _quality_cases import ASSET, JOINED, NOW, PRODUCT, TAXONOMY

from catalog_sync.quality.gate import run_gate


def catalogue(*bad: dict[str, object]) -> pd.DataFrame:
    good = [{**PRODUCT, "sku": f"GOOD-{i}", "upc": None} for i in range(3)]
    return pd.DataFrame(good + [{**PRODUCT, "upc": None, **b} for b in bad])


def gate(frame: pd.DataFrame, name: str, **kwargs: object) -> tuple[list[str], dict[str, list[str]]]:
    entity, layer = name.split(".l")
    result = run_gate(frame, name, layer=int(layer), entity=entity, enforce=False, now=NOW, **kwargs)  # type: ignore[arg-type]
    key = result.key
    return result.passed[key].tolist(), dict(zip(result.failed[key], result.failed["dq_expectations"], strict=True))


@pytest.mark.parametrize("spelling", ["each", "ea", "Each", "EACH "])
def test_uom_spelled_each_is_a_layer0_failure(spelling: str) -> None:
    passed, failed = gate(catalogue({"sku": "UOM-1", "uom": spelling}), "products.l0")
    assert failed == {"UOM-1": ["products.l0.uom_known"]} and len(passed) == 3


def test_duplicate_sku_and_upc_are_caught_at_layer1() -> None:
    frame = catalogue({"sku": "DUP", "upc": "036000291452"}, {"sku": "DUP", "upc": "036000291452"})
    passed, failed = gate(frame, "products.l1", taxonomy=TAXONOMY)
    assert failed == {"DUP": ["products.l1.sku_unique", "products.l1.upc_unique"]}
    assert passed == ["GOOD-0", "GOOD-1", "GOOD-2"]


def test_price_out_of_range_for_its_category() -> None:
    # 400 is fine for a bag, not for a top
    frame = catalogue({"sku": "TOP-400", "reference_price": 400.0},
                      {"sku": "BAG-400", "reference_price": 400.0, "product_group": "Bag"})
    _, failed = gate(frame, "products.l1", taxonomy=TAXONOMY)
    assert failed == {"TOP-400": ["products.l1.price_at_most_group_maximum"]}


def test_description_breaking_the_channel_rules() -> None:
    frame = catalogue({"sku": "XSS", "description": "Nice hoodie<script src=//evil></script> really nice."},
                      {"sku": "TINY", "description": "Nice."},
                      {"sku": "META", "meta_description": "<b>50% off</b>"})
    _, failed = gate(frame, "products.l1", taxonomy=TAXONOMY)
    assert failed == {
        "XSS": ["products.l1.description_no_disallowed_html"],
        "TINY": ["products.l1.description_length"],
        "META": ["products.l1.meta_description_plain_text"],
    }


def test_dam_asset_valid_from_in_the_future_and_orphan_assets() -> None:
    frame = pd.DataFrame([ASSET, {**ASSET, "asset_id": "SPRING", "valid_from": "2026-09-01T00:00:00Z"}])
    passed, failed = gate(frame, "assets.l1", key="asset_id")
    assert failed == {"SPRING": ["assets.l1.approved_in_validity_window"]} and passed == ["AST-0"]
    frame = pd.DataFrame([ASSET, {**ASSET, "asset_id": "ORPHAN", "sku": "GONE-1"}])
    passed, failed = gate(frame, "assets.l2", key="asset_id", known_skus={"MH01-XS-Black"})
    assert failed == {"ORPHAN": ["assets.l2.sku_exists"]} and passed == ["AST-0"]


def test_erp_pre_active_while_pim_active() -> None:
    frame = pd.DataFrame([JOINED, {**JOINED, "sku": "PRE", "erp_lifecycle_status": "pre-active"}])
    _, failed = gate(frame, "products.l2")
    assert failed == {"PRE": ["products.l2.lifecycle_erp_matches_pim"]}


def test_variant_state_differs_from_parent() -> None:
    frame = pd.DataFrame([
        {**JOINED, "sku": "P1", "erp_lifecycle_status": "seasonal-hold", "pim_lifecycle_status": "seasonal-hold"},
        {**JOINED, "sku": "P1-S", "parent_sku": "P1"},
        {**JOINED, "sku": "P1-M", "parent_sku": "P1", "erp_lifecycle_status": "seasonal-hold",
         "pim_lifecycle_status": "seasonal-hold"},
    ])
    passed, failed = gate(frame, "products.l2")
    assert failed == {"P1-S": ["products.l2.variant_lifecycle_matches_parent"]} and passed == ["P1", "P1-M"]


def test_storefront_not_showing_what_the_pim_published() -> None:
    frame = pd.DataFrame([
        JOINED,
        {**JOINED, "sku": "HIDDEN", "storefront_status": "draft"},
        {**JOINED, "sku": "STALE", "storefront_title": "Last season's title"},
    ])
    _, failed = gate(frame, "products.l2")
    assert failed == {
        "HIDDEN": ["products.l2.storefront_status_matches_pim"],
        "STALE": ["products.l2.storefront_title_matches_pim"],
    }


def test_stock_gate_quarantines_a_price_below_the_floor_and_alerts() -> None:
    """Soft on the hot path: the loss-making price never goes out, the other 99 rows do, and it alerts."""
    frame = pd.DataFrame([{"sku": f"S{i}", "location": "WH", "quantity": 1, "price": 30.0, "product_group": "Top"}
                          for i in range(99)] + [{"sku": "LOSS", "location": "WH", "quantity": 1, "price": 0.5,
                                                  "product_group": "Top"}])
    result = run_gate(frame, "stock_prices.l1", layer=1, entity="stock_prices")
    assert list(result.failed["sku"]) == ["LOSS"] and result.rows_passed == 99
    assert "stock_prices.l1.price_at_least_group_minimum" in result.failing_expectations
    assert result.alert and not result.breached  # a critical expectation failed on one row: alert, not a breach
