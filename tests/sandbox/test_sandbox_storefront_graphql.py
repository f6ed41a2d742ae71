"""The storefront's GraphQL Admin API 2026-04 (reads, productSet, productDelete, inventorySetQuantities, cost and
bucket) over real HTTP."""

from __future__ import annotations

from typing import Any

import requests

from .helpers import shop

GRAPHQL = "/storefront/admin/api/2026-04/graphql.json"
READ = """query($h: String!) { productByIdentifier(identifier: {handle: $h}) { id handle title status tags
  options { name values } variants(first: 10) { nodes { id sku price selectedOptions { name value }
  inventoryItem { id measurement { weight { value unit } } } } }
  media(first: 5) { nodes { ... on MediaImage { alt image { url } } } } } }"""
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


LEVELS = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on InventoryItem { id inventoryLevels(first: 5) {
  nodes { location { id } quantities(names: ["available"]) { name quantity } } } } } }"""


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
    # Shopify's documented cost: each mutation 10, plus its payload's selection: a (product 1, variants
    # 2 + 250 x (variant 1 + inventoryItem 1), userErrors 1) and b (product 1, userErrors 1)
    assert answer["extensions"]["cost"]["requestedQueryCost"] == 10 + 1 + 2 + 250 * 2 + 1 + 10 + 1 + 1
    # what the bucket keeps is the actual cost: two variants came back, not 250
    assert answer["extensions"]["cost"]["actualQueryCost"] == 10 + 1 + 2 + 2 * 2 + 1 + 10 + 1 + 1

    # the same product read back through GraphQL
    read = _post(sb, READ, {"h": "gq-tee"}).json()["data"]["productByIdentifier"]
    assert _post(sb, READ, {"h": "gq-bad"}).json()["data"]["productByIdentifier"] is None
    assert read["tags"] == ["tops", "sale"] and read["options"] == [{"name": "Size", "values": ["S", "M"]}]
    first = read["variants"]["nodes"][0]
    assert first["price"] == "10.00" and first["selectedOptions"] == [{"name": "Size", "value": "S"}]
    assert first["inventoryItem"]["measurement"]["weight"] == {"value": 0.2, "unit": "KILOGRAMS"}
    assert [m["image"]["url"] for m in read["media"]["nodes"]] == ["https://cdn.example/tee.jpg"]

    # an update keeps variant ids (matched by option values); fields left out stay as they were
    again = _post(sb, PRODUCT_SET, {"a": {**_tee("gq-tee", "9.5"), "title": "Tee v2"}, "ia": {"handle": "gq-tee"},
                                    "b": {"files": []}, "ib": {"handle": "gq-tee"}}).json()["data"]
    assert [v["id"] for v in again["a"]["product"]["variants"]["nodes"]] == \
        [v["id"] for v in created["variants"]["nodes"]]
    after = _post(sb, READ, {"h": "gq-tee"}).json()["data"]["productByIdentifier"]
    assert after["title"] == "Tee v2" and after["variants"]["nodes"][0]["price"] == "9.50"
    assert after["media"]["nodes"] == [] and after["tags"] == ["tops", "sale"]


def test_inventory_set_quantities_is_atomic_idempotent_and_needs_a_key(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    nodes = _post(sb, PRODUCT_SET, {"a": _tee("gq-inv"), "ia": {"handle": "gq-inv"}, "b": _tee("gq-inv2"),
                                    "ib": {"handle": "gq-inv2"}}).json()["data"]["a"]["product"]["variants"]["nodes"]
    items = [n["inventoryItem"]["id"] for n in nodes]
    location = "gid://shopify/Location/1"
    quantities = [{"inventoryItemId": items[0], "locationId": location, "quantity": 5, "changeFromQuantity": None},
                  {"inventoryItemId": items[1], "locationId": location, "quantity": 0, "changeFromQuantity": None}]
    base = {"name": "available", "reason": "correction"}

    def levels() -> list[int]:
        nodes = _post(sb, LEVELS, {"ids": items}).json()["data"]["nodes"]
        return [q["quantity"] for n in nodes for lv in n["inventoryLevels"]["nodes"]
                if lv["location"]["id"] == location for q in lv["quantities"]]

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
    # compare-and-set: a stale changeFromQuantity refuses the call; one left out altogether too (2026-04 wants
    # it on every quantity, null to opt out)
    stale = _post(sb, SET_QUANTITIES, {"key": "k2", "input": {**base, "quantities": [
        {**quantities[0], "quantity": 7, "changeFromQuantity": 4}]}}).json()
    assert stale["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    fresh = _post(sb, SET_QUANTITIES, {"key": "k2b", "input": {**base, "quantities": [
        {**quantities[0], "quantity": 5, "changeFromQuantity": 5}]}}).json()
    assert fresh["data"]["inventorySetQuantities"]["userErrors"] == []
    bare = {k: v for k, v in quantities[0].items() if k != "changeFromQuantity"}
    missing = _post(sb, SET_QUANTITIES, {"key": "k2c", "input": {**base, "quantities": [bare]}}).json()
    assert missing["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "COMPARE_QUANTITY_REQUIRED"
    # ignoreCompareQuantity is gone from 2026-04: the request does not validate
    removed = _post(sb, SET_QUANTITIES, {"key": "k2d", "input": {**base, "ignoreCompareQuantity": True,
                                                                 "quantities": quantities}}).json()
    assert removed.get("data") is None and "ignoreCompareQuantity" in removed["errors"][0]["message"]
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

    sb.settings(storefront_points_max=50, storefront_points_restore_per_s=0.5)
    mutation = "mutation { a: productSet(input: {title: \"T\"}, identifier: {handle: \"thr\"}) { userErrors { message } } }"
    answers = [_post(sb, mutation).json() for _ in range(6)]
    throttled = [a for a in answers if a.get("errors")]
    assert throttled and throttled[0]["errors"][0]["extensions"]["code"] == "THROTTLED"
    status = throttled[0]["extensions"]["cost"]["throttleStatus"]
    assert status["maximumAvailable"] == 50 and status["restoreRate"] == 0.5 and status["currentlyAvailable"] < 10


def test_reads_page_filter_and_look_up_by_handle_id_and_node(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    for n in range(3):
        _post(sb, PRODUCT_SET, {"a": _tee(f"rd-{n}"), "ia": {"handle": f"rd-{n}"}, "b": {"status": "DRAFT"},
                                "ib": {"handle": f"rd-{n}"}})
    page = """query($after: String, $q: String) { products(first: 2, after: $after, query: $q) {
      nodes { id handle status } pageInfo { hasNextPage endCursor } } }"""
    one = _post(sb, page, {"q": "handle:'rd-0' OR handle:'rd-1' OR handle:'rd-2'"}).json()["data"]["products"]
    two = _post(sb, page, {"after": one["pageInfo"]["endCursor"],
                           "q": "handle:'rd-0' OR handle:'rd-1' OR handle:'rd-2'"}).json()["data"]["products"]
    assert [p["handle"] for p in one["nodes"] + two["nodes"]] == ["rd-0", "rd-1", "rd-2"]
    assert one["pageInfo"]["hasNextPage"] and not two["pageInfo"]["hasNextPage"]
    assert {p["status"] for p in one["nodes"]} == {"DRAFT"}
    assert _post(sb, page, {"q": "status:active AND handle:'rd-0'"}).json()["data"]["products"]["nodes"] == []
    product_id = one["nodes"][0]["id"]
    by_id = _post(sb, "query($id: ID!) { product(id: $id) { handle } node(id: $id) { id } }", {"id": product_id})
    assert by_id.json()["data"] == {"product": {"handle": "rd-0"}, "node": {"id": product_id}}
    # a connection needs first (or last), as on Shopify
    assert "errors" in _post(sb, "{ products { nodes { id } } }").json()

    # the shop's locations carry no ERP codes: which ERP location each stands for is the connection's location_map
    locations = _post(sb, "{ locations(first: 10) { nodes { id name isActive } } }").json()["data"]["locations"]
    assert [n["id"] for n in locations["nodes"]] == [f"gid://shopify/Location/{i}" for i in (1, 2, 3)]
    assert "erp_location" in _post(sb, "{ locations(first: 1) { nodes { erp_location } } }").json()["errors"][0][
        "message"]

    gone = _post(sb, "mutation($i: ProductDeleteInput!) { productDelete(input: $i) { deletedProductId "
                     "userErrors { field message } } }", {"i": {"id": product_id}}).json()["data"]["productDelete"]
    assert gone == {"deletedProductId": product_id, "userErrors": []}
    again = _post(sb, "mutation($i: ProductDeleteInput!) { productDelete(input: $i) { deletedProductId "
                      "userErrors { field message } } }", {"i": {"id": product_id}}).json()["data"]["productDelete"]
    assert again["deletedProductId"] is None and again["userErrors"][0]["message"] == "Product does not exist"


def test_cost_follows_the_documented_rule_and_the_bucket_follows_the_plan(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    # products(first: 10): 2 + 10 x (product 1 + variants 2 + 5 x (variant 1)) = 82; scalars cost nothing
    cost = _post(sb, "{ products(first: 10) { nodes { id variants(first: 5) { nodes { id sku } } } } }").json()
    assert cost["extensions"]["cost"]["requestedQueryCost"] == 2 + 10 * (1 + 2 + 5)
    over = _post(sb, "{ products(first: 250) { nodes { id variants(first: 5) { nodes { id } } } } }").json()
    assert over["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED" and "data" not in over
    standard = cost["extensions"]["cost"]["throttleStatus"]
    assert (standard["maximumAvailable"], standard["restoreRate"]) == (1000, 100)
    sb.settings(storefront_points_max=10000, storefront_points_restore_per_s=1000)  # Shopify Plus
    plus = _post(sb, "{ shop { name } }").json()["extensions"]["cost"]["throttleStatus"]
    assert (plus["maximumAvailable"], plus["restoreRate"]) == (10000, 1000)
