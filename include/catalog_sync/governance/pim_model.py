"""The declared PIM structure (``pim_model.yaml``): what must exist in Akeneo for the mapping's writes to be taken.

``load_pim_model()`` reads and validates the file once per process (the file is packaged; a change needs a restart,
as the structure it describes needs a ``catalog-sync pim bootstrap``). The model answers two kinds of questions:

* for the mapping: which family a product group lands in, which family variant a configurable parent's axes pick;
* for the bootstrap (``catalog_sync.governance.pim_bootstrap``): the Akeneo resources to create or update, in the
  standard format of Akeneo's REST API.

Nothing here talks to a PIM.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from catalog_sync.domain import (
    CHANNEL,
    ITEM_TYPES,
    KIT_ITEM_TYPES,
    KIT_PRICING,
    LIFECYCLE_OPTION_CODES,
    LOCALES,
)

DEFAULT_PATH: Final[Path] = Path(__file__).with_name("pim_model.yaml")

#: Akeneo's rule for the codes of attributes, options, families, family variants, categories and channels.
CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_]+$")
CODE_MAX: Final = 100
#: The attribute types of Akeneo Community Edition. Asset collections, reference entities, product links and
#: tables belong to the Enterprise Edition or SaaS, and a CE install refuses them.
CE_ATTRIBUTE_TYPES: Final = frozenset({
    "pim_catalog_identifier", "pim_catalog_text", "pim_catalog_textarea", "pim_catalog_simpleselect",
    "pim_catalog_multiselect", "pim_catalog_boolean", "pim_catalog_date", "pim_catalog_number",
    "pim_catalog_metric", "pim_catalog_price_collection", "pim_catalog_image", "pim_catalog_file",
})
SELECT_TYPES: Final = frozenset({"pim_catalog_simpleselect", "pim_catalog_multiselect"})
#: Types Akeneo accepts as family variant axes (reference data selects aside, which CE keeps out of the API).
AXIS_TYPES: Final = frozenset({"pim_catalog_simpleselect", "pim_catalog_multiselect", "pim_catalog_metric",
                               "pim_catalog_boolean"})
#: The identifier attribute every Akeneo installation has; each family holds it.
IDENTIFIER_ATTRIBUTE: Final = "sku"
#: Option sources that are tables in code rather than lists in the file.
OPTION_SOURCES: Final[dict[str, dict[str, str]]] = {
    "lifecycle_status": {code: status.value.replace("-", " ").capitalize()
                         for status, code in LIFECYCLE_OPTION_CODES.items()},
    "item_type": {code: code.capitalize() for code in sorted(ITEM_TYPES)},
    "kit_pricing": {code: code.capitalize() for code in sorted(KIT_PRICING)},
}
#: Properties of an Akeneo attribute that cannot change once it exists.
IMMUTABLE_ATTRIBUTE_PROPERTIES: Final = ("type", "localizable", "scopable", "metric_family", "unique")


class PimModelError(ValueError):
    """The declared model is malformed; the message names the entry."""


def is_code(text: Any) -> bool:
    """Whether ``text`` is a valid Akeneo code (letters, digits, underscores; at most 100 characters)."""
    return isinstance(text, str) and len(text) <= CODE_MAX and bool(CODE_PATTERN.match(text))


@dataclass(frozen=True)
class AttributeSpec:
    code: str
    type: str
    group: str
    localizable: bool = False
    scopable: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    #: For select attributes: option code -> en_US label, in display order.
    options: Mapping[str, str] = field(default_factory=dict)
    metric_family: str | None = None
    default_metric_unit: str | None = None
    decimals_allowed: bool | None = None
    negative_allowed: bool | None = None

    def payload(self) -> dict[str, Any]:
        """The attribute in Akeneo's standard format, only the properties the model declares."""
        out: dict[str, Any] = {"code": self.code, "type": self.type, "group": self.group,
                               "localizable": self.localizable, "scopable": self.scopable,
                               "labels": dict(self.labels)}
        for name in ("metric_family", "default_metric_unit", "decimals_allowed", "negative_allowed"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def option_payloads(self) -> list[dict[str, Any]]:
        return [{"code": code, "attribute": self.code, "sort_order": i, "labels": {LOCALES[0]: label}}
                for i, (code, label) in enumerate(self.options.items(), start=1)]


@dataclass(frozen=True)
class FamilyVariantSpec:
    suffix: str
    axes: tuple[str, ...]
    attributes: tuple[str, ...]
    labels: Mapping[str, str]

    def code(self, family: str) -> str:
        return f"{family}_{self.suffix}"

    def payload(self, family: str) -> dict[str, Any]:
        # Akeneo moves the identifier (and unique attributes) to the variant level by itself; saying so keeps a
        # second bootstrap from seeing a difference that is only Akeneo's doing.
        level = [*self.axes, *self.attributes, IDENTIFIER_ATTRIBUTE]
        return {"code": self.code(family), "labels": dict(self.labels),
                "variant_attribute_sets": [{"level": 1, "axes": list(self.axes),
                                            "attributes": list(dict.fromkeys(level))}]}


@dataclass(frozen=True)
class AssociationTypeSpec:
    """An Akeneo association type the mapping writes a kit's components under (one per kit item type)."""

    code: str
    item_type: str
    labels: Mapping[str, str]

    def payload(self) -> dict[str, Any]:
        # Plain associations: Community Edition cannot create quantified (or two-way) association types
        return {"code": self.code, "labels": dict(self.labels)}


@dataclass(frozen=True)
class FamilySpec:
    code: str
    product_groups: tuple[str, ...]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class PimModel:
    channel: Mapping[str, Any]
    categories: tuple[Mapping[str, Any], ...]
    measurement_families: Mapping[str, tuple[str, ...]]
    attribute_groups: Mapping[str, Mapping[str, Any]]
    attributes: Mapping[str, AttributeSpec]
    families: Mapping[str, FamilySpec]
    default_family: str
    attribute_as_label: str
    required: tuple[str, ...]
    variants: tuple[FamilyVariantSpec, ...]
    association_types: Mapping[str, AssociationTypeSpec] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ for the mapping

    def family_for(self, product_group: str | None) -> str:
        """The family of a product of this ERP product group (case and spaces ignored); the default otherwise."""
        wanted = (product_group or "").strip().casefold()
        for family in self.families.values():
            if any(group.casefold() == wanted for group in family.product_groups):
                return family.code
        return self.default_family

    def family_variant_for(self, family: str, axes: Sequence[str] | None) -> str:
        """The family variant whose axes are ``axes`` (in any order); the first declared one when none matches."""
        wanted = set(axes or ())
        for variant in self.variants:
            if set(variant.axes) == wanted:
                return variant.code(family)
        return self.variants[0].code(family)

    def association_type_for(self, item_type: str) -> str:
        """The association type a kit of ``item_type`` (bundle, grouped) lists its components under."""
        for spec in self.association_types.values():
            if spec.item_type == item_type:
                return spec.code
        raise PimModelError(f"association_types: none declared for {item_type!r} items")

    # ---------------------------------------------------------------------------------------- for the bootstrap

    def family_payload(self, code: str) -> dict[str, Any]:
        family = self.families[code]
        attributes = [IDENTIFIER_ATTRIBUTE, *self.attributes]
        return {"code": code, "attribute_as_label": self.attribute_as_label, "attributes": attributes,
                "attribute_requirements": {self.channel["code"]: list(self.required)},
                "labels": dict(family.labels)}

    def family_variant_payloads(self, family: str) -> list[dict[str, Any]]:
        return [variant.payload(family) for variant in self.variants]

    def units_needed(self) -> dict[str, set[str]]:
        """Measurement family -> the units the model relies on (declared ones and the metric attributes' defaults)."""
        needed = {family: set(units) for family, units in self.measurement_families.items()}
        for attr in self.attributes.values():
            if attr.metric_family and attr.default_metric_unit:
                needed.setdefault(attr.metric_family, set()).add(attr.default_metric_unit)
        return needed


# ------------------------------------------------------------------------------------------------------ loading


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PimModelError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _code(value: Any, where: str) -> str:
    if not is_code(value):
        raise PimModelError(f"{where}: {value!r} is not an Akeneo code (letters, digits and underscores, at most "
                            f"{CODE_MAX} characters)")
    return str(value)


def _labels(value: Any, where: str, locales: Sequence[str]) -> dict[str, str]:
    labels = dict(_mapping(value or {}, f"{where}.labels"))
    unknown = sorted(set(labels) - set(locales))
    if unknown:
        raise PimModelError(f"{where}.labels: locale(s) {unknown} are not the channel's ({list(locales)})")
    return {str(k): str(v) for k, v in labels.items()}


def _attribute(code: str, raw: Mapping[str, Any], groups: Mapping[str, Any], units: Mapping[str, tuple[str, ...]],
               locales: Sequence[str]) -> AttributeSpec:
    where = f"attributes.{code}"
    kind = raw.get("type")
    if kind not in CE_ATTRIBUTE_TYPES or kind == "pim_catalog_identifier":
        raise PimModelError(f"{where}.type: {kind!r} is not an attribute type the model may declare on Akeneo "
                            f"Community Edition ({', '.join(sorted(CE_ATTRIBUTE_TYPES - {'pim_catalog_identifier'}))})")
    group = raw.get("group")
    if group not in groups and group != "other":
        raise PimModelError(f"{where}.group: {group!r} is not a declared attribute group")
    options: dict[str, str] = {}
    if "options" in raw and "options_from" in raw:
        raise PimModelError(f"{where}: declare options or options_from, not both")
    if "options_from" in raw:
        source = OPTION_SOURCES.get(str(raw["options_from"]))
        if source is None:
            raise PimModelError(f"{where}.options_from: {raw['options_from']!r} is not one of {sorted(OPTION_SOURCES)}")
        options = dict(source)
    elif "options" in raw:
        if not isinstance(raw["options"], list):
            raise PimModelError(f"{where}.options: expected a list of option codes")
        options = {_code(str(o), f"{where}.options"): str(o) for o in raw["options"]}
    if options and kind not in SELECT_TYPES:
        raise PimModelError(f"{where}: only select attributes have options")
    if kind in SELECT_TYPES and not options:
        raise PimModelError(f"{where}: a select attribute needs options or options_from")
    for code_ in options:
        _code(code_, f"{where}.options")
    metric_family = raw.get("metric_family")
    default_unit = raw.get("default_metric_unit")
    if kind == "pim_catalog_metric":
        if not isinstance(metric_family, str) or metric_family not in units:
            raise PimModelError(f"{where}.metric_family: {metric_family!r} is not in measurement_families")
        if default_unit not in units[metric_family]:
            raise PimModelError(f"{where}.default_metric_unit: {default_unit!r} is not a declared unit of "
                                f"{metric_family}")
    elif metric_family is not None or default_unit is not None:
        raise PimModelError(f"{where}: only metric attributes have a metric_family and default_metric_unit")
    known = {"type", "group", "localizable", "scopable", "labels", "options", "options_from", "metric_family",
             "default_metric_unit", "decimals_allowed", "negative_allowed"}
    extra = sorted(set(raw) - known)
    if extra:
        raise PimModelError(f"{where}: unknown key(s) {extra}")
    return AttributeSpec(
        code=code, type=str(kind), group=str(group), localizable=bool(raw.get("localizable", False)),
        scopable=bool(raw.get("scopable", False)), labels=_labels(raw.get("labels"), where, locales),
        options=options, metric_family=metric_family, default_metric_unit=default_unit,
        decimals_allowed=raw.get("decimals_allowed"), negative_allowed=raw.get("negative_allowed"),
    )


def parse_pim_model(document: Any) -> PimModel:
    """Validate a parsed ``pim_model.yaml`` document and build the model; raises :class:`PimModelError`."""
    doc = _mapping(document, "pim_model")
    if doc.get("version") != 1:
        raise PimModelError(f"version: expected 1, got {doc.get('version')!r}")
    raw_channel = _mapping(doc.get("channel"), "channel")
    locales = [str(x) for x in raw_channel.get("locales") or []]
    if _code(raw_channel.get("code"), "channel.code") != CHANNEL:
        raise PimModelError(f"channel.code: the mapping writes to the channel {CHANNEL!r}, the model declares "
                            f"{raw_channel.get('code')!r}")
    if tuple(locales[: len(LOCALES)]) != LOCALES:
        raise PimModelError(f"channel.locales: must start with the mapping's locales {list(LOCALES)} (reference "
                            f"locale first), got {locales}")
    currencies = [str(x) for x in raw_channel.get("currencies") or []]
    if not currencies:
        raise PimModelError("channel.currencies: at least one currency")
    channel = {"code": CHANNEL, "category_tree": _code(raw_channel.get("category_tree"), "channel.category_tree"),
               "locales": locales, "currencies": currencies,
               "labels": _labels(raw_channel.get("labels"), "channel", locales)}

    categories = []
    seen_categories: set[str] = set()
    for i, raw in enumerate(doc.get("categories") or []):
        raw = _mapping(raw, f"categories[{i}]")
        code = _code(raw.get("code"), f"categories[{i}].code")
        parent = raw.get("parent")
        if parent is not None and parent not in seen_categories:
            raise PimModelError(f"categories[{i}].parent: {parent!r} must be declared before {code!r}")
        seen_categories.add(code)
        categories.append({"code": code, "parent": parent,
                           "labels": _labels(raw.get("labels"), f"categories[{i}]", locales)})
    if channel["category_tree"] not in {c["code"] for c in categories if c["parent"] is None}:
        raise PimModelError(f"channel.category_tree: {channel['category_tree']!r} must be a declared root category")

    units = {_code(name, "measurement_families"): tuple(_code(u, f"measurement_families.{name}") for u in unit_list)
             for name, unit_list in _mapping(doc.get("measurement_families") or {}, "measurement_families").items()}
    groups = {_code(code, "attribute_groups"): {"labels": _labels(_mapping(raw or {}, f"attribute_groups.{code}")
                                                                  .get("labels"), f"attribute_groups.{code}", locales)}
              for code, raw in _mapping(doc.get("attribute_groups") or {}, "attribute_groups").items()}
    attributes = {}
    for code, raw in _mapping(doc.get("attributes"), "attributes").items():
        _code(code, "attributes")
        if code == IDENTIFIER_ATTRIBUTE:
            raise PimModelError(f"attributes.{code}: the identifier attribute exists in every installation")
        attributes[code] = _attribute(code, _mapping(raw, f"attributes.{code}"), groups, units, locales)

    raw_families = _mapping(doc.get("families"), "families")
    families: dict[str, FamilySpec] = {}
    claimed: dict[str, str] = {}
    for code, raw in _mapping(raw_families.get("list"), "families.list").items():
        raw = _mapping(raw, f"families.list.{code}")
        groups_of = tuple(str(g) for g in raw.get("product_groups") or [])
        for group in groups_of:
            if group.casefold() in claimed:
                raise PimModelError(f"families.list.{code}: product group {group!r} already belongs to "
                                    f"{claimed[group.casefold()]!r}")
            claimed[group.casefold()] = code
        families[_code(code, "families.list")] = FamilySpec(code, groups_of,
                                                            _labels(raw.get("labels"), f"families.{code}", locales))
    default = raw_families.get("default")
    if default not in families:
        raise PimModelError(f"families.default: {default!r} is not a declared family")
    label = raw_families.get("attribute_as_label")
    if label not in attributes or attributes[label].type != "pim_catalog_text":
        raise PimModelError(f"families.attribute_as_label: {label!r} must be a declared text attribute")
    required = tuple(str(a) for a in raw_families.get("required") or [])
    unknown_required = [a for a in required if a not in attributes and a != IDENTIFIER_ATTRIBUTE]
    if unknown_required:
        raise PimModelError(f"families.required: unknown attribute(s) {unknown_required}")

    variants = []
    for suffix, raw in _mapping(doc.get("family_variants"), "family_variants").items():
        where = f"family_variants.{suffix}"
        raw = _mapping(raw, where)
        axes = tuple(str(a) for a in raw.get("axes") or [])
        if not 1 <= len(axes) <= 5:
            raise PimModelError(f"{where}.axes: one to five axes")
        for axis in axes:
            spec = attributes.get(axis)
            if spec is None or spec.type not in AXIS_TYPES or spec.localizable or spec.scopable:
                raise PimModelError(f"{where}.axes: {axis!r} must be a declared select, metric or boolean attribute "
                                    "that is neither localizable nor scopable")
        level = tuple(str(a) for a in raw.get("attributes") or [])
        unknown = [a for a in level if a not in attributes]
        if unknown or set(level) & set(axes):
            raise PimModelError(f"{where}.attributes: declared attributes that are not axes (unknown: {unknown})")
        variants.append(FamilyVariantSpec(_code(suffix, "family_variants"), axes, level,
                                          _labels(raw.get("labels"), where, locales)))
    association_types: dict[str, AssociationTypeSpec] = {}
    for code, raw in _mapping(doc.get("association_types") or {}, "association_types").items():
        where = f"association_types.{code}"
        raw = _mapping(raw, where)
        kind = raw.get("item_type")
        if kind not in KIT_ITEM_TYPES:
            raise PimModelError(f"{where}.item_type: {kind!r} is not a kit item type ({sorted(KIT_ITEM_TYPES)})")
        if any(spec.item_type == kind for spec in association_types.values()):
            raise PimModelError(f"{where}.item_type: {kind!r} already has an association type")
        association_types[_code(code, "association_types")] = AssociationTypeSpec(
            str(code), str(kind), _labels(raw.get("labels"), where, locales))
    uncovered = sorted(KIT_ITEM_TYPES - {spec.item_type for spec in association_types.values()})
    if uncovered:
        raise PimModelError(f"association_types: none for {uncovered}: a kit's components need one to be written")
    if not variants:
        raise PimModelError("family_variants: at least one")
    for family in families:
        for variant in variants:
            _code(variant.code(family), f"family_variants.{variant.suffix} for family {family}")
    return PimModel(channel=channel, categories=tuple(categories), measurement_families=units,
                    attribute_groups=groups, attributes=attributes, families=families, default_family=str(default),
                    attribute_as_label=str(label), required=required, variants=tuple(variants),
                    association_types=association_types)


@functools.lru_cache(maxsize=4)
def _load(path: str) -> PimModel:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PimModelError(f"cannot read the PIM model {path}: {exc}") from None
    return parse_pim_model(yaml.safe_load(text))


def load_pim_model(path: str | Path | None = None) -> PimModel:
    """The declared PIM model (the packaged ``pim_model.yaml`` unless ``path`` names another), validated.

    Read once per file: the mapping asks for it once per record.
    """
    return _load(str(DEFAULT_PATH) if path is None else str(Path(path).resolve()))
