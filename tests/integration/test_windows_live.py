"""image_windows under Airflow's own scheduler (tests/integration/airflow_live.py): an image whose usage rights end
comes down, and an embargoed image goes up, without anyone triggering anything.

The product runs the sweep every 5 minutes so an edge is acted on within 15 minutes. Here the clock is scaled
down, not faked: the DAG file is deployed with a one-minute schedule and the edges are set about a minute ahead,
so the scheduler's own runs (run type ``scheduled``) must take the image down and put the other up within two
sweeps of their edge. What is checked is what a shopper and the systems see: the storefront gallery, the PIM
links and the live shopper page.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog_sync import reliability as R
from catalog_sync.flows import cold, windows
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import migrate, session_scope
from catalog_sync.trace import rendition
from tests.conftest import load_sandbox
from tests.integration.airflow_live import LiveAirflow
from tests.integration.test_cold_retries_live import gear_catalog
from tests.integration.test_republish import _state, _two_image_product

pytestmark = pytest.mark.airflow_live

DAG = "image_windows"
#: The sweep's cadence here (the product's is */5), and how far ahead of the deployment the edges are set.
EVERY_MINUTE = "* * * * *"
EDGE_AHEAD = timedelta(seconds=75)


def test_rights_end_and_an_embargo_lifts_on_time_through_the_scheduler(tmp_path: Path, fresh_sandbox: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    load_sandbox(fresh_sandbox, gear_catalog(tmp_path / "gear"))
    hub = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    migrate(hub)
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", hub)  # the cold steps read the process's default hub
    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        assert R.run_cold(systems, "baseline", hub_url=hub).status == "success"
        assert systems.cdn is not None
        expiring_sku, expiring_handle, (expiring, *_) = _two_image_product(systems, set())
        embargo_sku, embargo_handle, (embargoed, *_) = _two_image_product(systems, {expiring_sku})
        src = {a["id"]: rendition(a) for a in (expiring, embargoed)}

        t0 = datetime.now(UTC).replace(microsecond=0)
        edge = t0 + EDGE_AHEAD
        with session_scope(hub) as s:  # as if a sweep had just run
            repo.commit_cursor(s, *windows.CURSOR, "window_edge", t0.isoformat(), "test")
        assert systems.dam.update_asset(expiring["id"], {"rights_expires_at": edge.isoformat()}).ok
        # an image kept off the shop until its window opens: unlinked in the PIM, not in the gallery, page purged
        assert systems.dam.update_asset(embargoed["id"], {"valid_from": edge.isoformat()}).ok
        cold.write_asset_links(systems, {embargo_sku: [a for a in _state(systems, embargo_sku).pim_links
                                                       if a != embargoed["id"]]}, set())
        product = systems.storefront.find_by_handle(embargo_handle)
        kept = [i for i in product["images"] if i["src"] != src[embargoed["id"]]]
        assert systems.storefront.upsert_product({"handle": embargo_handle, "images": kept}).ok
        systems.cdn.purge_pages([embargo_handle])

        def shown(handle: str) -> tuple[list[str], str]:
            images = [i["src"] for i in (systems.storefront.find_by_handle(handle) or {}).get("images") or []]
            return images, systems.cdn.shopper_page(handle).html.replace("&amp;", "&")

        def settled() -> bool:
            gone_images, gone_page = shown(expiring_handle)
            up_images, up_page = shown(embargo_handle)
            return (src[expiring["id"]] not in gone_images and src[expiring["id"]] not in gone_page
                    and expiring["id"] not in _state(systems, expiring_sku).pim_links
                    and src[embargoed["id"]] in up_images and src[embargoed["id"]] in up_page
                    and embargoed["id"] in _state(systems, embargo_sku).pim_links)

        assert src[expiring["id"]] in shown(expiring_handle)[0] and src[embargoed["id"]] not in shown(embargo_handle)[0]
        airflow = LiveAirflow(tmp_path / "live", [f"{DAG}.py"], fresh_sandbox.url,
                              {"CATALOG_SYNC_HUB_URL": hub, "CATALOG_SYNC_HOME": str(tmp_path / "home")})
        deployed = airflow.dags / f"{DAG}.py"
        text = deployed.read_text()
        assert 'schedule="*/5 * * * *"' in text  # the product's cadence, replaced by the scaled one
        deployed.write_text(text.replace('schedule="*/5 * * * *"', f'schedule="{EVERY_MINUTE}"'))
        airflow.start()
        try:
            # nothing is due before the edge: the expiring image stays up meanwhile
            while datetime.now(UTC) < edge - timedelta(seconds=5):
                assert src[expiring["id"]] in shown(expiring_handle)[0]
                time.sleep(5)
            airflow.wait(settled, within=EDGE_AHEAD.total_seconds() + 150, what="both images on time")
            done_after = (datetime.now(UTC) - edge).total_seconds()
        finally:
            airflow.stop()
        runs = airflow.runs(DAG)
        assert runs and {kind for _, kind, _ in runs} == {"scheduled"}, runs  # nobody triggered anything
        # within two of its sweeps after the edge (the product's 5-minute cadence makes that 10 of 15 minutes)
        assert done_after <= 150, done_after
    finally:
        systems.close()
