"""Spread a catalog over the five sandbox systems by ownership, with bulk Core inserts.

* ERP: master data (lifecycle ``active``, UPC-A, product group, ``EA``, weight in lbs, dimensions, origin, vendor,
  the item's Magento type), stock per location, prices. Bundles and grouped products are non-stock kit items
  listing their components (SKU and quantity); a bundle also says whether it is priced fixed or from its parts.
* PIM: content only (names, descriptions, meta, url keys, categories, colour and size); configurable parents become
  product models with their axes. ERP-owned attributes and ``asset_links`` stay empty: the first sync fills them.
  The PIM starts as a fresh Akeneo does (``pim_structure.install``); the seed adds the catalog's category tree
  through the same code as ``PATCH /categories``, and no other structure: the attributes, options, families and
  family variants the content refers to are the product's to create (``catalog-sync pim bootstrap``), so until it
  has run the content rows name a structure the PIM does not hold yet.
* DAM: one asset per image (the export's base image is the hero, additional images the gallery), with the real
  photograph where the catalog ships it and a generated PNG otherwise.
* Supplier portal: a pending submission for a deterministic ~5% of sellable SKUs.
* Storefront: locations only; products arrive through the sync.

Every timestamp is :data:`SEED_EPOCH` and every id is a counter in catalog order, so loading the same catalog twice
gives identical databases.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, insert

from catalog_sync.catalog import derive
from catalog_sync.catalog.magento import Catalog, CatalogProduct, read_catalog
from catalog_sync.catalog.scale import scale_catalog
from catalog_sync.connectors.mapping import category_code
from catalog_sync.domain import CHANNEL, KIT_ITEM_TYPES, LOCALES, AssetRole, AssetStatus
from catalog_sync.governance.pim_model import load_pim_model
from catalog_sync_sandbox import db, pim_structure
from catalog_sync_sandbox.images import ImageBlob, photograph, placeholder_png

#: Magento types that are arrangements of items rather than items: loaded as non-stock kit items, the ERP holding
#: their components (SKU and quantity) as it holds a kit's bill of materials.
KITS: Final = KIT_ITEM_TYPES
#: The instant every seeded record was last updated: fixed, so a re-seed is byte-identical.
SEED_EPOCH: Final = datetime(2025, 1, 6, tzinfo=UTC)
#: The channel's category tree a fresh Akeneo has; the catalog's top-level categories hang under it.
TREE: Final = "master"
#: ERP warehouse/store codes; the storefront has one location per ERP location (ids 1, 2, 3).
ERP_LOCATIONS: Final[tuple[str, ...]] = ("DC-EAST", "DC-WEST", "STORE-NYC")
#: The shop's locations. Which ERP location each stands for is the storefront connection's ``location_map``
#: (Shopify knows nothing of the ERP); the demo's map is in airflow_settings.yaml.
STOREFRONT_LOCATIONS: Final[tuple[tuple[int, str], ...]] = (
    (1, "East distribution centre"),
    (2, "West distribution centre"),
    (3, "New York store"),
)
RIGHTS_REGIONS: Final[list[str]] = ["US", "CA", "EU", "UK"]
#: One sellable SKU in SUPPLIER_SHARE gets a pending supplier submission.
SUPPLIER_SHARE: Final = 20
BATCH: Final = 5000

#: Content the export carries, keyed by the PIM attribute that holds it.
CONTENT: Final[tuple[str, ...]] = (
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
    "url_key",
)


@dataclass
class LoadSummary:
    """What a load wrote, per table, plus the catalog's issues (a bad row is reported, never fatal)."""

    counts: dict[str, int] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    issue_count: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "issue_count": self.issue_count,
            "issues": self.issues,
            "seconds": round(self.seconds, 3),
        }


def family_code(product_group: str | None) -> str:
    """The family the PIM team files a product of this group under: the one the product's declared PIM model
    gives it, so that the bootstrap creates it."""
    return load_pim_model().family_for(product_group)


def family_variant_code(family: str, axes: Iterable[str]) -> str:
    return load_pim_model().family_variant_for(family, list(axes))


def pim_value(data: Any, locale: str | None = None, scope: str | None = None) -> dict[str, Any]:
    return {"locale": locale, "scope": scope, "data": data}


def content_values(product: CatalogProduct) -> dict[str, list[dict[str, Any]]]:
    """PIM values for the export's content, reference locale first, then each translation."""
    values: dict[str, list[dict[str, Any]]] = {}
    attributes = load_pim_model().attributes
    for attr in CONTENT:
        localizable, scopable = attributes[attr].localizable, attributes[attr].scopable
        scope = CHANNEL if scopable else None
        by_locale = {LOCALES[0]: getattr(product, attr)}
        for loc, fields in product.translations.items():
            if attr in fields:
                by_locale[loc] = fields[attr]
        entries = [pim_value(v, loc if localizable else None, scope) for loc, v in by_locale.items() if v]
        if entries:
            values[attr] = entries
    for attr in ("color", "size"):
        if getattr(product, attr):
            values[attr] = [pim_value(getattr(product, attr))]
    return values


def _stock_split(sku: str, qty: float | None) -> list[int]:
    """The export's single quantity spread over the ERP locations, in deterministic shares."""
    total = int(qty or 0)
    n = derive.stable_int("stock", sku)
    east = total * (45 + n % 20) // 100
    west = total * (20 + n // 20 % 15) // 100
    return [east, west, total - east - west]


class _Loader:
    def __init__(self, engine: Engine, catalog: Catalog, as_of: datetime) -> None:
        self.engine = engine
        self.catalog = catalog
        self.as_of = as_of
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}
        self.upcs: set[str] = set()
        self.blobs: dict[str, tuple[str, int, int]] = {}  # image path -> (checksum, width, height)
        self.blob_checksums: set[str] = set()
        self.categories: dict[str, dict[str, Any]] = {}
        self.asset_seq = 0
        self.submission_seq = 0
        self.issues: list[str] = []

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for table in db.metadata.sorted_tables:
                rows = self.rows.pop(table.name, None)
                if rows:
                    conn.execute(insert(table), rows)
                    self.counts[table.name] = self.counts.get(table.name, 0) + len(rows)

    def upc(self, sku: str) -> str:
        attempt = 0
        while (candidate := derive.upc_for(sku, attempt)) in self.upcs:
            attempt += 1
        self.upcs.add(candidate)
        return candidate

    def blob(self, path: str) -> tuple[str, int, int]:
        known = self.blobs.get(path)
        if known:
            return known
        found = self.catalog.find_image(path)
        image: ImageBlob | None = None
        if found is not None:
            try:
                image = photograph(found.read_bytes())
            except (OSError, ValueError):
                image = None  # an unreadable file is treated as missing: the placeholder keeps the asset usable
        if image is None:
            image = placeholder_png(path)
        checksum = image.checksum
        if checksum not in self.blob_checksums:
            self.blob_checksums.add(checksum)
            self.add("dam_blob", {"checksum": checksum, "content_type": image.content_type, "data": image.data})
        self.blobs[path] = (checksum, image.width, image.height)
        return self.blobs[path]

    def product(self, p: CatalogProduct) -> None:
        rec = p.canonical(upc=self.upc(p.sku))
        ts = self.as_of
        self.add(
            "erp_item",
            {
                "sku": p.sku,
                "parent_sku": p.parent_sku,
                "product_type": p.product_type,
                "item_type": rec["item_type"],
                "components": rec["components"],
                "kit_pricing": rec["kit_pricing"],
                "lifecycle_status": rec["lifecycle_status"],
                "upc": rec["upc"],
                "product_group": rec["product_group"],
                "uom": rec["uom"],
                "weight": rec["weight"],
                "weight_unit": rec["weight_unit"],
                "length": rec["length"],
                "width": rec["width"],
                "height": rec["height"],
                "dimension_unit": rec["dimension_unit"],
                "country_of_origin": rec["country_of_origin"],
                "vendor_name": rec["vendor_name"],
                "reference_price": rec["reference_price"],
                "currency": rec["currency"],
                "description": (p.name or p.sku)[:60].upper(),
                "updated_at": ts,
            },
        )
        if p.price is not None:
            self.add("erp_price", {"sku": p.sku, "price": p.price, "currency": "USD", "updated_at": ts})
        # no stock is kept for what is never shipped, nor for a kit (its components are the stock)
        if p.product_type != "configurable" and p.ships and p.magento_type not in KITS:
            for location, qty in zip(ERP_LOCATIONS, _stock_split(p.sku, p.qty), strict=True):
                self.add("erp_stock", {"sku": p.sku, "location": location, "quantity": qty, "updated_at": ts})

        family = family_code(p.product_group)
        codes = []
        for path in p.categories:
            parts = [part for part in path.split("/") if part.strip()]
            for depth in range(1, len(parts) + 1):  # the ancestors too: a category needs its parent
                code = category_code("/".join(parts[:depth]))
                if code and code not in self.categories:
                    self.categories[code] = {
                        "code": code,
                        "parent": category_code("/".join(parts[:depth - 1])) if depth > 1 else TREE,
                        "labels": {LOCALES[0]: parts[depth - 1].strip()},
                    }
            if parts and category_code("/".join(parts)):
                codes.append(category_code("/".join(parts)))
        values = content_values(p)
        if p.product_type == "configurable" and p.axes:
            fv = family_variant_code(family, p.axes)
            self.add(
                "pim_product_model",
                {"code": p.sku, "family": family, "family_variant": fv, "parent": None, "categories": codes,
                 "values": values, "created": ts, "updated": ts},
            )
        else:
            self.add(
                "pim_product",
                {"identifier": p.sku, "enabled": True, "family": family, "parent": p.parent_sku,
                 "categories": codes, "values": values, "created": ts, "updated": ts},
            )

        for image in p.images:
            checksum, width, height = self.blob(image.path)
            self.asset_seq += 1
            n = derive.stable_int("rights", p.sku, image.path)
            self.add(
                "dam_asset",
                {
                    "id": f"AST-{self.asset_seq:07d}",
                    "sku": p.sku,
                    "role": image.role,
                    "status": AssetStatus.APPROVED.value,
                    "valid_from": ts - timedelta(days=30 + n % 60),
                    "valid_to": None,
                    "rights_expires_at": ts + _rights_days(image.role, n),
                    "rights_regions": RIGHTS_REGIONS,
                    "version": 1,
                    "checksum": checksum,
                    "width": width,
                    "height": height,
                    "filename": image.filename,
                    "updated_at": ts,
                },
            )

        if (p.product_type != "configurable" and p.magento_type not in KITS
                and derive.stable_int("supplier", p.sku) % SUPPLIER_SHARE == 0):
            self.submission_seq += 1
            n = derive.stable_int("submission", p.sku)
            text = p.name or p.sku
            self.add(
                "supplier_submission",
                {
                    "id": f"SUB-{self.submission_seq:06d}",
                    "supplier": rec["vendor_name"],
                    "sku": p.sku,
                    "submitted_at": ts - timedelta(hours=1 + n % 72),
                    "changes": {"short_description": f"{text}, as described by its maker."},
                    # a supplier's own flag lags the ERP: most say active, some still say inactive
                    "lifecycle_flag": "inactive" if n % 5 == 0 else "active",
                    "status": "pending",
                    "reason": None,
                    "decided_at": None,
                },
            )

    def finish(self) -> None:
        self.flush()
        # The category tree, as the PIM team builds it: through the same validation as PATCH /categories, parents
        # first, under the channel's tree. A path Akeneo cannot take is reported, never fatal.
        with self.engine.begin() as conn:
            for cat in self.categories.values():
                try:
                    pim_structure.upsert_category(conn, cat, at=self.as_of)
                except pim_structure.Invalid as exc:
                    self.issues.append(f"category {cat['code']!r} not created in the PIM: {exc.message}")
        self.counts["pim_category"] = len(self.categories)
        for loc_id, name in STOREFRONT_LOCATIONS:
            self.add("storefront_location", {"id": loc_id, "name": name})
        self.flush()


def _rights_days(role: str, n: int) -> timedelta:
    """Usage rights of a demo image: licensed for four to six years from the seed date (well past today), except
    one gallery image in 25, whose licence ran out ten months after the seed date. Those show the showable rule at
    work (they never reach a shopper) without leaving any product without its hero image."""
    if role == AssetRole.GALLERY.value and n % 25 == 0:
        return timedelta(days=300)
    return timedelta(days=4 * 365 + n % 730)


def load_catalog(
    engine: Engine,
    catalog: Catalog | str | Path,
    scale: int | None = None,
    as_of: datetime = SEED_EPOCH,
) -> LoadSummary:
    """Load a catalog (or ``scale`` SKUs made from it) into empty sandbox systems; returns what was written."""
    started = time.perf_counter()
    source = catalog if isinstance(catalog, Catalog) else read_catalog(catalog)
    with engine.begin() as conn:
        pim_structure.install(conn, at=as_of)
    loader = _Loader(engine, source, as_of)
    products: Iterable[CatalogProduct] = scale_catalog(source, scale) if scale else source.products
    pending = 0
    for product in products:
        loader.product(product)
        pending += 1
        if pending >= BATCH:
            loader.flush()
            pending = 0
    loader.finish()
    return LoadSummary(
        counts=loader.counts,
        issues=([str(i) for i in source.issues] + loader.issues)[:50],
        issue_count=len(source.issues) + len(loader.issues),
        seconds=time.perf_counter() - started,
    )
