"""Transforms: units, vendors, countries, whole records, duplicates within a batch, and the reference data file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from catalog_sync.transforms import (
    REFERENCE_DATA_PATH,
    ReferenceDataError,
    UnknownCountry,
    UnknownUnit,
    canonical_vendor,
    duplicates_to_dead_letters,
    find_duplicates,
    issues_to_dead_letters,
    load_reference_data,
    normalise_country,
    normalise_record,
    normalise_unit,
    parse_reference_data,
    vendor_key,
)

# --- units ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["each", "ea", "EA", "Each", "pcs", "piece", " Ea. ", "PC"])
def test_each_spellings(spelling: str) -> None:
    assert normalise_unit(spelling) == "EA"


@pytest.mark.parametrize(("spelling", "code"), [("pair", "PR"), ("Pairs", "PR"), ("PR", "PR"), ("dozen", "DZ")])
def test_other_count_units(spelling: str, code: str) -> None:
    assert normalise_unit(spelling) == code


@pytest.mark.parametrize(
    ("spelling", "code"),
    [("lb", "lbs"), ("LBS", "lbs"), ("pound", "lbs"), ("Pounds", "lbs"), ("kg", "kg"), ("Kilograms", "kg"),
     ("g", "g"), ("oz", "oz")],
)  # fmt: skip
def test_weight_units(spelling: str, code: str) -> None:
    assert normalise_unit(spelling, {"weight"}) == code


def test_unknown_unit_raises_naming_the_value() -> None:
    with pytest.raises(UnknownUnit, match="unknown unit of measure 'bushel'") as err:
        normalise_unit("bushel")
    assert err.value.value == "bushel" and err.value.field == "uom"


def test_unit_of_the_wrong_kind_is_unknown_to_the_field() -> None:
    with pytest.raises(UnknownUnit, match="'kg' is a weight unit, expected length"):
        normalise_unit("kg", {"length"}, field="dimension_unit")


# --- vendors ------------------------------------------------------------------------------------------------------


def test_vendor_variants_share_one_canonical_name() -> None:
    variants = ["Ford Motor Company", "Ford Motor Co.", "FORD MOTOR CO", "ford motor company, inc.", "Ford"]
    assert {canonical_vendor(v) for v in variants} == {"Ford Motor Company"}


def test_vendor_key_strips_legal_suffixes_and_punctuation() -> None:
    assert vendor_key("Acme Widgets, Inc.") == vendor_key("ACME WIDGETS INCORPORATED") == "acme widgets"
    assert vendor_key("Siemens GmbH & Co. KG") == "siemens"
    assert vendor_key("Smith & Co") == vendor_key("Smith and Co.") == "smith"
    assert vendor_key("Widget Corp.") == vendor_key("Widget Corporation") == vendor_key("Widget LLC") == "widget"
    assert vendor_key("Fabrique Hermès Ltd") == "fabrique hermes"
    # The legal form alone is a name: never strip everything.
    assert vendor_key("Company") == "company"


def test_vendors_not_in_the_table_get_a_name_derived_from_their_key() -> None:
    assert canonical_vendor("ACME WIDGETS, INC.") == canonical_vendor("Acme Widgets Corp") == "Acme Widgets"
    assert canonical_vendor("johnson and johnson") == canonical_vendor("Johnson & Johnson") == "Johnson & Johnson"


def test_caller_alias_table_wins_over_the_derived_name() -> None:
    aliases = {"Acme Widgets Inc": "ACME Widgets", "Acme Wdgts": "ACME Widgets"}
    assert canonical_vendor("acme widgets corporation", aliases=aliases) == "ACME Widgets"
    assert canonical_vendor("ACME WDGTS LTD", aliases=aliases) == "ACME Widgets"
    assert canonical_vendor("Someone Else Ltd", aliases=aliases) == "Someone Else"


# --- countries ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["US", "us", "USA", "U.S.A.", "United States", "united states of america"])
def test_united_states(spelling: str) -> None:
    assert normalise_country(spelling) == "US"


@pytest.mark.parametrize(("spelling", "code"), [("Viet Nam", "VN"), ("VNM", "VN"), ("Deutschland", "DE"), ("UK", "GB")])
def test_other_countries(spelling: str, code: str) -> None:
    assert normalise_country(spelling) == code


def test_unknown_country() -> None:
    with pytest.raises(UnknownCountry, match="unknown country 'Atlantis'"):
        normalise_country("Atlantis")


# --- whole records ------------------------------------------------------------------------------------------------


def test_normalise_record_applies_every_rule_and_leaves_the_input_alone() -> None:
    record = {
        "sku": "24-MB01", "uom": "each", "weight": 1.5, "weight_unit": "Pounds", "dimension_unit": "inches",
        "country_of_origin": "Viet Nam", "vendor_name": "Ford Motor Co.", "name": "Joust Duffle Bag",
    }  # fmt: skip
    out, issues = normalise_record(record)
    assert issues == []
    assert out == {
        "sku": "24-MB01", "uom": "EA", "weight": 1.5, "weight_unit": "lbs", "dimension_unit": "in",
        "country_of_origin": "VN", "vendor_name": "Ford Motor Company", "name": "Joust Duffle Bag",
    }  # fmt: skip
    assert record["uom"] == "each"


def test_normalise_record_flags_what_it_cannot_normalise() -> None:
    record = {"sku": "A", "uom": "bushel", "weight_unit": "cm", "country_of_origin": "Atlantis", "vendor_name": None}
    out, issues = normalise_record(record)
    assert [i.field for i in issues] == ["uom", "weight_unit", "country_of_origin"]
    assert out == record  # unnormalisable values are kept as they came, for the dead letter
    letters = issues_to_dead_letters(
        record, issues, load_id="L", flow="erp_to_pim", entity="product", source_system="erp", target_system="pim"
    )
    assert [(d["record_key"], d["reason_kind"], d["expectation"]) for d in letters] == [
        ("A", "transform", "uom"), ("A", "transform", "weight_unit"), ("A", "transform", "country_of_origin"),
    ]  # fmt: skip


def test_empty_fields_are_left_to_the_gates() -> None:
    out, issues = normalise_record({"sku": "A", "uom": "", "country_of_origin": None})
    assert issues == [] and out == {"sku": "A", "uom": "", "country_of_origin": None}


# --- duplicates ---------------------------------------------------------------------------------------------------


def _item(sku: str | None, upc: str | None = None, **extra: object) -> dict[str, object]:
    return {"sku": sku, "upc": upc, "name": f"item {sku}", **extra}


def test_same_sku_twice_with_identical_payload_keeps_one_and_dead_letters_none() -> None:
    first = _item("A", "012345678905")
    clean, duplicates = find_duplicates([first, dict(reversed(list(first.items())))])
    assert duplicates == []
    assert clean == [first]
    assert clean[0] is first


def test_same_sku_with_conflicting_payloads_dead_letters_every_occurrence() -> None:
    batch = [_item("A", weight=1.0), _item("B"), _item("A", weight=2.0), _item("A", weight=1.0)]
    clean, duplicates = find_duplicates(batch)
    assert clean == [batch[1]]
    assert [(d.rule, d.record_key, d.position) for d in duplicates] == [("sku", "A", 0), ("sku", "A", 2), ("sku", "A", 3)]
    assert "SKU A occurs 3 times in the batch with different payloads" == duplicates[0].reason


def test_one_upc_on_two_skus_dead_letters_both_naming_the_other() -> None:
    batch = [_item("A", "012345678905"), _item("B", "0012345678905"), _item("C", "036000291452")]
    clean, duplicates = find_duplicates(batch)
    assert clean == [batch[2]]
    assert [(d.rule, d.record_key, d.other_skus) for d in duplicates] == [("upc", "A", ("B",)), ("upc", "B", ("A",))]
    assert duplicates[0].reason == "UPC 012345678905 of SKU A is also on SKU B"


def test_repeated_identical_record_does_not_count_as_a_second_sku_for_its_upc() -> None:
    clean, duplicates = find_duplicates([_item("A", "1"), _item("A", "1"), _item(None, "1"), _item("D")])
    assert duplicates == []
    assert [r["sku"] for r in clean] == ["A", None, "D"]  # no SKU: kept for the gates to reject


def test_duplicates_on_a_dataframe() -> None:
    batch = [_item("A", "1"), _item("A", "1"), _item("B", "2", weight=1.0), _item("B", "2", weight=3.0), _item("C", "1")]
    frame = pd.DataFrame(batch, index=[10, 11, 12, 13, 14])
    clean, duplicates = find_duplicates(frame)
    assert isinstance(clean, pd.DataFrame)
    assert clean.empty
    assert sorted((d.rule, d.record_key) for d in duplicates) == [("sku", "B"), ("sku", "B"), ("upc", "A"), ("upc", "C")]
    # Missing values of a frame (NaN) become JSON nulls in the dead-letter payload.
    assert next(d for d in duplicates if d.record_key == "A").record["weight"] is None


def test_duplicates_become_one_dead_letter_per_sku_and_rule() -> None:
    batch = [_item("A", "1", weight=1.0), _item("A", "1", weight=2.0), _item("B", "1")]
    _, duplicates = find_duplicates(batch)
    letters = duplicates_to_dead_letters(
        duplicates, load_id="L", flow="erp_to_pim", entity="product", source_system="erp", target_system="pim"
    )
    by_key = {(d["record_key"], d["expectation"]): d for d in letters}
    assert set(by_key) == {("A", "duplicate_sku"), ("A", "duplicate_upc"), ("B", "duplicate_upc")}
    assert all(d["reason_kind"] == "duplicate" for d in letters)
    assert by_key[("A", "duplicate_sku")]["payload"]["positions"] == [0, 1]
    assert by_key[("B", "duplicate_upc")]["payload"]["other_skus"] == ["A"]


def test_duplicate_split_scales() -> None:
    n = 50_000
    batch = [{"sku": f"S{i:06d}", "upc": f"{i:012d}", "name": "x"} for i in range(n)]
    batch.append({"sku": "S000007", "upc": "000000000007", "name": "y"})
    clean, duplicates = find_duplicates(batch)
    assert len(clean) == n - 1
    assert {d.position for d in duplicates} == {7, n}


# --- reference data -----------------------------------------------------------------------------------------------


def test_reference_data_rejects_an_alias_given_to_two_units() -> None:
    text = "units:\n  EA: {kind: count, aliases: [each]}\n  PR: {kind: count, aliases: [each]}\n"
    with pytest.raises(ReferenceDataError, match="alias 'each' already means EA"):
        parse_reference_data(text)


def test_reference_data_rejects_a_bad_country_code() -> None:
    with pytest.raises(ReferenceDataError, match="countries.USA"):
        parse_reference_data("countries:\n  USA: {alpha3: USA, names: [United States]}\n")


def test_a_refreshed_reference_file_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "reference_data.yaml"
    path.write_text(REFERENCE_DATA_PATH.read_text())
    ref = load_reference_data(path)
    with pytest.raises(UnknownUnit):
        normalise_unit("bushel", ref=ref)
    path.write_text(path.read_text().replace("units:\n", "units:\n  BU: {kind: count, aliases: [bushel]}\n", 1))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    refreshed = load_reference_data(path)
    assert refreshed is not ref
    assert normalise_unit("Bushel", ref=refreshed) == "BU"
