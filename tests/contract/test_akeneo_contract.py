"""The sandbox PIM's answers and the PIM connector's requests, held against Akeneo's published Swagger file.

Every answer the connector and the bootstrap depend on (product and product model lists and items, families,
family variants, attributes, options, categories, channels, locales, currencies, measurement families, the token,
the collection PATCH's status lines and 422 errors) is validated with jsonschema against the schema Akeneo
publishes for that operation, and so are the bodies the connector PATCHes.

Swagger 2.0 cannot say "nullable", nor that a value's ``data`` may be text: Akeneo's own examples carry ``null``
for ``parent``, ``scope`` and ``locale`` and a string or an array as ``data`` (the Swagger file's price example is
an array). :func:`akeneo_schema` relaxes exactly those properties and nothing else; a drifted answer still fails.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
import pytest
import requests

from catalog_sync.connectors.mapping import (
    canonical_to_akeneo_product,
    canonical_to_akeneo_product_model,
    erp_item_to_canonical,
)
from catalog_sync.flows import cold
from catalog_sync.flows.systems import Systems
from tests.contract.conftest import spec_path
from tests.sandbox.helpers import pim, pim_token

API = "/pim/api/rest/v1"
SPEC_PATH = "/api/rest/v1"
COLLECTION = {"Content-Type": "application/vnd.akeneo.collection+json"}
#: The properties Swagger 2.0 cannot declare nullable, which Akeneo's examples show as null.
NULLABLE = frozenset({"parent", "scope", "locale"})


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    return json.loads(spec_path("akeneo-web-api.json").read_text())


def resolve_refs(node: Any, root: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` (``#/definitions/...``, ``#/responses/...``) replaced by its target."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/") or ref in seen:
                raise ValueError(f"cannot resolve {ref!r}")
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return resolve_refs(target, root, (*seen, ref))
        return {k: resolve_refs(v, root, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(v, root, seen) for v in node]
    return node


def akeneo_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 schema with ``$ref``s resolved, where ``parent``, ``scope`` and ``locale`` may also be null and
    a value's ``data`` may also be a string or an array (what Swagger 2.0 cannot express); nothing else changes."""
    out = resolve_refs(copy.deepcopy(schema), _spec())

    def relax(node: Any) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if not isinstance(prop, dict):
                    continue
                if name in NULLABLE and prop.get("type") == "string":
                    prop["type"] = ["string", "null"]
                elif name == "data" and prop.get("type") == "object":
                    prop["type"] = ["object", "string", "array"]
            for value in node.values():
                relax(value)
        elif isinstance(node, list):
            for value in node:
                relax(value)

    relax(out)
    return out


def response_schema(path: str, method: str, status: str = "200") -> dict[str, Any]:
    response = resolve_refs(_spec()["paths"][path][method]["responses"][status], _spec())
    return akeneo_schema(response["schema"])


def body_schema(path: str, method: str) -> dict[str, Any]:
    (body,) = [p for p in _spec()["paths"][path][method]["parameters"] if p.get("in") == "body"]
    return akeneo_schema(body["schema"])


def problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def assert_valid(instance: Any, schema: dict[str, Any], what: str) -> None:
    found = problems(instance, schema)
    assert not found, f"{what} breaks Akeneo's schema: {found[:5]}"


@pytest.fixture(scope="module")
def h(sandbox: Any) -> dict[str, str]:
    return pim(sandbox)


def _get(sb: Any, h: dict[str, str], path: str, **params: Any) -> Any:
    r = requests.get(f"{sb.url}{API}/{path}", headers=h, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------------------------------ the tool
def test_the_converter_resolves_refs_and_relaxes_only_the_named_fields() -> None:
    resolved = akeneo_schema({"type": "object", "properties": {
        "error": {"$ref": "#/definitions/Error"}, "parent": {"type": "string"}, "family": {"type": "string"},
        "values": {"type": "object", "properties": {"data": {"type": "object"}, "locale": {"type": "string"}}}}})
    assert resolved["properties"]["error"]["properties"]["code"] == {"type": "integer",
                                                                     "description": "HTTP status code"}
    assert resolved["properties"]["parent"]["type"] == ["string", "null"]
    assert resolved["properties"]["family"]["type"] == "string"  # not one of the relaxed properties
    assert resolved["properties"]["values"]["properties"]["data"]["type"] == ["object", "string", "array"]
    assert resolved["properties"]["values"]["properties"]["locale"]["type"] == ["string", "null"]
    assert problems({"family": None}, resolved) and problems({"values": {"data": 12}}, resolved)


# -------------------------------------------------------------------------------------- answers: products
def test_product_and_product_model_answers_hold_to_the_schema(sandbox: Any, h: dict[str, str]) -> None:
    products = _get(sandbox, h, "products", pagination_type="search_after", limit=100,
                    search=json.dumps({"parent": [{"operator": "IN", "value": ["MH01", "MH02"]}]}))
    assert len(products["_embedded"]["items"]) == 30
    assert_valid(products, response_schema(f"{SPEC_PATH}/products", "get"), "GET /products")
    paged = _get(sandbox, h, "products", limit=3, page=2, with_count="true")
    assert_valid(paged, response_schema(f"{SPEC_PATH}/products", "get"), "GET /products (page)")
    for sku in ("MH01-XS-Black", "24-MB01"):
        assert_valid(_get(sandbox, h, f"products/{sku}"), response_schema(f"{SPEC_PATH}/products/{{code}}", "get"),
                     f"GET /products/{sku}")
    models = _get(sandbox, h, "product-models", pagination_type="search_after", limit=20,
                  search=json.dumps({"identifier": [{"operator": "IN", "value": ["MH01", "MH02", "WJ12"]}]}))
    assert len(models["_embedded"]["items"]) == 3
    assert_valid(models, response_schema(f"{SPEC_PATH}/product-models", "get"), "GET /product-models")
    assert_valid(_get(sandbox, h, "product-models/MH01"),
                 response_schema(f"{SPEC_PATH}/product-models/{{code}}", "get"), "GET /product-models/MH01")


def test_a_drifted_answer_fails_validation(sandbox: Any, h: dict[str, str]) -> None:
    schema = response_schema(f"{SPEC_PATH}/products/{{code}}", "get")
    good = _get(sandbox, h, "products/MH01-XS-Black")
    assert problems(good, schema) == []
    drifts = {
        "enabled as text": lambda p: p.update(enabled="yes"),
        "no identifier": lambda p: p.pop("identifier"),
        "a number as data": lambda p: p["values"]["name"][0].update(data=12),
        "a channel as a number": lambda p: p["values"]["description"][0].update(scope=5),
        "categories as text": lambda p: p.update(categories="men_tops"),
        "values as a list": lambda p: p.update(values=[]),
    }
    for name, drift in drifts.items():
        bad = copy.deepcopy(good)
        drift(bad)
        assert problems(bad, schema), f"the drift {name!r} went unnoticed"
    page_schema = response_schema(f"{SPEC_PATH}/product-models", "get")
    page = _get(sandbox, h, "product-models", limit=2)
    assert problems(page, page_schema) == []
    page["_embedded"]["items"] = {"MH01": page["_embedded"]["items"][0]}
    assert problems(page, page_schema)


# ------------------------------------------------------------------------------------- answers: structure
STRUCTURE = [
    # (sandbox path, Swagger path): lists, then one item of each
    ("families", "families"),
    ("families/top", "families/{code}"),
    ("families/top/variants", "families/{family_code}/variants"),
    ("families/top/variants/top_by_size_color", "families/{family_code}/variants/{code}"),
    ("attributes", "attributes"),
    ("attributes/weight", "attributes/{code}"),
    ("attributes/sku", "attributes/{code}"),
    ("attributes/lifecycle_status/options", "attributes/{attribute_code}/options"),
    ("attributes/lifecycle_status/options/pre_active", "attributes/{attribute_code}/options/{code}"),
    ("attribute-groups", "attribute-groups"),
    ("categories", "categories"),
    ("categories/men", "categories/{code}"),
    ("categories/master", "categories/{code}"),
    ("channels", "channels"),
    ("channels/ecommerce", "channels/{code}"),
    ("locales", "locales"),
    ("locales/fr_FR", "locales/{code}"),
    ("currencies", "currencies"),
    ("currencies/USD", "currencies/{code}"),
    ("association-types", "association-types"),
    ("association-types/bundle_components", "association-types/{code}"),
]


@pytest.mark.parametrize(("path", "spec"), STRUCTURE, ids=[p for p, _ in STRUCTURE])
def test_structure_answers_hold_to_the_schema(sandbox: Any, h: dict[str, str], path: str, spec: str) -> None:
    body = _get(sandbox, h, path, limit=100)
    assert_valid(body, response_schema(f"{SPEC_PATH}/{spec}", "get"), f"GET {path}")
    if "_embedded" in body:
        assert body["_embedded"]["items"], f"{path} listed nothing"


def test_measurement_families_hold_to_the_schema(sandbox: Any, h: dict[str, str]) -> None:
    families = _get(sandbox, h, "measurement-families")
    # the answer is a JSON array; the Swagger file gives the schema of one family
    assert isinstance(families, list) and {f["code"] for f in families} >= {"Weight", "Length"}
    schema = response_schema(f"{SPEC_PATH}/measurement-families", "get")
    for family in families:
        assert_valid(family, schema, f"measurement family {family['code']}")


def test_the_token_answer_holds_to_the_schema(sandbox: Any) -> None:
    assert_valid(pim_token(sandbox), response_schema("/api/oauth/v1/token", "post"), "POST token")


# -------------------------------------------------------------------------- answers: writes and refusals
def test_collection_patch_lines_and_422_errors_hold_to_the_schema(sandbox: Any, h: dict[str, str]) -> None:
    """Only refused lines: the shared sandbox does not change."""
    lines = [{"identifier": "MH01-XS-Black", "family": "no_such_family"},
             {"identifier": "MH01-XS-Black", "values": {"lifecycle_status": [
                 {"locale": None, "scope": None, "data": "pre-active"}]}},
             {"values": {}}]
    r = requests.patch(f"{sandbox.url}{API}/products", headers={**h, **COLLECTION}, timeout=30,
                       data="\n".join(json.dumps(x) for x in lines) + "\n{not json")
    answers = [json.loads(x) for x in r.text.splitlines()]
    assert [a["status_code"] for a in answers] == [422, 422, 422, 400]
    for answer in answers:
        assert_valid(answer, response_schema(f"{SPEC_PATH}/products", "patch"), "a PATCH /products line")
    models = requests.patch(f"{sandbox.url}{API}/product-models", headers={**h, **COLLECTION}, timeout=30,
                            data=json.dumps({"code": "MH01", "family_variant": "nope"}))
    (line,) = [json.loads(x) for x in models.text.splitlines()]
    assert line["status_code"] == 422
    assert_valid(line, response_schema(f"{SPEC_PATH}/product-models", "patch"), "a PATCH /product-models line")

    single = requests.patch(f"{sandbox.url}{API}/products/MH01-XS-Black", headers=h, timeout=30,
                            json={"identifier": "MH01-XS-Black", "categories": ["sunglasses"]})
    assert single.status_code == 422
    assert_valid(single.json(), response_schema(f"{SPEC_PATH}/products/{{code}}", "patch", "422"), "422")
    refused_filter = requests.get(f"{sandbox.url}{API}/product-models", headers=h, timeout=30,
                                  params={"search": json.dumps({"code": [{"operator": "IN", "value": ["MH01"]}]})})
    assert refused_filter.status_code == 422
    assert_valid(refused_filter.json(), response_schema(f"{SPEC_PATH}/product-models", "get", "422"), "422")
    # responses.md: a validation 422 lists its errors, each with the property and a message
    for body in (single.json(), answers[1]):
        assert body["errors"] and all(isinstance(e["property"], str) and isinstance(e["message"], str)
                                      for e in body["errors"])


# ------------------------------------------------------------------------------- the connector's requests
@pytest.fixture
def wire(fresh_sandbox: Any) -> Iterator[tuple[Systems, list[tuple[str, str, bytes]]]]:
    """Systems on a fresh sandbox, with every PIM request body the connector sends captured as sent."""
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    sent: list[tuple[str, str, bytes]] = []

    def capture(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        body = response.request.body
        if response.request.method == "PATCH" and body:
            sent.append((response.request.path_url, response.request.headers.get("Content-Type", ""),
                         body if isinstance(body, bytes) else str(body).encode()))

    systems.pim.session.hooks["response"].append(capture)
    yield systems, sent
    systems.close()


def test_the_connector_s_patch_bodies_hold_to_the_request_schemas(wire: tuple[Systems, list[Any]]) -> None:
    systems, sent = wire
    items = {i["sku"]: i for page in systems.erp.iter_items() for i in page.records
             if i["sku"] in {"MH01", "MH01-XS-Black", "MH01-M-Gray", "24-MB01"}}
    records = {sku: erp_item_to_canonical(item) for sku, item in items.items()}
    creates = [canonical_to_akeneo_product_model({**records["MH01"], "axes": ["size", "color"],
                                                  "sku": "NEW-PARENT"})]
    model_results = systems.pim.upsert_product_models(
        [*creates, {**canonical_to_akeneo_product_model(records["MH01"]), "family_variant": "top_by_size_color"}])
    # a kit: a new product whose components are associations (the bootstrap created the association type)
    kit = {**records["24-MB01"], "sku": "NEW-KIT", "upc": None, "item_type": "bundle", "kit_pricing": "fixed",
           "components": [{"sku": "24-MB01", "quantity": 1.0}, {"sku": "MH01-XS-Black", "quantity": 2.0}]}
    product_results = systems.pim.upsert_products(
        [canonical_to_akeneo_product(records[s]) for s in ("MH01-XS-Black", "MH01-M-Gray", "24-MB01")]
        + [canonical_to_akeneo_product(kit)])
    link_results = cold.write_asset_links(systems, {"MH01": ["AST-0000001"], "24-MB01": ["AST-0000002"]},
                                          models={"MH01"})
    results = [*model_results, *product_results, *link_results]
    assert all(r.ok for r in results), [(r.key, r.message) for r in results if not r.ok]

    product_body = body_schema(f"{SPEC_PATH}/products", "patch")
    model_body = body_schema(f"{SPEC_PATH}/product-models", "patch")
    # Swagger requires family_variant for creating a product model; an update (a PATCH of a model that exists,
    # as the asset-link write is) names only its code, as Akeneo's update behaviour allows
    model_update = {**model_body, "required": ["code"]}
    checked = 0
    for path, ctype, body in sent:
        assert ctype == COLLECTION["Content-Type"], path
        for line in body.decode().splitlines():
            doc = json.loads(line)
            if path.endswith("/products"):
                assert_valid(doc, product_body, f"PATCH {path} {doc.get('identifier')}")
            else:
                assert path.endswith("/product-models"), path
                schema = model_body if doc["code"] == "NEW-PARENT" else model_update
                assert_valid(doc, schema, f"PATCH {path} {doc.get('code')}")
            checked += 1
    assert checked == len(results)
    # the bodies really carry what Akeneo needs: option codes, Akeneo units, link text
    variant = json.loads(next(b for p, _c, b in sent if p.endswith("/products")).decode().splitlines()[0])
    assert variant["values"]["lifecycle_status"][0]["data"] == "active"
    assert variant["values"]["weight"][0]["data"]["unit"] == "POUND"
    assert isinstance(variant["values"]["weight"][0]["data"]["amount"], str)
    kit_line = next(json.loads(line) for p, _c, b in sent if p.endswith("/products")
                    for line in b.decode().splitlines() if json.loads(line)["identifier"] == "NEW-KIT")
    assert kit_line["associations"] == {"bundle_components": {"products": ["24-MB01", "MH01-XS-Black"],
                                                              "product_models": [], "groups": []}}
    assert kit_line["values"]["item_type"][0]["data"] == "bundle"
