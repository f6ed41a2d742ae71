"""Products and variants (the canonical product record, ``domain.PRODUCT_FIELDS``).

Layer 0 (syntax) judges each record on its own: required fields, codes from the reference vocabularies, SKU and
UPC/EAN format and check digit, numbers and dates that parse.

Layer 1 (business rules) judges records against the catalogue and the rules: price inside its product group's
band, a known category, the family's attributes filled, the channel's content rules, and the parent/variant
structure. Duplicate SKUs and UPCs are layer 1, not 0: uniqueness is a property of the batch, not of one record
being well-formed, and it needs the whole batch to judge.

Layer 2 (cross-system) runs on a frame joining ERP, PIM and storefront values of each SKU, with columns
``sku, parent_sku, erp_lifecycle_status, pim_lifecycle_status, erp_weight, pim_weight, erp_reference_price,
pim_reference_price, pim_status, storefront_status, pim_name, storefront_title`` (``pim_status`` and ``pim_name``
are what the PIM published to the storefront channel).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from catalog_sync.domain import KIT_ITEM_TYPES, UNSHIPPED_ITEM_TYPES
from catalog_sync.quality import prep
from catalog_sync.quality.reference import (
    ANY_HTML_PATTERN,
    CURRENCY_PATTERN,
    DIMENSION_UNITS,
    GTIN_PATTERN,
    ITEM_TYPE_CODES,
    LIFECYCLE_STATES,
    PRODUCT_TYPES,
    SKU_PATTERN,
    UOM_CODES,
    WEIGHT_UNITS,
)
from catalog_sync.quality.spec import Check
from catalog_sync.quality.suites import GateInputs

E = "products"

OPTIONAL_COLUMNS: Final[dict[int, tuple[str, ...]]] = {
    0: ("parent_sku", "item_type", "kit_pricing", "upc", "weight", "weight_unit", "dimension_unit", "currency", "updated_at"),
    1: (
        "parent_sku", "axes", "item_type", "upc", "product_group", "category", "description", "short_description",
        "meta_title", "meta_description", "color", "size", "weight", "weight_unit",
    ),
    2: ("parent_sku", "pim_status", "storefront_status", "pim_name", "storefront_title"),
}
#: Attributes that belong to sellable units: a configurable parent is not required to carry them.
VARIANT_LEVEL: Final[frozenset[str]] = frozenset({"weight", "weight_unit", "upc", "size", "color"})
#: Attributes only a parcel has: an item with nothing to ship (``domain.UNSHIPPED_ITEM_TYPES``) is not required to
#: carry them, whatever its family asks of shipped items.
PARCEL_LEVEL: Final[frozenset[str]] = frozenset({"weight", "weight_unit", "length", "width", "height",
                                                 "dimension_unit", "country_of_origin"})
#: Fields a layer-1 record needs for its text checks; read from the channel rules.
_TEXT_FIELDS: Final[tuple[str, ...]] = ("name", "description", "short_description", "meta_title", "meta_description")


def checks(layer: int, inputs: GateInputs) -> tuple[Check, ...]:
    """The product checks of ``layer``."""
    if layer == 0:
        return _layer0(inputs)
    if layer == 1:
        return _layer1(inputs)
    if layer == 2:
        return _layer2()
    raise ValueError(f"products have layers 0, 1, 2, not {layer}")


def _layer0(inputs: GateInputs) -> tuple[Check, ...]:
    units = inputs.unit_codes or {}
    def c(name: str, kind: str, cols: tuple[str, ...], reason: str, critical: bool = False, **params: object) -> Check:
        return Check(f"{E}.l0.{name}", 0, kind, cols, reason, critical, dict(params))  # type: ignore[arg-type]

    return (
        c("sku_present", "not_null", ("sku",), "Without a SKU a record cannot be keyed in any system.", True),
        c("sku_format", "regex", ("sku",), "SKUs must be letters, digits and dashes so every channel accepts them.",
          True, regex=SKU_PATTERN),
        c("product_type_present", "not_null", ("product_type",), "The type decides whether variants are expected."),
        c("product_type_known", "in_set", ("product_type",), "Only configurable and simple products are modelled.",
          value_set=PRODUCT_TYPES),
        c("item_type_known", "in_set", ("item_type",), "What an item is decides whether it ships, is stocked and "
          "which channel can sell it; an unknown kind has no defined fate.", value_set=ITEM_TYPE_CODES),
        c("lifecycle_status_present", "not_null", ("lifecycle_status",),
          "The ERP lifecycle decides whether an item may be sold."),
        c("lifecycle_status_known", "in_set", ("lifecycle_status",),
          "An unknown lifecycle state cannot be mapped to a storefront status.", value_set=LIFECYCLE_STATES),
        c("uom_present", "not_null", ("uom",), "Stock and prices are meaningless without a unit of measure."),
        c("uom_known", "in_set", ("uom",), "Units must use the canonical codes (EA, PR, PK, ...) the ERP books in.",
          value_set=units.get("uom", UOM_CODES)),
        c("weight_unit_known", "in_set", ("weight_unit",), "Shipping rates need a weight unit we can convert.",
          value_set=units.get("weight_unit", WEIGHT_UNITS)),
        c("dimension_unit_known", "in_set", ("dimension_unit",), "Parcel sizing needs a known dimension unit.",
          value_set=units.get("dimension_unit", DIMENSION_UNITS)),
        c("upc_format", "regex", ("upc",), "Marketplaces accept only 12-digit UPC-A or 13-digit EAN-13 codes.",
          regex=GTIN_PATTERN),
        Check(f"{E}.l0.upc_check_digit", 0, "flag", ("_upc_check_digit_ok",),
              "A wrong GTIN check digit means a mistyped barcode that scanners and marketplaces reject.",
              fields=("upc",)),
        Check(f"{E}.l0.reference_price_present", 0, "flag", ("_priced",),
              "An item without a price cannot be sold (a grouped product or a bundle priced from its components "
              "has no price of its own: its components carry theirs).", fields=("reference_price",)),
        Check(f"{E}.l0.reference_price_is_number", 0, "flag", ("_reference_price_is_number",),
              "A price that is not a number cannot be published or compared.", fields=("reference_price",)),
        Check(f"{E}.l0.weight_is_number", 0, "flag", ("_weight_is_number",),
              "A weight that is not a number breaks shipping-rate calculation.", fields=("weight",)),
        c("weight_not_negative", "between", ("_weight",), "A negative weight is a data-entry error.",
          min_value=0),
        c("currency_format", "regex", ("currency",), "Prices need an ISO 4217 currency code.",
          regex=CURRENCY_PATTERN),
        Check(f"{E}.l0.updated_at_parses", 0, "flag", ("_updated_at_parses",),
              "Change timestamps drive incremental sync and must parse as dates.", fields=("updated_at",)),
    )


def _layer1(inputs: GateInputs) -> tuple[Check, ...]:
    if inputs.taxonomy is None:
        raise ValueError("the products layer-1 gate needs the known category taxonomy (GateInputs.taxonomy)")
    channel = inputs.rules.channels.get(inputs.channel)
    if channel is None:
        raise ValueError(f"no content rules configured for channel {inputs.channel!r}")
    family_fields = tuple(sorted({a for attrs in inputs.rules.family_attributes.values() for a in attrs}))
    out: list[Check] = [
        Check(f"{E}.l1.sku_unique", 1, "unique", ("sku",),
              "Two records with one SKU would overwrite each other downstream.", True),
        Check(f"{E}.l1.upc_unique", 1, "unique", ("upc",),
              "One barcode on two products makes scanning and marketplace matching ambiguous."),
        Check(f"{E}.l1.price_at_least_group_minimum", 1, "pair_at_least", ("_price", "_price_min"),
              "A price below its product group's floor is almost always a missing digit or a wrong currency.",
              params={"ignore_row_if": "either_value_is_missing"}, fields=("reference_price", "product_group")),
        Check(f"{E}.l1.price_at_most_group_maximum", 1, "pair_at_least", ("_price_max", "_price"),
              "A price above its product group's ceiling is almost always an extra digit.",
              params={"ignore_row_if": "either_value_is_missing"}, fields=("reference_price", "product_group")),
        Check(f"{E}.l1.category_assigned", 1, "not_null", ("category",),
              "A product without a category cannot be found by navigation."),
        Check(f"{E}.l1.category_known", 1, "in_set", ("category",),
              "The category must exist in the storefront taxonomy or the product lands nowhere.",
              params={"value_set": inputs.taxonomy}),
        Check(f"{E}.l1.family_attributes_filled", 1, "flag", ("_family_attributes_filled",),
              "Every product group has attributes that must be filled before it may be published.",
              fields=("product_group", *family_fields)),
        Check(f"{E}.l1.parent_has_children", 1, "flag", ("_parent_has_children",),
              "A configurable parent without variants shows an empty option picker.", fields=("product_type",)),
        Check(f"{E}.l1.variant_parent_present", 1, "flag", ("_variant_parent_present",),
              "A variant whose parent is not in the catalogue cannot be offered.", fields=("parent_sku",)),
        Check(f"{E}.l1.variant_carries_parent_axes", 1, "flag", ("_variant_carries_parent_axes",),
              "A variant must have a value for each of its parent's axes (size, color) to be selectable.",
              fields=("parent_sku", "size", "color")),
    ]
    for fld in _TEXT_FIELDS:
        lo, hi = channel.lengths.get(fld, (None, None))
        if lo is not None or hi is not None:
            out.append(Check(f"{E}.l1.{fld}_length", 1, "length_between", (fld,),
                             f"The {inputs.channel} channel requires {fld} to be {lo or 0}-{hi or 'any'} characters.",
                             params={"min_value": lo, "max_value": hi}))
        if fld in channel.html_allowed:
            out.append(Check(f"{E}.l1.{fld}_no_disallowed_html", 1, "not_regex", (fld,),
                             f"Script-like tags in {fld} are refused by the storefront and are an XSS risk.",
                             True, params={"regex": prep.tag_pattern(channel.disallowed_tags)}))
        else:
            out.append(Check(f"{E}.l1.{fld}_plain_text", 1, "not_regex", (fld,),
                             f"{fld} is rendered as plain text; HTML there shows up as literal markup.",
                             params={"regex": ANY_HTML_PATTERN}))
    return tuple(out)


def _layer2() -> tuple[Check, ...]:
    either = {"ignore_row_if": "either_value_is_missing"}
    return (
        Check(f"{E}.l2.lifecycle_erp_matches_pim", 2, "pair_equal", ("erp_lifecycle_status", "pim_lifecycle_status"),
              "The PIM must not sell an item the ERP has not activated (ERP owns the lifecycle).", True),
        Check(f"{E}.l2.weight_erp_matches_pim", 2, "pair_equal", ("_erp_weight", "_pim_weight"),
              "Shipping is charged on the PIM weight but billed on the ERP weight.",
              fields=("erp_weight", "pim_weight")),
        Check(f"{E}.l2.reference_price_erp_matches_pim", 2, "pair_equal", ("_erp_price", "_pim_price"),
              "The ERP owns the reference price; a different PIM price is drift.",
              fields=("erp_reference_price", "pim_reference_price")),
        Check(f"{E}.l2.variant_lifecycle_matches_parent", 2, "pair_equal",
              ("erp_lifecycle_status", "_parent_lifecycle_status"),
              "A variant sellable under a parent in another lifecycle state shows a broken product page.",
              params=either, fields=("parent_sku", "erp_lifecycle_status")),
        Check(f"{E}.l2.storefront_status_matches_pim", 2, "pair_equal", ("pim_status", "storefront_status"),
              "The storefront must show exactly what the PIM published."),
        Check(f"{E}.l2.storefront_title_matches_pim", 2, "pair_equal", ("pim_name", "storefront_title"),
              "Customers must see the title the PIM published."),
    )


def prepare(frame: pd.DataFrame, layer: int, inputs: GateInputs) -> pd.DataFrame:
    """Add the helper columns of ``layer`` to ``frame`` (a working copy the gate owns)."""
    cols = frame.columns
    if layer == 0:
        if "upc" in cols:
            frame["_upc_check_digit_ok"] = prep.gtin_check_digit_ok(frame["upc"])
        if "reference_price" in cols:
            frame["_reference_price_is_number"] = prep.is_number(frame["reference_price"])
            frame["_priced"] = frame["reference_price"].notna() | _priced_by_components(frame)
        if "weight" in cols:
            frame["_weight_is_number"] = prep.is_number(frame["weight"])
            frame["_weight"] = prep.to_number(frame["weight"])
        if "updated_at" in cols:
            frame["_updated_at_parses"] = prep.parses_as_timestamp(frame["updated_at"])
    elif layer == 1:
        _prepare_layer1(frame, inputs)
    elif layer == 2:
        # Rounding noise from unit and currency conversions is not disagreement: compare at a fixed precision.
        if {"erp_weight", "pim_weight"} <= set(cols):
            frame["_erp_weight"] = prep.to_number(frame["erp_weight"]).round(4)
            frame["_pim_weight"] = prep.to_number(frame["pim_weight"]).round(4)
        if {"erp_reference_price", "pim_reference_price"} <= set(cols):
            frame["_erp_price"] = prep.to_number(frame["erp_reference_price"]).round(2)
            frame["_pim_price"] = prep.to_number(frame["pim_reference_price"]).round(2)
        if {"sku", "erp_lifecycle_status"} <= set(cols):
            parents = frame.drop_duplicates("sku").set_index("sku")["erp_lifecycle_status"]
            frame["_parent_lifecycle_status"] = frame["parent_sku"].map(parents)
    return frame


def _priced_by_components(frame: pd.DataFrame) -> pd.Series:
    """Rows whose price is their components' (a grouped product, a dynamic-price bundle): no price of their own."""
    if "item_type" not in frame.columns:
        return pd.Series(False, index=frame.index)
    kind = frame["item_type"]
    pricing = frame["kit_pricing"] if "kit_pricing" in frame.columns else pd.Series(None, index=frame.index)
    return ((kind == "grouped") | ((kind == "bundle") & (pricing != "fixed"))).fillna(False).astype(bool)


def _prepare_layer1(frame: pd.DataFrame, inputs: GateInputs) -> None:
    cols = set(frame.columns)
    rules = inputs.rules
    if "reference_price" in cols:
        frame["_price"] = prep.to_number(frame["reference_price"])
        groups = frame["product_group"].astype("object")
        default = rules.price_ranges["default"]
        lo = {g: r.min for g, r in rules.price_ranges.items()}
        hi = {g: r.max for g, r in rules.price_ranges.items()}
        frame["_price_min"] = groups.map(lo).fillna(default.min).astype("float64")
        frame["_price_max"] = groups.map(hi).fillna(default.max).astype("float64")
    # Family attributes: one vectorised pass per (family, attribute); rows of unlisted families use "default".
    # A configurable parent carries no variant-level attributes (weight, barcode): its variants do.
    filled = pd.Series(True, index=frame.index)
    listed = [g for g in rules.family_attributes if g != "default"]
    group = frame["product_group"]
    is_parent = (frame["product_type"] == "configurable").fillna(False) if "product_type" in cols else False
    # nothing to ship, or a kit (its components are the parcels): no parcel attribute is asked of the item
    unshipped = (frame["item_type"].isin(sorted(UNSHIPPED_ITEM_TYPES | KIT_ITEM_TYPES)).fillna(False)
                 if "item_type" in cols else pd.Series(False, index=frame.index))
    for family, attributes in rules.family_attributes.items():
        in_family = ~group.isin(listed) if family == "default" else (group == family).fillna(False)
        for attribute in attributes:
            applies = in_family & ~is_parent if attribute in VARIANT_LEVEL else in_family
            if attribute in PARCEL_LEVEL:
                applies = applies & ~unshipped
            if attribute in cols:
                filled &= ~(applies & prep.missing_text(frame[attribute]))
            else:
                filled &= ~applies
    frame["_family_attributes_filled"] = filled.astype(bool)
    if {"sku", "product_type"} <= cols:
        is_parent = (frame["product_type"] == "configurable").fillna(False)
        parent_skus = frame["parent_sku"].dropna().unique()
        frame["_parent_has_children"] = ~is_parent | frame["sku"].isin(parent_skus)
        known = frame["sku"].dropna().unique()
        frame["_variant_parent_present"] = frame["parent_sku"].isna() | frame["parent_sku"].isin(known)
        frame["_variant_carries_parent_axes"] = _carries_parent_axes(frame, is_parent)


def _carries_parent_axes(frame: pd.DataFrame, is_parent: pd.Series) -> pd.Series:
    """True where a variant has a value for each axis its parent declares (or has no parent in the frame)."""
    ok = pd.Series(True, index=frame.index)
    parents = frame.loc[is_parent & frame["axes"].notna(), ["sku", "axes"]]
    if parents.empty:
        return ok
    # Only parents are iterated (a few percent of the rows); the variants are then judged column by column.
    axes_of: dict[str, frozenset[str]] = {
        sku: frozenset(axes if isinstance(axes, list | tuple | np.ndarray) else str(axes).split(","))
        for sku, axes in zip(parents["sku"], parents["axes"], strict=True)
    }
    all_axes = sorted({a.strip() for axes in axes_of.values() for a in axes})
    for axis in all_axes:
        needs = frame["parent_sku"].map({s: axis in a for s, a in axes_of.items()}).fillna(False).astype(bool)
        value = frame[axis] if axis in frame.columns else pd.Series(np.nan, index=frame.index)
        ok &= ~(needs & prep.missing_text(value))
    return ok
