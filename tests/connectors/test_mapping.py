"""Pure mappings between wire shapes and the canonical product record (no server needed)."""

from __future__ import annotations

from catalog_sync.connectors.base import Stream
from catalog_sync.connectors.erp import ITEMS
from catalog_sync.connectors.mapping import (
    AKENEO_WEIGHT_UNITS,
    akeneo_product_to_canonical,
    asset_code,
    asset_id_from_code,
    canonical_to_akeneo_product,
    canonical_to_akeneo_product_model,
    canonical_to_akeneo_values,
    canonical_to_erp_item,
    canonical_to_shopify_product,
    category_code,
    erp_item_to_canonical,
    normalize_uom,
    shopify_product_to_canonical,
    storefront_handle,
)
from catalog_sync.connectors.pim import identifier_in, path_segment, search_updated_after
from catalog_sync.connectors.storefront import idempotency_key, product_differences
from catalog_sync.domain import LIFECYCLE_OPTION_CODES, PRODUCT_FIELDS, LifecycleStatus
from catalog_sync.governance.pim_model import is_code

ERP_ITEM = {
    "sku": "MH01-XS-Black",
    "parent_sku": "MH01",
    "product_type": "simple",
    "lifecycle_status": "active",
    "upc": "012345678905",
    "product_group": "Hoodies",
    "uom": "each",
    "weight": {"value": "1.2", "unit": "lb"},
    "dimensions": {"length": 10, "width": 8, "height": 2, "unit": "in"},
    "country_of_origin": "VN",
    "vendor_name": "Luma Apparel",
    "reference_price": {"amount": 52.0, "currency": "USD"},
    "description": "HOODIE CHAZ XS BLK",
    "updated_at": "2026-01-02T03:04:05Z",
}


def test_erp_item_to_canonical_fills_erp_fields_only() -> None:
    record = erp_item_to_canonical(ERP_ITEM)
    assert tuple(record) == PRODUCT_FIELDS
    assert record["sku"] == "MH01-XS-Black" and record["parent_sku"] == "MH01"
    assert record["uom"] == "EA" and record["weight"] == 1.2 and record["weight_unit"] == "lb"
    assert (record["length"], record["width"], record["height"], record["dimension_unit"]) == (10.0, 8.0, 2.0, "in")
    assert record["reference_price"] == 52.0 and record["currency"] == "USD"
    # the ERP's terse text must not become the PIM-owned description
    assert record["description"] is None and record["name"] is None


def test_erp_round_trip_keeps_owned_fields() -> None:
    record = erp_item_to_canonical(ERP_ITEM)
    back = erp_item_to_canonical({**canonical_to_erp_item(record), "updated_at": "x"})
    assert back == record


def test_uom_spellings_normalise() -> None:
    assert [normalize_uom(u) for u in ("EA", "each", "ea", "PR", "pair", "Box", None, " ")] == [
        "EA", "EA", "EA", "PR", "PR", "BOX", None, None,
    ]


def _enriched() -> dict:
    record = erp_item_to_canonical(ERP_ITEM)
    record.update(
        name="Chaz Kangeroo Hoodie",
        description="<p>Warm.</p>",
        url_key="chaz-kangeroo-hoodie-xs-black",
        color="Black",
        size="XS",
        categories=["Men/Tops/Hoodies & Sweatshirts", "Collections/Eco Friendly"],
        category="Men/Tops/Hoodies & Sweatshirts",
        translations={"fr_FR": {"name": "Sweat Chaz", "description": "<p>Chaud.</p>"}},
        asset_links=["A-1", "A-2"],
    )
    return record


def test_canonical_to_akeneo_product_values_locales_and_scope() -> None:
    product = canonical_to_akeneo_product(_enriched(), family="clothing")
    assert product["identifier"] == "MH01-XS-Black" and product["parent"] == "MH01" and product["enabled"] is True
    assert product["family"] == "clothing"
    assert product["categories"] == ["men_tops_hoodies_sweatshirts", "collections_eco_friendly"]
    values = product["values"]
    assert {"locale": "en_US", "scope": None, "data": "Chaz Kangeroo Hoodie"} in values["name"]
    assert {"locale": "fr_FR", "scope": None, "data": "Sweat Chaz"} in values["name"]
    assert values["description"] == [
        {"locale": "en_US", "scope": "ecommerce", "data": "<p>Warm.</p>"},
        {"locale": "fr_FR", "scope": "ecommerce", "data": "<p>Chaud.</p>"},
    ]
    assert values["erp_reference_price"] == [
        {"locale": None, "scope": None, "data": [{"amount": "52", "currency": "USD"}]}
    ]
    # text of Akeneo-valid asset codes, one per line (Community Edition has no asset collections)
    assert values["asset_links"] == [{"locale": None, "scope": None, "data": "A_2D1\nA_2D2"}]
    # the canonical unit after the master-data gate is "lbs": it goes out as Akeneo's POUND, the amount as text
    assert canonical_to_akeneo_values({"weight": 1.2, "weight_unit": "lbs"})["weight"] == [
        {"locale": None, "scope": None, "data": {"amount": "1.2", "unit": "POUND"}}]
    assert values["lifecycle_status"] == [{"locale": None, "scope": None, "data": "active"}]
    # the declared model's family for the product group; an unlisted group goes to the default family
    assert canonical_to_akeneo_product({**_enriched(), "product_group": "Top"})["family"] == "top"
    assert canonical_to_akeneo_product({**_enriched(), "product_group": "Hoodies & Sweats"})["family"] == "general"
    assert "meta_title" not in values  # None is left out, never sent as an erasing null


def test_inactive_lifecycle_disables_the_pim_product() -> None:
    assert canonical_to_akeneo_product({**_enriched(), "lifecycle_status": "seasonal-hold"})["enabled"] is False


def test_akeneo_round_trip_for_reconciliation() -> None:
    record = {**_enriched(), "weight_unit": "lbs", "lifecycle_status": "pre-active"}
    paths = {category_code(p): p for p in record["categories"]}
    back = akeneo_product_to_canonical(canonical_to_akeneo_product(record), category_paths=paths)
    for field in ("sku", "parent_sku", "name", "description", "url_key", "color", "size", "categories", "category",
                  "upc", "uom", "weight", "weight_unit", "reference_price", "currency", "asset_links", "lifecycle_status"):
        assert back[field] == record[field], field
    assert back["translations"] == {"fr_FR": {"name": "Sweat Chaz", "description": "<p>Chaud.</p>"}}


def test_product_model_drops_axis_values_and_names_family_variant() -> None:
    parent = {**_enriched(), "sku": "MH01", "parent_sku": None, "product_type": "configurable",
              "axes": ["size", "color"]}
    model = canonical_to_akeneo_product_model(parent, family="top")
    assert model["code"] == "MH01" and model["family_variant"] == "top_by_size_color"
    # axes the model declares no variant for fall back to the family's first variant (one that exists)
    assert canonical_to_akeneo_product_model({**parent, "axes": ["material"]}, family="bag")["family_variant"] == \
        "bag_by_size_color"
    assert "size" not in model["values"] and "color" not in model["values"] and "name" in model["values"]
    back = akeneo_product_to_canonical(model, axes=["size", "color"])
    assert back["sku"] == "MH01" and back["product_type"] == "configurable" and back["axes"] == ["size", "color"]


def test_canonical_to_shopify_configurable_product() -> None:
    parent = {**_enriched(), "sku": "MH01", "parent_sku": None, "product_type": "configurable",
              "axes": ["size", "color"], "url_key": "chaz-kangeroo-hoodie"}
    v1 = {**_enriched(), "sku": "MH01-XS-Black", "weight_unit": "lbs"}  # canonical, as the master-data gate leaves it
    v2 = {**_enriched(), "sku": "MH01-S-Blue", "size": "S", "color": "Blue", "upc": "012345678912",
          "weight_unit": "lbs"}
    assets = [{"renditions": {"ecommerce": "http://dam/a1.jpg"}, "filename": "a1.jpg"},
              {"renditions": {}, "filename": "no-rendition.jpg"}]
    product = canonical_to_shopify_product(parent, [v1, v2], assets, prices={"MH01-S-Blue": 49.5})
    assert product["handle"] == "chaz-kangeroo-hoodie" and product["status"] == "active"
    assert product["options"] == [{"name": "Size", "values": ["XS", "S"]}, {"name": "Color", "values": ["Black", "Blue"]}]
    assert [(v["sku"], v["price"], v["option1"], v["option2"]) for v in product["variants"]] == [
        ("MH01-XS-Black", "52.00", "XS", "Black"),
        ("MH01-S-Blue", "49.50", "S", "Blue"),
    ]
    assert product["images"] == [{"src": "http://dam/a1.jpg", "alt": "a1.jpg", "position": 1}]
    # Shopify's weight units ("lb"), read back as the canonical ones ("lbs")
    assert {(v["weight"], v["weight_unit"]) for v in product["variants"]} == {(1.2, "lb")}
    rows = shopify_product_to_canonical({**product, "id": 1})
    assert {(r["weight"], r["weight_unit"]) for r in rows[1:]} == {(1.2, "lbs")}
    assert rows[0]["sku"] == "MH01" and rows[0]["axes"] == ["size", "color"]
    assert [(r["sku"], r["parent_sku"], r["size"], r["color"], r["reference_price"]) for r in rows[1:]] == [
        ("MH01-XS-Black", "MH01", "XS", "Black", 52.0),
        ("MH01-S-Blue", "MH01", "S", "Blue", 49.5),
    ]


def test_discontinued_simple_product_is_archived() -> None:
    simple = {**_enriched(), "parent_sku": None, "lifecycle_status": "discontinued", "url_key": None}
    product = canonical_to_shopify_product(simple)
    assert product["status"] == "archived" and product["handle"] == "mh01-xs-black"
    assert "options" not in product and product["variants"][0]["sku"] == "MH01-XS-Black"
    assert storefront_handle({"sku": "24-MB01", "url_key": "Joust Duffle Bag"}) == "joust-duffle-bag"


def test_product_differences_compare_numbers_as_numbers() -> None:
    existing = {"title": "T", "status": "active", "variants": [{"sku": "A", "price": "34.00", "id": 9}]}
    assert product_differences(existing, {"title": "T", "variants": [{"sku": "A", "price": 34}]}) == []
    assert product_differences(existing, {"title": "U", "variants": [{"sku": "A", "price": "35"}]}) == [
        "title", "variants[A].price",
    ]
    assert product_differences(existing, {"variants": [{"sku": "B"}]}) == ["variants"]


def test_idempotency_key_is_deterministic_per_change() -> None:
    key = idempotency_key("MH01-XS-Black", 101, 7, 42)
    assert key == idempotency_key("MH01-XS-Black", 101, 7, 42)
    assert len({key, idempotency_key("MH01-XS-Black", 101, 7, 43), idempotency_key("MH01-XS-Black", 101, 8, 42),
                idempotency_key("MH01-XS-Black", 102, 7, 42), idempotency_key("MH01-S-Black", 101, 7, 42)}) == 5


def test_stream_schema_finds_malformed_records() -> None:
    good = dict(ERP_ITEM)
    assert ITEMS.problems(good) == []
    bad = {**ERP_ITEM, "lifecycle_status": "zombie", "product_type": 3}
    del bad["updated_at"]
    problems = ITEMS.problems(bad)
    assert any("updated_at" in p for p in problems) and any("zombie" in p for p in problems)
    assert any("product_type" in p for p in problems)
    error = ITEMS.check(bad, "erp", 4)
    assert error is not None and error.record_key == "MH01-XS-Black"
    composite = Stream("stock", ("sku", "location"), None, {"required": ["sku"]})
    assert composite.key_of({"sku": "A", "location": "WH1"}) == "A/WH1"
    assert composite.key_of("garbage", 3) == "<stock #3>"
    assert ITEMS.problems({**ERP_ITEM, "weight": True})  # a bool is not an object


def test_every_lifecycle_status_goes_to_the_pim_as_a_valid_option_code_and_comes_back() -> None:
    # Akeneo option codes are letters, digits and underscores: "pre-active" and "seasonal-hold" cannot be stored
    for status in LifecycleStatus:
        sent = canonical_to_akeneo_values({"lifecycle_status": status.value})["lifecycle_status"][0]["data"]
        assert sent == LIFECYCLE_OPTION_CODES[status] and is_code(sent), status
        back = akeneo_product_to_canonical({"identifier": "X", "values": {"lifecycle_status": [
            {"locale": None, "scope": None, "data": sent}]}})
        assert back["lifecycle_status"] == status.value
    assert canonical_to_akeneo_values({"lifecycle_status": "pre-active"})["lifecycle_status"][0]["data"] == \
        "pre_active"
    # a value outside the table reaches the PIM as it is, for the PIM to refuse and the record to be dead-lettered
    assert canonical_to_akeneo_values({"lifecycle_status": "zombie"})["lifecycle_status"][0]["data"] == "zombie"


def test_weights_go_out_in_akeneo_units_and_read_back_canonical() -> None:
    for canonical, akeneo in AKENEO_WEIGHT_UNITS.items():
        sent = canonical_to_akeneo_values({"weight": 1.5, "weight_unit": canonical})["weight"][0]["data"]
        assert sent == {"amount": "1.5", "unit": akeneo}
        # Akeneo answers amounts with its four decimals
        back = akeneo_product_to_canonical({"identifier": "X", "values": {"weight": [
            {"locale": None, "scope": None, "data": {"amount": "1.5000", "unit": akeneo}}]}})
        assert (back["weight"], back["weight_unit"]) == (1.5, canonical)
    assert canonical_to_akeneo_values({"weight": 0.1 + 0.2, "weight_unit": "kg"})["weight"][0]["data"]["amount"] \
        == "0.30000000000000004"  # exactly the float the ERP sent: no rounding in the mapping
    assert "lbs" not in AKENEO_WEIGHT_UNITS.values()


def test_asset_codes_are_akeneo_codes_and_name_their_dam_asset_again() -> None:
    ids = ["AST-0000001", "SEA-000000123456", "a_b", "x.y/z", "é", "A_2D", "_"]
    for asset_id in ids:
        code = asset_code(asset_id)
        assert is_code(code), code
        assert asset_id_from_code(code) == asset_id
    assert asset_code("AST-0000001") == "AST_2D0000001"
    assert len({asset_code(a) for a in ids}) == len(ids)  # two ids never share a code
    back = akeneo_product_to_canonical({"identifier": "X", "values": {"asset_links": [
        {"locale": None, "scope": None, "data": "AST_2D0000001\nSEA_2D1"}]}})
    assert back["asset_links"] == ["AST-0000001", "SEA-1"]
    assert canonical_to_akeneo_values({"asset_links": []})["asset_links"] == [
        {"locale": None, "scope": None, "data": None}]  # no asset left: the value is erased, not set to ""


def test_pim_search_filters_and_paths_are_the_ones_akeneo_documents() -> None:
    # "YYYY-MM-DD hh:mm:ss" in UTC, never ISO with a "T", a zone or microseconds; one second early (Akeneo's
    # "updated" has whole seconds and the filter is a strict ">")
    assert search_updated_after("2026-03-01T10:00:05.123456+00:00") == {
        "updated": [{"operator": ">", "value": "2026-03-01 10:00:04"}]}
    assert search_updated_after("2026-03-01T12:00:05+02:00")["updated"][0]["value"] == "2026-03-01 10:00:04"
    assert identifier_in(["MH01", "MH02"]) == {"identifier": [{"operator": "IN", "value": ["MH01", "MH02"]}]}
    assert [path_segment(s) for s in ("A/B", "A?B", "A#B", "A%B", "A B")] == [
        "A%2FB", "A%3FB", "A%23B", "A%25B", "A%20B"]
