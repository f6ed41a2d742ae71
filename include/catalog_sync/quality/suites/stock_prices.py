"""Stock levels and live prices per SKU and location (hot data: ERP -> storefront directly).

Frame columns: ``sku, location, quantity, price, currency, uom, product_group, price_valid_from, price_valid_to``.
Layer 0 checks that each row parses; layer 1 checks quantities, the price band of the product group, the price
validity window and that each (sku, location) appears once. There is no layer 2: hot data has one owner (the ERP)
and is compared with the storefront by reconciliation, not by a gate.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from catalog_sync.quality import prep
from catalog_sync.quality.reference import CURRENCY_PATTERN, SKU_PATTERN, UOM_CODES
from catalog_sync.quality.spec import Check
from catalog_sync.quality.suites import GateInputs

E = "stock_prices"

OPTIONAL_COLUMNS: Final[dict[int, tuple[str, ...]]] = {
    0: ("currency", "uom", "price_valid_from", "price_valid_to"),
    1: ("product_group", "price_valid_from", "price_valid_to"),
}


def checks(layer: int, inputs: GateInputs) -> tuple[Check, ...]:
    """The stock/price checks of ``layer``."""
    if layer == 0:
        return (
            Check(f"{E}.l0.sku_present", 0, "not_null", ("sku",), "Stock without a SKU cannot be booked.", True),
            Check(f"{E}.l0.sku_format", 0, "regex", ("sku",), "SKUs must be letters, digits and dashes.",
                  params={"regex": SKU_PATTERN}),
            Check(f"{E}.l0.location_present", 0, "not_null", ("location",),
                  "Stock is held per location; without one it cannot be allocated."),
            Check(f"{E}.l0.quantity_present", 0, "not_null", ("quantity",), "A stock row must state a quantity."),
            Check(f"{E}.l0.quantity_is_integer", 0, "flag", ("_quantity_is_integer",),
                  "Stock is counted in whole units of measure.", True, fields=("quantity",)),
            Check(f"{E}.l0.price_present", 0, "not_null", ("price",), "A live price row must carry a price."),
            Check(f"{E}.l0.price_is_number", 0, "flag", ("_price_is_number",),
                  "A price that is not a number cannot be published.", True, fields=("price",)),
            Check(f"{E}.l0.currency_format", 0, "regex", ("currency",), "Prices need an ISO 4217 currency code.",
                  params={"regex": CURRENCY_PATTERN}),
            Check(f"{E}.l0.uom_known", 0, "in_set", ("uom",), "Units must use the canonical codes the ERP books in.",
                  params={"value_set": UOM_CODES}),
            Check(f"{E}.l0.price_valid_from_parses", 0, "flag", ("_price_valid_from_parses",),
                  "A price start date that does not parse would publish the price at the wrong time.",
                  fields=("price_valid_from",)),
            Check(f"{E}.l0.price_valid_to_parses", 0, "flag", ("_price_valid_to_parses",),
                  "A price end date that does not parse would keep a promotion running forever.",
                  fields=("price_valid_to",)),
        )
    if layer == 1:
        either = {"ignore_row_if": "either_value_is_missing"}
        return (
            Check(f"{E}.l1.quantity_in_range", 1, "between", ("_quantity",),
                  "Negative or absurd stock figures are booking errors, not stock.",
                  params={"min_value": 0, "max_value": inputs.rules.max_stock_quantity}, fields=("quantity",)),
            Check(f"{E}.l1.price_at_least_group_minimum", 1, "pair_at_least", ("_price", "_price_min"),
                  "A live price below its product group's floor sells at a loss.", True, params=either,
                  fields=("price", "product_group")),
            Check(f"{E}.l1.price_at_most_group_maximum", 1, "pair_at_least", ("_price_max", "_price"),
                  "A live price above its product group's ceiling is almost always an extra digit.", params=either,
                  fields=("price", "product_group")),
            Check(f"{E}.l1.price_window_ordered", 1, "pair_at_least", ("_price_valid_to", "_price_valid_from"),
                  "A price that ends before it starts is never in force.", params=either,
                  fields=("price_valid_from", "price_valid_to")),
            Check(f"{E}.l1.sku_location_unique", 1, "compound_unique", ("sku", "location"),
                  "Two stock rows for one SKU and location contradict each other."),
        )
    raise ValueError(f"stock_prices have layers 0 and 1, not {layer}")


def prepare(frame: pd.DataFrame, layer: int, inputs: GateInputs) -> pd.DataFrame:
    """Add the helper columns of ``layer`` to the gate's working frame."""
    cols = set(frame.columns)
    if layer == 0:
        if "quantity" in cols:
            frame["_quantity_is_integer"] = prep.is_integer(frame["quantity"])
        if "price" in cols:
            frame["_price_is_number"] = prep.is_number(frame["price"])
        for col in ("price_valid_from", "price_valid_to"):
            frame[f"_{col}_parses"] = prep.parses_as_timestamp(frame[col])
    elif layer == 1:
        if "quantity" in cols:
            frame["_quantity"] = prep.to_number(frame["quantity"])
        if "price" in cols:
            frame["_price"] = prep.to_number(frame["price"])
            default = inputs.rules.price_ranges["default"]
            groups = frame["product_group"].astype("object")
            frame["_price_min"] = groups.map({g: r.min for g, r in inputs.rules.price_ranges.items()}).fillna(
                default.min).astype("float64")
            frame["_price_max"] = groups.map({g: r.max for g, r in inputs.rules.price_ranges.items()}).fillna(
                default.max).astype("float64")
        for col in ("price_valid_from", "price_valid_to"):
            frame[f"_{col}"] = prep.to_timestamp(frame[col])
    return frame
