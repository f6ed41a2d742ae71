"""Supplier-portal product submissions (new items and cost updates from vendors).

Frame columns: ``supplier_id, supplier_sku, upc, name, cost_price, currency, uom, pack_size, lead_time_days,
available_from``. Gate them with ``key="supplier_sku"``. Layer 0 checks each row's syntax; layer 1 checks ranges,
plain-text names and that a supplier does not submit one item (or one barcode) twice.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from catalog_sync.quality import prep
from catalog_sync.quality.reference import ANY_HTML_PATTERN, CURRENCY_PATTERN, GTIN_PATTERN, UOM_CODES
from catalog_sync.quality.spec import Check
from catalog_sync.quality.suites import GateInputs

E = "supplier"

OPTIONAL_COLUMNS: Final[dict[int, tuple[str, ...]]] = {
    0: ("upc", "currency", "pack_size", "lead_time_days", "available_from"),
    1: ("upc", "name", "pack_size", "lead_time_days", "cost_price"),
}


def checks(layer: int, inputs: GateInputs) -> tuple[Check, ...]:
    """The supplier checks of ``layer``."""
    if layer == 0:
        return (
            Check(f"{E}.l0.supplier_id_present", 0, "not_null", ("supplier_id",),
                  "A submission must say which supplier sent it.", True),
            Check(f"{E}.l0.supplier_sku_present", 0, "not_null", ("supplier_sku",),
                  "The supplier's own item number is how we answer the supplier about this row."),
            Check(f"{E}.l0.name_present", 0, "not_null", ("name",), "An item cannot be onboarded without a name."),
            Check(f"{E}.l0.upc_format", 0, "regex", ("upc",), "Only 12-digit UPC-A or 13-digit EAN-13 are accepted.",
                  params={"regex": GTIN_PATTERN}),
            Check(f"{E}.l0.upc_check_digit", 0, "flag", ("_upc_check_digit_ok",),
                  "A wrong GTIN check digit means a mistyped barcode.", fields=("upc",)),
            Check(f"{E}.l0.uom_present", 0, "not_null", ("uom",), "Costs are per unit of measure."),
            Check(f"{E}.l0.uom_known", 0, "in_set", ("uom",),
                  "Units must use the canonical codes (EA, PR, PK, BX, ...); 'each' or 'ea' must be mapped.",
                  params={"value_set": UOM_CODES}),
            Check(f"{E}.l0.cost_price_present", 0, "not_null", ("cost_price",), "A submission must carry a cost."),
            Check(f"{E}.l0.cost_price_is_number", 0, "flag", ("_cost_price_is_number",),
                  "A cost that is not a number cannot be costed.", fields=("cost_price",)),
            Check(f"{E}.l0.currency_format", 0, "regex", ("currency",), "Costs need an ISO 4217 currency code.",
                  params={"regex": CURRENCY_PATTERN}),
            Check(f"{E}.l0.pack_size_is_integer", 0, "flag", ("_pack_size_is_integer",),
                  "A pack holds a whole number of units.", fields=("pack_size",)),
            Check(f"{E}.l0.lead_time_is_integer", 0, "flag", ("_lead_time_days_is_integer",),
                  "Lead times are planned in whole days.", fields=("lead_time_days",)),
            Check(f"{E}.l0.available_from_parses", 0, "flag", ("_available_from_parses",),
                  "The availability date drives the launch plan and must parse.", fields=("available_from",)),
        )
    if layer == 1:
        return (
            Check(f"{E}.l1.supplier_sku_unique", 1, "compound_unique", ("supplier_id", "supplier_sku"),
                  "A supplier submitting one item twice leaves us guessing which row is right."),
            Check(f"{E}.l1.upc_unique", 1, "unique", ("upc",),
                  "One barcode on two submitted items makes receiving ambiguous."),
            Check(f"{E}.l1.cost_price_positive", 1, "between", ("_cost_price",), "A zero or negative cost is an error.",
                  params={"min_value": 0.01}, fields=("cost_price",)),
            Check(f"{E}.l1.pack_size_in_range", 1, "between", ("_pack_size",), "Pack sizes outside 1..max are typos.",
                  params={"min_value": 1, "max_value": inputs.rules.max_pack_size}, fields=("pack_size",)),
            Check(f"{E}.l1.lead_time_in_range", 1, "between", ("_lead_time_days",),
                  "A lead time beyond the planning horizon cannot be planned.",
                  params={"min_value": 0, "max_value": inputs.rules.max_lead_time_days}, fields=("lead_time_days",)),
            Check(f"{E}.l1.name_plain_text", 1, "not_regex", ("name",),
                  "Supplier names are imported as plain text; HTML there is rejected.",
                  params={"regex": ANY_HTML_PATTERN}),
        )
    raise ValueError(f"supplier submissions have layers 0 and 1, not {layer}")


def prepare(frame: pd.DataFrame, layer: int, inputs: GateInputs) -> pd.DataFrame:
    """Add the helper columns of ``layer`` to the gate's working frame."""
    cols = set(frame.columns)
    if layer == 0:
        frame["_upc_check_digit_ok"] = prep.gtin_check_digit_ok(frame["upc"])
        if "cost_price" in cols:
            frame["_cost_price_is_number"] = prep.is_number(frame["cost_price"])
        frame["_pack_size_is_integer"] = prep.is_integer(frame["pack_size"])
        frame["_lead_time_days_is_integer"] = prep.is_integer(frame["lead_time_days"])
        frame["_available_from_parses"] = prep.parses_as_timestamp(frame["available_from"])
    elif layer == 1:
        for col in ("cost_price", "pack_size", "lead_time_days"):
            frame[f"_{col}"] = prep.to_number(frame[col])
    return frame
