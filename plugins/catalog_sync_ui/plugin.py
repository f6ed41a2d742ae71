"""Registers the Catalog Sync UI with the Airflow 3 api-server.

* ``fastapi_apps``: :func:`catalog_sync.ui.app.create_app` mounted at ``/catalog-sync``. Plugin apps are not
  covered by Airflow's auth; every route of this app depends on ``catalog_sync.ui.auth.require_user``.
* ``external_views``: entries in Airflow's main navigation (``destination="nav"``; "Data quality" and "Dead
  letters" top level, the others in the Plugins menu under the "Catalog Sync" category) and a "Catalog Sync" tab on each DAG run page (``destination="dag_run"``; the UI
  fills in ``{DAG_ID}`` and ``{RUN_ID}``), which shows the hub run recorded for that Airflow run.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from catalog_sync.ui.app import create_app

URL_PREFIX = "/catalog-sync"
CATEGORY = "Catalog Sync"


class CatalogSyncUIPlugin(AirflowPlugin):
    """Data quality reports, dead letters, SKU trace and reconciliation drift inside the Airflow UI."""

    name = "catalog_sync_ui"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Catalog Sync"}]
    external_views = [
        {
            "name": "Data quality",
            "nav_top_level": True,
            "href": f"{URL_PREFIX}/quality",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-quality",
        },
        {
            "name": "Dead letters",
            "nav_top_level": True,
            "href": f"{URL_PREFIX}/dead-letters",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-dead-letters",
        },
        {
            "name": "SKU trace",
            "href": f"{URL_PREFIX}/trace",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-trace",
        },
        {
            "name": "Reconciliation drift",
            "href": f"{URL_PREFIX}/drift",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-drift",
        },
        {
            "name": "Freeze windows",
            "href": f"{URL_PREFIX}/freeze",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-freeze",
        },
        {
            "name": "Reference data",
            "href": f"{URL_PREFIX}/reference-data",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-reference-data",
        },
        {
            "name": "Catalog Sync runs",
            "href": f"{URL_PREFIX}/runs",
            "destination": "nav",
            "category": CATEGORY,
            "url_route": "catalog-sync-runs",
        },
        {
            "name": "Catalog Sync",
            "href": f"{URL_PREFIX}/run-lookup?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "catalog-sync-run",
        },
    ]
