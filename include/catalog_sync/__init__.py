"""Catalog Sync: keeps ERP, PIM, DAM, storefront and supplier portals in step."""

__version__ = "0.1.0"
