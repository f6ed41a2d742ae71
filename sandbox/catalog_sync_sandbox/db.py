"""The sandbox systems' own tables (SQLAlchemy Core), kept in a database apart from the hub.

The sandbox is a test double, not a product: its schema is created with ``create_all`` and dropped with
``reset``; there are no migrations. Each external system owns a table prefix (``erp_``, ``pim_``, ``dam_``,
``storefront_``, ``supplier_``, ``cdn_``, ``adobe_``); nothing joins across prefixes except the seeder and the scenarios, which play the
part of the people and integrations that change several systems at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(name: str, **kw: Any) -> Column[Any]:
    return Column(name, DateTime(timezone=True), **kw)


# --------------------------------------------------------------------------------------------------------- ERP
erp_item = Table(
    "erp_item",
    metadata,
    Column("sku", String(128), primary_key=True),
    Column("parent_sku", String(128)),
    Column("product_type", String(16), nullable=False),
    # what the item is (catalog_sync.domain.ITEM_TYPES); null reads as its product_type
    Column("item_type", String(16)),
    # a kit's components ([{"sku", "quantity"}], as ERPs keep a kit's bill of materials) and a bundle's pricing
    Column("components", JSON),
    Column("kit_pricing", String(8)),
    Column("lifecycle_status", String(16), nullable=False),
    Column("upc", String(32)),
    Column("product_group", String(64)),
    Column("uom", String(16)),
    Column("weight", Float),
    Column("weight_unit", String(8)),
    Column("length", Float),
    Column("width", Float),
    Column("height", Float),
    Column("dimension_unit", String(8)),
    Column("country_of_origin", String(8)),
    Column("vendor_name", String(128)),
    Column("reference_price", Float),
    Column("currency", String(3)),
    Column("description", Text),
    _ts("updated_at", nullable=False),
    Index("ix_erp_item_updated", "updated_at", "sku"),
    Index("ix_erp_item_parent", "parent_sku"),
)
erp_stock = Table(
    "erp_stock",
    metadata,
    Column("sku", String(128), primary_key=True),
    Column("location", String(32), primary_key=True),
    Column("quantity", Integer, nullable=False),
    _ts("updated_at", nullable=False),
)
erp_price = Table(
    "erp_price",
    metadata,
    Column("sku", String(128), primary_key=True),
    Column("price", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    _ts("updated_at", nullable=False),
)
erp_change = Table(
    "erp_change",
    metadata,
    # assigned as max+1 under the write lock, inside the writing transaction: gap-free and in commit order
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("topic", String(16), nullable=False),
    Column("sku", String(128), nullable=False),
    Column("data", JSON),
    _ts("committed_at", nullable=False),
)
erp_webhook = Table(
    "erp_webhook",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("topics", JSON, nullable=False),
    _ts("created_at", nullable=False),
)

#: The ERP's reference tables (``unit``, ``country``) beyond its standard ones: units and countries an ERP
#: administrator added or changed (``attributes``), or retired (``retired`` true). GET /erp/units and
#: /erp/countries answer the standard table (catalog_sync_sandbox.erp.standard_reference) overlaid with these rows.
erp_reference = Table(
    "erp_reference",
    metadata,
    Column("table_name", String(16), primary_key=True),
    Column("code", String(32), primary_key=True),
    Column("attributes", JSON, nullable=False),
    Column("retired", Boolean, nullable=False),
    _ts("updated_at", nullable=False),
)

# --------------------------------------------------------------------------------------------------------- PIM
pim_product = Table(
    "pim_product",
    metadata,
    Column("identifier", String(128), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("family", String(64)),
    Column("parent", String(128)),
    Column("categories", JSON, nullable=False),
    Column("values", JSON, nullable=False),
    # {association type: {"products": [...], "product_models": [...], "groups": [...]}}; null reads as none
    Column("associations", JSON),
    _ts("created", nullable=False),
    _ts("updated", nullable=False),
    Index("ix_pim_product_updated", "updated"),
    Index("ix_pim_product_parent", "parent"),
)
pim_product_model = Table(
    "pim_product_model",
    metadata,
    Column("code", String(128), primary_key=True),
    Column("family", String(64)),
    Column("family_variant", String(128)),
    Column("parent", String(128)),
    Column("categories", JSON, nullable=False),
    Column("values", JSON, nullable=False),
    _ts("created", nullable=False),
    _ts("updated", nullable=False),
    Index("ix_pim_product_model_updated", "updated"),
)
pim_structure = Table(
    # The catalog structure (attributes, options, groups, families, family variants, categories, channels,
    # locales, currencies, measurement families), each item in Akeneo's standard format. A fresh sandbox holds what
    # a fresh Akeneo installation holds (catalog_sync_sandbox.pim_structure.install); the rest arrives through the
    # API. ``owner`` scopes the codes of options (their attribute) and family variants (their family).
    "pim_structure",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("owner", String(100), primary_key=True, default=""),
    Column("code", String(255), primary_key=True),
    Column("doc", JSON, nullable=False),
    Column("position", Integer, nullable=False),
    _ts("updated", nullable=False),
)
pim_token = Table(
    "pim_token",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),  # access | refresh
    Column("client_id", String(128), nullable=False),
    Column("username", String(128), nullable=False),
    _ts("expires_at", nullable=False),
)

# --------------------------------------------------------------------------------------------------------- DAM
dam_asset = Table(
    "dam_asset",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("sku", String(128)),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    _ts("valid_from"),
    _ts("valid_to"),
    _ts("rights_expires_at"),
    Column("rights_regions", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("filename", String(255), nullable=False),
    _ts("updated_at", nullable=False),
    Index("ix_dam_asset_sku", "sku"),
    Index("ix_dam_asset_updated", "updated_at", "id"),
)
dam_asset_version = Table(
    "dam_asset_version",
    metadata,
    Column("asset_id", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("filename", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    _ts("replaced_at", nullable=False),
)
dam_blob = Table(
    "dam_blob",
    metadata,
    Column("checksum", String(64), primary_key=True),
    Column("content_type", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# --------------------------------------------------------------------------------------------------- storefront
storefront_product = Table(
    "storefront_product",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("handle", String(255), nullable=False, unique=True),
    Column("doc", JSON, nullable=False),  # the Shopify product resource as last written, variants and images included
    Column("status", String(16), nullable=False),
    _ts("updated_at", nullable=False),
    Index("ix_storefront_product_updated", "updated_at"),
)
storefront_inventory_level = Table(
    "storefront_inventory_level",
    metadata,
    Column("inventory_item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("location_id", Integer, primary_key=True, autoincrement=False),
    Column("available", Integer, nullable=False),
    _ts("updated_at", nullable=False),
)
storefront_variant_index = Table(
    "storefront_variant_index",
    metadata,
    # rebuilt on every product write: which product and SKU an inventory item belongs to
    Column("inventory_item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("variant_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False, index=True),
    Column("sku", String(128)),
)
storefront_location = Table(
    "storefront_location",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(64), nullable=False),
)
storefront_idempotency = Table(
    "storefront_idempotency",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("status_code", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    _ts("created_at", nullable=False),
)

# --------------------------------------------------------------------------------------------------------- CDN
cdn_page = Table(
    "cdn_page",
    metadata,
    Column("path", String(512), primary_key=True),  # the page's path under the edge: the cache key
    Column("status_code", Integer, nullable=False),
    Column("html", Text, nullable=False),
    _ts("cached_at", nullable=False),
)
cdn_surrogate_key = Table(
    "cdn_surrogate_key",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("path", String(512), primary_key=True),
)

# ---------------------------------------------------------------------------------------------------- supplier
supplier_submission = Table(
    "supplier_submission",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("supplier", String(128), nullable=False),
    Column("sku", String(128), nullable=False),
    _ts("submitted_at", nullable=False),
    Column("changes", JSON, nullable=False),
    Column("lifecycle_flag", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    _ts("decided_at"),
    Index("ix_supplier_submission_status", "status", "id"),
)

# ------------------------------------------------------------------------------------------------------ shared
# ----------------------------------------------------------------------------------- Adobe Commerce (Magento 2)
adobe_product = Table(
    "adobe_product",
    metadata,
    Column("sku", String(64), primary_key=True),  # Magento's SKU column is 64 characters
    Column("entity_id", Integer, nullable=False, unique=True),
    Column("type_id", String(32), nullable=False),
    # the admin-scope ("all") product as saved: every catalog-data-product-interface field but media and links
    Column("data", JSON, nullable=False),
    # store-view overrides of store-scoped attributes: {store_code: {attribute_code: value}}
    Column("store_values", JSON, nullable=False),
    # a configurable's options (configurable-product-data-option-interface) and linked child SKUs
    Column("options", JSON),
    Column("children", JSON),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
)
adobe_media = Table(
    "adobe_media",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sku", String(64), nullable=False),
    Column("entry", JSON, nullable=False),  # the gallery entry as Magento lists it (file path, no content)
    Column("content_sha256", String(64), nullable=False),
    Index("ix_adobe_media_sku", "sku"),
)
adobe_source_item = Table(
    "adobe_source_item",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("source_code", String(255), primary_key=True),
    Column("quantity", Float, nullable=False),
    Column("status", Integer, nullable=False),
)
adobe_bulk = Table(
    "adobe_bulk",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("description", Text, nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    # status reads so far: the sandbox's consumer runs a bulk's open operations on a later read (see adobe.py)
    Column("reads", Integer, nullable=False),
)
adobe_operation = Table(
    "adobe_operation",
    metadata,
    Column("bulk_uuid", String(36), primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("topic_name", String(255), nullable=False),
    Column("store_code", String(32), nullable=False),
    Column("serialized_data", Text, nullable=False),
    Column("result_serialized_data", Text),
    Column("status", Integer, nullable=False),
    Column("result_message", Text),
    Column("error_code", Integer),
)

sandbox_counter = Table(
    "sandbox_counter",
    metadata,
    Column("name", String(32), primary_key=True),
    # Shopify-sized ids (7,000,000,001...) overflow a 32-bit integer on PostgreSQL
    Column("value", BigInteger, nullable=False),
)


def make_engine(url: str) -> Engine:
    """An engine for the sandbox database; SQLite gets WAL so readers never wait for the single writer."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)


def truncate_all(engine: Engine) -> None:
    """Empty every sandbox table (children first), keeping the schema."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


def next_ids(conn: Any, name: str, count: int = 1, start: int = 1) -> list[int]:
    """Reserve ``count`` consecutive ids from a named counter; the caller holds the sandbox write lock."""
    from sqlalchemy import select

    current = conn.execute(select(sandbox_counter.c.value).where(sandbox_counter.c.name == name)).scalar()
    if current is None:
        first = start
        conn.execute(sandbox_counter.insert().values(name=name, value=start + count - 1))
    else:
        first = current + 1
        conn.execute(
            sandbox_counter.update().where(sandbox_counter.c.name == name).values(value=current + count)
        )
    return list(range(first, first + count))
