"""DAM assets linked to SKUs: one row per (asset_id, sku) link.

Frame columns: the DAM's own fields (``connectors.dam.ASSETS``) ``asset_id, sku, role, status, valid_from, valid_to,
rights_expires_at, rights_regions``. Layer 0 checks codes and dates; layer 1 applies the one showable rule
(``catalog_sync.showable``) at ``GateInputs.now`` for the channel's region: approved, inside its validity window,
its usage rights not expired, licensed for the region; layer 2 checks that every link points at a SKU the catalogue knows (``GateInputs.known_skus``).
Gate assets with ``key="asset_id"``.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from catalog_sync.domain import AssetStatus
from catalog_sync.quality import prep
from catalog_sync.quality.reference import ASSET_ROLES, ASSET_STATES, SKU_PATTERN
from catalog_sync.quality.spec import Check
from catalog_sync.quality.suites import GateInputs

E = "assets"
_DATES: Final[tuple[str, ...]] = ("valid_from", "valid_to", "rights_expires_at")

OPTIONAL_COLUMNS: Final[dict[int, tuple[str, ...]]] = {
    0: ("role", *_DATES),
    1: (*_DATES, "rights_regions"),
    2: (),
}


def checks(layer: int, inputs: GateInputs) -> tuple[Check, ...]:
    """The asset checks of ``layer``."""
    if layer == 0:
        out = [
            Check(f"{E}.l0.asset_id_present", 0, "not_null", ("asset_id",),
                  "An asset link without an asset id cannot be resolved in the DAM.", True),
            Check(f"{E}.l0.sku_present", 0, "not_null", ("sku",), "An asset link must name the SKU it illustrates."),
            Check(f"{E}.l0.sku_format", 0, "regex", ("sku",), "SKUs must be letters, digits and dashes.",
                  params={"regex": SKU_PATTERN}),
            Check(f"{E}.l0.role_known", 0, "in_set", ("role",),
                  "The storefront places images by role (hero, gallery, swatch, seasonal).",
                  params={"value_set": ASSET_ROLES}),
            Check(f"{E}.l0.status_present", 0, "not_null", ("status",),
                  "Only approved assets may be published; the status must be known."),
            Check(f"{E}.l0.status_known", 0, "in_set", ("status",), "The DAM workflow has four states.",
                  params={"value_set": ASSET_STATES}),
        ]
        out += [
            Check(f"{E}.l0.{d}_parses", 0, "flag", (f"_{d}_parses",),
                  f"{d} bounds when an asset may be shown and must parse as a date.", fields=(d,))
            for d in _DATES
        ]
        return tuple(out)
    if layer == 1:
        return (
            Check(f"{E}.l1.approved_in_validity_window", 1, "flag", ("_approved_in_validity_window",),
                  "An approved asset may only be shown between its valid_from and valid_to.",
                  fields=("status", "valid_from", "valid_to")),
            Check(f"{E}.l1.approved_in_rights_window", 1, "flag", ("_approved_in_rights_window",),
                  "Showing an asset after its usage rights expired breaches the licence.", True,
                  fields=("status", "rights_expires_at")),
            Check(f"{E}.l1.licensed_for_region", 1, "flag", ("_licensed_for_region",),
                  "Showing an asset outside the regions its rights cover breaches the licence.", True,
                  fields=("status", "rights_regions")),
            Check(f"{E}.l1.link_unique", 1, "compound_unique", ("asset_id", "sku"),
                  "The same asset linked twice to one SKU shows the image twice."),
        )
    if layer == 2:
        if inputs.known_skus is None:
            raise ValueError("the assets layer-2 gate needs the catalogue's SKUs (GateInputs.known_skus)")
        return (
            Check(f"{E}.l2.sku_exists", 2, "flag", ("_sku_exists",),
                  "A DAM link to a SKU the catalogue does not know is an orphan.", fields=("sku",)),
        )
    raise ValueError(f"assets have layers 0, 1, 2, not {layer}")


def _ends_at_or_before(applies: pd.Series, end: pd.Series, now: object) -> pd.Series:
    """True where the row applies and its end bound is at or before ``now`` (the showable rule's ends are
    exclusive), or does not parse."""
    ts_now = pd.Timestamp(now)
    ts_now = ts_now.tz_convert("UTC") if ts_now.tzinfo else ts_now.tz_localize("UTC")
    parsed = prep.to_timestamp(end)
    over = end.notna() & (parsed.isna() | (parsed <= ts_now))
    return (applies.fillna(False).astype(bool) & over.fillna(False)).astype(bool)


def prepare(frame: pd.DataFrame, layer: int, inputs: GateInputs) -> pd.DataFrame:
    """Add the helper columns of ``layer`` to the gate's working frame."""
    cols = set(frame.columns)
    if layer == 0:
        for d in _DATES:
            frame[f"_{d}_parses"] = prep.parses_as_timestamp(frame[d])
    elif layer == 1 and "status" in cols:
        approved = (frame["status"] == AssetStatus.APPROVED.value).fillna(False)
        frame["_approved_in_validity_window"] = prep.within_window(
            approved, frame["valid_from"], frame["valid_to"], inputs.now
        )
        frame["_approved_in_validity_window"] &= ~_ends_at_or_before(approved, frame["valid_to"], inputs.now)
        frame["_approved_in_rights_window"] = ~_ends_at_or_before(approved, frame["rights_expires_at"], inputs.now)
        region = inputs.rules.region_of(inputs.channel)
        frame["_licensed_for_region"] = [
            not (ok and region and isinstance(regions, list | tuple) and regions and region not in regions)
            for ok, regions in zip(approved, frame["rights_regions"], strict=True)
        ]
    elif layer == 2 and "sku" in cols and inputs.known_skus is not None:
        frame["_sku_exists"] = frame["sku"].isin(inputs.known_skus) & frame["sku"].notna()
    return frame
