"""The sandbox's Adobe Commerce and the Adobe Commerce connector held to Adobe's published admin REST schema (2.4.9).

* Every request the connector sends (collected by running it against the sandbox) names a route of the schema
  (an asynchronous bulk route through the synchronous route it is derived from) with the method the schema gives
  it, and its body validates against that route's body schema; a bulk body is an array whose every item validates
  against the synchronous body, plus the path parameter that ``byParam`` moved into it.
* Every answer the sandbox gave validates against the schema's answer for that route and status, 4xx answers
  against ``error-response``.
* The asynchronous answer (``bulk_uuid``, ``request_items``, ``errors``) is in no schema file: Adobe serves the
  async schema separately and the file does not hold it (../shared/specs/README.md). :data:`BULK_ACCEPTED` holds
  it as Adobe's guide shows it (developer.adobe.com/commerce/webapi/rest/use-rest/asynchronous-web-endpoints/ and
  the documented answer of .../tutorials/bulk-configurable-product/define-config-product-options/, held as
  :data:`DOCUMENTED_BULK_ANSWER`).

Magento fills a message's named placeholders (``%resources``, ``%fieldName``) from an object of ``parameters``
and positional ones (``%1``) from a list; the generated Swagger types ``parameters`` as a list only.
:func:`magento_schema` allows an object there too, and changes nothing else.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from catalog_sync.connectors import ClientOptions, RetryPolicy
from catalog_sync.connectors.adobe_commerce import AdobeCommerceClient, PollPolicy
from catalog_sync.connectors.adobe_mapping import (
    base_price,
    magento_media_entry,
    magento_status,
    magento_store_values,
    stock_to_source_items,
)
from tests.contract.conftest import spec_path
from tests.contract.test_akeneo_contract import resolve_refs

SPEC = "adobe-commerce-2.4.9-admin-rest.json"
ROOT = "/adobe_commerce/rest"
#: The answer of an asynchronous (bulk) request, as Adobe's guide describes it.
BULK_ACCEPTED: dict[str, Any] = {
    "type": "object",
    "required": ["bulk_uuid", "request_items", "errors"],
    "properties": {
        "bulk_uuid": {"type": "string"},
        "request_items": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "data_hash", "status"],
            "properties": {
                "id": {"type": "integer"},
                "data_hash": {"type": ["string", "null"]},
                "status": {"enum": ["accepted", "rejected"]},
                "error_message": {"type": "string"},
                "error_code": {"type": "integer"},
            },
        }},
        "errors": {"type": "boolean"},
    },
}
#: Adobe's documented answer to ``POST async/bulk/V1/configurable-products/bySku/options``.
DOCUMENTED_BULK_ANSWER: dict[str, Any] = {
    "bulk_uuid": "98c46050-cd66-4b49-9d45-69bfa04efc78",
    "request_items": [{"id": 0, "data_hash": "17c5e6b0d6fdf98ea83f600c8cc7e9f5a437e7f51e21a9c40070bb6208e1334c",
                       "status": "accepted"}],
    "errors": False,
}


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    return json.loads(spec_path(SPEC).read_text())


def magento_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``$ref``s resolved, where an error's ``parameters`` may also be an object."""
    out = resolve_refs(copy.deepcopy(schema), _spec())
    for node in _objects(out):
        params = (node.get("properties") or {}).get("parameters")
        if isinstance(params, dict) and params.get("type") == "array" and "message" in node["properties"]:
            node["properties"]["parameters"] = {"anyOf": [params, {"type": "object"}]}
    return out


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, outermost first."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            yield current
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft4Validator(schema).iter_errors(instance)]


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in _spec()["paths"]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        out.append((re.compile(f"^{pattern}$"), template))
    # literal routes before templated ones (/V1/products/attributes/... before /V1/products/{sku})
    return sorted(out, key=lambda pair: pair[1].count("{"))


def route_of(path: str) -> tuple[str, str | None]:
    """The schema route a sandbox path is served under, and the path parameter a bulk route moved into its body
    (``bySku`` -> ``sku``); the store code segment is left out, as the schema's routes are below it."""
    assert path.startswith(ROOT + "/"), path
    rest = path[len(ROOT):]
    parts = rest.strip("/").split("/")
    if parts[0] not in ("V1", "async"):
        parts = parts[1:]  # a store code: all, default, fr...
    by: str | None = None
    if parts[:2] == ["async", "bulk"]:
        parts = parts[2:]
        moved = [p for p in parts if p.startswith("by") and p[2:3].isupper()]
        if moved:
            by = moved[0][2].lower() + moved[0][3:]
            parts = [f"{{{by}}}" if p == moved[0] else p for p in parts]
    wanted = "/" + "/".join(parts)
    for pattern, template in _templates():
        if pattern.match(wanted):
            return template, by
    raise AssertionError(f"{path}: no route {wanted} in the published schema")


def body_schema(template: str, method: str) -> dict[str, Any]:
    (body,) = [p for p in _spec()["paths"][template][method]["parameters"] if p.get("in") == "body"]
    return magento_schema(body["schema"])


def bulk_item_schema(template: str, method: str, by: str | None) -> dict[str, Any]:
    """One operation of a bulk body: the synchronous body, plus the path parameter ``byParam`` moved into it."""
    item = body_schema(template, method)
    if by is not None:
        item["properties"][by] = {"type": "string"}
        item["required"] = [*item.get("required", []), by]
    return item


def answer_schema(template: str, method: str, status: int) -> dict[str, Any] | None:
    responses = _spec()["paths"][template][method]["responses"]
    response = responses.get(str(status)) or (responses.get("default") if status >= 400 else None)
    if response is None or "schema" not in response:
        return None
    return magento_schema(response["schema"])


# ------------------------------------------------------------------------------------------------- the exchange
class Exchange:
    """Every request a client sent and the answer it got, collected through the session's response hook."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any, int, Any]] = []
        #: what the connector returned for some calls, by a name the tests use
        self.returned: dict[str, Any] = {}

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        sent = json.loads(body) if body else None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        path = requests.utils.urlparse(response.request.url).path  # type: ignore[attr-defined]
        self.seen.append((str(response.request.method), path, sent, response.status_code, answer))


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    """The connector's whole repertoire run once against a fresh sandbox, its requests and answers collected."""
    spec_path(SPEC)
    from catalog_sync_sandbox.server import SandboxServer

    folder: Path = tmp_path_factory.mktemp("adobe-contract")
    server = SandboxServer(f"sqlite:///{folder / 'sandbox.sqlite'}").start()
    seen = Exchange()
    try:
        options = ClientOptions(retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.02))
        client = AdobeCommerceClient(f"{server.url}/adobe_commerce", server.credentials["adobe_commerce"], options,
                                     poll=PollPolicy(first=0.01, cap=0.02, timeout=5))
        client.session.hooks["response"].append(seen)
        with client:
            client.store_views()
            cat = client.catalog(("color", "size"), {"DC-EAST": "dc_east"})
            parent = {"sku": "MJ01", "product_type": "configurable", "axes": ["size"], "name": "Beaumont Summit Kit",
                      "lifecycle_status": "active", "translations": {"fr_FR": {"name": "Veste Beaumont"}}}
            variants = [{"sku": f"MJ01-{s}", "parent_sku": "MJ01", "product_type": "simple", "size": s,
                         "name": f"Beaumont Summit Kit-{s}", "reference_price": 42.0, "weight": 1.0,
                         "lifecycle_status": "active"} for s in ("S", "M")]
            client.publish([parent, *variants], cat)
            client.upsert_products([{"sku": "MJ02", "name": "", "attribute_set_id": 4, "price": 1.0},
                                    {"sku": "MJ03", "attribute_set_id": 4, "price": "free"}])
            client.get_product("MJ01")
            client.get_product("NOPE")
            list(client.iter_products(page_size=2))
            client.update_store_values("fr", "MJ01", magento_store_values(parent, "fr_FR") or {})
            client.upsert_store_values("fr", [("MJ01", magento_store_values(parent, "fr_FR") or {})])
            entry = magento_media_entry(b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png", "mj01.png", "MJ01", "hero", 1)
            client.add_media("MJ01", entry)
            client.add_media("MJ01", {**entry, "label": "bad", "content": {**entry["content"],
                                                                            "base64_encoded_data": "AAAA"}})
            (added,) = client.media("MJ01")
            client.update_media("MJ01", added["id"], {**added, "position": 2, "types": ["thumbnail"]})  # true
            client.update_media("MJ01", 999_999, added)  # no such entry: 404
            client.delete_media("MJ01", added["id"])  # answered true
            client.delete_media("MJ01", added["id"])  # no images left: 404
            client.add_media("MJ01", entry)
            client.delete_media("MJ01", 999_999)  # no such entry: 404
            client.delete_media("NOPE", 1)  # no such product: 404
            items, _ = stock_to_source_items([{"sku": "MJ01-S", "location": "DC-EAST", "quantity": 4},
                                              {"sku": "NOPE", "location": "DC-EAST", "quantity": 1}], cat)
            client.save_source_items(items)
            client.delete_source_items(items[:1])
            # hot data: live prices (a configurable parent has no price of its own) and lifecycle status
            seen.returned["prices"] = [
                *client.save_base_prices([base_price("MJ01-S", 39.5), base_price("MJ01", 40), base_price("NOPE", 1)]),
                *client.save_base_prices([base_price("MJ01-M", -1), base_price("MJ01-S", 38)])]
            client.set_status("MJ01-M", magento_status("discontinued"))
            client.get_product("MJ01-S")
        # Magento's own functional test of base prices (BasePriceStorageTest::testUpdateWithInvalidParameters)
        seen(requests.post(f"{server.url}{ROOT}/all/V1/products/base-prices", timeout=10, json=MAGENTO_PRICE_CASE,
                           headers=_bearer(server)))
        seen(requests.post(f"{server.url}{ROOT}/all/V1/products/base-prices", timeout=10,
                           json={"prices": [{"sku": "MJ01-S", "price": "cheap", "store_id": 0}]},
                           headers=_bearer(server)))
        # refusals the connector never provokes on purpose: no token, an unknown store, an unknown bulk
        for url in (f"{server.url}{ROOT}/V1/store/storeViews", f"{server.url}{ROOT}/V1/bulk/nope/status"):
            response = requests.get(url, timeout=10, headers={} if "store" in url else {
                "Authorization": f"Bearer {server.credentials['adobe_commerce']['access_token']}"})
            seen(response)
        # the product list refuses a request without searchCriteria, and a page number that is not an integer
        token = {"Authorization": f"Bearer {server.credentials['adobe_commerce']['access_token']}"}
        for query in ("", "?searchCriteria[currentPage]=two"):
            seen(requests.get(f"{server.url}{ROOT}/all/V1/products{query}", timeout=10, headers=token))
        yield seen
    finally:
        server.stop()


#: The request of Magento's functional test of a refused base price (dev/tests/api-functional/.../Catalog/Api/
#: BasePriceStorageTest.php), and the answer that test expects: every check of an item is reported, in order,
#: each message's parameters a list of strings, and the item is not saved.
MAGENTO_PRICE_CASE: dict[str, Any] = {"prices": [{"sku": "not_existing_sku", "price": -9999, "store_id": 9999}]}
MAGENTO_PRICE_ANSWER: list[dict[str, Any]] = [
    {"message": "Invalid attribute %fieldName = %fieldValue.", "parameters": ["SKU", "not_existing_sku"]},
    {"message": "Invalid attribute %fieldName = %fieldValue.", "parameters": ["Price", "-9999"]},
    {"message": "Requested store is not found. Row ID: SKU = not_existing_sku, Store ID: 9999.",
     "parameters": ["not_existing_sku", "9999"]},
]


def _bearer(server: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.credentials['adobe_commerce']['access_token']}"}


def test_the_published_file_is_the_one_read() -> None:
    spec = _spec()
    assert spec["info"]["version"].startswith("2.4") and "/V1/bulk/{bulkUuid}/detailed-status" in spec["paths"]
    assert not [p for p in spec["paths"] if "async" in p]  # the async routes are derived, as the README says


def test_every_request_names_a_published_route_and_its_body_fits(exchange: Exchange) -> None:
    routes = set()
    for method, path, sent, _status, _answer in exchange.seen:
        template, by = route_of(path)
        verb = method.lower()
        assert verb in _spec()["paths"][template], f"{method} {path}: the schema has no {verb} on {template}"
        routes.add((verb, template, by is not None or "/async/" in path))
        if sent is None:
            continue
        if "/async/bulk/" in path:
            assert isinstance(sent, list) and sent, f"{path}: a bulk body is a non-empty array"
            schema = bulk_item_schema(template, verb, by)
            for i, item in enumerate(sent):
                found = problems(item, schema)
                assert not found or "MJ03" in json.dumps(item), f"{method} {path} #{i}: {found[:3]}"
        else:
            found = problems(sent, body_schema(template, verb))
            # the one body sent on purpose against the schema: a price that is no number, refused whole
            assert not found or '"cheap"' in json.dumps(sent), f"{method} {path}: {found[:3]}"
    assert {(v, t) for v, t, _ in routes} >= {
        ("get", "/V1/store/storeViews"), ("get", "/V1/store/storeConfigs"),
        ("get", "/V1/products/attributes/{attributeCode}"), ("post", "/V1/products"),
        ("post", "/V1/configurable-products/{sku}/child"), ("get", "/V1/bulk/{bulkUuid}/status"),
        ("put", "/V1/products/{sku}"), ("get", "/V1/products/{sku}"), ("get", "/V1/products/{sku}/media"),
        ("post", "/V1/products/{sku}/media"), ("post", "/V1/inventory/source-items"),
        ("post", "/V1/inventory/source-items-delete"), ("post", "/V1/products/base-prices")}


def test_every_answer_fits_the_published_answer(exchange: Exchange) -> None:
    statuses = set()
    for method, path, _sent, status, answer in exchange.seen:
        statuses.add(status)
        if "/async/bulk/" in path and status == 202:
            found = problems(answer, BULK_ACCEPTED)
            assert not found, f"{method} {path}: {found[:3]}"
            continue
        template, _ = route_of(path)
        schema = answer_schema(template, method.lower(), status)
        if schema is None:
            assert status == 200 and answer == [], f"{method} {path} {status}: no published answer to hold it to"
            continue
        found = problems(answer, schema)
        assert not found, f"{method} {path} {status}: {found[:3]}"
    assert {200, 202, 400, 401, 404} <= statuses


def test_the_bulk_answer_schema_holds_adobes_example_and_the_status_statuses(exchange: Exchange) -> None:
    assert problems(DOCUMENTED_BULK_ANSWER, BULK_ACCEPTED) == []
    assert problems({**DOCUMENTED_BULK_ANSWER, "errors": "no"}, BULK_ACCEPTED)
    operations = [op for m, p, _, s, a in exchange.seen if p.endswith("/status") and s == 200
                  for op in a["operations_list"]]
    assert {op["status"] for op in operations} >= {1, 3, 4, 5}  # complete, failed, open, rejected
    rejected = [a for m, p, _, s, a in exchange.seen if "/async/bulk/" in p and a and a.get("errors")]
    assert rejected and rejected[0]["request_items"][1]["status"] == "rejected"


def test_a_drifted_answer_or_request_fails_validation(exchange: Exchange) -> None:
    product = next(a for m, p, _, s, a in exchange.seen if m == "GET" and p.endswith("/V1/products/MJ01") and s == 200)
    schema = answer_schema("/V1/products/{sku}", "get", 200)
    assert schema is not None and problems(product, schema) == []
    drifts = {
        "price as text": lambda p: p.update(price="42"),
        "no sku": lambda p: p.pop("sku"),
        "links as SKUs": lambda p: p["extension_attributes"].update(configurable_product_links=["MJ01-S"]),
        "custom attributes as a mapping": lambda p: p.update(custom_attributes={"url_key": "x"}),
    }
    for name, drift in drifts.items():
        bad = copy.deepcopy(product)
        drift(bad)
        assert problems(bad, schema), f"the drift {name!r} went unnoticed"
    item = bulk_item_schema("/V1/configurable-products/{sku}/child", "post", "sku")
    assert problems({"sku": "MJ01", "childSku": "MJ01-S"}, item) == []
    assert problems({"childSku": "MJ01-S"}, item) and problems({"sku": "MJ01", "child_sku": "MJ01-S"}, item)
    error = answer_schema("/V1/products", "post", 401)
    assert error is not None and problems({"message": "x", "parameters": {"resources": "y"}}, error) == []
    assert problems({"parameters": ["x"]}, error) and problems({"message": 3}, error)


def test_base_prices_are_saved_and_refused_as_magento_answers(exchange: Exchange) -> None:
    posts = [(sent, status, answer) for m, p, sent, status, answer in exchange.seen
             if m == "POST" and p.endswith("/V1/products/base-prices")]
    schema = answer_schema("/V1/products/base-prices", "post", 200)
    assert schema is not None
    # Magento's own case, answered as its functional test expects, and to the published shape
    (case,) = [(status, answer) for sent, status, answer in posts if sent == MAGENTO_PRICE_CASE]
    assert case == (200, MAGENTO_PRICE_ANSWER) and problems(case[1], schema) == []
    # a configurable parent and an unknown SKU refused by SKU, the simple variant saved alongside them
    first = posts[0]
    assert first[1] == 200 and [e["parameters"] for e in first[2]] == [["SKU", "MJ01"], ["SKU", "NOPE"]]
    # a refusal naming no SKU (a negative price) made the connector send each item of that request alone
    alone = [sent["prices"] for sent, _, _ in posts[2:4]]
    assert alone == [[{"sku": "MJ01-M", "price": -1.0, "store_id": 0}], [{"sku": "MJ01-S", "price": 38.0,
                                                                           "store_id": 0}]]
    # a price that is no number refuses the whole request before any item is looked at
    assert any(status == 400 and "type is invalid" in answer["message"] for _, status, answer in posts)
    # what the store holds now: the last valid price, and the status the lifecycle gave
    saved = [a for m, p, _, s, a in exchange.seen if m == "PUT" and p.endswith("/V1/products/MJ01-M") and s == 200]
    assert saved and saved[-1]["status"] == 2 and saved[-1]["price"] == 42.0  # the refused -1 was not saved
    variant = [a for m, p, _, s, a in exchange.seen if m == "GET" and p.endswith("/V1/products/MJ01-S") and s == 200]
    assert variant and variant[-1]["price"] == 38.0


def test_the_connector_maps_each_price_refusal_to_its_sku(exchange: Exchange) -> None:
    """The connector's results for the exchange's two base-price calls: one per SKU sent, each refusal on its own
    SKU with Magento's message filled in, the negative price's too (it names no SKU: found by sending alone)."""
    results = [(r.key, r.ok, r.message) for r in exchange.returned["prices"]]
    assert results == [
        ("MJ01-S", True, None),
        ("MJ01", False, "Invalid attribute SKU = MJ01."),
        ("NOPE", False, "Invalid attribute SKU = NOPE."),
        ("MJ01-M", False, "Invalid attribute Price = -1."),
        ("MJ01-S", True, None),
    ]


def test_the_product_list_pages_by_search_criteria_and_refuses_what_magento_refuses(exchange: Exchange) -> None:
    """``GET /V1/products`` answers the published shape (``items``, ``search_criteria``, ``total_count``); the
    connector's paging reads every product once and stops by ``total_count``; Magento's refusals of a request with
    no ``searchCriteria`` and of a non-integer page number are 400s naming the problem."""
    lists = [(path, status, answer) for method, path, _, status, answer in exchange.seen
             if method == "GET" and path.endswith("/V1/products")]
    pages = [answer for _, status, answer in lists if status == 200]
    assert len(pages) == 2, lists  # three products, two a page
    assert {tuple(sorted(p)) for p in pages} == {("items", "search_criteria", "total_count")}
    skus = [item["sku"] for page in pages for item in page["items"]]
    assert sorted(skus) == ["MJ01", "MJ01-M", "MJ01-S"] and pages[0]["total_count"] == 3
    assert [p["search_criteria"]["current_page"] for p in pages] == [1, 2]
    refused = [(status, answer) for _, status, answer in lists if status != 200]
    assert [s for s, _ in refused] == [400, 400]
    assert refused[0][1]["parameters"] == {"fieldName": "searchCriteria"}
    assert refused[1][1]["parameters"] == {"value": "two", "type": "int"}
    spec = _spec()["paths"]["/V1/products"]["get"]
    documented = {p["name"] for p in spec["parameters"]}
    assert {"searchCriteria[pageSize]", "searchCriteria[currentPage]", "searchCriteria[sortOrders][0][field]",
            "searchCriteria[sortOrders][0][direction]"} <= documented


def test_a_page_past_the_last_answers_the_last_page_again(tmp_path: Path) -> None:
    """Magento clamps ``currentPage`` to the last page rather than answering an empty one, which is why the
    connector stops by ``total_count``."""
    from catalog_sync_sandbox.server import SandboxServer

    server = SandboxServer(f"sqlite:///{tmp_path / 'sandbox.sqlite'}").start()
    try:
        token = {"Authorization": f"Bearer {server.credentials['adobe_commerce']['access_token']}"}
        for sku in ("A1", "A2", "A3"):
            requests.put(f"{server.url}{ROOT}/all/V1/products/{sku}", timeout=10, headers=token, json={
                "product": {"sku": sku, "name": sku, "attribute_set_id": 4, "price": 1.0}}).raise_for_status()

        def page(n: int) -> dict[str, Any]:
            answer = requests.get(f"{server.url}{ROOT}/all/V1/products", timeout=10, headers=token, params={
                "searchCriteria[pageSize]": 2, "searchCriteria[currentPage]": n})
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            assert not problems(body, answer_schema("/V1/products", "get", 200) or {})
            return body

        assert [i["sku"] for i in page(2)["items"]] == ["A3"]
        assert [i["sku"] for i in page(5)["items"]] == ["A3"]
        assert page(5)["total_count"] == 3
        only = requests.get(f"{server.url}{ROOT}/all/V1/products", timeout=10, headers=token, params={
            "searchCriteria[filterGroups][0][filters][0][field]": "sku",
            "searchCriteria[filterGroups][0][filters][0][value]": "A1,A3",
            "searchCriteria[filterGroups][0][filters][0][conditionType]": "in"}).json()
        assert [i["sku"] for i in only["items"]] == ["A1", "A3"] and only["total_count"] == 2
    finally:
        server.stop()
