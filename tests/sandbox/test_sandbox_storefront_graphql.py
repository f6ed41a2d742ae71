"""The storefront's GraphQL Admin API (productSet, inventorySetQuantities) over real HTTP."""

from __future__ import annotations

from typing import Any

import requests

from .helpers import shop

GRAPHQL = "/storefront/admin/api/2026-04/graphql.json"
REST = "/storefront/admin/api/2025-01"
PRODUCT_SET = """mutation($a: ProductSetInput!, $ia: ProductSetIdentifiers, $b: ProductSetInput!,
  $ib: ProductSetIdentifiers) {
  a: productSet(input: $a, identifier: $ia) { product { id handle status
    variants(first: 250) { nodes { id sku price inventoryItem { id } } } } userErrors { field message code } }
  b: productSet(input: $b, identifier: $ib) { product { id } userErrors { field message code } }
}"""
SET_QUANTITIES = """mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { changes { delta quantityAfterChange item { id } location { id } } }
    userErrors { field message code } } }"""


def _post(sb: Any, query: str, variables: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(f"{sb.url}{GRAPHQL}", json={"query": query, "variables": variables or {}},
                         headers=shop(sb), timeout=10)


def _tee(handle: str, price: str = "10.00") -> dict[str, Any]:
    return {"title": "Tee", "handle": handle, "status": "ACTIVE", "tags": ["tops", "sale"],
            "productOptions": [{"name": "Size", "values": [{"name": "S"}, {"name": "M"}]}],
            "variants": [
                {"optionValues": [{"optionName": "Size", "name": "S"}], "price": price,
                 "inventoryItem": {"sku": f"{handle}-S", "measurement": {"weight": {"value": 0.2, "unit": "KILOGRAMS"}}}},
                {"optionValues": [{"optionName": "Size", "name": "M"}], "price": "11",
                 "inventoryItem": {"sku": f"{handle}-M"}}],
            "files": [{"originalSource": "https://cdn.example/tee.jpg", "alt": "front", "contentType": "IMAGE"}]}


def test_product_set_creates_and_updates_by_handle_and_refuses_one_product_alone(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    bad = {"title": "Bad", "variants": [{"optionValues": [{"optionName": "Colour", "name": "red"}], "price": "NaN"}]}
    answer = _post(sb, PRODUCT_SET, {"a": _tee("gq-tee"), "ia": {"handle": "gq-tee"}, "b": bad,
                                     "ib": {"handle": "gq-bad"}}).json()
    created = answer["data"]["a"]["product"]
    assert created["id"].startswith("gid://shopify/Product/") and created["status"] == "ACTIVE"
    assert [v["sku"] for v in created["variants"]["nodes"]] == ["gq-tee-S", "gq-tee-M"]
    assert {tuple(e["field"]) for e in answer["data"]["b"]["userErrors"]} == {
        ("input", "variants", "0", "optionValues"), ("input", "variants", "0", "price")}
    assert answer["data"]["b"]["product"] is None
    assert answer["extensions"]["cost"]["requestedQueryCost"] == 20

    # the same product through REST: the fields a Shopify REST client would read
    rest = requests.get(f"{sb.url}{REST}/products.json", params={"handle": "gq-tee,gq-bad"}, headers=shop(sb),
                        timeout=10).json()["products"]
    assert [p["handle"] for p in rest] == ["gq-tee"]
    assert rest[0]["tags"] == "tops, sale" and rest[0]["options"] == [{"name": "Size", "values": ["S", "M"]}]
    assert rest[0]["variants"][0] | {"price": "10.00", "option1": "S", "weight": 0.2, "weight_unit": "kg"} == \
        rest[0]["variants"][0]
    assert [i["src"] for i in rest[0]["images"]] == ["https://cdn.example/tee.jpg"]

    # an update keeps variant ids (matched by option values); fields left out stay as they were
    again = _post(sb, PRODUCT_SET, {"a": {**_tee("gq-tee", "9.5"), "title": "Tee v2"}, "ia": {"handle": "gq-tee"},
                                    "b": {"files": []}, "ib": {"handle": "gq-tee"}}).json()["data"]
    assert [v["id"] for v in again["a"]["product"]["variants"]["nodes"]] == \
        [v["id"] for v in created["variants"]["nodes"]]
    after = requests.get(f"{sb.url}{REST}/products.json", params={"handle": "gq-tee"}, headers=shop(sb),
                         timeout=10).json()["products"][0]
    assert after["title"] == "Tee v2" and after["variants"][0]["price"] == "9.50" and after["images"] == []
    assert after["tags"] == "tops, sale"


def test_inventory_set_quantities_is_atomic_idempotent_and_needs_a_key(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    nodes = _post(sb, PRODUCT_SET, {"a": _tee("gq-inv"), "ia": {"handle": "gq-inv"}, "b": _tee("gq-inv2"),
                                    "ib": {"handle": "gq-inv2"}}).json()["data"]["a"]["product"]["variants"]["nodes"]
    items = [n["inventoryItem"]["id"] for n in nodes]
    location = "gid://shopify/Location/1"
    quantities = [{"inventoryItemId": items[0], "locationId": location, "quantity": 5},
                  {"inventoryItemId": items[1], "locationId": location, "quantity": 0}]
    base = {"name": "available", "reason": "correction", "ignoreCompareQuantity": True}

    def levels() -> list[int]:
        ids = ",".join(i.rsplit("/", 1)[1] for i in items)
        return [lv["available"] for lv in requests.get(
            f"{sb.url}{REST}/inventory_levels.json", params={"inventory_item_ids": ids, "location_ids": 1},
            headers=shop(sb), timeout=10).json()["inventory_levels"]]

    # all or nothing: one unknown item refuses the whole call, naming the quantity at fault
    refused = _post(sb, SET_QUANTITIES, {"key": "k0", "input": {**base, "quantities": [
        *quantities, {"inventoryItemId": "gid://shopify/InventoryItem/1", "locationId": location, "quantity": 1}]}})
    errors = refused.json()["data"]["inventorySetQuantities"]["userErrors"]
    assert [e["field"] for e in errors] == [["input", "quantities", "2", "inventoryItemId"]]
    assert levels() == []

    first = _post(sb, SET_QUANTITIES, {"key": "k1", "input": {**base, "quantities": quantities}})
    changes = first.json()["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"]["changes"]
    assert [(c["item"]["id"], c["quantityAfterChange"]) for c in changes] == [(items[0], 5), (items[1], 0)]
    assert levels() == [5, 0] and first.headers.get("Idempotent-Replayed") is None
    # a retry with the same key and variables gets the first answer back and changes nothing
    replay = _post(sb, SET_QUANTITIES, {"key": "k1", "input": {**base, "quantities": quantities}})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json()["data"] == first.json()["data"]
    # the same key with other variables is refused; a call without a key too
    other = [{**quantities[0], "quantity": 9}]
    mismatch = _post(sb, SET_QUANTITIES, {"key": "k1", "input": {**base, "quantities": other}}).json()
    assert mismatch["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    keyless = _post(sb, SET_QUANTITIES.replace(" @idempotent(key: $key)", "").replace(", $key: String!", ""),
                    {"input": {**base, "quantities": other}}).json()
    assert keyless["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    # compare-and-set: a stale compareQuantity refuses the call
    stale = _post(sb, SET_QUANTITIES, {"key": "k2", "input": {**base, "ignoreCompareQuantity": False, "quantities": [
        {**quantities[0], "quantity": 7, "compareQuantity": 4}]}}).json()
    assert stale["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "COMPARE_QUANTITY_STALE"
    # setting what is already there changes nothing and reports no adjustment
    same = _post(sb, SET_QUANTITIES, {"key": "k3", "input": {**base, "quantities": quantities}}).json()
    assert same["data"]["inventorySetQuantities"] == {"inventoryAdjustmentGroup": None, "userErrors": []}
    assert levels() == [5, 0]


def test_graphql_is_metered_by_query_cost_and_checks_its_requests(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    assert _post(sb, "{ shop { name } }").json()["data"]["shop"]["name"]
    assert "errors" in _post(sb, "{ shop { nope } }").json()
    assert "errors" in _post(sb, "mutation { productSet(").json()
    too_big = " ".join(f"p{i}: productSet(input: {{title: \"x\"}}, identifier: {{handle: \"h{i}\"}}) "
                       f"{{ userErrors {{ message }} }}" for i in range(101))
    costly = _post(sb, f"mutation {{ {too_big} }}").json()
    assert costly["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    unauthorised = requests.post(f"{sb.url}{GRAPHQL}", json={"query": "{ shop { name } }"}, timeout=10)
    assert unauthorised.status_code == 401

    sb.settings(storefront_bucket_size=1, storefront_leak_per_s=0.01)  # 50 points, restoring 0.5 a second
    mutation = "mutation { a: productSet(input: {title: \"T\"}, identifier: {handle: \"thr\"}) { userErrors { message } } }"
    answers = [_post(sb, mutation).json() for _ in range(6)]
    throttled = [a for a in answers if a.get("errors")]
    assert throttled and throttled[0]["errors"][0]["extensions"]["code"] == "THROTTLED"
    status = throttled[0]["extensions"]["cost"]["throttleStatus"]
    assert status["maximumAvailable"] == 50 and status["restoreRate"] == 0.5 and status["currentlyAvailable"] < 10
