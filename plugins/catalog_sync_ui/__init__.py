"""Airflow UI plugin: Catalog Sync's quality, run, dead-letter, SKU-trace and drift pages.

Only wiring lives here; the app and its queries are in ``catalog_sync.ui`` (installed package, unit-tested).
"""
