"""Every Magento product type through the nightly cold flow, end to end: what the ERP holds of it, what reaches the
PIM, what the storefront shows, and what is dead-lettered with which reason (the corpus of
tests/data/magento_types, loaded into a fresh sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog_sync.connectors.mapping import akeneo_product_to_canonical
from catalog_sync.flows.systems import Systems
from tests.conftest import load_sandbox
from tests.integration.test_cold_flow import open_letters, pim_record, whole_run

CORPUS = Path(__file__).resolve().parents[1] / "data" / "magento_types" / "export" / "products.csv"


@pytest.fixture
def systems(fresh_sandbox: Any) -> Any:
    load_sandbox(fresh_sandbox, CORPUS)
    fresh_sandbox.settings(storefront_points_max=10_000_000, storefront_points_restore_per_s=10_000_000)
    bundle = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    yield bundle
    bundle.close()


def _stock(systems: Systems, sku: str) -> dict[str, Any]:
    return {str(level["location"]): level["quantity"] for page in systems.erp.iter_stock(sku)
            for level in page.records if level.get("sku") == sku}


def _variant(systems: Systems, handle: str) -> dict[str, Any]:
    product = systems.storefront.find_by_handles([handle]).get(handle)
    assert product is not None, f"{handle} is not on the storefront"
    (variant,) = product["variants"]
    return dict(variant)


def test_virtual_and_downloadable_need_no_shipping(hub_url: str, systems: Systems) -> None:
    # The shop sells codes from a pool the ERP counts: a virtual item the ERP keeps stock for is tracked
    assert systems.erp.set_stock("MT-GIFTCARD-CODE", "DC-EAST", 500).ok

    _, result = whole_run("manual__types_unshipped", systems)
    assert result["hops"]["pim->storefront"]["read"] == (result["hops"]["pim->storefront"]["delivered"]
                                                         + result["hops"]["pim->storefront"]["unchanged"]
                                                         + result["hops"]["pim->storefront"]["dead_lettered"])

    # ERP: the item keeps its kind; no parcel (weight, dimensions, origin) and no stock were made up for the e-book
    ebook = systems.erp.get_item("MT-EBOOK")
    assert ebook is not None and (ebook["product_type"], ebook["item_type"]) == ("simple", "downloadable")
    assert ebook["weight"]["value"] is None and ebook["dimensions"]["length"] is None
    assert ebook["country_of_origin"] is None and _stock(systems, "MT-EBOOK") == {}
    assert systems.erp.get_item("MT-GIFTCARD-CODE")["item_type"] == "virtual"  # type: ignore[index]

    # PIM: the kind is an ERP-owned attribute, and no weight was required of them (both were published)
    assert pim_record(systems, "MT-EBOOK")["item_type"] == "downloadable"
    assert pim_record(systems, "MT-GIFTCARD-CODE")["item_type"] == "virtual"
    assert pim_record(systems, "MT-EBOOK")["weight"] is None

    # Storefront: neither needs shipping; the e-book (no ERP stock) is not tracked, the stocked code pool is
    ebook_variant = _variant(systems, "mt-ebook")
    assert (ebook_variant["requires_shipping"], ebook_variant["tracked"], ebook_variant["weight"]) == (
        False, False, None)
    code_variant = _variant(systems, "mt-gift")
    assert (code_variant["requires_shipping"], code_variant["tracked"]) == (False, True)
    # a shipped item is as before: it needs shipping and is tracked
    tote = _variant(systems, "mt-simple")
    assert (tote["requires_shipping"], tote["tracked"]) == (True, True) and tote["weight"] == 1.5
    assert not open_letters(record_key="MT-EBOOK") and not open_letters(record_key="MT-GIFTCARD-CODE")


#: What the storefront says of each kit it cannot carry, by SKU: the start of the dead letter's reason.
KIT_REASONS = {
    "MT-SET": "grouped product: the storefront channel (Shopify) carries no grouped products",
    "MT-KIT-DYN": "dynamic-price bundle: the storefront channel (Shopify) sells a bundle at one fixed price",
}


def test_fixed_bundles_are_shopify_bundles_other_kits_are_refused_by_the_channel(hub_url: str, systems: Systems) -> None:
    _, result = whole_run("manual__types_kits", systems)

    # ERP: each kit is a non-stock item listing its components (SKU and quantity) and, for a bundle, its pricing;
    # no parcel was made up for it
    kits = {sku: systems.erp.get_item(sku) for sku in ("MT-KIT", "MT-KIT-DYN", "MT-SET")}
    assert {sku: (i["product_type"], i["item_type"], i["kit_pricing"], i["components"])  # type: ignore[index]
            for sku, i in kits.items()} == {
        # the strap of the file names a SKU with no row: the reader reported it, the kit holds the mat only
        "MT-KIT": ("simple", "bundle", "fixed", [{"sku": "MT-SIMPLE", "quantity": 1.0}]),
        "MT-KIT-DYN": ("simple", "bundle", "dynamic", [{"sku": "MT-SIMPLE", "quantity": 1.0},
                                                        {"sku": "MT-GIFTCARD-CODE", "quantity": 1.0}]),
        # a configurable product cannot be a member of a grouped product: left out by the reader
        "MT-SET": ("simple", "grouped", None, [{"sku": "MT-SIMPLE", "quantity": 2.0},
                                                {"sku": "MT-GIFTCARD-CODE", "quantity": 1.0}]),
    }
    for sku, item in kits.items():
        assert _stock(systems, sku) == {} and item["weight"]["value"] is None, sku  # type: ignore[index]
        assert item["dimensions"]["length"] is None, sku  # type: ignore[index]
    assert kits["MT-KIT-DYN"]["reference_price"]["amount"] is None  # type: ignore[index]  # priced by its parts

    # PIM: every kit arrived (no price asked of the dynamic bundle or the grouped product, no weight of any), its
    # components as Akeneo associations under the type the bootstrap created for its kind
    assert result["hops"]["erp->pim"]["dead_lettered"] == 0
    associations = {sku: systems.pim.get_product(sku)["associations"] for sku in kits}  # type: ignore[index]
    assert associations["MT-KIT"] == {"bundle_components": {"products": ["MT-SIMPLE"], "product_models": [],
                                                            "groups": []}}
    assert associations["MT-KIT-DYN"]["bundle_components"]["products"] == ["MT-SIMPLE", "MT-GIFTCARD-CODE"]
    assert associations["MT-SET"] == {"grouped_members": {"products": ["MT-SIMPLE", "MT-GIFTCARD-CODE"],
                                                          "product_models": [], "groups": []}}
    for sku, kind, pricing in (("MT-KIT", "bundle", "fixed"), ("MT-KIT-DYN", "bundle", "dynamic"),
                               ("MT-SET", "grouped", None)):
        record = pim_record(systems, sku)
        assert (record["item_type"], record["kit_pricing"]) == (kind, pricing), sku
        assert [c["sku"] for c in record["components"]] == [c["sku"] for c in kits[sku]["components"]]  # type: ignore[index]

    # Storefront: the fixed-price bundle is a Shopify product fixed bundle of its components (the shop's own
    # products), at its own price; the dynamic bundle and the grouped product are not published, as a simple
    # product or otherwise: each is dead-lettered once, naming its type and the channel; their components are on
    # the shop as products of their own
    shown = systems.storefront.find_by_handles(["mt-kit", "mt-kit-dyn", "mt-set", "mt-simple", "mt-gift"])
    assert sorted(shown) == ["mt-gift", "mt-kit", "mt-simple"]
    kit = shown["mt-kit"]
    assert [(v["sku"], float(v["price"])) for v in kit["variants"]] == [("MT-KIT", 45.0)]
    assert systems.storefront.bundle_components(kit["id"]) == [{"handle": "mt-simple", "quantity": 1}]
    assert systems.storefront.bundle_components(shown["mt-simple"]["id"]) == []
    assert not open_letters(record_key="MT-KIT")
    for sku, reason in KIT_REASONS.items():
        (letter,) = open_letters(record_key=sku)
        assert (letter.reason_kind, letter.source_system, letter.target_system) == ("channel", "pim", "storefront")
        assert letter.reason.startswith(reason), letter.reason
    hop = result["hops"]["pim->storefront"]
    assert hop["read"] == hop["delivered"] + hop["unchanged"] + hop["dead_lettered"]
    assert hop["dead_lettered"] == len(KIT_REASONS)

    # A second run with no change leaves the bundle as it is (its fingerprint), counted unchanged
    _, again = whole_run("manual__types_kits_again", systems)
    hop = again["hops"]["pim->storefront"]
    assert hop["read"] == hop["delivered"] + hop["unchanged"] + hop["dead_lettered"]
    assert hop["delivered"] == 0 and hop["dead_lettered"] == len(KIT_REASONS), hop
    assert systems.storefront.find_by_handles(["mt-kit"])["mt-kit"]["id"] == kit["id"]
    assert systems.storefront.bundle_components(kit["id"]) == [{"handle": "mt-simple", "quantity": 1}]


#: The fate of each product of the corpus, as the README's table states it: (what the ERP and the PIM say the item
#: is, the storefront handle it is published under or None, and whether it needs shipping there, or the start of
#: the reason it was dead-lettered with). A variant is published inside its parent's product.
FATES: dict[str, tuple[str, str | None, bool | str]] = {
    "MT-SIMPLE": ("simple", "mt-simple", True),
    "MT-TEE": ("configurable", "mt-tee", True),
    "MT-TEE-S-Red": ("simple", "mt-tee", True),
    "MT-TEE-M-Red": ("simple", "mt-tee", True),
    "MT-GIFTCARD-CODE": ("virtual", "mt-gift", False),
    "MT-EBOOK": ("downloadable", "mt-ebook", False),
    "MT-GIFTCARD": ("giftcard", "mt-giftcard", True),
    "MT-KIT": ("bundle", "mt-kit", True),
    "MT-KIT-DYN": ("bundle", None, "dynamic-price bundle"),
    "MT-SET": ("grouped", None, "grouped product"),
}


def test_every_magento_type_of_the_export_has_its_stated_fate(hub_url: str, systems: Systems) -> None:
    _, result = whole_run("manual__types_fates", systems)
    for hop, c in result["hops"].items():
        assert c["read"] == c["delivered"] + c["unchanged"] + c["dead_lettered"], hop
    # the unknown type never became an item anywhere; every other row of the file did
    erp_skus = {i["sku"] for page in systems.erp.iter_items() for i in page.records}
    assert erp_skus == set(FATES)
    shown = systems.storefront.find_by_handles(sorted({h for _, h, _ in FATES.values() if h}))
    for sku, (kind, handle, fate) in FATES.items():
        assert systems.erp.get_item(sku)["item_type"] == kind, sku  # type: ignore[index]
        pim = systems.pim.get_product(sku) or systems.pim.get_product_model(sku)
        assert pim is not None and akeneo_product_to_canonical(pim)["item_type"] == kind, sku
        letters = open_letters(record_key=sku)
        if handle is None:
            assert [(x.reason_kind, x.reason.startswith(str(fate))) for x in letters] == [("channel", True)], sku
            continue
        assert not letters, (sku, [x.reason for x in letters])
        product = shown[handle]
        if kind == "configurable":
            assert sorted(v["sku"] for v in product["variants"]) == ["MT-TEE-M-Red", "MT-TEE-S-Red"]
            continue
        (variant,) = [v for v in product["variants"] if v["sku"] == sku]
        assert variant["requires_shipping"] is fate, sku


def test_a_fixed_bundle_of_a_variant_waits_dead_lettered_and_its_shop_bundle_stays(hub_url: str,
                                                                                   systems: Systems) -> None:
    whole_run("manual__types_bundle_first", systems)
    kit = systems.storefront.find_by_handles(["mt-kit"])["mt-kit"]
    # the ERP now lists a variant of a configurable product in the kit: no product of its own on the shop
    item = systems.erp.get_item("MT-KIT")
    assert item is not None
    item["components"] = [*item["components"], {"sku": "MT-TEE-S-Red", "quantity": 1.0}]
    item["updated_at"] = "2030-01-01T00:00:00Z"
    assert systems.erp.put_item(item).ok
    _, result = whole_run("manual__types_bundle_variant", systems)
    hop = result["hops"]["pim->storefront"]
    assert hop["read"] == hop["delivered"] + hop["unchanged"] + hop["dead_lettered"]
    (letter,) = open_letters(record_key="MT-KIT")
    assert (letter.reason_kind, letter.target_system) == ("channel", "storefront")
    assert letter.reason.startswith("fixed-price bundle: the storefront channel (Shopify) makes a bundle of "
                                    "products already on the shop; not there as products of their own: "
                                    "MT-TEE-S-Red"), letter.reason
    # what the shop sells is the bundle as it was, never half-changed
    assert systems.storefront.bundle_components(kit["id"]) == [{"handle": "mt-simple", "quantity": 1}]
