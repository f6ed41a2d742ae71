"""The Magento reader and the scaler: real Luma files, plus malformed exports written by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.catalog import CatalogError, read_catalog, scale_catalog, upc_for
from catalog_sync.catalog.derive import upc_valid
from catalog_sync.domain import PRODUCT_FIELDS
from tests.conftest import LUMA

CONFIGURABLE = LUMA / "ConfigurableSampleData_products.csv"


@pytest.fixture(scope="module")
def luma():  # type: ignore[no-untyped-def]
    return read_catalog(LUMA)


def test_configurable_file_yields_147_parents_and_1847_variants() -> None:
    catalog = read_catalog(CONFIGURABLE)
    assert len(catalog.parents) == 147
    assert len(catalog.variants) == 1847
    assert catalog.issues == []
    parents = {p.sku for p in catalog.parents}
    assert all(v.parent_sku in parents for v in catalog.variants)
    mh01 = next(p for p in catalog.parents if p.sku == "MH01")
    assert mh01.axes == ["size", "color"]
    assert mh01.category == "Men/Tops/Hoodies & Sweatshirts"
    assert "Collections/Eco Friendly" in mh01.categories
    child = next(p for p in catalog.products if p.sku == "MH01-XS-Black")
    assert (child.parent_sku, child.size, child.color, child.weight, child.price) == ("MH01", "XS", "Black", 1.0, 52.0)
    assert child.images[0].role == "hero" and child.images[0].filename == "mh01-black_main.jpg"


def test_folder_reads_gear_shape_with_its_image_lists(luma) -> None:  # type: ignore[no-untyped-def]
    bag = next(p for p in luma.products if p.sku == "24-MB04")
    assert bag.product_type == "simple" and bag.parent_sku is None
    assert bag.categories[0] == "Gear/Bags" and bag.product_group == "Bag"
    assert [i.role for i in bag.images] == ["hero", "gallery"]
    assert len(luma.parents) == 147  # the gear files add simples, never parents
    assert luma.find_image("/m/h/mh01-black_main.jpg") is not None
    assert luma.find_image("/m/b/mb01-blue-0.jpg") is None


def test_canonical_record_has_the_shared_shape_and_derived_erp_fields(luma) -> None:  # type: ignore[no-untyped-def]
    record = next(p for p in luma.products if p.sku == "MH01-XS-Black").canonical()
    assert tuple(record) == PRODUCT_FIELDS
    assert record["uom"] == "EA" and record["weight_unit"] == "lbs" and record["lifecycle_status"] == "active"
    assert upc_valid(record["upc"]) and record["upc"] == upc_for("MH01-XS-Black")
    assert record["vendor_name"] and record["country_of_origin"]


def test_upc_check_digit_matches_gs1() -> None:
    assert upc_valid("036000291452")  # the GS1 textbook example
    assert not upc_valid("036000291453")
    assert all(upc_valid(upc_for(f"SKU-{i}")) for i in range(200))


def test_malformed_rows_are_reported_by_file_line_and_column_without_losing_others(tmp_path: Path) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(
        "sku,product_type,name,weight,price,qty,configurable_variations\n"
        "A-1,simple,Good one,1,10,5,\n"
        ",simple,No sku,1,10,5,\n"
        "A-2,simple,\"Bad weight\nacross two lines\",heavy,10,5,\n"
        "A-3,simple,Short row\n"
        "A-1,simple,Duplicate,1,10,5,\n"
        "P-1,configurable,Parent,,20,0,\"sku=A-2,size=M|sku=GHOST,size=L\"\n",
        encoding="utf-8",
    )
    catalog = read_catalog(csv_file)
    assert [p.sku for p in catalog.products] == ["A-1", "A-2", "P-1"]
    issues = {(i.line, i.column) for i in catalog.issues}
    assert (3, "sku") in issues  # empty SKU
    assert (4, "weight") in issues  # row kept, weight left empty
    assert (6, None) in issues  # short row (line 6: the quoted cell made line 4 span two lines)
    assert (7, "sku") in issues  # duplicate
    assert (8, "configurable_variations") in issues  # GHOST has no row
    a2 = next(p for p in catalog.products if p.sku == "A-2")
    assert a2.weight is None and a2.parent_sku == "P-1"
    assert all("export.csv" in str(i) for i in catalog.issues)


def test_unreadable_exports_fail_with_file_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "nosku.csv"
    bad.write_text("name,price\nx,1\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="nosku.csv"):
        read_catalog(bad)
    with pytest.raises(CatalogError, match="no such file"):
        read_catalog(tmp_path / "missing")


def test_scaler_keeps_shape_is_exact_and_deterministic(luma) -> None:  # type: ignore[no-untyped-def]
    first = list(scale_catalog(luma, 5000))
    again = list(scale_catalog(luma, 5000))
    assert len(first) == 5000
    assert [p.sku for p in first] == [p.sku for p in again]
    skus = [p.sku for p in first]
    assert len(set(skus)) == 5000
    seen: set[str] = set()
    for p in first:  # every variant comes after its parent, and copies keep axes and images
        if p.parent_sku:
            assert p.parent_sku in seen
        seen.add(p.sku)
    copies = [p for p in first if p.sku.endswith("-K0001")]
    assert any(p.product_type == "configurable" and p.axes == ["size", "color"] for p in copies)
    assert any(p.images for p in copies)
    assert set(skus[: len(luma.products)]) == {p.sku for p in luma.products}
    with pytest.raises(ValueError):
        next(scale_catalog(luma, 0))
