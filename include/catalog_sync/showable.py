"""The one rule for what a shopper may see, and the one order of a product's gallery.

Every flow that decides whether an image goes out (the nightly's links and images, the republish, the trace, the
UI) asks this module, so they cannot disagree. The rule reads the DAM's own fields (``connectors.dam.ASSETS``):

* ``status`` is ``approved``;
* inside the validity window: ``valid_from`` (embargo) has passed, ``valid_to`` has not;
* inside the usage rights: ``rights_expires_at`` has not passed;
* licensed for the channel's region: ``rights_regions`` names it (an empty list means no regional limit).

A bound that does not parse counts as outside the window: a date nobody can read must not show an image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from catalog_sync.domain import AssetStatus

#: The DAM fields the rule reads; a test holds them to the DAM stream's declared fields.
RULE_FIELDS: Final[tuple[str, ...]] = ("status", "valid_from", "valid_to", "rights_expires_at", "rights_regions")
#: Gallery order by role: the season's own pictures lead while they are showable, then the hero, then the rest.
ROLE_ORDER: Final[dict[str, int]] = {"seasonal": 0, "hero": 1, "gallery": 2, "swatch": 3}


def parse_ts(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (the systems speak UTC); None for empty values."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def why_hidden(asset: Mapping[str, Any], now: datetime, region: str | None = None) -> str | None:
    """Why ``asset`` may not be shown at ``now`` in ``region``; None when it may."""
    status = asset.get("status")
    if status != AssetStatus.APPROVED.value:
        return f"status is {status!r}, not approved"
    try:
        start, end, rights = (parse_ts(asset.get(k)) for k in ("valid_from", "valid_to", "rights_expires_at"))
    except ValueError as exc:
        return f"a date does not parse ({exc})"
    if start is not None and start > now:
        return f"embargoed until {start.isoformat()}"
    if end is not None and end <= now:
        return f"validity ended {end.isoformat()}"
    if rights is not None and rights <= now:
        return f"usage rights expired {rights.isoformat()}"
    regions = asset.get("rights_regions") or []
    if region and regions and region not in regions:
        return f"not licensed for {region} (licensed: {', '.join(map(str, regions))})"
    return None


def showable(asset: Mapping[str, Any], now: datetime, region: str | None = None) -> bool:
    return why_hidden(asset, now, region) is None


def gallery_key(asset: Mapping[str, Any]) -> tuple[int, str]:
    """An asset's place in the gallery order: by role (:data:`ROLE_ORDER`), then by asset id."""
    return ROLE_ORDER.get(str(asset.get("role") or ""), 9), str(asset.get("id"))


def gallery(assets: Iterable[Mapping[str, Any]], now: datetime, region: str | None = None) -> list[Mapping[str, Any]]:
    """The showable ones of ``assets`` in gallery order (:func:`gallery_key`), so every flow and every re-run
    publishes the same gallery."""
    return sorted((a for a in assets if showable(a, now, region)), key=gallery_key)


def storefront_images(assets: Iterable[Mapping[str, Any]], now: datetime, region: str | None = None
                      ) -> list[dict[str, Any]]:
    """The storefront gallery of a product whose linked assets are ``assets``: the :func:`gallery` of those with an
    ``ecommerce`` rendition, as the storefront's images (``src``, ``alt``, ``position``). What the nightly publishes,
    the republish and the image_windows sweep write back, and the weekly reconciliation expects to find."""
    shown = [a for a in gallery(assets, now, region) if (a.get("renditions") or {}).get("ecommerce")]
    return [{"src": a["renditions"]["ecommerce"], "alt": a.get("filename"), "position": i}
            for i, a in enumerate(shown, start=1)]


def storefront_region() -> str | None:
    """The region the storefront channel sells in (``thresholds.yaml`` rules.channels)."""
    from catalog_sync.domain import CHANNEL
    from catalog_sync.quality.policy import load_policy

    return load_policy().rules.region_of(CHANNEL)


def next_change(assets: Iterable[Mapping[str, Any]], after: datetime) -> datetime | None:
    """The first moment after ``after`` at which one of ``assets`` becomes showable or stops being so."""
    moments: list[datetime] = []
    for a in assets:
        if a.get("status") != AssetStatus.APPROVED.value:
            continue
        for key in ("valid_from", "valid_to", "rights_expires_at"):
            try:
                ts = parse_ts(a.get(key))
            except ValueError:
                continue
            if ts is not None and ts > after:
                moments.append(ts)
    return min(moments, default=None)
