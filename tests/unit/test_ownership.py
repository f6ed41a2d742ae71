"""Attribute ownership: the shipped rules, the refusals they produce, and how a bad ownership file is reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog_sync.domain import HOT_FIELDS, PRODUCT_FIELDS
from catalog_sync.governance import (
    OwnershipError,
    load_ownership,
    parse_ownership,
    refusals_to_dead_letters,
)
from catalog_sync.governance.ownership import DEFAULT_PATH

ERP_FIELDS = {
    "sku", "parent_sku", "product_type", "item_type", "components", "kit_pricing", "lifecycle_status", "upc", "product_group", "uom", "country_of_origin",
    "weight", "weight_unit", "length", "width", "height", "dimension_unit", "vendor_name", "reference_price",
    "currency", "stock", "live_price",
}  # fmt: skip
PIM_FIELDS = {
    "axes", "name", "description", "short_description", "meta_title", "meta_description", "url_key", "category",
    "categories", "color", "size", "translations", "relationships", "asset_links",
}  # fmt: skip


@pytest.fixture(scope="module")
def rules():
    return load_ownership()


# --- the shipped file ------------------------------------------------------------------------------------------


def test_every_canonical_field_and_hot_field_has_an_owner(rules) -> None:
    for name in (*PRODUCT_FIELDS, "stock", "live_price"):
        assert rules.owner(name) in {"erp", "pim"}, name


def test_owners_split_as_agreed(rules) -> None:
    assert set(rules.fields_owned_by("erp")) == ERP_FIELDS
    assert set(rules.fields_owned_by("pim")) == PIM_FIELDS
    assert rules.fields_owned_by("supplier") == ()
    assert rules.fields_owned_by("storefront") == ()
    assert {"binary", "role", "status", "valid_from", "valid_to", "rights_expires_at", "rights_regions"} <= set(
        rules.fields_owned_by("dam", entity="asset")
    )


def test_temperatures_agree_with_the_domain_hot_fields(rules) -> None:
    hot = {name for name in rules.attributes() if rules.temperature(name) == "hot"}
    assert hot == set(HOT_FIELDS)


def test_only_the_owner_may_write(rules) -> None:
    assert rules.may_write("erp", "reference_price")
    assert not rules.may_write("pim", "reference_price")
    assert not rules.may_write("supplier", "lifecycle_status")
    assert rules.may_write("dam", "status", entity="asset")
    assert not rules.may_write("pim", "status", entity="asset")
    assert not rules.may_write("erp", "no_such_attribute")


# --- write checks ----------------------------------------------------------------------------------------------


def test_supplier_setting_lifecycle_status_is_refused(rules) -> None:
    check = rules.check_write("supplier", "pim", {"sku": "MH01-XS-Black", "lifecycle_status": "discontinued"})
    assert not check.ok
    assert check.allowed == {"sku": "MH01-XS-Black"}
    (refusal,) = check.refused
    assert (refusal.attribute, refusal.writer, refusal.owner, refusal.target) == (
        "lifecycle_status", "supplier", "erp", "pim",
    )  # fmt: skip
    assert "owned by erp" in refusal.reason and "supplier" in refusal.reason


def test_erp_copying_lifecycle_status_into_the_pim_is_allowed(rules) -> None:
    record = {"sku": "MH01-XS-Black", "lifecycle_status": "active", "upc": "012345678905", "weight": 1.2}
    check = rules.check_write("erp", "pim", record)
    assert check.ok
    assert check.allowed == record


def test_pim_writing_reference_price_into_the_erp_is_refused(rules) -> None:
    check = rules.check_write("pim", "erp", {"sku": "24-MB01", "reference_price": 34.0, "name": "Joust Duffle"})
    assert [(r.attribute, r.owner) for r in check.refused] == [("reference_price", "erp"), ("name", "pim")]
    assert check.allowed == {"sku": "24-MB01"}


def test_hot_data_never_goes_through_the_pim(rules) -> None:
    into_pim = rules.check_write("erp", "pim", {"sku": "A", "stock": 5, "live_price": 9.5})
    assert {r.attribute for r in into_pim.refused} == {"stock", "live_price"}
    assert all("hot data" in r.reason for r in into_pim.refused)
    direct = rules.check_write("erp", "storefront", {"sku": "A", "stock": 5, "lifecycle_status": "active"})
    assert direct.ok
    # The PIM holds a copy of the status but may not relay it: the storefront gets it from the ERP directly.
    relayed = rules.check_write("pim", "storefront", {"sku": "A", "lifecycle_status": "active", "weight": 2})
    assert [r.attribute for r in relayed.refused] == ["lifecycle_status"]
    assert relayed.allowed == {"sku": "A", "weight": 2}


def test_cold_erp_data_reaches_the_storefront_through_the_pim_only(rules) -> None:
    assert rules.check_write("pim", "storefront", {"sku": "A", "upc": "1", "name": "x"}).ok
    direct = rules.check_write("erp", "storefront", {"sku": "A", "upc": "1"})
    assert [r.attribute for r in direct.refused] == ["upc"]


def test_supplier_may_propose_content_to_the_pim_but_not_beyond(rules) -> None:
    assert rules.check_write("supplier", "pim", {"sku": "A", "description": "Roomy duffle"}).ok
    assert not rules.check_write("supplier", "storefront", {"sku": "A", "description": "Roomy duffle"}).ok


def test_undeclared_attribute_is_refused_with_no_owner(rules) -> None:
    check = rules.check_write("erp", "pim", {"sku": "A", "warehouse_bin": "B-12"})
    (refusal,) = check.refused
    assert refusal.owner is None
    assert "no owner" in refusal.reason


def test_asset_records_are_checked_against_the_asset_rules(rules) -> None:
    check = rules.check_write("pim", "dam", {"id": "a-1", "status": "approved"}, entity="asset")
    assert [r.attribute for r in check.refused] == ["status"]
    assert rules.check_write("dam", "pim", {"id": "a-1", "status": "approved", "role": "hero"}, entity="asset").ok


def test_refusals_become_one_dead_letter_per_record_and_attribute(rules) -> None:
    refused = [
        *rules.check_write("supplier", "pim", {"sku": "A", "lifecycle_status": "active", "upc": "1"}).refused,
        *rules.check_write("supplier", "pim", {"sku": "B", "lifecycle_status": "active"}).refused,
    ]
    letters = refusals_to_dead_letters(refused, "load-1", "supplier_to_pim", "product", "pim")
    assert [(d["record_key"], d["expectation"]) for d in letters] == [
        ("A", "lifecycle_status"), ("A", "upc"), ("B", "lifecycle_status"),
    ]  # fmt: skip
    first = letters[0]
    assert first["reason_kind"] == "ownership"
    assert first["source_system"] == "supplier" and first["target_system"] == "pim"
    assert first["payload"] == {"attribute": "lifecycle_status", "value": "active", "writer": "supplier", "owner": "erp"}


def test_dead_letters_land_in_the_hub(rules, hub_url: str) -> None:
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope

    refused = rules.check_write("supplier", "pim", {"sku": "A", "lifecycle_status": "x", "upc": "1"}).refused
    letters = refusals_to_dead_letters(refused, "load-1", "supplier_to_pim", "product", "pim")
    with session_scope() as session:
        repo.dead_letter(session, letters)
        repo.dead_letter(session, letters)  # a re-run bumps the open letters instead of adding rows
    with session_scope() as session:
        assert repo.count_dead_letters(session, "load-1") == 2


# --- loading and validation ------------------------------------------------------------------------------------

GOOD = """\
version: 1
entities:
  product:
    key: sku
    attributes:
{attributes}
"""


def _file_with(extra: str, drop: str | None = None) -> str:
    """The shipped file's product section with ``drop`` removed and ``extra`` added at the end."""
    rules = load_ownership()
    lines = []
    for name in rules.attributes():
        if name == drop:
            continue
        rule = rules.rule(name)
        flows = ", ".join(str(f) for f in rule.flows)
        lines.append(
            f"      {name}:\n        owner: {rule.owner}\n        temperature: {rule.temperature}\n"
            f"        readers: [{', '.join(sorted(rule.readers))}]\n        flows: [{flows}]"
        )
    return GOOD.format(attributes="\n".join(lines) + "\n" + extra)


def test_a_rebuilt_file_is_valid() -> None:
    rules = parse_ownership(_file_with(""))
    assert rules.owner("live_price") == "erp"


def test_unknown_system_is_named_with_its_line() -> None:
    text = _file_with("      warehouse_bin:\n        owner: wms\n        temperature: cold\n        readers: []\n")
    with pytest.raises(OwnershipError) as err:
        parse_ownership(text)
    line = text.splitlines().index("        owner: wms") + 1
    assert err.value.errors == [f"line {line}: product.warehouse_bin: unknown system 'wms' (known: dam, erp, pim, storefront, supplier)"]


def test_unknown_system_in_a_flow_is_reported() -> None:
    text = _file_with(
        "      bin:\n        owner: erp\n        temperature: cold\n        readers: [pim]\n        flows: [erp -> wms]\n"
    )
    with pytest.raises(OwnershipError, match=r"product\.bin: unknown system 'wms' in flow 'erp -> wms'"):
        parse_ownership(text)


def test_attribute_without_owner() -> None:
    text = _file_with("      bin:\n        temperature: cold\n        readers: [pim]\n        flows: []\n")
    with pytest.raises(OwnershipError, match=r"line \d+: product\.bin: attribute without owner"):
        parse_ownership(text)


def test_canonical_field_missing_from_the_file() -> None:
    with pytest.raises(OwnershipError) as err:
        parse_ownership(_file_with("", drop="upc"))
    assert any("product.upc: attribute without owner" in e for e in err.value.errors)


def test_duplicate_attribute_names_both_lines() -> None:
    extra = "      sku:\n        owner: pim\n        temperature: cold\n        readers: []\n        flows: []\n"
    text = _file_with(extra)
    with pytest.raises(OwnershipError) as err:
        parse_ownership(text)
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if line == "      sku:"]
    assert err.value.errors == [f"line {lines[1]}: product.sku: duplicate attribute (first defined at line {lines[0]})"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("owner: erp\n        temperature: warm\n        readers: []\n        flows: []", "temperature must be hot or cold"),
        (
            "owner: erp\n        temperature: cold\n        readers: [storefront]\n        flows: [pim -> storefront]",
            "starts at pim, which never receives bin",
        ),
        (
            "owner: erp\n        temperature: cold\n        readers: [pim]\n        flows: [erp -> pim, pim -> erp]",
            "writes back into the owner erp",
        ),
        ("owner: erp\n        temperature: cold\n        readers: []\n        flows: [erp -> pim]", "not among its readers"),
        (
            "owner: erp\n        temperature: hot\n        readers: [pim, storefront]\n"
            "        flows: [erp -> pim, pim -> storefront]",
            "hot data goes straight from its owner",
        ),
        (
            "owner: erp\n        temperature: cold\n        readers: [storefront]\n        flows: [erp -> storefront]",
            "cold data reaches the storefront through the PIM",
        ),
        ("owner: erp\n        temperature: cold\n        readers: []\n        flows: [erp => pim]", "not of the form"),
        ("owner: erp\n        temperature: cold\n        readers: []\n        flows: []\n        ower: pim", "unknown key 'ower'"),
    ],
)
def test_structural_mistakes_are_reported(spec: str, message: str) -> None:
    with pytest.raises(OwnershipError) as err:
        parse_ownership(_file_with(f"      bin:\n        {spec}\n"))
    assert len(err.value.errors) == 1
    assert "product.bin" in err.value.errors[0] and message in err.value.errors[0]


def test_every_problem_is_reported_at_once() -> None:
    extra = (
        "      bin:\n        owner: wms\n        temperature: cold\n        readers: []\n        flows: []\n"
        "      aisle:\n        temperature: cold\n        readers: []\n        flows: []\n"
    )
    with pytest.raises(OwnershipError) as err:
        parse_ownership(_file_with(extra, drop="stock"))
    assert len(err.value.errors) == 3
    assert "3 problem(s)" in str(err.value)


def test_load_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "ownership.yaml"
    path.write_text(DEFAULT_PATH.read_text())
    first = load_ownership(path)
    assert load_ownership(path) is first
    edited = path.read_text().replace(
        "      reference_price:\n        # The baseline price only; what shoppers pay is live_price, which bypasses the PIM.\n"
        "        owner: erp",
        "      reference_price:\n        owner: pim",
    ).replace("        readers: [pim]\n        flows: [erp -> pim]\n      currency:", "        readers: [erp]\n        flows: []\n      currency:")
    path.write_text(edited)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later mtime whatever the clock
    reloaded = load_ownership(path)
    assert reloaded is not first
    assert reloaded.owner("reference_price") == "pim"
