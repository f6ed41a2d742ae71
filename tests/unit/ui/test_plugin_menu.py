"""Every page of the Catalog Sync UI that stands on its own (a GET page without path parameters) is reachable from
Airflow's navigation: the plugin lists it in ``external_views``. A page left out of the menu is a page nobody finds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from catalog_sync.ui.app import create_app

PLUGIN = Path(__file__).resolve().parents[3] / "plugins" / "catalog_sync_ui" / "plugin.py"
#: Pages reached from somewhere else by design, with where from.
NOT_IN_MENU = {"/run-lookup": "the Catalog Sync tab of each DAG run (destination dag_run)"}


def _plugin() -> Any:
    spec = importlib.util.spec_from_file_location("catalog_sync_ui_plugin_under_test", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_standalone_page_is_in_airflows_navigation() -> None:
    plugin = _plugin()
    pages = {r.path for r in create_app().routes if isinstance(r, APIRoute) and "GET" in r.methods
             and r.response_class is HTMLResponse and "{" not in r.path}
    views = plugin.CatalogSyncUIPlugin.external_views
    in_menu = {v["href"].removeprefix(plugin.URL_PREFIX) for v in views if v["destination"] == "nav"}
    assert "/reference-data" in pages and "/freeze" in pages  # the listing sees the pages it should
    assert pages - in_menu - set(NOT_IN_MENU) == set()
    assert in_menu <= pages  # and the menu points at pages that exist
    # each entry has its own route name, as Airflow builds the UI's /plugin/<url_route> address from it
    assert len({v["url_route"] for v in views}) == len(views)
