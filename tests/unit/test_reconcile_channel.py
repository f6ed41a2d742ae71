"""``reconcile.compare_channel``: one declared channel held to what the nightly sends it, on small frames."""

from __future__ import annotations

from typing import Any

import pandas as pd

from catalog_sync.flows.reconcile import FrameBuilder, channel_unavailable, compare_channel
from catalog_sync.governance.channels import Channel, Formatting

CHANNEL = Channel(name="outlet", kind="adobe_commerce", connection_id="c", pool="adobe_commerce_api", enabled=True,
                  pim_channel="ecommerce", category_trees=("Gear",),
                  formatting=Formatting(title_max_length=12))


def frame(system: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    builder = FrameBuilder(system)
    for row in rows:
        builder.add(row)
    return builder.frame()


def erp(*items: tuple[str, str, float]) -> pd.DataFrame:
    return frame("erp", [{"sku": sku, "lifecycle_status": state, "reference_price": price}
                         for sku, state, price in items])


def pim(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {"entity": "product", "enabled": 1.0, "product_type": "simple"}
    return frame("pim", [{**base, **r} for r in rows])


def held(*rows: tuple[str, str, str, int, float | None, float | None]) -> pd.DataFrame:
    return frame("channel.outlet", [{"sku": s, "type_id": t, "name": n, "status": st, "price": p, "live_price": lp}
                                    for s, t, n, st, p, lp in rows])


def found(result: pd.DataFrame) -> dict[tuple[str, str], tuple[str, Any, Any]]:
    return {(r.record_key, r.attribute): (r.kind, r.owner_value, r.observed_value)
            for r in result.itertuples(index=False)}


def test_what_the_nightly_sends_is_no_finding() -> None:
    out = compare_channel(
        CHANNEL,
        erp(("BAG", "active", 10.0), ("KIT", "active", 30.0), ("CFG", "active", 0.0), ("CFG-S", "active", 12.0)),
        pim({"sku": "BAG", "name": "Duffle bag for the gym", "categories": "gear_bags"},
            {"sku": "CFG", "entity": "model", "enabled": None, "product_type": "configurable", "name": "Tee",
             "categories": "gear"},
            {"sku": "CFG-S", "parent_sku": "CFG", "name": "Tee S"},  # no categories: its parent's decide
            {"sku": "KIT", "product_type": "bundle", "name": "Kit", "categories": "gear"}),  # refused by the nightly
        held(("BAG", "simple", "Duffle bag", 1, 11.0, 11.0),  # title cut at 12 at a word; the ERP's live price
             ("CFG", "configurable", "Tee", 1, None, None), ("CFG-S", "simple", "Tee S", 1, 12.0, None)))
    assert found(out) == {}


def test_missing_deleted_with_why_and_drift_of_name_status_and_price() -> None:
    out = compare_channel(
        CHANNEL,
        erp(("NEW", "active", 5.0), ("OLD", "discontinued", 8.0), ("MOVED", "active", 1.0), ("OFF", "active", 1.0),
            ("PIMGONE", "active", 1.0)),
        pim({"sku": "NEW", "name": "New", "categories": "gear"},
            {"sku": "OLD", "name": "Old", "categories": "gear"},
            {"sku": "MOVED", "name": "Moved", "categories": "men_tops"},
            {"sku": "OFF", "name": "Off", "categories": "gear", "enabled": 0.0},
            {"sku": "GONE", "name": "Gone", "categories": "gear"}),
        held(("OLD", "simple", "Old by hand", 1, 9.5, None), ("MOVED", "simple", "Moved", 1, 1.0, None),
             ("OFF", "simple", "Off", 2, 1.0, None), ("PIMGONE", "simple", "x", 1, 1.0, None),
             ("ERPGONE", "simple", "y", 1, 1.0, None), ("GONE", "simple", "Gone", 1, 1.0, None)))
    assert found(out) == {
        ("NEW", "sku"): ("missing", "NEW", None),
        ("MOVED", "sku"): ("deleted", "not sold by the channel", "MOVED"),
        ("OFF", "status"): ("drift", 1, 2.0),  # disabled in the PIM only: the ERP's lifecycle decides the status
        ("PIMGONE", "sku"): ("deleted", "not in the PIM", "PIMGONE"),
        ("ERPGONE", "sku"): ("deleted", "not in the PIM", "ERPGONE"),
        ("GONE", "sku"): ("deleted", "deleted in the ERP", "GONE"),
        ("OLD", "name"): ("drift", "Old", "Old by hand"),
        ("OLD", "status"): ("drift", 2, 1.0),  # discontinued in the ERP: disabled on the channel
        ("OLD", "price"): ("drift", 8.0, 9.5),
    }
    assert set(out["system"]) == {"outlet"}


def test_an_unavailable_channel_is_one_finding_of_its_own() -> None:
    assert found(channel_unavailable("outlet", "503 all night")) == {
        ("outlet", "availability"): ("unavailable", None, "503 all night")}
