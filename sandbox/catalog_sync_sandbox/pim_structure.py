"""The PIM's catalog structure, as Akeneo PIM Community Edition 7 keeps it and answers for it (REST API v1).

A fresh sandbox holds what a fresh Akeneo holds after a minimal installation (:func:`install`): the ``sku``
identifier attribute in the ``other`` group, the ``master`` category tree, the ``ecommerce`` channel on ``en_US`` and
``USD``, the locales and currencies every installation lists, and Akeneo's standard ``Weight`` and ``Length``
measurement families. Everything else (attributes, options, families, family variants, categories, channels) is
created through the same endpoints a client uses, and validated as Akeneo validates it: codes of letters, digits
and underscores, references that must exist, properties that cannot change.

:class:`Structure` is a snapshot of it all that the product endpoints (``catalog_sync_sandbox.pim``) validate
values against, and :class:`Invalid` the refusal both modules raise; the collection PATCH machinery is shared too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Connection, and_, func, select

from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, error, iso
from catalog_sync_sandbox.state import SandboxState

API: Final = "/pim/api/rest/v1"
COLLECTION_TYPE: Final = "application/vnd.akeneo.collection+json"
CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_]+$")
CODE_MAX: Final = 100
#: Akeneo's reserved attribute codes (properties of a product, or words its query builder owns).
RESERVED_ATTRIBUTE_CODES: Final = re.compile(
    r"^(id|associationTypes|categories|categoryId|completeness|enabled|family|groups|associations|products|scope|"
    r"treeId|values|category|parent|label|entity_type|attributes|identifier|uuid|.*_(products|groups))$",
    re.IGNORECASE)
#: Community Edition's attribute types; the others (asset collections, reference entities, product links,
#: tables) exist only in the Enterprise Edition and SaaS.
CE_ATTRIBUTE_TYPES: Final = frozenset({
    "pim_catalog_identifier", "pim_catalog_text", "pim_catalog_textarea", "pim_catalog_simpleselect",
    "pim_catalog_multiselect", "pim_catalog_boolean", "pim_catalog_date", "pim_catalog_number",
    "pim_catalog_metric", "pim_catalog_price_collection", "pim_catalog_image", "pim_catalog_file",
})
EE_ATTRIBUTE_TYPES: Final = frozenset({
    "pim_catalog_asset_collection", "akeneo_reference_entity", "akeneo_reference_entity_collection",
    "pim_catalog_product_link", "pim_catalog_table", "pim_reference_data_simpleselect",
    "pim_reference_data_multiselect",
})
SELECT_TYPES: Final = frozenset({"pim_catalog_simpleselect", "pim_catalog_multiselect"})
NUMERIC_TYPES: Final = frozenset({"pim_catalog_number", "pim_catalog_metric", "pim_catalog_price_collection"})
AXIS_TYPES: Final = frozenset({"pim_catalog_simpleselect", "pim_catalog_multiselect", "pim_catalog_metric",
                               "pim_catalog_boolean"})
IMMUTABLE_ATTRIBUTE: Final = ("type", "localizable", "scopable", "unique", "metric_family")

# ------------------------------------------------------------------------------------------ installation data
#: Locales an installation lists (a subset of Akeneo's ~210); a locale is enabled while a channel uses it.
INSTALL_LOCALES: Final[tuple[str, ...]] = (
    "cs_CZ", "da_DK", "de_AT", "de_CH", "de_DE", "el_GR", "en_AU", "en_CA", "en_GB", "en_IE", "en_NZ", "en_US",
    "es_ES", "es_MX", "fi_FI", "fr_BE", "fr_CA", "fr_CH", "fr_FR", "hu_HU", "it_CH", "it_IT", "ja_JP", "ko_KR",
    "nl_BE", "nl_NL", "no_NO", "pl_PL", "pt_BR", "pt_PT", "ro_RO", "ru_RU", "sv_SE", "tr_TR", "zh_CN", "zh_TW",
)
#: Currencies an installation lists; a currency is enabled while a channel uses it.
INSTALL_CURRENCIES: Final[dict[str, str]] = {
    "AUD": "Australian dollar", "CAD": "Canadian dollar", "CHF": "Swiss franc", "CNY": "Chinese yuan",
    "DKK": "Danish krone", "EUR": "Euro", "GBP": "British pound", "JPY": "Japanese yen", "MXN": "Mexican peso",
    "NOK": "Norwegian krone", "PLN": "Polish zloty", "SEK": "Swedish krona", "USD": "US dollar",
}


def _units(standard: str, units: Mapping[str, tuple[str, list[tuple[str, str]]]]) -> dict[str, Any]:
    return {
        "standard_unit_code": standard,
        "units": {code: {"code": code, "labels": {"en_US": code.replace("_", " ").capitalize()},
                         "convert_from_standard": [{"operator": op, "value": value} for op, value in steps],
                         "symbol": symbol}
                  for code, (symbol, steps) in units.items()},
    }


#: Akeneo's standard Weight and Length measurement families (unit codes, symbols and factors as Akeneo ships them).
MEASUREMENT_FAMILIES: Final[dict[str, dict[str, Any]]] = {
    "Weight": {"code": "Weight", "labels": {"en_US": "Weight"}, **_units("KILOGRAM", {
        "MILLIGRAM": ("mg", [("mul", "0.000001")]), "GRAM": ("g", [("mul", "0.001")]),
        "KILOGRAM": ("kg", [("mul", "1")]), "TON": ("t", [("mul", "1000")]),
        "GRAIN": ("gr", [("mul", "0.00006479891")]), "DENIER": ("denier", [("mul", "0.001275")]),
        "ONCE": ("once", [("mul", "0.03059")]), "MARC": ("marc", [("mul", "0.24475")]),
        "LIVRE": ("livre", [("mul", "0.4895")]), "OUNCE": ("oz", [("mul", "0.45359237"), ("div", "16")]),
        "POUND": ("lb", [("mul", "0.45359237")]),
    })},
    "Length": {"code": "Length", "labels": {"en_US": "Length"}, **_units("METER", {
        "MILLIMETER": ("mm", [("mul", "0.001")]), "CENTIMETER": ("cm", [("mul", "0.01")]),
        "DECIMETER": ("dm", [("mul", "0.1")]), "METER": ("m", [("mul", "1")]),
        "DEKAMETER": ("dam", [("mul", "10")]), "HECTOMETER": ("hm", [("mul", "100")]),
        "KILOMETER": ("km", [("mul", "1000")]), "MIL": ("mil", [("mul", "0.0000254")]),
        "INCH": ("in", [("mul", "0.0254")]), "FEET": ("ft", [("mul", "0.3048")]),
        "YARD": ("yd", [("mul", "0.9144")]), "CHAIN": ("ch", [("mul", "20.1168")]),
        "FURLONG": ("fur", [("mul", "201.168")]), "MILE": ("mi", [("mul", "1609.344")]),
    })},
}


class Invalid(Exception):
    """A 422: Akeneo's message, with one entry per problem in ``errors`` (``property``, ``message``, and for a
    value ``attribute``, ``locale`` and ``scope``)."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFound(Exception):
    """A 404 for a path's parent resource (the attribute of an option, the family of a family variant)."""


def _now() -> datetime:
    # Akeneo keeps dates to the second: anything finer would make "updated" filters disagree with the answers.
    return datetime.now(UTC).replace(microsecond=0)


def code_problem(code: Any, name: str = "code") -> dict[str, Any] | None:
    if not isinstance(code, str) or not code:
        return {"property": name, "message": "This value should not be blank."}
    if len(code) > CODE_MAX:
        return {"property": name, "message": f"This value is too long. It should have {CODE_MAX} characters or "
                                             "less."}
    if not CODE_PATTERN.match(code):
        return {"property": name, "message": "Code may contain only letters, numbers and underscores."}
    return None


def _check_unknown(doc: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise Invalid(f'Property "{unknown[0]}" does not exist. Check the expected format on the API documentation.',
                      [{"property": u, "message": "This property does not exist."} for u in unknown])


def _key(doc: Any, url_code: str | None, name: str = "code") -> str:
    """The code a write addresses: the body's, which must match the URL's when both are given."""
    if not isinstance(doc, dict):
        raise Invalid("Invalid json message received")
    code = doc.get(name, url_code)
    if url_code is not None and code != url_code:
        raise Invalid(f'The {name} "{code}" provided in the request body must match the {name} "{url_code}" '
                      'provided in the url.')
    problem = code_problem(code, name)
    if problem:
        raise Invalid(f'Property "{name}": {problem["message"]}', [problem])
    return str(code)


# ------------------------------------------------------------------------------------------------ storage
def _rows(conn: Connection, kind: str, owner: str | None = None) -> list[Any]:
    t = db.pim_structure
    query = select(t).where(t.c.kind == kind)
    if owner is not None:
        query = query.where(t.c.owner == owner)
    return list(conn.execute(query.order_by(t.c.position, t.c.code)))


def get_doc(conn: Connection, kind: str, code: str, owner: str = "") -> dict[str, Any] | None:
    t = db.pim_structure
    row = conn.execute(select(t.c.doc).where(t.c.kind == kind, t.c.owner == owner, t.c.code == code)).first()
    return dict(row[0]) if row is not None else None


def _save(conn: Connection, kind: str, code: str, doc: dict[str, Any], owner: str = "",
          at: datetime | None = None) -> int:
    """Insert or replace one item; 201 when created, 204 when updated or unchanged (Akeneo's answers)."""
    t = db.pim_structure
    row = conn.execute(select(t.c.doc).where(t.c.kind == kind, t.c.owner == owner, t.c.code == code)).first()
    if row is None:
        position = (conn.execute(select(func.max(t.c.position)).where(t.c.kind == kind)).scalar() or 0) + 1
        conn.execute(t.insert().values(kind=kind, owner=owner, code=code, doc=doc, position=position,
                                       updated=at or _now()))
        return 201
    if dict(row[0]) != doc:
        conn.execute(t.update().where(t.c.kind == kind, t.c.owner == owner, t.c.code == code)
                     .values(doc=doc, updated=at or _now()))
    return 204


def install(conn: Connection, at: datetime | None = None) -> None:
    """What a fresh Akeneo CE holds after a minimal installation; items already there are left as they are.

    ``at`` stamps what it adds (the seed passes its fixed epoch, so that two loads give identical databases).
    """
    def add(kind: str, code: str, doc: dict[str, Any], owner: str = "") -> None:
        if get_doc(conn, kind, code, owner) is None:
            _save(conn, kind, code, doc, owner, at)

    for code in INSTALL_LOCALES:
        add("locale", code, {"code": code})
    for code, label in INSTALL_CURRENCIES.items():
        add("currency", code, {"code": code, "label": label})
    for code, family in MEASUREMENT_FAMILIES.items():
        add("measurement_family", code, family)
    add("attribute_group", "other", {"code": "other", "sort_order": 100, "labels": {"en_US": "Other"}})
    add("attribute", "sku", _attribute_defaults({"code": "sku", "type": "pim_catalog_identifier", "group": "other",
                                                 "unique": True, "useable_as_grid_filter": True,
                                                 "labels": {"en_US": "SKU"}}))
    add("category", "master", {"code": "master", "parent": None, "labels": {"en_US": "Master catalog"}})
    add("channel", "ecommerce", {"code": "ecommerce", "locales": ["en_US"], "currencies": ["USD"],
                                 "category_tree": "master", "conversion_units": {},
                                 "labels": {"en_US": "Ecommerce"}})


# ---------------------------------------------------------------------------------------------- snapshot
@dataclass
class Structure:
    """Everything values and products are validated against, read once per request."""

    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, set[str]] = field(default_factory=dict)  # attribute -> option codes, lower-cased
    families: dict[str, dict[str, Any]] = field(default_factory=dict)
    family_variants: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # code -> (family, doc)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    locales: set[str] = field(default_factory=set)
    currencies: set[str] = field(default_factory=set)
    units: dict[str, set[str]] = field(default_factory=dict)
    association_types: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection, kinds: Iterable[str] | None = None) -> Structure:
        """The structure, or only the ``kinds`` of items a caller needs (a write of one option reads no families)."""
        s = cls()
        query = select(db.pim_structure)
        if kinds is not None:
            query = query.where(db.pim_structure.c.kind.in_(list(kinds)))
        for row in conn.execute(query):
            doc = dict(row.doc)
            if row.kind == "attribute":
                s.attributes[row.code] = doc
            elif row.kind == "attribute_option":
                s.options.setdefault(row.owner, set()).add(row.code.lower())
            elif row.kind == "family":
                s.families[row.code] = doc
            elif row.kind == "family_variant":
                s.family_variants[row.code] = (row.owner, doc)
            elif row.kind == "category":
                s.categories[row.code] = doc
            elif row.kind == "channel":
                s.channels[row.code] = doc
            elif row.kind == "locale":
                s.locales.add(row.code)
            elif row.kind == "currency":
                s.currencies.add(row.code)
            elif row.kind == "measurement_family":
                s.units[row.code] = set(doc.get("units") or {})
            elif row.kind == "association_type":
                s.association_types[row.code] = doc
        return s

    @property
    def active_locales(self) -> set[str]:
        return {loc for ch in self.channels.values() for loc in ch.get("locales") or []}

    @property
    def active_currencies(self) -> set[str]:
        return {cur for ch in self.channels.values() for cur in ch.get("currencies") or []}


def _labels_problems(labels: Any, structure: Structure, name: str = "labels") -> list[dict[str, Any]]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [{"property": name, "message": f'Property "{name}" expects an array as data, '
                                              f'"{type(labels).__name__}" given.'}]
    return [{"property": name, "message": f'The locale "{loc}" does not exist.'}
            for loc in labels if loc not in structure.locales] + \
           [{"property": name, "message": f'The label for "{loc}" must be a string.'}
            for loc, text in labels.items() if text is not None and not isinstance(text, str)]


def _raise(errors: list[dict[str, Any]]) -> None:
    if errors:
        raise Invalid("Validation failed.", errors)


def _merge_labels(current: Mapping[str, Any] | None, incoming: Any) -> dict[str, Any]:
    """PATCH on labels merges per locale; an empty label removes it."""
    merged = dict(current or {})
    for loc, text in (incoming or {}).items():
        if text in (None, ""):
            merged.pop(loc, None)
        else:
            merged[loc] = text
    return merged


# ------------------------------------------------------------------------------------------------ writers
def upsert_category(conn: Connection, doc: Any, code: str | None = None, at: datetime | None = None) -> int:
    """Create or update one category (``PATCH /categories[/{code}]``, and the seed's category tree)."""
    key = _key(doc, code)
    _check_unknown(doc, {"code", "parent", "labels", "updated", "position", "values", "channel_requirements",
                         "validations"})
    structure = Structure.load(conn, ("category", "channel", "locale"))
    current = structure.categories.get(key)
    parent = doc.get("parent", current.get("parent") if current else None)
    errors = _labels_problems(doc.get("labels"), structure)
    if parent is not None:
        if parent == key:
            errors.append({"property": "parent", "message": "A category cannot be its own parent."})
        elif parent not in structure.categories:
            raise Invalid(f'Property "parent" expects a valid category code. The category does not exist, "{parent}" '
                          'given.', [{"property": "parent", "message": f'The category "{parent}" does not exist.'}])
        else:
            ancestor = structure.categories[parent].get("parent")
            while ancestor is not None:  # moving a category under its own descendant would cut the tree
                if ancestor == key:
                    errors.append({"property": "parent", "message": "A category cannot be moved under one of its "
                                                                    "children."})
                    break
                ancestor = structure.categories.get(ancestor, {}).get("parent")
    if current is not None and current.get("parent") is None and parent is not None:
        used = [c for c, ch in structure.channels.items() if ch.get("category_tree") == key]
        if used:
            errors.append({"property": "parent", "message": f'The tree "{key}" is the category tree of the channel '
                                                            f'"{used[0]}" and cannot become a child category.'})
    _raise(errors)
    new = {"code": key, "parent": parent, "labels": _merge_labels(current.get("labels") if current else None,
                                                                   doc.get("labels"))}
    return _save(conn, "category", key, new, at=at)


def upsert_channel(conn: Connection, doc: Any, code: str | None = None) -> int:
    key = _key(doc, code)
    _check_unknown(doc, {"code", "locales", "currencies", "category_tree", "conversion_units", "labels"})
    structure = Structure.load(conn, ("locale", "currency", "category", "attribute", "measurement_family",
                                      "channel"))
    current = structure.channels.get(key)
    new = dict(current or {"code": key, "conversion_units": {}, "labels": {}})
    errors: list[dict[str, Any]] = _labels_problems(doc.get("labels"), structure)
    for name, known in (("locales", structure.locales), ("currencies", structure.currencies)):
        if name not in doc:
            if current is None:
                errors.append({"property": name, "message": f"The channel needs at least one of {name}."})
            continue
        values = doc[name]
        if not isinstance(values, list) or not values:
            errors.append({"property": name, "message": f"The channel needs at least one of {name}."})
            continue
        errors += [{"property": name, "message": f'The {name[:-1] if name == "locales" else "currency"} "{v}" '
                                                 'does not exist.'} for v in values if v not in known]
        new[name] = list(values)
    tree = doc.get("category_tree", current.get("category_tree") if current else None)
    if tree is None:
        errors.append({"property": "category_tree", "message": "This value should not be blank."})
    elif tree not in structure.categories or structure.categories[tree].get("parent") is not None:
        errors.append({"property": "category_tree", "message": f'The category "{tree}" does not exist or is not a '
                                                               'category tree.'})
    new["category_tree"] = tree
    units = doc.get("conversion_units")
    if units is not None:
        if not isinstance(units, dict):
            errors.append({"property": "conversion_units", "message": "expects an object."})
        else:
            for attr, unit in units.items():
                spec = structure.attributes.get(attr)
                if spec is None or spec.get("type") != "pim_catalog_metric":
                    errors.append({"property": "conversion_units",
                                   "message": f'The attribute "{attr}" does not exist or is not a metric.'})
                elif unit not in structure.units.get(spec.get("metric_family") or "", set()):
                    errors.append({"property": "conversion_units",
                                   "message": f'The unit "{unit}" does not exist in "{spec.get("metric_family")}".'})
            new["conversion_units"] = dict(units)
    _raise(errors)
    new["labels"] = _merge_labels(new.get("labels"), doc.get("labels"))
    return _save(conn, "channel", key, new)


def upsert_association_type(conn: Connection, doc: Any, code: str | None = None) -> int:
    """Create or update one association type (``PATCH /association-types[/{code}]``). This is Community Edition:
    ``is_quantified`` and ``is_two_way`` are Serenity-only (akeneo-web-api.json), so only false is taken, and,
    like ``code``, they cannot change once the type exists."""
    key = _key(doc, code)
    _check_unknown(doc, {"code", "labels", "is_quantified", "is_two_way"})
    structure = Structure.load(conn, ("locale",))
    current = get_doc(conn, "association_type", key)
    errors = _labels_problems(doc.get("labels"), structure)
    for flag in ("is_quantified", "is_two_way"):
        if flag not in doc:
            continue
        value = doc[flag]
        if not isinstance(value, bool):
            errors.append({"property": flag, "message": f'Property "{flag}" expects a boolean as data.'})
        elif current is not None and value != current.get(flag, False):
            errors.append({"property": flag, "message": "This property cannot be changed."})
        elif value:
            errors.append({"property": flag, "message": f'Property "{flag}" is only available in the PIM Serenity '
                                                        "version, not in Community Edition."})
    _raise(errors)
    return _save(conn, "association_type", key, {
        "code": key, "labels": _merge_labels((current or {}).get("labels"), doc.get("labels")),
        "is_quantified": False, "is_two_way": False})


def upsert_attribute_group(conn: Connection, doc: Any, code: str | None = None) -> int:
    key = _key(doc, code)
    _check_unknown(doc, {"code", "sort_order", "attributes", "labels"})
    structure = Structure.load(conn, ("locale", "attribute"))
    current = get_doc(conn, "attribute_group", key)
    errors = _labels_problems(doc.get("labels"), structure)
    members = doc.get("attributes")
    if members is not None:
        if not isinstance(members, list):
            errors.append({"property": "attributes", "message": "expects an array of attribute codes."})
            members = []
        errors += [{"property": "attributes", "message": f'The attribute "{a}" does not exist.'}
                   for a in members if a not in structure.attributes]
    sort_order = doc.get("sort_order", (current or {}).get("sort_order", 0))
    if not isinstance(sort_order, int) or isinstance(sort_order, bool) or sort_order < 0:
        errors.append({"property": "sort_order", "message": "This value should be a positive integer."})
    _raise(errors)
    status = _save(conn, "attribute_group", key, {
        "code": key, "sort_order": sort_order,
        "labels": _merge_labels((current or {}).get("labels"), doc.get("labels"))})
    for attr in members or []:  # an attribute belongs to one group: listing it here moves it
        _save(conn, "attribute", attr, {**structure.attributes[attr], "group": key})
    return status


def _attribute_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    return {"code": doc["code"], "type": doc["type"], "group": doc.get("group"), "unique": doc.get("unique", False),
            "useable_as_grid_filter": doc.get("useable_as_grid_filter", False), "allowed_extensions": [],
            "metric_family": None, "default_metric_unit": None, "reference_data_name": None,
            "available_locales": [], "max_characters": None, "validation_rule": None, "validation_regexp": None,
            "wysiwyg_enabled": None, "number_min": None, "number_max": None, "decimals_allowed": None,
            "negative_allowed": None, "date_min": None, "date_max": None, "max_file_size": None,
            "minimum_input_length": None, "sort_order": 0, "localizable": False, "scopable": False,
            "labels": {}, **{k: v for k, v in doc.items() if k != "code"}}


ATTRIBUTE_KEYS: Final = frozenset(_attribute_defaults({"code": "", "type": ""})) | {"group_labels"}


def upsert_attribute(conn: Connection, doc: Any, code: str | None = None) -> int:
    key = _key(doc, code)
    _check_unknown(doc, ATTRIBUTE_KEYS)
    structure = Structure.load(conn, ("locale", "attribute", "measurement_family"))
    current = structure.attributes.get(key)
    errors: list[dict[str, Any]] = []
    if current is None and RESERVED_ATTRIBUTE_CODES.match(key):
        errors.append({"property": "code", "message": f'The code "{key}" is a reserved word and cannot be used as '
                                                      'an attribute code.'})
    if current is not None:
        for name in IMMUTABLE_ATTRIBUTE:
            if name in doc and doc[name] != current.get(name):
                raise Invalid(f'Property "{name}" cannot be modified, "{doc[name]}" given.',
                              [{"property": name, "message": "This property cannot be changed."}])
    new = _attribute_defaults({**(current or {}), **{k: v for k, v in doc.items() if k not in {"labels",
                                                                                                 "group_labels"}},
                               "code": key, "type": doc.get("type", (current or {}).get("type"))})
    new.pop("group_labels", None)
    kind = new["type"]
    if kind in EE_ATTRIBUTE_TYPES:
        raise Invalid(f'Property "type" expects a valid attribute type. The attribute type "{kind}" is not '
                      'available in Akeneo PIM Community Edition.',
                      [{"property": "type", "message": f'"{kind}" needs the Enterprise Edition.'}])
    if kind not in CE_ATTRIBUTE_TYPES:
        raise Invalid(f'Property "type" expects a valid attribute type, "{kind}" given.',
                      [{"property": "type", "message": "This value is not a valid attribute type."}])
    if kind == "pim_catalog_identifier" and current is None:
        errors.append({"property": "type", "message": "Community Edition has one identifier attribute."})
    if new["group"] not in {r.code for r in _rows(conn, "attribute_group")}:
        errors.append({"property": "group", "message": f'The attribute group "{new["group"]}" does not exist.'})
    for name in ("localizable", "scopable", "unique", "useable_as_grid_filter"):
        if not isinstance(new[name], bool):
            errors.append({"property": name, "message": "This value should be a boolean."})
    if kind == "pim_catalog_metric":
        family = new["metric_family"]
        if family not in structure.units:
            errors.append({"property": "metric_family", "message": f'The metric family "{family}" does not exist.'})
        elif new["default_metric_unit"] not in structure.units[family]:
            errors.append({"property": "default_metric_unit",
                           "message": f'The unit "{new["default_metric_unit"]}" does not exist in the metric family '
                                      f'"{family}".'})
    else:
        errors += [{"property": name, "message": "This property is only for metric attributes."}
                   for name in ("metric_family", "default_metric_unit") if new[name] is not None]
    for name in ("decimals_allowed", "negative_allowed"):
        if new[name] is not None and (kind not in NUMERIC_TYPES or not isinstance(new[name], bool)):
            errors.append({"property": name, "message": "This property is only for number, metric or price "
                                                        "attributes, as a boolean."})
    if new["max_characters"] is not None and (
            kind not in {"pim_catalog_text", "pim_catalog_textarea", "pim_catalog_identifier"}
            or not isinstance(new["max_characters"], int)):
        errors.append({"property": "max_characters", "message": "This property is only for text attributes."})
    if not isinstance(new["sort_order"], int) or new["sort_order"] < 0:
        errors.append({"property": "sort_order", "message": "This value should be a positive integer."})
    errors += _labels_problems(doc.get("labels"), structure)
    _raise(errors)
    new["labels"] = _merge_labels((current or {}).get("labels"), doc.get("labels"))
    return _save(conn, "attribute", key, new)


def upsert_option(conn: Connection, attribute: str, doc: Any, code: str | None = None) -> int:
    spec = get_doc(conn, "attribute", attribute)
    if spec is None:
        raise NotFound(f'Attribute "{attribute}" does not exist.')
    key = _key(doc, code)
    _check_unknown(doc, {"code", "attribute", "sort_order", "labels"})
    if doc.get("attribute", attribute) != attribute:
        raise Invalid(f'The attribute "{doc.get("attribute")}" provided in the request body must match the '
                      f'attribute "{attribute}" provided in the url.')
    if spec["type"] not in SELECT_TYPES:
        raise Invalid(f'Attribute "{attribute}" does not support options. Only attributes of type '
                      '"pim_catalog_simpleselect" or "pim_catalog_multiselect" support options.',
                      [{"property": "attribute", "message": "not a select attribute"}])
    structure = Structure.load(conn, ("locale",))
    current = get_doc(conn, "attribute_option", key, attribute)
    errors = _labels_problems(doc.get("labels"), structure)
    sort_order = doc.get("sort_order", (current or {}).get("sort_order", 0))
    if not isinstance(sort_order, int) or isinstance(sort_order, bool) or sort_order < 0:
        errors.append({"property": "sort_order", "message": "This value should be a positive integer."})
    _raise(errors)
    return _save(conn, "attribute_option", key, {
        "code": key, "attribute": attribute, "sort_order": sort_order,
        "labels": _merge_labels((current or {}).get("labels"), doc.get("labels"))}, attribute)


def upsert_family(conn: Connection, doc: Any, code: str | None = None) -> int:
    key = _key(doc, code)
    _check_unknown(doc, {"code", "attributes", "attribute_as_label", "attribute_as_image", "attribute_requirements",
                         "labels"})
    structure = Structure.load(conn)
    current = structure.families.get(key)
    identifier = next((c for c, a in structure.attributes.items() if a["type"] == "pim_catalog_identifier"), "sku")
    errors = _labels_problems(doc.get("labels"), structure)
    attributes = doc.get("attributes", (current or {}).get("attributes", []))
    if not isinstance(attributes, list):
        errors.append({"property": "attributes", "message": "expects an array of attribute codes."})
        attributes = []
    errors += [{"property": "attributes", "message": f'The attribute "{a}" does not exist.'}
               for a in attributes if a not in structure.attributes]
    if identifier not in attributes:  # Akeneo keeps the identifier in every family
        attributes = [identifier, *attributes]
    label = doc.get("attribute_as_label", (current or {}).get("attribute_as_label"))
    if label is None:
        errors.append({"property": "attribute_as_label", "message": "This value should not be blank."})
    elif label not in attributes or structure.attributes.get(label, {}).get("type") not in {
            "pim_catalog_text", "pim_catalog_identifier"}:
        errors.append({"property": "attribute_as_label", "message": f'The attribute "{label}" must be a text or '
                                                                    'identifier attribute of the family.'})
    image = doc.get("attribute_as_image", (current or {}).get("attribute_as_image"))
    if image is not None and (image not in attributes
                              or structure.attributes.get(image, {}).get("type") != "pim_catalog_image"):
        errors.append({"property": "attribute_as_image", "message": f'The attribute "{image}" must be an image '
                                                                    'attribute of the family.'})
    requirements = doc.get("attribute_requirements", (current or {}).get("attribute_requirements", {}))
    if not isinstance(requirements, dict):
        errors.append({"property": "attribute_requirements", "message": "expects an object."})
        requirements = {}
    for channel, required in requirements.items():
        if channel not in structure.channels:
            errors.append({"property": "attribute_requirements", "message": f'The channel "{channel}" does not '
                                                                            'exist.'})
        errors += [{"property": "attribute_requirements", "message": f'The attribute "{a}" is not in the family.'}
                   for a in required or [] if a not in attributes]
    requirements = {ch: list(dict.fromkeys([identifier, *(required or [])])) for ch, required in requirements.items()}
    for channel in structure.channels:
        requirements.setdefault(channel, [identifier])
    in_use = {axis for _fam, fv in (v for v in structure.family_variants.values() if v[0] == key)
              for level in fv.get("variant_attribute_sets") or [] for axis in level.get("axes") or []}
    dropped = sorted(in_use - set(attributes))
    if dropped:
        errors.append({"property": "attributes", "message": f'The attributes {dropped} are variant axes of this '
                                                            'family and cannot be removed.'})
    _raise(errors)
    return _save(conn, "family", key, {
        "code": key, "attributes": list(dict.fromkeys(attributes)), "attribute_as_label": label,
        "attribute_as_image": image, "attribute_requirements": requirements,
        "labels": _merge_labels((current or {}).get("labels"), doc.get("labels"))})


def upsert_family_variant(conn: Connection, family: str, doc: Any, code: str | None = None) -> int:
    structure = Structure.load(conn)
    fam = structure.families.get(family)
    if fam is None:
        raise NotFound(f'Family "{family}" does not exist.')
    key = _key(doc, code)
    _check_unknown(doc, {"code", "family", "variant_attribute_sets", "labels", "common_attributes"})
    if doc.get("family", family) != family:
        raise Invalid(f'The family "{doc.get("family")}" provided in the request body must match the family '
                      f'"{family}" provided in the url.')
    owner, current = structure.family_variants.get(key, (family, None))
    if current is not None and owner != family:
        raise Invalid(f'The family variant code "{key}" is already used by the family "{owner}".',
                      [{"property": "code", "message": "This value is already used."}])
    errors = _labels_problems(doc.get("labels"), structure)
    sets = doc.get("variant_attribute_sets", (current or {}).get("variant_attribute_sets"))
    if not isinstance(sets, list) or not sets:
        raise Invalid('Property "variant_attribute_sets" expects at least one level.',
                      [{"property": "variant_attribute_sets", "message": "This value should not be blank."}])
    levels = sorted(int(s.get("level") or 0) for s in sets if isinstance(s, dict))
    if levels not in ([1], [1, 2]) or len(levels) != len(sets):
        errors.append({"property": "variant_attribute_sets", "message": "Levels must be 1, or 1 and 2."})
    identifier = next((c for c, a in structure.attributes.items() if a["type"] == "pim_catalog_identifier"), "sku")
    previous = {s.get("level"): s for s in (current or {}).get("variant_attribute_sets") or []}
    seen: set[str] = set()
    normalised: list[dict[str, Any]] = []
    for level_set in sorted((s for s in sets if isinstance(s, dict)), key=lambda s: s.get("level") or 0):
        level = level_set.get("level")
        axes = list(level_set.get("axes") or [])
        attrs = list(level_set.get("attributes") or [])
        if current is not None and level in previous and axes != list(previous[level].get("axes") or []):
            raise Invalid(f'Property "variant_attribute_sets" cannot be modified: the axes of level {level} are '
                          f'{previous[level].get("axes")}.', [{"property": "variant_attribute_sets",
                                                               "message": "The axes cannot be changed."}])
        if not 1 <= len(axes) <= 5:
            errors.append({"property": "variant_attribute_sets", "message": f"Level {level} needs one to five axes."})
        for axis in axes:
            spec = structure.attributes.get(axis)
            if spec is None or axis not in fam["attributes"]:
                errors.append({"property": "variant_attribute_sets",
                               "message": f'The axis "{axis}" is not an attribute of the family "{family}".'})
            elif spec["type"] not in AXIS_TYPES or spec["localizable"] or spec["scopable"]:
                errors.append({"property": "variant_attribute_sets",
                               "message": f'The attribute "{axis}" cannot be an axis: only simple or multi select, '
                                          'metric and boolean attributes, neither localizable nor scopable.'})
        for attr in attrs:
            if attr not in fam["attributes"]:
                errors.append({"property": "variant_attribute_sets",
                               "message": f'The attribute "{attr}" is not an attribute of the family "{family}".'})
        both = (set(axes) | set(attrs)) & seen
        if both:
            errors.append({"property": "variant_attribute_sets",
                           "message": f"The attributes {sorted(both)} are used on two levels."})
        seen |= set(axes) | set(attrs)
        normalised.append({"level": level, "axes": axes, "attributes": list(dict.fromkeys([*axes, *attrs]))})
    _raise(errors)
    # Akeneo moves the identifier to the variant products' level by itself
    last_level: list[str] = list(normalised[-1]["attributes"])
    normalised[-1]["attributes"] = last_level
    if identifier not in last_level:
        last_level.append(identifier)
    return _save(conn, "family_variant", key, {
        "code": key, "family": family, "variant_attribute_sets": normalised,
        "labels": _merge_labels((current or {}).get("labels"), doc.get("labels"))}, family)


# ------------------------------------------------------------------------------------------ answer shapes
def _clean(doc: Mapping[str, Any]) -> dict[str, Any]:
    # Akeneo prints unset optional properties as null; Swagger 2.0 cannot say "nullable", so the sandbox leaves
    # them out and its answers hold to the published schema (docs/sandbox-api.md).
    return {k: v for k, v in doc.items() if v is not None}


def present(conn: Connection, kind: str, row: Any, structure: Structure | None = None) -> dict[str, Any]:
    """One stored item as the API answers it."""
    doc = dict(row.doc)
    if kind == "attribute":
        group = get_doc(conn, "attribute_group", doc.get("group") or "") or {}
        doc["group_labels"] = group.get("labels") or {}
    elif kind == "attribute_group":
        doc["attributes"] = [c for c, a in (structure or Structure.load(conn)).attributes.items()
                             if a.get("group") == doc["code"]]
    elif kind == "family_variant":
        fam = (structure or Structure.load(conn)).families.get(row.owner) or {}
        levelled = {a for s in doc.get("variant_attribute_sets") or [] for a in s.get("attributes") or []}
        doc.pop("family", None)
        doc["common_attributes"] = [a for a in fam.get("attributes") or [] if a not in levelled]
    elif kind == "category":
        doc["updated"] = (iso(row.updated) or "").replace("Z", "+00:00")
        doc["position"] = row.position
        return {k: v for k, v in doc.items() if v is not None or k == "parent"}
    elif kind in ("locale", "currency"):
        s = structure or Structure.load(conn)
        doc["enabled"] = row.code in (s.active_locales if kind == "locale" else s.active_currencies)
    return _clean(doc)


# ---------------------------------------------------------------------------------------------- listing
#: Filters each structure list documents (akeneo-docs/filter.md): property -> operators.
LIST_FILTERS: Final[dict[str, dict[str, set[str]]]] = {
    "attribute": {"code": {"IN"}, "updated": {">"}, "type": {"IN"}},
    "attribute_group": {"code": {"IN"}, "updated": {">"}},
    "family": {"code": {"IN"}, "updated": {">"}},
    "category": {"code": {"IN"}, "updated": {">"}, "parent": {"="}, "is_root": {"="}},
    "locale": {"enabled": {"="}},
    "currency": {"enabled": {"="}},
    "channel": {},
    "attribute_option": {},
    "family_variant": {},
    "association_type": {},
}


def _iso_time(value: Any, prop: str) -> datetime:
    # Structure lists take ISO 8601 with a zone ("2021-05-17T15:19:32Z" or "+00:00"), unlike product filters.
    text = str(value)
    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$", text):
        raise error(422, f'Property "{prop}" expects a string with the ISO 8601 format, "{value}" given.',
                    errors=[{"property": prop, "message": "expects an ISO 8601 date with a time zone"}])
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _list_filter(kind: str, search: str | None, structure: Structure) -> Callable[[Any], bool]:
    if not search:
        return lambda _row: True
    try:
        spec = json.loads(search)
    except ValueError:
        raise error(400, "Search query parameter should be valid JSON.") from None
    if not isinstance(spec, dict):
        raise error(422, "Search query parameter has to be an array.")
    allowed = LIST_FILTERS[kind]
    active = structure.active_locales if kind == "locale" else structure.active_currencies
    conditions_checked: list[tuple[str, Any]] = []  # (property, the value to compare with), every one must hold
    for prop, conditions in spec.items():
        if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
            raise error(422, f'Structure of filter "{prop}" should respect this structure: '
                             f'{{"{prop}":[{{"operator": "my_operator", "value": "my_value"}}]}}')
        for cond in conditions:
            op = cond.get("operator")
            value = cond.get("value")
            if prop not in allowed or op not in allowed[prop]:
                raise error(422, f'Filter on property "{prop}" is not supported or does not support operator '
                                 f'"{op}".', errors=[{"property": prop, "message": "unsupported filter"}])
            if op == "IN":
                if not isinstance(value, list):
                    raise error(422, f'Filter "{prop}" with operator "IN" expects an array of values.')
                conditions_checked.append((prop, {str(v) for v in value}))
            elif prop == "updated":
                conditions_checked.append((prop, _iso_time(value, prop)))
            elif prop in ("is_root", "enabled") and not isinstance(value, bool):
                raise error(422, f'Filter "{prop}" expects a boolean value.')
            else:
                conditions_checked.append((prop, value))

    def holds(row: Any, prop: str, wanted: Any) -> bool:
        if isinstance(wanted, set):  # IN
            return str(row.code if prop == "code" else row.doc.get(prop)) in wanted
        if prop == "updated":
            updated = row.updated if row.updated.tzinfo else row.updated.replace(tzinfo=UTC)
            return bool(updated > wanted)
        if prop == "parent":
            return bool(row.doc.get("parent") == wanted)
        if prop == "is_root":
            return (row.doc.get("parent") is None) == wanted
        return (row.code in active) == wanted  # enabled: a locale or currency some channel uses

    return lambda row: all(holds(row, prop, wanted) for prop, wanted in conditions_checked)


def page_of(request: Request, conn: Connection, kind: str, owner: str | None, limit: int, page: int,
            search: str | None, with_count: bool, self_path: Callable[[Any], str]) -> dict[str, Any]:
    """One page of a structure list, in Akeneo's ``page`` pagination (``limit`` at most 100)."""
    if limit > 100:
        raise error(422, "You cannot request more than 100 items.")
    if page < 1:
        raise error(422, "The page number must be at least 1.")
    structure = Structure.load(conn)
    keep = _list_filter(kind, search, structure)
    rows = [r for r in _rows(conn, kind, owner) if keep(r)]
    if kind not in ("category",):  # Akeneo sorts structure lists by code; categories keep their tree order
        rows.sort(key=lambda r: r.code)
    chunk = rows[(page - 1) * limit: page * limit]
    base = str(request.url).split("?", 1)[0]
    params = {k: v for k, v in request.query_params.items() if k != "page"}
    links: dict[str, Any] = {"self": {"href": str(request.url)},
                             "first": {"href": f"{base}?{urlencode({**params, 'page': 1})}"}}
    if page > 1:
        links["previous"] = {"href": f"{base}?{urlencode({**params, 'page': page - 1})}"}
    if page * limit < len(rows):
        links["next"] = {"href": f"{base}?{urlencode({**params, 'page': page + 1})}"}
    items = []
    for row in chunk:
        item = present(conn, kind, row, structure)
        items.append({"_links": {"self": {"href": self_path(row)}}, **item})
    out: dict[str, Any] = {"_links": links, "current_page": page}
    if with_count:
        out["items_count"] = len(rows)
    out["_embedded"] = {"items": items}
    return out


# ------------------------------------------------------------------------------------- PATCH machinery
async def collection_patch(request: Request, state: SandboxState, key: str,
                           write: Callable[[Connection, Any], int]) -> Response:
    """Akeneo's collection PATCH: one JSON object per line, one status line per object, each line in its own
    transaction (a refused line never undoes a good one)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != COLLECTION_TYPE:
        raise error(415, f'The "Content-Type" header is missing or wrong: "{COLLECTION_TYPE}" is expected.')
    raw = (await request.body()).decode("utf-8", errors="replace")
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) > state.settings.pim_batch_max:
        raise error(413, f"Too many resources to process, {state.settings.pim_batch_max} is the maximum allowed.")

    def run() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with state.write_lock:
            for n, text in enumerate(lines, start=1):
                try:
                    doc = json.loads(text)
                except ValueError:
                    out.append({"line": n, "status_code": 400, "message": "Invalid json message received"})
                    continue
                result: dict[str, Any] = {"line": n}
                ident = doc.get(key) if isinstance(doc, dict) else None
                if isinstance(ident, str):
                    result[key] = ident
                try:
                    with state.engine.begin() as conn:
                        result["status_code"] = write(conn, doc)
                except Invalid as exc:
                    result["status_code"] = 422
                    result["message"] = exc.message
                    if exc.errors:
                        result["errors"] = exc.errors
                except NotFound as exc:
                    result["status_code"] = 404
                    result["message"] = str(exc)
                out.append(result)
        return out

    from starlette.concurrency import run_in_threadpool

    results = await run_in_threadpool(run)
    return Response("\n".join(json.dumps(r) for r in results), status_code=200, media_type=COLLECTION_TYPE)


def single_patch(state: SandboxState, doc: Any, write: Callable[[Connection, Any], int], location: str) -> Response:
    """Akeneo's single-resource PATCH: 201 created or 204 updated, with the resource's Location; 422 refused."""
    try:
        with state.write_lock, state.engine.begin() as conn:
            status = write(conn, doc)
    except Invalid as exc:
        raise error(422, exc.message, errors=exc.errors) from None
    except NotFound as exc:
        raise error(404, str(exc)) from None
    return Response(status_code=status, headers={"Location": location})


async def json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise error(400, "Invalid json message received") from None


# ------------------------------------------------------------------------------------------------ routes
router = APIRouter()
Limit = Annotated[int, Query(ge=1)]


def _segment(code: str) -> str:
    return quote(code, safe="")


def _url(request: Request, path: str) -> str:
    return f"{str(request.base_url).rstrip('/')}{API}/{path}"


def _one(state: SandboxState, kind: str, code: str, owner: str = "", what: str = "Resource") -> dict[str, Any]:
    t = db.pim_structure
    with state.engine.connect() as conn:
        row = conn.execute(select(t).where(and_(t.c.kind == kind, t.c.owner == owner, t.c.code == code))).first()
        if row is None:
            raise error(404, f'{what} "{code}" does not exist.')
        return present(conn, kind, row)


def _owner_exists(state: SandboxState, kind: str, code: str, what: str) -> None:
    with state.engine.connect() as conn:
        if get_doc(conn, kind, code) is None:
            raise error(404, f'{what} "{code}" does not exist.')


# One set of routes per resource: list (GET), collection PATCH, item GET and item PATCH, as in the Swagger file.
_SIMPLE: Final[list[tuple[str, str, str, Callable[..., int]]]] = [
    ("attributes", "attribute", "Attribute", upsert_attribute),
    ("attribute-groups", "attribute_group", "Attribute group", upsert_attribute_group),
    ("families", "family", "Family", upsert_family),
    ("categories", "category", "Category", upsert_category),
    ("channels", "channel", "Channel", upsert_channel),
    ("association-types", "association_type", "Association type", upsert_association_type),
]


def _register_simple(path: str, kind: str, what: str, write: Callable[..., int]) -> None:
    def list_items(request: Request, state: State, limit: Limit = 10, page: Annotated[int, Query()] = 1,
                   search: str | None = None, with_count: bool = False) -> dict[str, Any]:
        with state.engine.connect() as conn:
            return page_of(request, conn, kind, None, limit, page, search, with_count,
                           lambda r: _url(request, f"{path}/{_segment(r.code)}"))

    async def patch_items(request: Request, state: State) -> Response:
        return await collection_patch(request, state, "code", lambda conn, doc: write(conn, doc))

    def get_item(code: str, state: State) -> dict[str, Any]:
        return _one(state, kind, code, what=what)

    async def patch_item(code: str, request: Request, state: State) -> Response:
        from starlette.concurrency import run_in_threadpool

        doc = await json_body(request)
        return await run_in_threadpool(single_patch, state, doc, lambda c, d: write(c, d, code),
                                       f"{API}/{path}/{_segment(code)}")

    router.add_api_route(f"/{path}", list_items, methods=["GET"], summary=f"List {path} (page pagination)")
    router.add_api_route(f"/{path}", patch_items, methods=["PATCH"], response_class=Response,
                         summary=f"Create or update several {path} (one JSON object per line)")
    router.add_api_route(f"/{path}/{{code}}", get_item, methods=["GET"], summary=f"Get one of the {path}")
    router.add_api_route(f"/{path}/{{code}}", patch_item, methods=["PATCH"], response_class=Response,
                         summary=f"Create (201) or update (204) one of the {path}")


for _path, _kind, _what, _write in _SIMPLE:
    _register_simple(_path, _kind, _what, _write)


@router.get("/attributes/{attribute_code}/options", summary="List the options of a select attribute")
def list_options(attribute_code: str, request: Request, state: State, limit: Limit = 10,
                 page: Annotated[int, Query()] = 1, with_count: bool = False) -> dict[str, Any]:
    _owner_exists(state, "attribute", attribute_code, "Attribute")
    with state.engine.connect() as conn:
        return page_of(request, conn, "attribute_option", attribute_code, limit, page, None, with_count,
                       lambda r: _url(request, f"attributes/{_segment(attribute_code)}/options/{_segment(r.code)}"))


@router.patch("/attributes/{attribute_code}/options", response_class=Response,
              summary="Create or update several options of a select attribute")
async def patch_options(attribute_code: str, request: Request, state: State) -> Response:
    _owner_exists(state, "attribute", attribute_code, "Attribute")
    return await collection_patch(request, state, "code", lambda c, d: upsert_option(c, attribute_code, d))


@router.get("/attributes/{attribute_code}/options/{code}", summary="Get one option of a select attribute")
def get_option(attribute_code: str, code: str, state: State) -> dict[str, Any]:
    _owner_exists(state, "attribute", attribute_code, "Attribute")
    return _one(state, "attribute_option", code, attribute_code, "Attribute option")


@router.patch("/attributes/{attribute_code}/options/{code}", response_class=Response,
              summary="Create (201) or update (204) one option of a select attribute")
async def patch_option(attribute_code: str, code: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    doc = await json_body(request)
    return await run_in_threadpool(single_patch, state, doc, lambda c, d: upsert_option(c, attribute_code, d, code),
                                   f"{API}/attributes/{_segment(attribute_code)}/options/{_segment(code)}")


@router.get("/families/{family_code}/variants", summary="List a family's variants with their axes")
def list_family_variants(family_code: str, request: Request, state: State, limit: Limit = 10,
                         page: Annotated[int, Query()] = 1, with_count: bool = False) -> dict[str, Any]:
    _owner_exists(state, "family", family_code, "Family")
    with state.engine.connect() as conn:
        return page_of(request, conn, "family_variant", family_code, limit, page, None, with_count,
                       lambda r: _url(request, f"families/{_segment(family_code)}/variants/{_segment(r.code)}"))


@router.patch("/families/{family_code}/variants", response_class=Response,
              summary="Create or update several variants of a family")
async def patch_family_variants(family_code: str, request: Request, state: State) -> Response:
    _owner_exists(state, "family", family_code, "Family")
    return await collection_patch(request, state, "code", lambda c, d: upsert_family_variant(c, family_code, d))


@router.get("/families/{family_code}/variants/{code}", summary="Get one variant of a family")
def get_family_variant(family_code: str, code: str, state: State) -> dict[str, Any]:
    _owner_exists(state, "family", family_code, "Family")
    return _one(state, "family_variant", code, family_code, "Family variant")


@router.patch("/families/{family_code}/variants/{code}", response_class=Response,
              summary="Create (201) or update (204) one variant of a family")
async def patch_family_variant(family_code: str, code: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    doc = await json_body(request)
    return await run_in_threadpool(
        single_patch, state, doc, lambda c, d: upsert_family_variant(c, family_code, d, code),
        f"{API}/families/{_segment(family_code)}/variants/{_segment(code)}")


@router.get("/locales", summary="List locales (enabled: used by a channel)")
def list_locales(request: Request, state: State, limit: Limit = 10, page: Annotated[int, Query()] = 1,
                 search: str | None = None, with_count: bool = False) -> dict[str, Any]:
    with state.engine.connect() as conn:
        return page_of(request, conn, "locale", None, limit, page, search, with_count,
                       lambda r: _url(request, f"locales/{_segment(r.code)}"))


@router.get("/locales/{code}", summary="Get one locale")
def get_locale(code: str, state: State) -> dict[str, Any]:
    return _one(state, "locale", code, what="Locale")


@router.get("/currencies", summary="List currencies (enabled: used by a channel)")
def list_currencies(request: Request, state: State, limit: Limit = 10, page: Annotated[int, Query()] = 1,
                    search: str | None = None, with_count: bool = False) -> dict[str, Any]:
    with state.engine.connect() as conn:
        return page_of(request, conn, "currency", None, limit, page, search, with_count,
                       lambda r: _url(request, f"currencies/{_segment(r.code)}"))


@router.get("/currencies/{code}", summary="Get one currency")
def get_currency(code: str, state: State) -> dict[str, Any]:
    return _one(state, "currency", code, what="Currency")


@router.get("/measurement-families", summary="Every measurement family with its units (one JSON array)")
def list_measurement_families(state: State) -> list[dict[str, Any]]:
    with state.engine.connect() as conn:
        return [present(conn, "measurement_family", r) for r in _rows(conn, "measurement_family")]
