"""The reconciliation's pure parts: the vectorised comparison, the divergence share, the taxonomy snapshot, the
CSV staging round trip and the wire -> frame rows. No network, no Airflow, no hub."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from catalog_sync.flows import reconcile

ERP_ITEM: dict[str, Any] = {
    "sku": "BAG-1", "parent_sku": None, "product_type": "simple", "lifecycle_status": "active", "upc": "0001",
    "product_group": "Bag", "uom": "each", "weight": {"value": 1.5, "unit": "pound"},
    "dimensions": {"length": 1, "width": 2, "height": 3, "unit": "in"}, "country_of_origin": "United States",
    "vendor_name": "Northwind Apparel Company", "reference_price": {"amount": 34.0, "currency": "USD"},
    "description": "BAG", "updated_at": "2025-01-06T00:00:00Z",
}


def pim_product(sku: str = "BAG-1", **values: Any) -> dict[str, Any]:
    """An Akeneo product as the nightly flow leaves it (ERP values normalised, content from the PIM)."""
    base = {"name": ("Bag", "en_US", None), "description": ("<p>A bag</p>", "en_US", "ecommerce"),
            "lifecycle_status": ("active", None, None), "upc": ("0001", None, None), "uom": ("EA", None, None),
            "country_of_origin": ("US", None, None), "vendor_name": ("Northwind Apparel", None, None),
            "product_group": ("Bag", None, None), "weight": ({"amount": 1.5, "unit": "lbs"}, None, None),
            "erp_reference_price": ([{"amount": 34.0, "currency": "USD"}], None, None)}
    base.update({k: (v, None, None) for k, v in values.items()})
    return {"identifier": sku, "enabled": True, "family": "bag", "categories": ["gear_bags"], "parent": None,
            "values": {k: [{"data": d, "locale": loc, "scope": sc}] for k, (d, loc, sc) in base.items()}}


def shop_product(sku: str = "BAG-1", status: str = "active", title: str = "Bag") -> dict[str, Any]:
    return {"id": 7, "title": title, "body_html": "<p>A bag</p>", "handle": sku.lower(),
            "vendor": "Northwind Apparel", "product_type": "Bag", "status": status, "tags": "gear_bags",
            "variants": [{"id": 4, "sku": sku, "price": "34.00", "barcode": "0001", "weight": 1.5,
                          "weight_unit": "lbs"}]}


def frames(erp_items: list[dict[str, Any]], pim: list[dict[str, Any]], shop: list[dict[str, Any]],
           assets: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    builders = {s: reconcile.FrameBuilder(s) for s in reconcile.LAYOUTS}
    for item in erp_items:
        builders["erp"].add(reconcile.erp_row(item))
    for product in pim:
        builders["pim"].add(reconcile.pim_row(product, "product"))
    for product in shop:
        for row in reconcile.storefront_rows(product):
            builders["storefront"].add(row)
    for asset in assets:
        builders["dam"].add(reconcile.dam_row(asset))
    return {s: b.frame() for s, b in builders.items()}


def compare(f: dict[str, pd.DataFrame], **kw: Any) -> pd.DataFrame:
    return reconcile.compare(f["erp"], f["pim"], f["storefront"], f["dam"], **kw)


def keyed(findings: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    return set(findings[["system", "record_key", "attribute", "kind"]].itertuples(index=False, name=None))


def test_consistent_copies_of_a_normalised_owner_have_no_findings() -> None:
    # The ERP spells unit, weight unit, country and vendor its own way; the copies hold the normalised values.
    f = frames([ERP_ITEM], [pim_product()], [shop_product()], [{"id": "A1", "sku": "BAG-1"}])
    assert compare(f).empty


def test_a_differing_copy_is_drift_with_both_values_and_the_owner() -> None:
    f = frames([ERP_ITEM], [pim_product(erp_reference_price=[{"amount": 40.0, "currency": "USD"}])],
               [shop_product(title="Old bag")], [])
    found = compare(f)
    assert keyed(found) == {("pim", "BAG-1", "reference_price", "drift"),
                            ("storefront", "BAG-1", "name", "drift")}
    price = found[found["attribute"] == "reference_price"].iloc[0]
    assert (price["owner_system"], price["owner_value"], price["observed_value"]) == ("erp", 34.0, 40.0)
    assert found[found["attribute"] == "name"].iloc[0]["owner_system"] == "pim"


def test_numbers_within_tolerance_and_blank_values_are_equal() -> None:
    f = frames([{**ERP_ITEM, "upc": ""}], [pim_product(erp_reference_price=[{"amount": 34.001, "currency": "USD"}],
                                                        upc=None)], [], [])
    f["storefront"] = reconcile.empty_frame("storefront")
    assert not (compare(f)["kind"] == "drift").any()


def test_storefront_status_follows_the_erp_lifecycle() -> None:
    discontinued = {**ERP_ITEM, "lifecycle_status": "discontinued"}
    f = frames([discontinued], [pim_product(lifecycle_status="discontinued")], [shop_product(status="active")], [])
    found = compare(f)
    assert keyed(found) == {("storefront", "BAG-1", "lifecycle_status", "drift")}
    row = found.iloc[0]
    assert (row["owner_value"], row["observed_value"]) == ("discontinued", "active")
    f = frames([discontinued], [pim_product(lifecycle_status="discontinued")], [shop_product(status="archived")], [])
    assert compare(f).empty


def test_missing_deleted_orphan_and_reference_findings() -> None:
    other = {**ERP_ITEM, "sku": "BAG-2", "upc": "0002", "uom": "furlong", "lifecycle_status": "draft"}
    f = frames([ERP_ITEM, other], [pim_product(), pim_product("GONE-1")], [shop_product(), shop_product("GONE-1")],
               [{"id": "A1", "sku": "BAG-1"}, {"id": "A2", "sku": None}, {"id": "A3", "sku": "GONE-1"}])
    found = keyed(compare(f))
    assert ("pim", "BAG-2", "sku", "missing") in found
    # BAG-2 is a draft: the storefront is not supposed to have it.
    assert not any(k[0] == "storefront" and k[3] == "missing" for k in found)
    assert {("pim", "GONE-1", "sku", "deleted"), ("storefront", "GONE-1", "sku", "deleted"),
            ("dam", "A2", "sku", "orphan"), ("dam", "A3", "sku", "orphan"),
            ("erp", "BAG-2", "uom", "reference")} <= found
    # A deleted record is reported as deleted only, never compared attribute by attribute.
    assert not any(k[1] == "GONE-1" and k[3] == "drift" for k in found)


def test_protected_skus_are_never_declared_deleted() -> None:
    f = frames([ERP_ITEM], [pim_product(), pim_product("UNREADABLE-1")], [], [])
    f["storefront"] = reconcile.empty_frame("storefront")
    assert not (compare(f, protected_skus=["UNREADABLE-1"])["kind"] == "deleted").any()
    assert (compare(f)["kind"] == "deleted").sum() == 1


def test_lifecycle_divergence_counts_skus_held_by_both() -> None:
    erp = pd.DataFrame({"sku": ["A", "B", "C", "D"], "lifecycle_status": ["active", "active", "draft", "active"]})
    pim = pd.DataFrame({"sku": ["A", "B", "C"], "entity": "product",
                        "lifecycle_status": ["active", "draft", None]})
    result = reconcile.lifecycle_divergence(erp, pim)
    assert (result["compared"], result["divergent"], result["sample"]) == (3, 2, ["B", "C"])
    assert result["share"] == pytest.approx(2 / 3)


def test_taxonomy_snapshot_counts_categories_units_and_countries() -> None:
    pim = pd.DataFrame({"categories": pd.Categorical(["gear_bags|men_tops", "gear_bags", None])})
    erp = pd.DataFrame({"uom": pd.Categorical(["EA", "EA", "PR"]), "country_of_origin": pd.Categorical(["US"] * 3)})
    snap = reconcile.taxonomy_snapshot(pim, erp)
    assert snap["categories"] == {"gear_bags": 2, "men_tops": 1}
    assert snap["units"]["uom"] == {"EA": 2, "PR": 1} and snap["countries"] == {"US": 3}


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as Python objects with one missing value (None), whatever dtype carried them."""
    return frame.astype(object).where(frame.notna(), None)


@pytest.fixture(params=["file", "memory"])
def staging_store(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared state store the frames are staged in: a folder apart from CATALOG_SYNC_HOME, or ``memory://``."""
    import uuid

    from catalog_sync import store

    monkeypatch.setenv("CATALOG_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CATALOG_SYNC_STORE_URL", (tmp_path / "store").as_uri() if request.param == "file"
                       else f"memory://staging-{uuid.uuid4().hex}")
    yield store.store_root()
    assert store.local_leftovers() == []  # nothing staged in the local state folder
    store.remove_tree(store.store_root())


def test_staged_frames_round_trip_exactly(staging_store: Any) -> None:
    namibia = {**ERP_ITEM, "sku": "NA", "upc": "007", "country_of_origin": "NA"}  # "NA" must not become missing
    f = frames([ERP_ITEM, namibia], [pim_product()], [shop_product()], [{"id": "A1", "sku": None}])
    for system, frame in f.items():
        reconcile.save_frame("load:1", system, frame)
        back = reconcile.load_frame("load:1", system)
        pd.testing.assert_frame_equal(plain(back), plain(frame), check_dtype=False)
    assert reconcile.load_frame("load:1", "erp")["country_of_origin"].tolist() == ["United States", "NA"]
    with pytest.raises(FileNotFoundError):
        reconcile.load_frame("load:2", "erp")


def test_synthetic_catalog_findings_are_exact() -> None:
    f = reconcile.synthetic_frames(3000, drift_every=1000)
    found = compare(f)
    assert found["kind"].value_counts().to_dict() == {"deleted": 6, "drift": 6, "orphan": 3}
    assert set(found.loc[found["kind"] == "drift", "attribute"]) == {"reference_price", "name"}


def test_deletion_plan_targets_products_and_storefront_heads_only() -> None:
    f = frames([ERP_ITEM], [pim_product(), pim_product("GONE-1")], [shop_product(), shop_product("GONE-1")], [])
    f["pim"].loc[len(f["pim"])] = {**{c: np.nan for c in f["pim"].columns}, "sku": "GONE-MODEL", "entity": "model"}
    plan = reconcile.deletion_plan(f["pim"], f["storefront"], compare(f))
    assert [(p["system"], p["sku"], p["action"]) for p in plan] == [("pim", "GONE-1", "disable"),
                                                                      ("storefront", "GONE-1", "archive")]
    assert plan[1]["handle"] == "gone-1"


# --- the showable rule on the storefront ---------------------------------------------------------------------

NOW = pd.Timestamp("2026-06-01T12:00:00Z").to_pydatetime()


def asset(asset_id: str, role: str, **fields: Any) -> dict[str, Any]:
    return {"id": asset_id, "sku": "BAG-1", "status": "approved", "role": role, "rights_regions": ["US", "EU"],
            "renditions": {"ecommerce": f"https://dam.example.com/r/{asset_id}.jpg"}, **fields}


def gallery_frames(shown: list[str], *expired: str, status: str = "active") -> dict[str, pd.DataFrame]:
    """BAG-1 with a hero (A1) and two gallery images (A2, A3), all linked in the PIM; ``shown`` on the shop."""
    assets = [asset("A1", "hero"), asset("A2", "gallery"), asset("A3", "gallery")]
    assets = [{**a, "rights_expires_at": "2026-05-01T00:00:00Z"} if a["id"] in expired else a for a in assets]
    shop = {**shop_product(status=status),
            "images": [{"src": f"https://dam.example.com/r/{a}.jpg", "alt": None} for a in shown]}
    return frames([ERP_ITEM], [pim_product(asset_links="A1\nA2\nA3")], [shop], assets)


def showable(f: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, Any]]:
    found = compare(f, now=NOW, region="US")
    return found, reconcile.showable_report(found, f["dam"], NOW, "US")


def test_the_rules_gallery_on_the_storefront_is_no_drift() -> None:
    found, report = showable(gallery_frames(["A1", "A2", "A3"]))
    assert found.empty and report["skus"] == 0 and report["drifted"] == []


def test_an_expired_image_shown_again_is_showable_drift_with_its_reason() -> None:
    found, report = showable(gallery_frames(["A1", "A2", "A3"], "A3"))
    assert keyed(found) == {("storefront", "BAG-1", "images", "showable")}
    row = found.iloc[0]
    assert row["owner_system"] == "dam"
    assert [s.rsplit("/", 1)[1] for s in row["owner_value"]] == ["A1.jpg", "A2.jpg"]
    assert len(row["observed_value"]) == 3
    (entry,) = report["drifted"]
    assert entry["sku"] == "BAG-1" and list(entry["problems"]) == ["hidden"]
    assert entry["problems"]["hidden"] == [{"asset_id": "A3",
                                            "why": "usage rights expired 2026-05-01T00:00:00+00:00"}]
    assert report["by_problem"] == {"hidden": 1}


def test_a_gallery_reordered_by_hand_is_showable_drift() -> None:
    found, report = showable(gallery_frames(["A2", "A1", "A3"]))
    assert keyed(found) == {("storefront", "BAG-1", "images", "showable")}
    assert report["drifted"] == [{"sku": "BAG-1", "problems": {"order": True}}]


def test_a_missing_image_and_a_wrong_status_are_reported_per_sku() -> None:
    found, report = showable(gallery_frames(["A1", "A3"], status="archived"))
    assert keyed(found) == {("storefront", "BAG-1", "images", "showable"),
                            ("storefront", "BAG-1", "lifecycle_status", "drift")}
    (entry,) = report["drifted"]
    assert entry["problems"] == {"missing": ["A2"], "status": {"expected": "active", "observed": "archived",
                                                               "erp_lifecycle": "active"}}
    assert report["skus"] == 1 and report["by_problem"] == {"missing": 1, "status": 1}


def test_the_showable_columns_survive_the_staging_round_trip(staging_store: Any) -> None:
    f = gallery_frames(["A2", "A1"], "A3")
    for system in ("pim", "storefront", "dam"):
        reconcile.save_frame("load:showable", system, f[system])
    back = {s: reconcile.load_frame("load:showable", s) for s in ("pim", "storefront", "dam")}
    found = reconcile.compare(f["erp"], back["pim"], back["storefront"], back["dam"], now=NOW, region="US")
    assert found.reset_index(drop=True).equals(compare(f, now=NOW, region="US").reset_index(drop=True))
