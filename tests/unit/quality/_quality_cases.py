"""Small frames that trigger every expectation of every gate, with the exact (key, expectation) pairs expected.

Each case lists rows as (overrides of a valid base record, expected expectation names). A row expecting nothing
must pass. The same cases drive the per-layer tests and the GX == pandas equivalence test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
TAXONOMY = ("Men/Tops/Hoodies & Sweatshirts", "Men/Bottoms/Pants", "Gear/Bags")


def gtin(body: str) -> str:
    """A UPC-A (11-digit body) or EAN-13 (12-digit body) with its correct check digit."""
    padded = body.zfill(12)
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(padded))
    return body + str((10 - total % 10) % 10)


def bad_check_digit(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


@dataclass
class Case:
    entity: str
    layer: int
    key: str
    rows: list[tuple[dict[str, Any], set[str]]]
    base: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def gate(self) -> str:
        return f"{self.entity}.l{self.layer}"

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{**self.base, **over} for over, _ in self.rows])

    def expected_pairs(self) -> set[tuple[Any, str]]:
        pairs = set()
        for over, names in self.rows:
            key = {**self.base, **over}.get(self.key)
            for name in names:
                pairs.add((key, f"{self.gate}.{name}"))
        return pairs

    def expected_passing_keys(self) -> list[Any]:
        return [{**self.base, **over}[self.key] for over, names in self.rows if not names]


PRODUCT = {
    "sku": "MH01-XS-Black",
    "parent_sku": None,
    "product_type": "simple",
    "axes": None,
    "lifecycle_status": "active",
    "upc": gtin("03600029145"),
    "product_group": "Top",
    "uom": "EA",
    "weight": 0.5,
    "weight_unit": "kg",
    "dimension_unit": "cm",
    "reference_price": 45.0,
    "currency": "USD",
    "name": "Chaz Kangeroo Hoodie",
    "description": "A soft, warm hoodie for cool evenings outdoors.",
    "short_description": None,
    "meta_title": "Chaz Kangeroo Hoodie",
    "meta_description": "Warm hoodie",
    "category": "Men/Tops/Hoodies & Sweatshirts",
    "color": None,
    "size": None,
    "updated_at": "2026-03-01T10:00:00Z",
}

PRODUCTS_L0 = Case(
    "products", 0, "sku",
    [
        ({"sku": "OK-1"}, set()),
        ({"sku": "24-MB01", "upc": gtin("400638133393"), "updated_at": pd.Timestamp("2026-01-01", tz="UTC")}, set()),
        ({"sku": None}, {"sku_present"}),
        ({"sku": "bad sku!"}, {"sku_format"}),
        ({"sku": "T-1", "product_type": None}, {"product_type_present"}),
        ({"sku": "T-2", "product_type": "bundle"}, {"product_type_known"}),
        ({"sku": "L-1", "lifecycle_status": None}, {"lifecycle_status_present"}),
        ({"sku": "L-2", "lifecycle_status": "live"}, {"lifecycle_status_known"}),
        ({"sku": "U-1", "uom": None}, {"uom_present"}),
        ({"sku": "U-EACH", "uom": "each"}, {"uom_known"}),
        ({"sku": "U-EA", "uom": "ea"}, {"uom_known"}),
        ({"sku": "W-U", "weight_unit": "pounds"}, {"weight_unit_known"}),
        ({"sku": "D-U", "dimension_unit": "ft"}, {"dimension_unit_known"}),
        ({"sku": "UPC-F", "upc": "12345"}, {"upc_format"}),
        ({"sku": "UPC-C", "upc": bad_check_digit(gtin("03600029145"))}, {"upc_check_digit"}),
        ({"sku": "EAN-C", "upc": bad_check_digit(gtin("400638133393"))}, {"upc_check_digit"}),
        ({"sku": "P-1", "reference_price": None}, {"reference_price_present"}),
        # a grouped product and a dynamic-price bundle are priced by their components; a fixed one is not
        ({"sku": "P-GROUPED", "item_type": "grouped", "reference_price": None}, set()),
        ({"sku": "P-DYN", "item_type": "bundle", "kit_pricing": "dynamic", "reference_price": None}, set()),
        ({"sku": "P-FIXED", "item_type": "bundle", "kit_pricing": "fixed", "reference_price": None},
         {"reference_price_present"}),
        ({"sku": "K-1", "item_type": "kit"}, {"item_type_known"}),
        ({"sku": "K-2", "item_type": "downloadable"}, set()),
        ({"sku": "P-2", "reference_price": "12,50 EUR"}, {"reference_price_is_number"}),
        ({"sku": "W-1", "weight": "heavy"}, {"weight_is_number"}),
        ({"sku": "W-2", "weight": -1}, {"weight_not_negative"}),
        ({"sku": "C-1", "currency": "usd"}, {"currency_format"}),
        ({"sku": "DT-1", "updated_at": "last tuesday"}, {"updated_at_parses"}),
        ({"sku": "MULTI", "uom": "ea", "currency": "dollars"}, {"uom_known", "currency_format"}),
    ],
    PRODUCT,
)

_AXES = ["size", "color"]
PRODUCTS_L1 = Case(
    "products", 1, "sku",
    [
        ({"sku": "OK-1", "upc": gtin("00000000001")}, set()),
        ({"sku": "OK-BAG", "upc": gtin("00000000002"), "product_group": "Bag", "reference_price": 400.0,
          "category": "Gear/Bags"}, set()),
        ({"sku": "OK-HTML", "upc": gtin("00000000003"),
          "description": "<p>A <b>soft</b> hoodie for cool evenings.</p>"}, set()),
        ({"sku": "MH01", "product_type": "configurable", "axes": _AXES, "upc": None}, set()),
        ({"sku": "MH01-S-Red", "parent_sku": "MH01", "size": "S", "color": "Red", "upc": gtin("00000000004")}, set()),
        ({"sku": "MH01-M", "parent_sku": "MH01", "size": "M", "upc": gtin("00000000005")},
         {"variant_carries_parent_axes"}),
        ({"sku": "MH99", "product_type": "configurable", "axes": _AXES, "upc": None}, {"parent_has_children"}),
        ({"sku": "ORPH-1", "parent_sku": "NOPE", "size": "S", "color": "Red", "upc": gtin("00000000006")},
         {"variant_parent_present"}),
        ({"sku": "DUP-1", "upc": gtin("00000000007")}, {"sku_unique"}),
        ({"sku": "DUP-1", "upc": gtin("00000000008")}, {"sku_unique"}),
        ({"sku": "UPC-A", "upc": gtin("00000000009")}, {"upc_unique"}),
        ({"sku": "UPC-B", "upc": gtin("00000000009")}, {"upc_unique"}),
        ({"sku": "CHEAP", "upc": gtin("00000000010"), "reference_price": 2.0}, {"price_at_least_group_minimum"}),
        ({"sku": "PRICEY", "upc": gtin("00000000011"), "reference_price": 900.0}, {"price_at_most_group_maximum"}),
        ({"sku": "GIZMO", "upc": gtin("00000000012"), "product_group": "Gizmo", "reference_price": 900.0}, set()),
        ({"sku": "CAT-0", "upc": gtin("00000000013"), "category": None}, {"category_assigned"}),
        ({"sku": "CAT-X", "upc": gtin("00000000014"), "category": "Men/Unknown"}, {"category_known"}),
        ({"sku": "FAM-1", "upc": gtin("00000000015"), "weight_unit": None}, {"family_attributes_filled"}),
        # nothing to ship, or a kit: no weight is asked of it, whatever its family asks of parcels
        ({"sku": "FAM-VIRTUAL", "upc": gtin("00000000091"), "item_type": "virtual", "weight": None,
          "weight_unit": None}, set()),
        ({"sku": "FAM-KIT", "upc": gtin("00000000092"), "item_type": "bundle", "weight": None, "weight_unit": None},
         set()),
        ({"sku": "FAM-2", "upc": gtin("00000000016"), "description": "   "},
         {"family_attributes_filled", "description_length"}),
        ({"sku": "DESC-S", "upc": gtin("00000000017"), "description": "Too short"}, {"description_length"}),
        ({"sku": "DESC-X", "upc": gtin("00000000018"),
          "description": "Great hoodie <script>alert('x')</script> for everyone."},
         {"description_no_disallowed_html"}),
        ({"sku": "SHORT-L", "upc": gtin("00000000019"), "short_description": "x" * 1001}, {"short_description_length"}),
        ({"sku": "SHORT-X", "upc": gtin("00000000020"), "short_description": "<IFRAME src=x></iframe>"},
         {"short_description_no_disallowed_html"}),
        ({"sku": "NAME-H", "upc": gtin("00000000021"), "name": "<b>Chaz</b> Hoodie"}, {"name_plain_text"}),
        ({"sku": "NAME-S", "upc": gtin("00000000022"), "name": "AB"}, {"name_length"}),
        ({"sku": "META-H", "upc": gtin("00000000023"), "meta_description": "<p>Warm</p>"},
         {"meta_description_plain_text"}),
        ({"sku": "META-L", "upc": gtin("00000000024"), "meta_description": "w" * 256}, {"meta_description_length"}),
        ({"sku": "TITLE-H", "upc": gtin("00000000025"), "meta_title": "<i>Chaz</i>"}, {"meta_title_plain_text"}),
    ],
    PRODUCT,
    {"taxonomy": TAXONOMY},
)

JOINED = {
    "sku": "A1",
    "parent_sku": None,
    "erp_lifecycle_status": "active",
    "pim_lifecycle_status": "active",
    "erp_weight": 1.2,
    "pim_weight": 1.2,
    "erp_reference_price": 45.0,
    "pim_reference_price": 45.0,
    "pim_status": "active",
    "storefront_status": "active",
    "pim_name": "Chaz Kangeroo Hoodie",
    "storefront_title": "Chaz Kangeroo Hoodie",
}

PRODUCTS_L2 = Case(
    "products", 2, "sku",
    [
        ({}, set()),
        ({"sku": "W-NOISE", "pim_weight": 1.20000001}, set()),
        ({"sku": "DRAFT", "erp_lifecycle_status": "draft", "pim_lifecycle_status": "draft", "pim_status": None,
          "storefront_status": None, "pim_name": None, "storefront_title": None}, set()),
        ({"sku": "PRE-1", "erp_lifecycle_status": "pre-active"}, {"lifecycle_erp_matches_pim"}),
        ({"sku": "W-1", "pim_weight": 1.5}, {"weight_erp_matches_pim"}),
        ({"sku": "PR-1", "pim_reference_price": 39.99}, {"reference_price_erp_matches_pim"}),
        ({"sku": "CFG-1"}, set()),
        ({"sku": "CFG-1-M", "parent_sku": "CFG-1"}, set()),
        ({"sku": "CFG-1-S", "parent_sku": "CFG-1", "erp_lifecycle_status": "discontinued",
          "pim_lifecycle_status": "discontinued"}, {"variant_lifecycle_matches_parent"}),
        ({"sku": "SF-1", "storefront_status": "draft"}, {"storefront_status_matches_pim"}),
        ({"sku": "SF-2", "storefront_title": "Old title"}, {"storefront_title_matches_pim"}),
        ({"sku": "SF-3", "storefront_status": None, "storefront_title": None},
         {"storefront_status_matches_pim", "storefront_title_matches_pim"}),
    ],
    JOINED,
)

STOCK = {
    "sku": "MH01-XS-Black",
    "location": "WH-1",
    "quantity": 10,
    "price": 45.0,
    "currency": "USD",
    "uom": "EA",
    "product_group": "Top",
    "price_valid_from": "2026-03-01T00:00:00Z",
    "price_valid_to": None,
}

STOCK_L0 = Case(
    "stock_prices", 0, "sku",
    [
        ({}, set()),
        ({"sku": None}, {"sku_present"}),
        ({"sku": "bad sku"}, {"sku_format"}),
        ({"sku": "S-LOC", "location": None}, {"location_present"}),
        ({"sku": "S-Q0", "quantity": None}, {"quantity_present"}),
        ({"sku": "S-QF", "quantity": 2.5}, {"quantity_is_integer"}),
        ({"sku": "S-P0", "price": None}, {"price_present"}),
        ({"sku": "S-PX", "price": "free"}, {"price_is_number"}),
        ({"sku": "S-CUR", "currency": "US$"}, {"currency_format"}),
        ({"sku": "S-UOM", "uom": "each"}, {"uom_known"}),
        ({"sku": "S-VF", "price_valid_from": "soon"}, {"price_valid_from_parses"}),
        ({"sku": "S-VT", "price_valid_to": "2026-13-45"}, {"price_valid_to_parses"}),
    ],
    STOCK,
)

STOCK_L1 = Case(
    "stock_prices", 1, "sku",
    [
        ({}, set()),
        ({"sku": "S-NEG", "quantity": -3}, {"quantity_in_range"}),
        ({"sku": "S-CHEAP", "price": 1.0}, {"price_at_least_group_minimum"}),
        ({"sku": "S-HIGH", "price": 2500.0}, {"price_at_most_group_maximum"}),
        ({"sku": "S-WIN", "price_valid_to": "2026-02-01T00:00:00Z"}, {"price_window_ordered"}),
        ({"sku": "S-DUP", "location": "WH-2"}, {"sku_location_unique"}),
        ({"sku": "S-DUP", "location": "WH-2"}, {"sku_location_unique"}),
        ({"sku": "S-DUP", "location": "WH-3"}, set()),
    ],
    STOCK,
)

ASSET = {
    "asset_id": "AST-0",
    "sku": "MH01-XS-Black",
    "role": "hero",
    "status": "approved",
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_to": None,
    "rights_expires_at": "2027-01-01T00:00:00Z",
    "rights_regions": ["US", "CA"],
}

ASSETS_L0 = Case(
    "assets", 0, "asset_id",
    [
        ({}, set()),
        ({"asset_id": None}, {"asset_id_present"}),
        ({"asset_id": "AST-1", "sku": None}, {"sku_present"}),
        ({"asset_id": "AST-2", "sku": "bad sku"}, {"sku_format"}),
        ({"asset_id": "AST-3", "role": "banner"}, {"role_known"}),
        ({"asset_id": "AST-4", "status": None}, {"status_present"}),
        ({"asset_id": "AST-5", "status": "published"}, {"status_known"}),
        ({"asset_id": "AST-6", "valid_from": "spring"}, {"valid_from_parses"}),
        ({"asset_id": "AST-7", "valid_to": "never"}, {"valid_to_parses"}),
        ({"asset_id": "AST-8", "rights_expires_at": "x"}, {"rights_expires_at_parses"}),
    ],
    ASSET,
)

ASSETS_L1 = Case(
    "assets", 1, "asset_id",
    [
        ({}, set()),
        ({"asset_id": "FUTURE", "valid_from": "2026-06-01T00:00:00Z"}, {"approved_in_validity_window"}),
        ({"asset_id": "EXPIRED", "valid_to": "2026-03-01T00:00:00Z"}, {"approved_in_validity_window"}),
        ({"asset_id": "DRAFT-FUTURE", "status": "draft", "valid_from": "2026-06-01T00:00:00Z"}, set()),
        ({"asset_id": "RIGHTS", "rights_expires_at": "2026-03-31T00:00:00Z"}, {"approved_in_rights_window"}),
        # the showable rule's ends are exclusive: rights ending at this very moment have ended
        ({"asset_id": "RIGHTS-NOW", "rights_expires_at": "2026-04-01T12:00:00Z"}, {"approved_in_rights_window"}),
        ({"asset_id": "ENDS-NOW", "valid_to": "2026-04-01T12:00:00Z"}, {"approved_in_validity_window"}),
        ({"asset_id": "EU-ONLY", "rights_regions": ["EU", "UK"]}, {"licensed_for_region"}),
        ({"asset_id": "NO-LIMIT", "rights_regions": []}, set()),
        ({"asset_id": "DRAFT-EXPIRED", "status": "draft", "rights_expires_at": "2026-03-31T00:00:00Z"}, set()),
        ({"asset_id": "LINK-2"}, {"link_unique"}),
        ({"asset_id": "LINK-2"}, {"link_unique"}),
        ({"asset_id": "LINK-2", "sku": "MH01-S-Black"}, set()),
    ],
    ASSET,
    {"key": "asset_id"},
)

ASSETS_L2 = Case(
    "assets", 2, "asset_id",
    [
        ({}, set()),
        ({"asset_id": "ORPHAN", "sku": "ZZ-9"}, {"sku_exists"}),
        ({"asset_id": "ORPHAN-2", "sku": "MH99-GONE"}, {"sku_exists"}),
    ],
    ASSET,
    {"known_skus": {"MH01-XS-Black", "MH01-S-Black"}},
)

SUPPLIER = {
    "supplier_id": "SUP-1",
    "supplier_sku": "V-100",
    "upc": gtin("07123456789"),
    "name": "Trail Water Bottle",
    "cost_price": 4.2,
    "currency": "EUR",
    "uom": "EA",
    "pack_size": 12,
    "lead_time_days": 14,
    "available_from": "2026-05-01",
}

SUPPLIER_L0 = Case(
    "supplier", 0, "supplier_sku",
    [
        ({}, set()),
        ({"supplier_sku": "V-1", "supplier_id": None}, {"supplier_id_present"}),
        ({"supplier_sku": None}, {"supplier_sku_present"}),
        ({"supplier_sku": "V-2", "name": None}, {"name_present"}),
        ({"supplier_sku": "V-3", "upc": "0712345"}, {"upc_format"}),
        ({"supplier_sku": "V-4", "upc": bad_check_digit(gtin("07123456789"))}, {"upc_check_digit"}),
        ({"supplier_sku": "V-5", "uom": None}, {"uom_present"}),
        ({"supplier_sku": "V-EA", "uom": "ea"}, {"uom_known"}),
        ({"supplier_sku": "V-6", "cost_price": None}, {"cost_price_present"}),
        ({"supplier_sku": "V-7", "cost_price": "4,20"}, {"cost_price_is_number"}),
        ({"supplier_sku": "V-8", "currency": "Euro"}, {"currency_format"}),
        ({"supplier_sku": "V-9", "pack_size": 1.5}, {"pack_size_is_integer"}),
        ({"supplier_sku": "V-10", "lead_time_days": "two weeks"}, {"lead_time_is_integer"}),
        ({"supplier_sku": "V-11", "available_from": "Q3"}, {"available_from_parses"}),
    ],
    SUPPLIER,
)

SUPPLIER_L1 = Case(
    "supplier", 1, "supplier_sku",
    [
        ({"upc": gtin("07123456781")}, set()),
        ({"supplier_sku": "V-DUP", "upc": gtin("07123456782")}, {"supplier_sku_unique"}),
        ({"supplier_sku": "V-DUP", "upc": gtin("07123456783")}, {"supplier_sku_unique"}),
        ({"supplier_sku": "V-DUP", "supplier_id": "SUP-2", "upc": gtin("07123456784")}, set()),
        ({"supplier_sku": "V-U1", "upc": gtin("07123456785")}, {"upc_unique"}),
        ({"supplier_sku": "V-U2", "upc": gtin("07123456785")}, {"upc_unique"}),
        ({"supplier_sku": "V-C", "upc": gtin("07123456786"), "cost_price": 0}, {"cost_price_positive"}),
        ({"supplier_sku": "V-P", "upc": gtin("07123456787"), "pack_size": 0}, {"pack_size_in_range"}),
        ({"supplier_sku": "V-L", "upc": gtin("07123456788"), "lead_time_days": 400}, {"lead_time_in_range"}),
        ({"supplier_sku": "V-N", "upc": gtin("07123456780"), "name": "Bottle <br/> 1L"}, {"name_plain_text"}),
    ],
    SUPPLIER,
)

ALL_CASES = [
    PRODUCTS_L0, PRODUCTS_L1, PRODUCTS_L2, STOCK_L0, STOCK_L1,
    ASSETS_L0, ASSETS_L1, ASSETS_L2, SUPPLIER_L0, SUPPLIER_L1,
]


def gate_kwargs(case: Case) -> dict[str, Any]:
    """Keyword arguments for run_gate / pandas_checks for a case."""
    kwargs = {k: v for k, v in case.kwargs.items() if k != "key"}
    return {"now": NOW, **kwargs}
