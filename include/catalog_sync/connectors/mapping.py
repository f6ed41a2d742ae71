"""Pure translations between each system's wire shape and the canonical product record (``domain.PRODUCT_FIELDS``).

No I/O here: every function takes plain dicts and returns plain dicts, so the mapping rules are unit-tested
without a server and the engine can show exactly what would be sent before sending it.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from catalog_sync.domain import (
    CHANNEL,
    KIT_ITEM_TYPES,
    LIFECYCLE_BY_OPTION_CODE,
    LIFECYCLE_OPTION_CODES,
    LOCALES,
    PRODUCT_FIELDS,
    STOREFRONT_STATUS,
    LifecycleStatus,
    is_kit,
    item_type_of,
    ships,
)
from catalog_sync.governance.pim_model import load_pim_model

Canonical = dict[str, Any]

#: How ERP clerks spell units of measure -> the canonical UN/ECE code. Unknown spellings pass through upper-cased
#: so the quality gate (not the mapping) decides whether they are acceptable.
UOM_ALIASES: Final[dict[str, str]] = {
    "ea": "EA",
    "each": "EA",
    "pc": "EA",
    "pcs": "EA",
    "piece": "EA",
    "unit": "EA",
    "pr": "PR",
    "pair": "PR",
    "pairs": "PR",
    "set": "SET",
    "pk": "PK",
    "pack": "PK",
}

#: PIM attributes that hold translated text; descriptions are also per channel (Akeneo "scope").
LOCALIZED_TEXT: Final[tuple[str, ...]] = (
    "name", "description", "short_description", "meta_title", "meta_description", "url_key",
)
SCOPED: Final[frozenset[str]] = frozenset({"description", "short_description"})
#: Canonical fields the PIM stores as plain (non-localised, non-scoped) attribute values under the same name.
PIM_PLAIN: Final[tuple[str, ...]] = (
    "color", "size", "item_type", "kit_pricing", "lifecycle_status", "upc", "uom", "country_of_origin", "vendor_name",
    "product_group", "asset_links",
)
REFERENCE_LOCALE: Final[str] = LOCALES[0]
#: Shopify metafield namespace where Catalog Sync keeps its own keys.
METAFIELD_NAMESPACE: Final[str] = "catalog_sync"
#: Shopify's weight units (it knows no others) by canonical weight unit, and back.
SHOPIFY_WEIGHT_UNITS: Final[dict[str, str]] = {"g": "g", "kg": "kg", "oz": "oz", "lbs": "lb"}
CANONICAL_WEIGHT_UNITS: Final[dict[str, str]] = {v: k for k, v in SHOPIFY_WEIGHT_UNITS.items()}
#: Akeneo's unit codes (the standard "Weight" measurement family) by canonical weight unit, and back. A metric
#: value in any other unit is refused by Akeneo, so a unit outside this table reaches the PIM as it is and the
#: record is dead-lettered with the PIM's reason.
AKENEO_WEIGHT_UNITS: Final[dict[str, str]] = {"g": "GRAM", "kg": "KILOGRAM", "oz": "OUNCE", "lbs": "POUND"}
CANONICAL_WEIGHT_UNITS_FROM_AKENEO: Final[dict[str, str]] = {v: k for k, v in AKENEO_WEIGHT_UNITS.items()}


def empty_record() -> Canonical:
    return dict.fromkeys(PRODUCT_FIELDS)


def normalize_uom(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    return UOM_ALIASES.get(text.lower(), text.upper())


def _unit(table: Mapping[str, str], unit: Any) -> Any:
    """``unit`` in the other system's code; one the table does not know passes through for the gates to judge."""
    return table.get(str(unit), unit) if unit is not None else None


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------------- ERP


def erp_item_to_canonical(item: Mapping[str, Any]) -> Canonical:
    """An ERP ``Item`` as a canonical record. Only ERP-owned fields are filled; PIM-owned content stays None.

    The ERP's own short ``description`` is deliberately not mapped: descriptions are PIM-owned, and letting the
    ERP's terse text leak into the record would overwrite enriched copy downstream.
    """
    record = empty_record()
    weight = item.get("weight") or {}
    dims = item.get("dimensions") or {}
    price = item.get("reference_price") or {}
    record.update(
        sku=item.get("sku"),
        parent_sku=item.get("parent_sku") or None,
        product_type=item.get("product_type"),
        item_type=item.get("item_type") or item.get("product_type"),
        components=_components(item.get("components")),
        kit_pricing=item.get("kit_pricing"),
        lifecycle_status=item.get("lifecycle_status"),
        upc=item.get("upc") or None,
        product_group=item.get("product_group"),
        uom=normalize_uom(item.get("uom")),
        weight=_number(weight.get("value")),
        weight_unit=weight.get("unit"),
        length=_number(dims.get("length")),
        width=_number(dims.get("width")),
        height=_number(dims.get("height")),
        dimension_unit=dims.get("unit"),
        country_of_origin=item.get("country_of_origin"),
        vendor_name=item.get("vendor_name"),
        reference_price=_number(price.get("amount")),
        currency=price.get("currency"),
    )
    return record


def _components(lines: Any) -> list[dict[str, Any]] | None:
    """A kit's component lines as the canonical record holds them (``{"sku", "quantity"}``, in the ERP's order);
    None when the item lists none (it is no kit)."""
    if lines is None:
        return None
    return [{"sku": line.get("sku"), "quantity": _number(line.get("quantity"))} if isinstance(line, Mapping)
            else {"sku": line, "quantity": None} for line in lines]


def canonical_to_erp_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ERP ``Item`` for a canonical record (scenarios and repairs write ERP items through ``PUT``)."""
    return {
        "sku": record["sku"],
        "parent_sku": record.get("parent_sku"),
        "product_type": record.get("product_type") or "simple",
        "item_type": record.get("item_type"),
        "components": record.get("components"),
        "kit_pricing": record.get("kit_pricing"),
        "lifecycle_status": record.get("lifecycle_status"),
        "upc": record.get("upc"),
        "product_group": record.get("product_group"),
        "uom": record.get("uom"),
        "weight": {"value": record.get("weight"), "unit": record.get("weight_unit")},
        "dimensions": {
            "length": record.get("length"),
            "width": record.get("width"),
            "height": record.get("height"),
            "unit": record.get("dimension_unit"),
        },
        "country_of_origin": record.get("country_of_origin"),
        "vendor_name": record.get("vendor_name"),
        "reference_price": {"amount": record.get("reference_price"), "currency": record.get("currency")},
    }


# -------------------------------------------------------------------------------------------------- PIM (Akeneo)


def category_code(path: str) -> str:
    """Akeneo category code for a category path: codes allow only ``[A-Za-z0-9_]``.

    ``"Men/Tops/Hoodies & Sweatshirts"`` -> ``"men_tops_hoodies_sweatshirts"``.
    """
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _value(data: Any, locale: str | None = None, scope: str | None = None) -> dict[str, Any]:
    return {"locale": locale, "scope": scope, "data": data}


def _decimal_text(value: Any) -> Any:
    """A number as Akeneo writes decimals (a string, so ``1.1`` never travels as ``1.1000000000000001``)."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return value  # not a number: the PIM refuses it and the record is dead-lettered with its reason
    text = format(number.normalize(), "f")
    return text if text != "-0" else "0"


def lifecycle_option_code(status: Any) -> Any:
    """The PIM option code of an ERP lifecycle status (``"pre-active"`` -> ``"pre_active"``); an unknown value is
    passed on unchanged, for the PIM to refuse."""
    try:
        return LIFECYCLE_OPTION_CODES[LifecycleStatus(status)]
    except ValueError:
        return status


def lifecycle_from_option_code(code: Any) -> Any:
    """The canonical lifecycle status of a PIM option code; a code outside the table is returned as it is."""
    status = LIFECYCLE_BY_OPTION_CODE.get(str(code)) if code is not None else None
    return status.value if status is not None else code


def asset_code(asset_id: str) -> str:
    """An Akeneo-valid code for a DAM asset id: letters and digits kept, every other byte of its UTF-8 spelling
    written as ``_`` and two upper-case hex digits (``"AST-0000001"`` -> ``"AST_2D0000001"``).

    Reversible by :func:`asset_id_from_code`, so the PIM never needs a look-up table to name the DAM's asset.
    """
    out = []
    for ch in str(asset_id):
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.extend(f"_{byte:02X}" for byte in ch.encode("utf-8"))
    return "".join(out)


def asset_id_from_code(code: str) -> str:
    """The DAM asset id an :func:`asset_code` stands for; raises ``ValueError`` for a malformed code."""
    raw = bytearray()
    i = 0
    while i < len(code):
        if code[i] == "_":
            digits = code[i + 1:i + 3]
            if len(digits) != 2 or not all(c in "0123456789ABCDEF" for c in digits):
                raise ValueError(f"not an asset code: {code!r}")
            raw.append(int(digits, 16))
            i += 3
        else:
            raw.extend(code[i].encode("utf-8"))
            i += 1
    return raw.decode("utf-8")


def akeneo_asset_links(asset_ids: Sequence[str] | None) -> list[dict[str, Any]]:
    """The ``asset_links`` value for DAM asset ids: a text attribute holding one asset code per line (Community
    Edition has no asset collections, docs/adr/0005); no asset erases the value."""
    codes = [asset_code(a) for a in asset_ids or []]
    return [_value("\n".join(codes) if codes else None)]


def _asset_ids(data: Any) -> list[str] | None:
    if data is None:
        return None
    ids = []
    for line in str(data).splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            ids.append(asset_id_from_code(line))
        except ValueError:
            ids.append(line)  # typed in by hand in the PIM: kept, so the DAM look-up reports it as unknown
    return ids


def canonical_to_akeneo_values(record: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Akeneo ``values`` for a canonical record: localised text per locale, descriptions scoped to the channel,
    lifecycle as its option code, weight in Akeneo's units, asset links as codes.

    Fields that are None are left out rather than sent as null, so a partial record never erases PIM content.
    """
    values: dict[str, list[dict[str, Any]]] = {}
    translations: Mapping[str, Mapping[str, Any]] = record.get("translations") or {}
    for attr in LOCALIZED_TEXT:
        scope = CHANNEL if attr in SCOPED else None
        per_locale = {REFERENCE_LOCALE: record.get(attr)}
        for locale in LOCALES[1:]:
            per_locale[locale] = (translations.get(locale) or {}).get(attr)
        entries = [_value(text, locale, scope) for locale, text in per_locale.items() if text is not None]
        if entries:
            values[attr] = entries
    for attr in PIM_PLAIN:
        if record.get(attr) is None:
            continue
        if attr == "lifecycle_status":
            values[attr] = [_value(lifecycle_option_code(record[attr]))]
        elif attr == "asset_links":
            values[attr] = akeneo_asset_links(record[attr])
        else:
            values[attr] = [_value(record[attr])]
    if record.get("weight") is not None and record.get("weight_unit"):
        # an Akeneo "metric" attribute carries its unit with the amount
        unit = AKENEO_WEIGHT_UNITS.get(str(record["weight_unit"]), record["weight_unit"])
        values["weight"] = [_value({"amount": _decimal_text(record["weight"]), "unit": unit})]
    if record.get("reference_price") is not None:
        values["erp_reference_price"] = [
            _value([{"amount": _decimal_text(record["reference_price"]), "currency": record.get("currency")}])
        ]
    return values


#: Canonical fields kept inside an Akeneo value of another name: emptying one empties that value.
AKENEO_HOLDER: Final[dict[str, str]] = {"weight_unit": "weight", "reference_price": "erp_reference_price",
                                        "currency": "erp_reference_price"}


def akeneo_empty_values(fields: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Akeneo ``values`` that empty each canonical field of ``fields`` (``data: null`` removes a value).

    :func:`canonical_to_akeneo_values` leaves a None field out, which Akeneo reads as "keep what you have"; a
    field its owner emptied must be sent as an explicit null instead, on the locale and channel the field lives
    on, or the old value stays in the PIM and in every channel fed from it.
    """
    values: dict[str, list[dict[str, Any]]] = {}
    for field in fields:
        if field in LOCALIZED_TEXT:
            values[field] = [_value(None, REFERENCE_LOCALE, CHANNEL if field in SCOPED else None)]
        else:
            values[AKENEO_HOLDER.get(field, field)] = [_value(None)]
    return values


def akeneo_kit_associations(record: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """A kit's components as Akeneo ``associations`` under the association type the PIM model gives its kind
    (``bundle_components``, ``grouped_members``); empty for an item that is no kit.

    The list replaces what the PIM held under that type, so a component the ERP dropped leaves the PIM too. The
    quantities stay with the ERP, the kit's owner: Community Edition cannot create a quantified association type
    (``is_quantified`` is a Serenity-only property, akeneo-web-api.json).
    """
    if not is_kit(record) or record.get("components") is None:
        return {}
    code = load_pim_model().association_type_for(item_type_of(record))
    skus = [str(c["sku"]) for c in record["components"] or [] if c.get("sku")]
    return {code: {"products": skus, "product_models": [], "groups": []}}


def _kit_components(product: Mapping[str, Any], item_type: Any) -> list[dict[str, Any]] | None:
    """The components of a kit read back from its Akeneo associations (quantities are the ERP's, so None)."""
    if item_type not in KIT_ITEM_TYPES:
        return None
    code = load_pim_model().association_type_for(str(item_type))
    linked = ((product.get("associations") or {}).get(code) or {}).get("products") or []
    return [{"sku": sku, "quantity": None} for sku in linked]


def canonical_to_akeneo_product(record: Mapping[str, Any], family: str | None = None) -> dict[str, Any]:
    """An Akeneo product (a variant or a simple product) for a canonical record.

    The family defaults to the one the declared PIM model gives the product group (see :func:`family_code`).

    ``enabled`` follows the lifecycle: only an ``active`` item is sellable, so only it is enabled in the PIM.
    """
    product: dict[str, Any] = {
        "identifier": record["sku"],
        "enabled": record.get("lifecycle_status") == LifecycleStatus.ACTIVE,
        "parent": record.get("parent_sku"),
        "values": canonical_to_akeneo_values(record),
    }
    associations = akeneo_kit_associations(record)
    if associations:
        product["associations"] = associations
    categories = record.get("categories") or ([record["category"]] if record.get("category") else [])
    if categories:
        product["categories"] = [category_code(c) for c in categories]
    product["family"] = family or family_code(record.get("product_group"))
    return product


def family_code(product_group: str | None) -> str:
    """The Akeneo family of a product: the one ``pim_model.yaml`` assigns its ERP product group, else the model's
    default family (a family must exist in the PIM before a product can join it)."""
    return load_pim_model().family_for(product_group)


def family_variant_code(family: str, axes: Sequence[str]) -> str:
    """The family variant of a configurable parent: the declared variant of its family with these axes, e.g.
    ``top_by_size_color``; the family's first declared variant when no variant has these axes."""
    return load_pim_model().family_variant_for(family, axes)


def canonical_to_akeneo_product_model(
    record: Mapping[str, Any], family: str | None = None, family_variant: str | None = None
) -> dict[str, Any]:
    """An Akeneo product model for a configurable parent; its axes pick the family variant.

    The family defaults to the one the declared PIM model gives the product group (see :func:`family_code`).
    """
    family = family or family_code(record.get("product_group"))
    axes = list(record.get("axes") or [])
    model: dict[str, Any] = {
        "code": record["sku"],
        "family": family,
        "family_variant": family_variant or family_variant_code(family, axes),
        "parent": None,
        "values": {k: v for k, v in canonical_to_akeneo_values(record).items() if k not in axes},
    }
    categories = record.get("categories") or ([record["category"]] if record.get("category") else [])
    if categories:
        model["categories"] = [category_code(c) for c in categories]
    return model


def _pick(values: Mapping[str, Any], attr: str, locale: str | None = None, scope: str | None = None) -> Any:
    """The data of one Akeneo value; a scoped attribute read without a scope prefers the storefront channel."""
    entries = values.get(attr) or []
    best: Any = None
    for entry in entries:
        if entry.get("locale") != locale:
            continue
        if entry.get("scope") == scope:
            return entry.get("data")
        if entry.get("scope") in (None, CHANNEL):
            best = entry.get("data")
    return best


def akeneo_product_to_canonical(
    product: Mapping[str, Any],
    category_paths: Mapping[str, str] | None = None,
    axes: Sequence[str] | None = None,
) -> Canonical:
    """An Akeneo product (or product model) as a canonical record, for reconciliation against the owners.

    ``category_paths`` maps category codes back to paths; without it the codes are kept as they are (compare
    them with :func:`category_code` of the owner's paths). ``axes`` are a product model's variant axes, which
    Akeneo keeps on the family variant (``PimClient.family_variant_axes``), not on the model.
    """
    values = product.get("values") or {}
    record = empty_record()
    sku = product.get("identifier") or product.get("code")
    is_model = "code" in product and "identifier" not in product
    for attr in LOCALIZED_TEXT:
        record[attr] = _pick(values, attr, REFERENCE_LOCALE, CHANNEL if attr in SCOPED else None)
    translations: dict[str, dict[str, Any]] = {}
    for locale in LOCALES[1:]:
        texts = {
            attr: _pick(values, attr, locale, CHANNEL if attr in SCOPED else None)
            for attr in LOCALIZED_TEXT
        }
        texts = {k: v for k, v in texts.items() if v is not None}
        if texts:
            translations[locale] = texts
    for attr in PIM_PLAIN:
        record[attr] = _pick(values, attr)
    record["lifecycle_status"] = lifecycle_from_option_code(record["lifecycle_status"])
    record["asset_links"] = _asset_ids(record["asset_links"])
    record["components"] = _kit_components(product, record["item_type"])
    weight = _pick(values, "weight")
    if isinstance(weight, dict):
        unit = weight.get("unit")
        record["weight"] = weight.get("amount")
        record["weight_unit"] = CANONICAL_WEIGHT_UNITS_FROM_AKENEO.get(str(unit), unit) if unit is not None else None
    price = _pick(values, "erp_reference_price") or []
    if isinstance(price, list) and price:
        record["reference_price"] = _number(price[0].get("amount"))
        record["currency"] = price[0].get("currency")
    codes = list(product.get("categories") or [])
    paths = [(category_paths or {}).get(code, code) for code in codes]
    record.update(
        sku=sku,
        parent_sku=product.get("parent") or None,
        product_type="configurable" if is_model else "simple",  # Akeneo variants and simple products alike
        translations=translations or None,
        categories=paths or None,
        category=paths[0] if paths else None,
        weight=_number(record["weight"]),
    )
    if is_model:
        record["axes"] = list(axes or []) or None
    return record


# ------------------------------------------------------------------------------------------ storefront (Shopify)


def storefront_handle(record: Mapping[str, Any]) -> str:
    """The Shopify handle of a product: its ``url_key`` when the PIM gave one, else its SKU, slugged."""
    base = record.get("url_key") or record["sku"]
    return re.sub(r"[^a-z0-9]+", "-", str(base).lower()).strip("-")


def _option_title(axis: str) -> str:
    return axis.replace("_", " ").title()


def canonical_to_shopify_product(
    parent: Mapping[str, Any],
    variants: Sequence[Mapping[str, Any]] = (),
    images: Sequence[Mapping[str, Any]] = (),
    prices: Mapping[str, float] | None = None,
    stocked: Container[str] | None = None,
) -> dict[str, Any]:
    """A Shopify product for a configurable parent and its variants, or for a simple product (no ``variants``).

    Each variant says whether it needs shipping (``requires_shipping``: False for virtual and downloadable items)
    and whether the shop tracks its stock (``tracked``): an item that ships always is; one with nothing to ship
    only when the ERP keeps stock for its SKU (``stocked``; left out when unknown, so the shop keeps its setting).

    Args:
        images: DAM assets (``Asset`` dicts) to show, in display order; the hero asset should come first.
        prices: live prices by SKU (hot data from the ERP); the reference price is the fallback.
        stocked: the SKUs of items with nothing to ship that the ERP keeps stock for.
    """
    prices = prices or {}
    lifecycle = parent.get("lifecycle_status")
    status = STOREFRONT_STATUS.get(LifecycleStatus(lifecycle), "draft") if lifecycle in set(LifecycleStatus) else "draft"
    axes = list(parent.get("axes") or [])[:3]  # Shopify carries at most three options
    rows = list(variants) or [parent]
    shop_variants = []
    for row in rows:
        variant: dict[str, Any] = {
            "sku": row["sku"],
            "price": _money(prices.get(row["sku"], row.get("reference_price"))),
            "barcode": row.get("upc"),
            "weight": row.get("weight"),
            "weight_unit": _unit(SHOPIFY_WEIGHT_UNITS, row.get("weight_unit")),
            "requires_shipping": ships(row),
        }
        if ships(row):
            variant["tracked"] = True
        elif stocked is not None:
            variant["tracked"] = row["sku"] in stocked
        for i, axis in enumerate(axes, start=1):
            variant[f"option{i}"] = row.get(axis)
        shop_variants.append(variant)
    options = [
        {"name": _option_title(axis), "values": _unique(v.get(f"option{i}") for v in shop_variants)}
        for i, axis in enumerate(axes, start=1)
    ]
    product: dict[str, Any] = {
        "title": parent.get("name") or parent["sku"],
        "body_html": parent.get("description") or "",
        "handle": storefront_handle(parent),
        "vendor": parent.get("vendor_name"),
        "product_type": parent.get("product_group") or "",
        "status": status,
        "tags": ", ".join(parent.get("categories") or []),
        "variants": shop_variants,
        "images": [
            {"src": (a.get("renditions") or {}).get("ecommerce"), "alt": a.get("filename"), "position": i}
            for i, a in enumerate(images, start=1)
            if (a.get("renditions") or {}).get("ecommerce")
        ],
    }
    if options:
        product["options"] = options
    # Shopify has no field for our parent SKU; a metafield keeps reconciliation keyed on the business key.
    product["metafields"] = [
        {"namespace": METAFIELD_NAMESPACE, "key": "sku", "value": parent["sku"], "type": "single_line_text_field"}
    ]
    return product


def shopify_product_to_canonical(product: Mapping[str, Any]) -> list[Canonical]:
    """What the storefront shows, as canonical records: the product itself, then one record per variant SKU."""
    status_to_lifecycle = {"active": LifecycleStatus.ACTIVE.value}
    option_names = [o.get("name", "").lower().replace(" ", "_") for o in product.get("options") or []]
    variants = product.get("variants") or []
    configurable = bool(option_names) and len(variants) >= 1 and any(v.get("option1") for v in variants)
    head = empty_record()
    head.update(
        name=product.get("title"),
        description=product.get("body_html") or None,
        url_key=product.get("handle"),
        vendor_name=product.get("vendor"),
        product_group=product.get("product_type") or None,
        lifecycle_status=status_to_lifecycle.get(product.get("status", "")),
        categories=[t.strip() for t in (product.get("tags") or "").split(",") if t.strip()] or None,
    )
    if not configurable:
        v = variants[0] if variants else {}
        head.update(sku=v.get("sku"), product_type="simple", upc=v.get("barcode"),
                    reference_price=_number(v.get("price")), weight=_number(v.get("weight")),
                    weight_unit=_unit(CANONICAL_WEIGHT_UNITS, v.get("weight_unit")))
        return [head]
    meta = {m.get("key"): m.get("value") for m in product.get("metafields") or []
            if m.get("namespace") == METAFIELD_NAMESPACE}
    head.update(sku=meta.get("sku") or product.get("handle"), product_type="configurable", axes=option_names)
    out = [head]
    for v in variants:
        row = empty_record()
        row.update(sku=v.get("sku"), parent_sku=head["sku"], product_type="simple", upc=v.get("barcode"),
                   reference_price=_number(v.get("price")), weight=_number(v.get("weight")),
                   weight_unit=_unit(CANONICAL_WEIGHT_UNITS, v.get("weight_unit")),
                   lifecycle_status=head["lifecycle_status"])
        for i, name in enumerate(option_names[:3], start=1):
            if name in row:
                row[name] = v.get(f"option{i}")
        out.append(row)
    return out


def _money(value: Any) -> str | None:
    number = _number(value)
    return None if number is None else f"{number:.2f}"


def _unique(items: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item is not None and item not in seen:
            seen.append(item)
    return seen
