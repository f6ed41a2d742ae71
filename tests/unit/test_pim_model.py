"""The declared PIM model (governance/pim_model.yaml): valid as Akeneo would take it, and in step with the mapping."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from catalog_sync.connectors.mapping import (
    AKENEO_WEIGHT_UNITS,
    LOCALIZED_TEXT,
    PIM_PLAIN,
    SCOPED,
    canonical_to_akeneo_values,
    family_code,
)
from catalog_sync.domain import CHANNEL, LIFECYCLE_OPTION_CODES, LOCALES
from catalog_sync.governance.pim_model import (
    CE_ATTRIBUTE_TYPES,
    DEFAULT_PATH,
    PimModelError,
    is_code,
    load_pim_model,
    parse_pim_model,
)


def _doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEFAULT_PATH.read_text()))


def test_every_value_the_mapping_writes_has_a_declared_attribute_of_the_right_shape() -> None:
    model = load_pim_model()
    record = {"sku": "S", "translations": {loc: dict.fromkeys(LOCALIZED_TEXT, "t") for loc in LOCALES[1:]},
              **dict.fromkeys(LOCALIZED_TEXT, "text"), **dict.fromkeys(PIM_PLAIN, "Black"),
              "lifecycle_status": "pre-active", "asset_links": ["AST-1"], "weight": 1.0, "weight_unit": "lbs",
              "reference_price": 9.5, "currency": "USD"}
    values = canonical_to_akeneo_values(record)
    assert set(values) == set(LOCALIZED_TEXT) | set(PIM_PLAIN) | {"weight", "erp_reference_price"}
    for code, entries in values.items():
        spec = model.attributes[code]
        assert spec.type in CE_ATTRIBUTE_TYPES, code
        for entry in entries:
            assert (entry["locale"] is not None) == spec.localizable, code
            assert (entry["scope"] is not None) == spec.scopable == (code in SCOPED), code
            assert entry["locale"] in (None, *model.channel["locales"]) and entry["scope"] in (None, CHANNEL)
    assert model.attributes["asset_links"].type == "pim_catalog_textarea"  # not an EE asset collection
    assert model.attributes["weight"].type == "pim_catalog_metric"
    assert model.attributes["erp_reference_price"].type == "pim_catalog_price_collection"


def test_the_model_agrees_with_the_code_tables() -> None:
    model = load_pim_model()
    assert model.channel["code"] == CHANNEL and tuple(model.channel["locales"][:3]) == LOCALES
    assert dict(model.attributes["lifecycle_status"].options).keys() == set(LIFECYCLE_OPTION_CODES.values())
    assert set(AKENEO_WEIGHT_UNITS.values()) <= set(model.measurement_families["Weight"])
    assert model.attributes["weight"].default_metric_unit in AKENEO_WEIGHT_UNITS.values()
    codes = [*model.attributes, *model.families, *model.attribute_groups,
             *(o for a in model.attributes.values() for o in a.options),
             *(v.code(f) for f in model.families for v in model.variants)]
    assert all(is_code(c) for c in codes), [c for c in codes if not is_code(c)]
    assert family_code("Top") == "top" and family_code("top ") == "top" and family_code(None) == model.default_family


def _refused(change: Callable[[dict[str, Any]], None], match: str) -> None:
    doc = _doc()
    change(doc)
    with pytest.raises(PimModelError, match=match):
        parse_pim_model(doc)


def test_the_loader_refuses_what_akeneo_would_refuse() -> None:
    def hyphenated_option(d: dict[str, Any]) -> None:
        d["attributes"]["size"]["options"].append("extra-large")

    def ee_type(d: dict[str, Any]) -> None:
        d["attributes"]["asset_links"]["type"] = "pim_catalog_asset_collection"

    def lbs_unit(d: dict[str, Any]) -> None:
        d["attributes"]["weight"]["default_metric_unit"] = "lbs"

    def localizable_axis(d: dict[str, Any]) -> None:
        d["family_variants"]["by_size_color"]["axes"] = ["name"]

    def other_channel(d: dict[str, Any]) -> None:
        d["channel"]["code"] = "print"

    def shared_group(d: dict[str, Any]) -> None:
        d["families"]["list"]["bag"]["product_groups"].append("Top")

    _refused(hyphenated_option, "extra-large")
    _refused(ee_type, "Community Edition")
    _refused(lbs_unit, "lbs")
    _refused(localizable_axis, "name")
    _refused(other_channel, "ecommerce")
    _refused(shared_group, "Top")
    _refused(lambda d: d["attributes"]["upc"].update(group="nowhere"), "group")
    _refused(lambda d: d["categories"].append({"code": "sale", "parent": "nowhere"}), "nowhere")
