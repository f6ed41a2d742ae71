"""The reference tables' pure parts: the frozen seed of migration 0006, the diff and its Markdown, the gate's value
sets (no network, no database)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from catalog_sync import refdata
from catalog_sync.quality.suites import GateInputs
from catalog_sync.quality.suites.products import checks

MIGRATION = (Path(refdata.__file__).parent / "hub" / "migrations" / "versions" / "0006_reference_data.py")


def _migration_seed() -> tuple[list[tuple[str, dict[str, object]]], list[tuple[str, dict[str, object]]]]:
    spec = importlib.util.spec_from_file_location("migration_0006", MIGRATION)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SEED_UNITS, module.SEED_COUNTRIES


def test_the_migration_seeds_what_the_gates_accepted_before() -> None:
    units, countries = _migration_seed()
    seed = refdata.gate_seed()
    assert dict(units) == seed["unit"] and dict(countries) == seed["country"]
    # "set" was turned into SET by the transforms and then refused by the layer-0 gate: refused before, not seeded
    assert "SET" not in dict(units) and {"EA", "PR", "PK", "BX", "CS"} <= set(dict(units))


def test_the_diff_names_added_removed_and_changed_rows_and_ignores_alias_order() -> None:
    current = {"unit": {"EA": {"kind": "count", "aliases": ["ea", "each"]},
                        "CS": {"kind": "count", "aliases": ["cs"]}},
               "country": {"US": {"alpha3": "USA", "names": ["United States"]}}, "category": {}}
    owners = {"unit": {"EA": {"kind": "count", "aliases": ["each", "ea"]}, "BAG": {"kind": "count", "aliases": []}},
              "country": {"US": {"alpha3": "USA", "names": ["United States", "USA"]}}, "category": {}}
    diff = refdata.diff_tables(current, owners)
    assert diff == {
        "unit": {"added": [{"code": "BAG", "attributes": {"kind": "count", "aliases": []}}],
                 "removed": [{"code": "CS", "attributes": {"kind": "count", "aliases": ["cs"]}}], "changed": []},
        "country": {"added": [], "removed": [], "changed": [
            {"code": "US", "before": {"alpha3": "USA", "names": ["United States"]},
             "after": {"alpha3": "USA", "names": ["United States", "USA"]}}]},
    }
    assert refdata.change_count(diff) == 3
    text = refdata.diff_markdown(diff, 7)
    assert "**added** `BAG` kind=count" in text and "**removed** `CS`" in text and "**changed** `US`" in text
    assert refdata.diff_tables(current, {**current, "category": {}}) == {}  # an empty PIM tree removes nothing


def test_the_layer0_unit_checks_take_the_applied_codes() -> None:
    applied = refdata.Applied(("v",), {"unit": {"BAG": {"kind": "count"}, "kg": {"kind": "weight"},
                                                "m": {"kind": "length"}}})
    value_sets = applied.unit_value_sets()
    assert value_sets == {"uom": frozenset({"BAG"}), "weight_unit": frozenset({"kg"}),
                          "dimension_unit": frozenset({"m"})}
    by_name = {c.name: c for c in checks(0, GateInputs(unit_codes=value_sets))}
    assert by_name["products.l0.uom_known"].params["value_set"] == frozenset({"BAG"})
    assert by_name["products.l0.dimension_unit_known"].params["value_set"] == frozenset({"m"})
    assert applied.categories() is None
    assert applied.reference_data().units["bag"].code == "BAG"
