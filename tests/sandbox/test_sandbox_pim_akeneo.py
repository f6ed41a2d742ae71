"""The sandbox PIM refuses what Akeneo refuses (akeneo-docs/filter.md, responses.md, the Swagger file's validation
rules), starts as a fresh Akeneo does, and decodes URL-encoded identifiers whole."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

from catalog_sync_sandbox.pim import catalog_problems
from tests.conftest import LUMA, bootstrap_pim

from .helpers import pim, pim_all

API = "/pim/api/rest/v1"
COLLECTION = {"Content-Type": "application/vnd.akeneo.collection+json"}


def _value(data: Any, locale: str | None = None, scope: str | None = None) -> dict[str, Any]:
    return {"locale": locale, "scope": scope, "data": data}


def _patch_lines(sb: Any, h: dict[str, str], path: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = requests.patch(f"{sb.url}{API}/{path}", data="\n".join(json.dumps(i) for i in items),
                       headers={**h, **COLLECTION}, timeout=30)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def _search(sb: Any, h: dict[str, str], path: str, search: Any) -> requests.Response:
    return requests.get(f"{sb.url}{API}/{path}", headers=h, timeout=30,
                        params={"search": search if isinstance(search, str) else json.dumps(search)})


def _refusal(line: dict[str, Any]) -> str:
    """A 422 line in Akeneo's shape (code/status, message, errors with property and message), as one text."""
    assert line["status_code"] == 422, line
    assert isinstance(line["message"], str) and line["message"]
    for entry in line.get("errors", []):
        assert isinstance(entry["property"], str) and isinstance(entry["message"], str), entry
    return line["message"] + " " + json.dumps(line.get("errors", []))


# ------------------------------------------------------------------------------------------------- filters
def test_product_models_are_filtered_on_identifier_and_a_code_filter_is_refused(sandbox: Any) -> None:
    h = pim(sandbox)
    refused = _search(sandbox, h, "product-models", {"code": [{"operator": "IN", "value": ["MH01"]}]})
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == 422 and 'property "code"' in body["message"]
    found = pim_all(sandbox, "product-models", h,
                    search=json.dumps({"identifier": [{"operator": "IN", "value": ["MH01", "MH02"]}]}))
    assert sorted(m["code"] for m in found) == ["MH01", "MH02"]
    # products have no code property either, and models no enabled flag
    assert _search(sandbox, h, "products", {"code": [{"operator": "IN", "value": ["x"]}]}).status_code == 422
    assert _search(sandbox, h, "product-models",
                   {"enabled": [{"operator": "=", "value": True}]}).status_code == 422


def test_updated_takes_akeneo_s_date_format_only(sandbox: Any) -> None:
    h = pim(sandbox)
    for bad in ("2025-01-06T00:00:00.123456+00:00", "2025-01-06T00:00:00Z", "2025-01-06", 1736121600):
        for path in ("products", "product-models"):
            r = _search(sandbox, h, path, {"updated": [{"operator": ">", "value": bad}]})
            assert r.status_code == 422 and "yyyy-mm-dd hh:mm:ss" in r.json()["message"], (path, bad, r.text)
    # the seed's records were all updated at 2025-01-06 00:00:00 UTC
    assert pim_all(sandbox, "product-models", h, search=json.dumps(
        {"updated": [{"operator": ">", "value": "2025-01-06 00:00:00"}]})) == []
    before = pim_all(sandbox, "product-models", h, search=json.dumps(
        {"updated": [{"operator": ">", "value": "2025-01-05 23:59:59"}]}))
    assert len(before) == 147
    between = _search(sandbox, h, "products", {"updated": [
        {"operator": "BETWEEN", "value": ["2025-01-05 00:00:00", "2025-01-06 00:00:00"]}]})
    assert between.status_code == 200 and between.json()["_embedded"]["items"]


def test_unsupported_filters_and_operators_get_akeneo_s_answers(sandbox: Any) -> None:
    h = pim(sandbox)
    assert _search(sandbox, h, "products", "{not json").status_code == 400
    assert _search(sandbox, h, "products", {"identifier": "MH01"}).status_code == 422  # not a list of conditions
    for search in ({"identifier": [{"operator": "LIKE", "value": "MH"}]},
                   {"parent": [{"operator": "NOT IN", "value": ["MH01"]}]},
                   {"updated": [{"operator": ">=", "value": "2025-01-01 00:00:00"}]},
                   {"categories": [{"operator": "IN", "value": ["no_such_category"]}]},
                   {"identifier": [{"operator": "IN", "value": [f"S{i}" for i in range(101)]}]}):
        r = _search(sandbox, h, "products", search)
        assert r.status_code == 422 and r.json()["code"] == 422, (search, r.text)
    tops = pim_all(sandbox, "products", h, search=json.dumps(
        {"categories": [{"operator": "IN", "value": ["men_tops_hoodies_sweatshirts"]}],
         "parent": [{"operator": "IN", "value": ["MH01"]}]}))
    assert len(tops) == 15
    assert pim_all(sandbox, "product-models", h, search=json.dumps(
        {"family": [{"operator": "NOT IN", "value": ["top", "bottom"]}]})) == []


# ------------------------------------------------------------------------------------------ write refusals
def test_writes_naming_what_the_pim_does_not_hold_are_refused_with_akeneo_s_422(sandbox: Any) -> None:
    """Refused lines change nothing, so the shared sandbox serves."""
    h = pim(sandbox)
    sku = "MH01-XS-Black"
    lines = _patch_lines(sandbox, h, "products", [
        {"identifier": sku, "values": {"lifecycle_status": [_value("pre-active")]}},
        {"identifier": sku, "values": {"lifecycle_status": [_value("seasonal-hold")]}},
        {"identifier": sku, "values": {"weight": [_value({"amount": "1.5", "unit": "lbs"})]}},
        {"identifier": "NEW-1", "family": "hoodies"},
        {"identifier": sku, "categories": ["sunglasses"]},
        {"identifier": sku, "values": {"fabric": [_value("wool")]}},
        {"identifier": sku, "values": {"color": [_value("Chartreuse")]}},
        {"identifier": sku, "values": {"description": [_value("x", "en_US", "mobile")]}},
        {"identifier": sku, "values": {"name": [_value("x", "xx_XX")]}},
        {"identifier": sku, "values": {"name": [_value("x", "es_ES")]}},  # exists, but no channel uses it
        {"identifier": sku, "values": {"erp_reference_price": [_value([{"amount": "1", "currency": "XXX"}])]}},
        {"identifier": sku, "values": {"erp_reference_price": [_value([{"amount": "1", "currency": "EUR"}])]}},
        {"identifier": sku, "values": {"asset_links": [_value(["AST-0000001"])]}},  # text, not a collection
        {"identifier": sku, "values": {"upc": [_value("1", "en_US")]}},  # not localizable
        {"identifier": sku, "values": {"weight": [_value({"amount": "-1", "unit": "POUND"})]}},
        {"identifier": "BAD,SKU"},
        {"identifier": sku, "groups": ["promotion"]},
    ])
    texts = [_refusal(line) for line in lines]
    assert "pre-active" in texts[0] and "seasonal-hold" in texts[1]
    assert "lbs" in texts[2] and "metric family" in texts[2]
    assert "family" in texts[3] and "hoodies" in texts[3]
    assert "sunglasses" in texts[4] and "fabric" in texts[5] and "Chartreuse" in texts[6] and "mobile" in texts[7]
    assert "xx_XX" in texts[8] and "es_ES" in texts[9] and "XXX" in texts[10] and "EUR" in texts[11]
    errors = lines[0]["errors"]
    assert errors[0]["attribute"] == "lifecycle_status" and {"locale", "scope"} <= set(errors[0])
    got = requests.get(f"{sandbox.url}{API}/products/{sku}", headers=h, timeout=10).json()
    assert "lifecycle_status" not in got["values"] and "weight" not in got["values"]
    models = _patch_lines(sandbox, h, "product-models", [
        {"code": "NEW-MODEL", "family_variant": "top_by_material"},
        {"code": "NEW-MODEL", "family": "bag", "family_variant": "top_by_size_color"},
        {"code": "MH01", "family_variant": "top_by_color"},  # immutable
    ])
    assert all(_refusal(line) for line in models)
    single = requests.patch(f"{sandbox.url}{API}/products/{sku}", headers=h, timeout=10,
                            json={"identifier": sku, "family": "nope"})
    assert single.status_code == 422
    body = single.json()
    assert body["code"] == 422 and body["message"] and body["errors"][0]["property"] == "family"


def test_structure_writes_keep_akeneo_s_code_rules_and_immutable_properties(sandbox: Any) -> None:
    h = pim(sandbox)
    options = _patch_lines(sandbox, h, "attributes/lifecycle_status/options", [
        {"code": "pre-active", "labels": {"en_US": "Pre-active"}},
        {"code": "seasonal hold"},
    ])
    assert [line["status_code"] for line in options] == [422, 422]
    assert "letters, numbers and underscores" in _refusal(options[0])
    attributes = _patch_lines(sandbox, h, "attributes", [
        {"code": "dam_assets", "type": "pim_catalog_asset_collection", "group": "media"},  # Enterprise only
        {"code": "upc", "type": "pim_catalog_number"},  # a type cannot change
        {"code": "shoe-size", "type": "pim_catalog_text", "group": "marketing"},
        {"code": "family", "type": "pim_catalog_text", "group": "marketing"},  # reserved
        {"code": "net_weight", "type": "pim_catalog_metric", "group": "erp", "metric_family": "Weight",
         "default_metric_unit": "lbs"},
        {"code": "notes", "type": "pim_catalog_text", "group": "no_such_group"},
    ])
    texts = [_refusal(line) for line in attributes]
    assert "Community Edition" in texts[0] and "cannot be modified" in texts[1] and "lbs" in texts[4]
    families = _patch_lines(sandbox, h, "families", [
        {"code": "shoes", "attribute_as_label": "name", "attributes": ["name", "heel_height"]},
        {"code": "hats", "attribute_as_label": "description", "attributes": ["description"]},  # a textarea
    ])
    assert all(_refusal(line) for line in families)
    variants = _patch_lines(sandbox, h, "families/top/variants", [
        {"code": "top_by_name", "variant_attribute_sets": [{"level": 1, "axes": ["name"], "attributes": []}]},
        {"code": "top_by_size_color", "variant_attribute_sets": [{"level": 1, "axes": ["color"], "attributes": []}]},
    ])
    assert all(_refusal(line) for line in variants)
    categories = _patch_lines(sandbox, h, "categories", [{"code": "sale", "parent": "no_such_parent"},
                                                         {"code": "men", "parent": "men_tops"}])
    assert all(_refusal(line) for line in categories)
    channel = requests.patch(f"{sandbox.url}{API}/channels/ecommerce", headers=h, timeout=10,
                             json={"code": "ecommerce", "locales": ["xx_XX"]})
    assert channel.status_code == 422 and "xx_XX" in channel.text
    assert requests.get(f"{sandbox.url}{API}/attributes/upc", headers=h, timeout=10).json()["type"] == \
        "pim_catalog_text"


# ------------------------------------------------------------------------------------- a fresh installation
def test_an_empty_pim_is_a_fresh_akeneo_and_names_nothing_the_model_declares(fresh_sandbox: Any) -> None:
    sb = fresh_sandbox
    sb.reset()
    h = pim(sb)

    def codes(path: str) -> list[str]:
        r = requests.get(f"{sb.url}{API}/{path}", params={"limit": 100}, headers=h, timeout=10)
        assert r.status_code == 200, r.text
        return [item["code"] for item in r.json()["_embedded"]["items"]]

    assert codes("attributes") == ["sku"]
    assert codes("families") == [] and codes("attribute-groups") == ["other"]
    assert codes("categories") == ["master"] and codes("channels") == ["ecommerce"]
    channel = requests.get(f"{sb.url}{API}/channels/ecommerce", headers=h, timeout=10).json()
    assert channel["locales"] == ["en_US"] and channel["currencies"] == ["USD"]
    enabled = requests.get(f"{sb.url}{API}/locales", headers=h, timeout=10,
                           params={"search": json.dumps({"enabled": [{"operator": "=", "value": True}]})}).json()
    assert [loc["code"] for loc in enabled["_embedded"]["items"]] == ["en_US"]
    assert {"fr_FR", "de_DE", "es_ES"} <= set(codes("locales"))  # listed, not enabled: no channel uses them
    weight = next(f for f in requests.get(f"{sb.url}{API}/measurement-families", headers=h, timeout=10).json()
                  if f["code"] == "Weight")
    assert weight["standard_unit_code"] == "KILOGRAM" and {"POUND", "OUNCE", "GRAM"} <= set(weight["units"])
    # a product naming a family the installation does not have is refused
    line = _patch_lines(sb, h, "products", [{"identifier": "X1", "family": "top"}])[0]
    assert "top" in _refusal(line)


def test_the_seeded_content_waits_for_the_bootstrap_and_then_fits_the_structure(fresh_sandbox: Any) -> None:
    """The seed writes content and the category tree only; the product's bootstrap gives the rest a home."""
    fresh_sandbox.load(str(LUMA))  # a load alone, without the bootstrap the fixture adds
    with fresh_sandbox.state.engine.connect() as conn:
        waiting = catalog_problems(conn)
    assert len(waiting) == 2026 and all("family" in p for p in waiting[:10])
    bootstrap_pim(fresh_sandbox)
    with fresh_sandbox.state.engine.connect() as conn:
        assert catalog_problems(conn) == []


# ------------------------------------------------------------------------------------------ encoded paths
def test_identifiers_with_url_characters_each_reach_their_own_record(fresh_sandbox: Any) -> None:
    sb, h = fresh_sandbox, pim(fresh_sandbox)
    tricky = ["A/B", "A?B", "A#B", "A%B", "A B", "A%2FB"]
    lines = _patch_lines(sb, h, "products", [
        {"identifier": sku, "family": "gear", "values": {"upc": [_value(f"upc of {sku}")]}}
        for sku in ["A", *tricky]])
    assert [line["status_code"] for line in lines] == [201] * (len(tricky) + 1)
    for sku in tricky:
        r = requests.get(f"{sb.url}{API}/products/{quote(sku, safe='')}", headers=h, timeout=10)
        assert r.status_code == 200 and r.json()["identifier"] == sku, (sku, r.text)
        assert r.json()["values"]["upc"][0]["data"] == f"upc of {sku}"
    single = requests.patch(f"{sb.url}{API}/products/{quote('A/B', safe='')}", headers=h, timeout=10,
                            json={"identifier": "A/B", "values": {"upc": [_value("changed")]}})
    assert single.status_code == 204 and single.headers["Location"].endswith("/products/A%2FB")
    untouched = requests.get(f"{sb.url}{API}/products/A", headers=h, timeout=10).json()
    assert untouched["values"]["upc"][0]["data"] == "upc of A"
    listed = pim_all(sb, "products", h, search=json.dumps({"identifier": [{"operator": "IN", "value": tricky}]}))
    assert sorted(p["identifier"] for p in listed) == sorted(tricky)
    assert {p["_links"]["self"]["href"].rsplit("/", 1)[1] for p in listed} == {quote(s, safe="") for s in tricky}


# ------------------------------------------------------------------------------------------- associations
def test_associations_name_existing_types_and_products_as_akeneo_requires(fresh_sandbox: Any) -> None:
    """Akeneo's rules for ``associations`` (akeneo-web-api.json): the association type and every associated
    product must exist; a PATCH replaces the lists it sends. Community Edition creates no quantified type."""
    sb, h = fresh_sandbox, pim(fresh_sandbox)
    (made,) = _patch_lines(sb, h, "association-types", [{"code": "bundle_components",
                                                          "labels": {"en_US": "Bundle components"}}])
    assert made["status_code"] == 204  # the bootstrap of the fixture created it already; unchanged
    quantified = _patch_lines(sb, h, "association-types", [{"code": "packs", "is_quantified": True}])[0]
    assert "Serenity" in _refusal(quantified)
    unknown_type, unknown_product, group, quantity = _patch_lines(sb, h, "products", [
        {"identifier": "MH01-XS-Black", "associations": {"PACK": {"products": ["MH01-S-Black"]}}},
        {"identifier": "MH01-XS-Black", "associations": {"bundle_components": {"products": ["NOWHERE-1"]}}},
        {"identifier": "MH01-XS-Black", "associations": {"bundle_components": {"groups": ["summer"]}}},
        {"identifier": "MH01-XS-Black", "quantified_associations": {"bundle_components": {
            "products": [{"identifier": "MH01-S-Black", "quantity": 2}]}}},
    ])
    assert 'association type does not exist, "PACK"' in _refusal(unknown_type)
    assert 'product does not exist, "NOWHERE-1"' in _refusal(unknown_product)
    assert 'group does not exist, "summer"' in _refusal(group)
    assert 'not quantified, "bundle_components"' in _refusal(quantity)
    # a refused line writes nothing
    assert requests.get(f"{sb.url}{API}/products/MH01-XS-Black", headers=h, timeout=10).json()["associations"] == {}

    ok = _patch_lines(sb, h, "products", [{"identifier": "MH01-XS-Black", "associations": {
        "bundle_components": {"products": ["MH01-S-Black", "MH01-M-Black"]}}}])[0]
    assert ok["status_code"] == 204, ok
    again = _patch_lines(sb, h, "products", [{"identifier": "MH01-XS-Black", "associations": {
        "bundle_components": {"products": ["MH01-M-Black"]}}}])[0]
    assert again["status_code"] == 204
    product = requests.get(f"{sb.url}{API}/products/MH01-XS-Black", headers=h, timeout=10).json()
    assert product["associations"] == {"bundle_components": {"products": ["MH01-M-Black"], "product_models": [],
                                                             "groups": []}}
    assert product["quantified_associations"] == {}
