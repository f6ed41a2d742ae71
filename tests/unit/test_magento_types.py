"""The Magento reader on a small corpus written for it (tests/data/magento_types): every product type, the import
file's multi-value cells, store-view rows, and the sample-data fixture shape with its category tree and option lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.catalog.magento import Catalog, CatalogComponent, CatalogDownload, read_catalog

CORPUS = Path(__file__).resolve().parents[1] / "data" / "magento_types"


@pytest.fixture(scope="module")
def export() -> Catalog:
    return read_catalog(CORPUS / "export" / "products.csv")


@pytest.fixture(scope="module")
def fixtures() -> Catalog:
    return read_catalog(CORPUS / "fixtures")


def _by_sku(catalog: Catalog) -> dict[str, object]:
    return {p.sku: p for p in catalog.products}


def test_each_type_keeps_its_magento_type(export: Catalog) -> None:
    types = {p.sku: (p.magento_type, p.product_type) for p in export.products}
    assert types == {
        "MT-SIMPLE": ("simple", "simple"),
        "MT-TEE": ("configurable", "configurable"),
        "MT-TEE-S-Red": ("simple", "simple"),
        "MT-TEE-M-Red": ("simple", "simple"),
        "MT-GIFTCARD-CODE": ("virtual", "simple"),
        "MT-EBOOK": ("downloadable", "simple"),
        "MT-KIT": ("bundle", "simple"),
        "MT-SET": ("grouped", "simple"),
        "MT-KIT-DYN": ("bundle", "simple"),
        "MT-GIFTCARD": ("giftcard", "simple"),
    }


def test_an_unknown_type_is_reported_on_its_line_and_skipped(export: Catalog) -> None:
    odd = [i for i in export.issues if i.column == "product_type"]
    assert [(i.line, "unknown Magento product type 'kit'" in i.message) for i in odd] == [(11, True)]


def test_bundle_options_and_their_components(export: Catalog) -> None:
    kit = _by_sku(export)["MT-KIT"]
    assert kit.bundle_price_type == "fixed"  # type: ignore[attr-defined]
    assert _by_sku(export)["MT-KIT-DYN"].bundle_price_type == "dynamic"  # type: ignore[attr-defined]
    # the strap names a SKU with no row: reported, left out; the mat stays
    assert kit.components == [CatalogComponent("MT-SIMPLE", 1.0, "Mat", True, 0.0)]  # type: ignore[attr-defined]
    missing = [i for i in export.issues if i.column == "bundle_values"]
    assert len(missing) == 1 and "'MT-NOWHERE' has no row" in missing[0].message and missing[0].line == 8


def test_grouped_members_with_their_quantities(export: Catalog) -> None:
    group = _by_sku(export)["MT-SET"]
    # a configurable product cannot be a member of a grouped product in Magento: reported and left out
    assert group.components == [CatalogComponent("MT-SIMPLE", 2.0), CatalogComponent("MT-GIFTCARD-CODE", 1.0)]  # type: ignore[attr-defined]
    assert any(i.column == "associated_skus" and "'MT-TEE' is a configurable" in i.message for i in export.issues)


def test_downloadable_links_and_samples_and_no_parcel(export: Catalog) -> None:
    book = _by_sku(export)["MT-EBOOK"]
    assert book.downloads == [  # type: ignore[attr-defined]
        CatalogDownload("link", "PDF", "https://example.com/book.pdf", None, 0.0),
        CatalogDownload("link", "EPUB", None, "/b/o/book.epub", 1.0),
        CatalogDownload("sample", "Chapter 1", "https://example.com/ch1.pdf", None, None),
    ]
    record = book.canonical()  # type: ignore[attr-defined]
    # nothing to ship: the weight in the file is not carried, and no size or origin is invented
    assert (record["weight"], record["length"], record["width"], record["height"], record["country_of_origin"]) == (
        None, None, None, None, None)
    virtual = _by_sku(export)["MT-GIFTCARD-CODE"].canonical()  # type: ignore[attr-defined]
    assert virtual["weight"] is None and virtual["length"] is None
    shipped = _by_sku(export)["MT-SIMPLE"].canonical()  # type: ignore[attr-defined]
    assert shipped["weight"] == 1.5 and shipped["length"] is not None and shipped["country_of_origin"] == "CN"


def test_configurable_variations_and_store_view_rows(export: Catalog) -> None:
    products = _by_sku(export)
    tee = products["MT-TEE"]
    assert tee.axes == ["size", "color"]  # type: ignore[attr-defined]
    assert tee.categories == ["Men/Tops", "Promotions/Tees"]  # type: ignore[attr-defined]
    assert tee.translations == {"fr_FR": {"name": "T-shirt", "description": "<p>T-shirt</p>"}}  # type: ignore[attr-defined]
    assert [(p.sku, p.size, p.color) for p in export.variants] == [
        ("MT-TEE-S-Red", "S", "Red"), ("MT-TEE-M-Red", "M", "Red")]


def test_fixture_categories_are_walked_down_the_tree(fixtures: Catalog) -> None:
    products = _by_sku(fixtures)
    # Magento walks Men > Bottoms > Pants, starts again at the root after the leaf, then Promotions > Pants
    assert products["MP01"].categories == ["Men/Bottoms/Pants", "Promotions/Pants"]  # type: ignore[attr-defined]
    # "Nowhere" is not below Bottoms: skipped (Magento skips it silently; the reader reports it on the row's first
    # line), and the walk goes on from Bottoms, where the next name, Pants, is found
    assert products["MP02"].categories == ["Men/Bottoms/Pants"]  # type: ignore[attr-defined]
    skipped = [i for i in fixtures.issues if i.column == "category"]
    assert len(skipped) == 1 and "'Nowhere'" in skipped[0].message and skipped[0].line == 9


def test_fixture_option_lists_generate_the_variants(fixtures: Catalog) -> None:
    products = _by_sku(fixtures)
    parent = products["MP01"]
    assert (parent.product_type, parent.axes) == ("configurable", ["size", "color"])  # type: ignore[attr-defined]
    variants = {p.sku: p for p in fixtures.variants if p.parent_sku == "MP01"}
    # size first, as the columns come; "33;2" is the value 33 with a price 2 above the parent's
    assert sorted(variants) == ["MP01-32-Black", "MP01-32-Gray", "MP01-33-Black", "MP01-33-Gray"]
    v = variants["MP01-33-Gray"]
    assert (v.size, v.color, v.price, v.qty, v.weight, v.name) == (  # type: ignore[attr-defined]
        "33", "Gray", 37.0, 10.0, 1.0, "Caesar Warm-Up Pant-33-Gray")
    assert v.categories == parent.categories  # type: ignore[attr-defined]
    # a row without option lists is a simple product; "material" stays a free attribute
    assert products["MP02"].product_type == "simple" and products["MP02"].attributes["material"] == "Cotton"  # type: ignore[attr-defined]


def test_fixture_variants_named_by_associated_product_ids(fixtures: Catalog) -> None:
    products = _by_sku(fixtures)
    assert products["BALL"].product_type == "configurable"  # type: ignore[attr-defined]
    assert sorted(p.sku for p in fixtures.variants if p.parent_sku == "BALL") == ["BALL-55", "BALL-65"]
    assert any(i.column == "associated_product_ids" and "'BALL-99' has no row" in i.message for i in fixtures.issues)
