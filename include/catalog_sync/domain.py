"""The retail vocabulary every part of Catalog Sync shares: systems, lifecycle states, the canonical record.

Connectors translate each system's wire shape into the canonical product record below; the gates, the engine,
the reconciliation and the UI only ever see canonical records (as dicts, or as pandas frames with these columns).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final


class System(StrEnum):
    ERP = "erp"
    PIM = "pim"
    DAM = "dam"
    STOREFRONT = "storefront"
    SUPPLIER = "supplier"
    #: The cache in front of the storefront's pages. Optional: a deployment without one serves them uncached.
    CDN = "cdn"


class LifecycleStatus(StrEnum):
    """The ERP's item lifecycle. Only ``active`` items may be published to a sales channel."""

    DRAFT = "draft"
    PRE_ACTIVE = "pre-active"
    ACTIVE = "active"
    SEASONAL_HOLD = "seasonal-hold"
    DISCONTINUED = "discontinued"


#: The PIM (Akeneo) option code of each lifecycle status. Akeneo codes hold letters, digits and underscores only, so
#: the ERP's hyphenated values cannot be stored as they are; this is the one table both directions read.
LIFECYCLE_OPTION_CODES: Final[dict[LifecycleStatus, str]] = {
    LifecycleStatus.DRAFT: "draft",
    LifecycleStatus.PRE_ACTIVE: "pre_active",
    LifecycleStatus.ACTIVE: "active",
    LifecycleStatus.SEASONAL_HOLD: "seasonal_hold",
    LifecycleStatus.DISCONTINUED: "discontinued",
}
#: The lifecycle status each PIM option code stands for (the inverse of ``LIFECYCLE_OPTION_CODES``).
LIFECYCLE_BY_OPTION_CODE: Final[dict[str, LifecycleStatus]] = {code: s for s, code in LIFECYCLE_OPTION_CODES.items()}

#: Storefront publication status (Shopify's ProductStatus) the ERP lifecycle maps to.
STOREFRONT_STATUS: Final[dict[LifecycleStatus, str]] = {
    LifecycleStatus.DRAFT: "draft",
    LifecycleStatus.PRE_ACTIVE: "draft",
    LifecycleStatus.ACTIVE: "active",
    LifecycleStatus.SEASONAL_HOLD: "draft",
    LifecycleStatus.DISCONTINUED: "archived",
}


class AssetRole(StrEnum):
    HERO = "hero"
    GALLERY = "gallery"
    SWATCH = "swatch"
    SEASONAL = "seasonal"


class AssetStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    RETIRED = "retired"


#: Locales the PIM holds translations for; the first is the catalog's reference locale.
LOCALES: Final[tuple[str, ...]] = ("en_US", "fr_FR", "de_DE")
#: The PIM channel (Akeneo "scope") that feeds the storefront.
CHANNEL: Final[str] = "ecommerce"

#: What an item is, in Magento's product types (the ERP keeps it as the item's ``item_type``; ``product_type`` is only
#: the shape: a parent with variants, or one item). A record without one is read as its ``product_type``.
ITEM_TYPES: Final[frozenset[str]] = frozenset(
    {"simple", "configurable", "virtual", "downloadable", "bundle", "grouped", "giftcard"}
)
#: Item types with nothing to ship: no weight, dimensions or origin is required of them or invented, the
#: storefront is told they need no shipping, and their stock is tracked only where the ERP keeps stock for them.
UNSHIPPED_ITEM_TYPES: Final[frozenset[str]] = frozenset({"virtual", "downloadable"})
#: Item types that are arrangements of other items (a kit, as ERPs keep kits: a non-stock item whose ``components``
#: list the SKUs and quantities it is made of). A kit has no parcel or stock of its own: its components have.
KIT_ITEM_TYPES: Final[frozenset[str]] = frozenset({"bundle", "grouped"})
#: How a bundle is priced (``kit_pricing``): a price of its own, or the sum of the components chosen.
KIT_PRICING: Final[frozenset[str]] = frozenset({"fixed", "dynamic"})


def item_type_of(record: Mapping[str, Any]) -> str:
    """The record's item type; one that does not say is its product type (``simple`` or ``configurable``)."""
    return str(record.get("item_type") or record.get("product_type") or "simple")


def ships(record: Mapping[str, Any]) -> bool:
    """Whether the item is sent to the customer in a parcel (False for virtual and downloadable items)."""
    return item_type_of(record) not in UNSHIPPED_ITEM_TYPES


def is_kit(record: Mapping[str, Any]) -> bool:
    """Whether the item is a bundle or a grouped product: a list of components rather than a thing of its own."""
    return item_type_of(record) in KIT_ITEM_TYPES


def has_parcel(record: Mapping[str, Any]) -> bool:
    """Whether the item has a weight and dimensions of its own (not virtual, downloadable, or a kit)."""
    return ships(record) and not is_kit(record)


#: Canonical product record: one row per SKU (configurable parents and their variants alike).
#: ERP-owned fields first, PIM-owned after; ``catalog_sync/governance/ownership.yaml`` is the authority.
PRODUCT_FIELDS: Final[tuple[str, ...]] = (
    # identity and structure
    "sku",
    "parent_sku",  # None for a parent or a simple product
    "product_type",  # "configurable" | "simple"
    "item_type",  # what the item is, in Magento's words (ITEM_TYPES): decides shipping, stock and the channel's fate
    "axes",  # a parent's variant axes, e.g. ["size", "color"]; None on variants
    "components",  # a kit's parts (KIT_ITEM_TYPES): [{"sku", "quantity"}], in the ERP's order; None otherwise
    "kit_pricing",  # a bundle's pricing (KIT_PRICING); None otherwise
    # ERP-owned master data
    "lifecycle_status",
    "upc",
    "product_group",
    "uom",
    "weight",
    "weight_unit",
    "length",
    "width",
    "height",
    "dimension_unit",
    "country_of_origin",
    "vendor_name",
    "reference_price",
    "currency",
    # PIM-owned content
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
    "url_key",
    "category",  # primary category path, e.g. "Men/Tops/Hoodies & Sweatshirts"
    "categories",  # all category paths
    "color",
    "size",
    "translations",  # {locale: {"name": ..., "description": ...}} beyond the reference locale
    "asset_links",  # DAM asset ids linked to this SKU
)

#: Hot data: flows ERP -> storefront directly, never through the PIM.
HOT_FIELDS: Final[tuple[str, ...]] = ("stock", "live_price", "lifecycle_status")
