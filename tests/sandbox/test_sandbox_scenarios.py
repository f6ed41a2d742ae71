"""Every scenario, on a fresh sandbox: the documented symptom is observable through the systems' APIs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from catalog_sync_sandbox.scenarios import SCENARIOS
from tests.conftest import load_sandbox

from .helpers import dam, erp, pim, shop, supplier

PIM = "/pim/api/rest/v1"


def _item(sb: Any, sku: str) -> dict[str, Any]:
    r = requests.get(f"{sb.url}/erp/items/{sku}", headers=erp(sb), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _assets(sb: Any, sku: str) -> list[dict[str, Any]]:
    r = requests.get(f"{sb.url}/dam/api/assets", params={"sku": sku}, headers=dam(sb), timeout=10)
    return r.json()["assets"]  # type: ignore[no-any-return]


def test_scenarios_are_listed_with_their_symptom(sandbox: Any) -> None:
    listed = requests.get(f"{sandbox.url}/_sandbox/scenarios", timeout=10).json()
    assert {s["name"] for s in listed} == set(SCENARIOS) and len(SCENARIOS) == 13
    assert all(len(s["symptom"]) > 40 for s in listed)
    unknown = requests.post(f"{sandbox.url}/_sandbox/scenarios/nope", json={}, timeout=10)
    assert unknown.status_code == 404


def test_scenarios_pick_the_same_skus_every_time(fresh_sandbox: Any) -> None:
    first = fresh_sandbox.scenario("uom_spelling_variants")["skus"]
    load_sandbox(fresh_sandbox)
    assert fresh_sandbox.scenario("uom_spelling_variants")["skus"] == first


def test_a_named_sku_is_used_and_an_unknown_one_refused(fresh_sandbox: Any) -> None:
    result = fresh_sandbox.scenario("uom_spelling_variants", ["MH01-XS-Black"])
    assert result["skus"] == ["MH01-XS-Black"] and _item(fresh_sandbox, "MH01-XS-Black")["uom"] == "each"
    with pytest.raises(RuntimeError, match="422"):
        fresh_sandbox.scenario("uom_spelling_variants", ["NOT-A-SKU"])


def _check(name: str, sb: Any, result: dict[str, Any]) -> None:  # noqa: C901 (one branch per scenario)
    skus = result["skus"]
    assert skus and result["symptom"] == SCENARIOS[name].symptom
    changes = requests.get(f"{sb.url}/erp/changes", headers=erp(sb), timeout=10).json()
    if name == "erp_pre_active_with_approved_seasonal_images":
        for sku in skus:
            assert _item(sb, sku)["lifecycle_status"] == "pre-active"
            seasonal = [a for a in _assets(sb, sku) if a["role"] == "seasonal"]
            assert seasonal and seasonal[0]["status"] == "approved"
        assert {c["sku"] for c in changes["changes"]} >= set(skus)
    elif name == "dam_valid_from_in_future":
        for sku in skus:
            hero = [a for a in _assets(sb, sku) if a["role"] == "hero"]
            assert hero and all(a["valid_from"] > "2026" and a["status"] == "approved" for a in hero)
    elif name == "dam_rights_expired":
        change = result["changes"][0]["dam"]
        asset = requests.get(f"{sb.url}/dam/api/assets/{change['asset']}", headers=dam(sb), timeout=10).json()
        assert asset["status"] == "approved" and asset["rights_expires_at"] < datetime.now(UTC).isoformat()
    elif name == "orphan_assets":
        for sku in skus:
            assert not [a for a in _assets(sb, sku) if a["role"] == "gallery"]
        orphan_id = result["changes"][0]["dam"]["orphaned_assets"][0]
        asset = requests.get(f"{sb.url}/dam/api/assets/{orphan_id}", headers=dam(sb), timeout=10).json()
        assert asset["sku"] is None
    elif name == "pim_cached_draft_while_erp_active":
        for sku in skus:
            p = requests.get(f"{sb.url}{PIM}/products/{sku}", headers=pim(sb), timeout=10).json()
            assert p["enabled"] is False and p["values"]["lifecycle_status"][0]["data"] == "draft"
            assert _item(sb, sku)["lifecycle_status"] == "active"
    elif name == "supplier_stale_inactive_flag":
        for sku in skus:
            subs = requests.get(f"{sb.url}/supplier/api/submissions", params={"sku": sku, "status": "pending"},
                                headers=supplier(sb), timeout=10).json()["submissions"]
            assert any(s["lifecycle_flag"] == "inactive" for s in subs)
            assert _item(sb, sku)["lifecycle_status"] == "active"
    elif name == "storefront_stale_cached_page":
        info = result["changes"][0]["storefront"]
        page = requests.get(f"{sb.url}/cdn/edge/products/{info['handle']}", timeout=10)  # as shoppers get it
        admin = requests.get(f"{sb.url}/storefront/admin/api/2025-01/products/{info['product_id']}.json",
                             headers=shop(sb), timeout=10).json()["product"]
        assert page.headers["X-Cache"] == "HIT" and info["cached_price"] in page.text
        assert admin["variants"][0]["price"] == info["current_price"] != info["cached_price"]
    elif name == "variants_left_behind":
        parent, children = skus[0], skus[1:]
        assert _item(sb, parent)["lifecycle_status"] == "seasonal-hold"
        assert children and all(_item(sb, c)["lifecycle_status"] == "active" for c in children)
        assert all(_item(sb, c)["parent_sku"] == parent for c in children)
    elif name == "uom_spelling_variants":
        assert [_item(sb, s)["uom"] for s in skus] == ["each", "ea", "Each"]
    elif name == "vendor_name_variants":
        from catalog_sync.catalog.derive import VENDORS

        spellings = {v for variants in VENDORS.values() for v in variants}
        assert all(_item(sb, s)["vendor_name"] in spellings for s in skus)
    elif name == "duplicate_skus_and_upcs":
        upcs = {_item(sb, s)["upc"] for s in skus}
        assert len(upcs) == 1 and len(skus) == 3 and skus[0].lower() == skus[2].lower()
    elif name == "price_out_of_range_for_category":
        prices = requests.get(f"{sb.url}/erp/prices", params={"limit": 1000}, headers=erp(sb), timeout=10).json()
        by_sku = {p["sku"]: p["price"] for p in prices["prices"]}
        after = by_sku
        nxt = prices["next_after_sku"]
        while nxt:
            page = requests.get(f"{sb.url}/erp/prices", params={"limit": 1000, "after_sku": nxt}, headers=erp(sb),
                                timeout=10).json()
            after.update({p["sku"]: p["price"] for p in page["prices"]})
            nxt = page["next_after_sku"]
        assert sorted(after[s] for s in skus) == [0.5, 25000.0]
        assert {"price"} <= {c["topic"] for c in changes["changes"]}
    elif name == "description_breaks_channel_rules":
        texts = []
        for sku in skus:
            p = requests.get(f"{sb.url}{PIM}/products/{sku}", headers=pim(sb), timeout=10).json()
            texts.append(next(v["data"] for v in p["values"]["description"] if v["locale"] == "en_US"))
        assert len(texts[0]) > 10000 and "<script>" in texts[1] and texts[2] == ""
    else:  # a new scenario must get its own check here
        raise AssertionError(f"no check for scenario {name}")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_produces_its_symptom(name: str, fresh_sandbox: Any) -> None:
    result = fresh_sandbox.scenario(name)
    _check(name, fresh_sandbox, result)
    json.dumps(result)  # the answer is plain JSON, ready for a CLI or a report
