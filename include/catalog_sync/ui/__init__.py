"""Catalog Sync pages inside the Airflow UI: data quality, runs, dead letters, SKU trace, drift.

The Airflow plugin in ``plugins/catalog_sync_ui`` only registers :func:`catalog_sync.ui.app.create_app`; the
queries behind the pages (:mod:`catalog_sync.ui.queries`) and the authentication glue
(:mod:`catalog_sync.ui.auth`) live here so that they are unit-tested like the rest of the package.

Boundary: the UI reads the hub and never writes to it, except ``resolve_dead_letters`` when a person discards.
"""
