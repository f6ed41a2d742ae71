"""Product catalogs from outside: Magento 2 import CSVs read into canonical records, and a deterministic scaler.

``read_catalog(path)`` accepts a folder or a single CSV and returns a :class:`Catalog`; ``scale_catalog`` multiplies
it to N SKUs keeping its shape. Both are pure (no database, no network) so the sandbox seeder, the demos and any
test can reuse them.
"""

from catalog_sync.catalog.derive import upc_for
from catalog_sync.catalog.magento import (
    Catalog,
    CatalogError,
    CatalogImage,
    CatalogIssue,
    CatalogProduct,
    read_catalog,
)
from catalog_sync.catalog.scale import scale_catalog

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogImage",
    "CatalogIssue",
    "CatalogProduct",
    "read_catalog",
    "scale_catalog",
    "upc_for",
]
