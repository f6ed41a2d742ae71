"""
### ERP item files (a file-fed ERP)

For an ERP that exports instead of answering calls (the ERP connection's extra `item_feed` names the inbox its CSV
item exports are dropped into; see docs/connections.md). The asset `catalog-sync://erp/item-files` is watched in
the triggerer by `catalog_sync.airflow.triggers.ErpItemFileTrigger`: when a file arrives after the last nightly's
committed `erp/items` cursor, this DAG starts a `cold_data_nightly` run, which checks the file whole, then row by
row, and syncs it. Files dropped while a nightly runs wait for the next one (the nightly allows one run at a time).
With the default API-fed ERP the watcher never fires and this DAG never runs.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetWatcher, dag

from catalog_sync.airflow.defaults import START_DATE, default_args
from catalog_sync.airflow.triggers import ErpItemFileTrigger

ERP_ITEM_FILES = Asset(
    "catalog-sync://erp/item-files",
    watchers=[AssetWatcher(name="erp_item_inbox", trigger=ErpItemFileTrigger(poll_interval=60.0))],
)


@dag(
    schedule=[ERP_ITEM_FILES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    default_args=default_args(retries=1, execution_timeout=timedelta(minutes=5)),
    doc_md=__doc__,
    tags=["catalog-sync", "erp"],
)
def erp_item_files():
    TriggerDagRunOperator(task_id="start_nightly", trigger_dag_id="cold_data_nightly", wait_for_completion=False)


erp_item_files()
