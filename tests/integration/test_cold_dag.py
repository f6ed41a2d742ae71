"""`cold_data_nightly` run by Airflow (dag.test) against the sandbox, with the systems' end state checked over HTTP."""

from __future__ import annotations

from typing import Any

from catalog_sync.flows.systems import Systems
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import SyncRun


def test_nightly_dag_publishes_the_catalog(hub_url: str, fresh_sandbox: Any, airflow_db: str,
                                           airflow_connections: Any) -> None:
    from airflow.dag_processing.dagbag import DagBag

    fresh_sandbox.settings(storefront_bucket_size=100000, storefront_leak_per_s=10000)
    airflow_connections(fresh_sandbox.url)
    dag = DagBag(dag_folder="dags/cold_data_nightly.py").get_dag("cold_data_nightly")
    dag_run = dag.test()
    assert str(dag_run.state) == "success", [(ti.task_id, ti.state) for ti in dag_run.get_task_instances()]

    with session_scope() as s:
        run = s.query(SyncRun).filter(SyncRun.dag_id == "cold_data_nightly").one()
    assert run.status == "success" and run.records_read > 7000
    assert run.records_read == run.records_delivered + run.records_unchanged + run.records_dead_lettered

    systems = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    try:
        products = [p for page in systems.storefront.iter_products() for p in page.records]
        assert len(products) >= 170
        hoodie = next(p for p in products if any(v["sku"] == "MH01-XS-Black" for v in p["variants"]))
        assert hoodie["status"] == "active" and hoodie["images"]
        page = systems.storefront.shopper_page(hoodie["handle"])
        assert page.status == 200 and hoodie["title"] in page.html
    finally:
        systems.close()
