"""
### Weekly reconciliation (full reads of every system, drift against the owners, deletions, showable drift)

Once a week, when the systems are quiet, compares complete id sets instead of deltas:

1. **Read** every ERP item, PIM product and product model, DAM asset and storefront product (one task per
   system, each in its system's pool); the lean canonical frames are staged as CSV.gz files under the state
   folder (shared storage), never in XCom.
   Each enabled sales channel of `governance/channels.yaml` is read by its own task, `read_channel_<name>`, in
   its own pool (Adobe Commerce: `GET /V1/products`, `searchCriteria` paging), with the ERP's live price of each
   SKU it holds.
2. **Compare** each attribute a system holds a copy of (per `ownership.yaml`) with its owner's value; findings go
   to the Drift page: `drift`, `missing`, `deleted` (SKU gone from the ERP), `orphan` (DAM asset of no SKU),
   `reference` (an ERP unit or country the reference tables do not know), `showable` (a storefront gallery,
   images or order, that is not the one the showable rule builds from the PIM links and the DAM's assets). The run
   details keep the taxonomy snapshot (categories in use, units and countries in use) for the nightly gate, and
   the showable drift per SKU (images the rule hides, missing, unlinked, out of order; a status the ERP does not
   call for). Per channel (findings name the channel as their system): `missing` (sold per the PIM, not on the
   channel), `deleted` (on the channel, but gone from the PIM or the ERP, or no longer sold
   by it), `drift` of name (cut by the channel's formatting), status (the ERP lifecycle) and price (the ERP's
   live price). A channel that is down gets one `unavailable` finding and a dead letter of its own; the other
   systems are compared as usual.
3. **Deletions**: only this DAG may declare a SKU deleted. It disables the PIM product and archives the storefront
   product (both audited and delta-logged, so `sync_rollback` can undo them), and disables on a channel what it
   should no longer hold. Param `apply_deletions` (default
   true) set to false turns the writes off (report only); more than `max_deletions` SKUs at once applies
   nothing, since that many means a broken read. During a freeze window holding deletions
   (`governance/freeze_windows.yaml`) they are held for the `freeze_release` DAG instead.
4. **Repair showable drift** through the image_windows sweep's own path (a seasonal-republish run limited to the
   `dam_links`, `storefront` and `cache` repairs, verified on the live page, the changed pages purged from the
   CDN). Param `repair_showable` (default true) set to false reports only; more than `max_repairs` products at
   once repairs nothing.
5. **Alert** when the share of SKUs whose PIM lifecycle differs from the ERP's exceeds
   `alerts.lifecycle_divergence_share` of `thresholds.yaml` (0.01), through the alert connections like every
   other alert (a repeat inside the suppression window is counted, not sent).
6. **Finish**: every record read is accounted for (unchanged, or delivered when a corrective write changed it).
7. **Reference data** (beside the steps above, not before `finish`): `refresh_reference_data` reads the unit and
   country tables from the ERP and the category tree from the PIM and records the difference from the tables the
   nightly gates read as a proposal in the hub (nothing applied). When there is one, `approve_reference_data`
   (Airflow's Human-in-the-loop operator: Browse > Required Actions) shows the diff and waits up to
   3 hours for Approve or Reject; `apply_reference_data` applies an approval and replays the open dead letters a
   reference table refused, or records the rejection (no answer counts as a rejection). The next nightly's gates
   use what was approved. An approved category-table change is held during a freeze window holding taxonomy
   changes, until `freeze_release` applies it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, HubRunFailed, default_args
from catalog_sync.governance.channels import load_channels


@dag(
    schedule="0 3 * * 0",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    default_args=default_args(),
    on_failure_callback=HubRunFailed("weekly_reconciliation"),
    doc_md=__doc__,
    tags=["catalog-sync", "reconciliation"],
    params={
        "apply_deletions": Param(True, type="boolean", title="Apply deletions",
                                 description="Disable/archive SKUs deleted in the ERP; false reports them only."),
        "max_deletions": Param(100, type="integer", minimum=0, title="Most deletions applied",
                               description="Above this many deleted SKUs in one run, none is applied."),
        "repair_showable": Param(True, type="boolean", title="Repair showable drift",
                                 description="Republish storefront galleries and statuses that drifted from the "
                                             "showable rule; false reports them only."),
        "max_repairs": Param(200, type="integer", minimum=0, title="Most showable repairs",
                             description="Above this many drifted products in one run, none is repaired."),
    },
)
def weekly_reconciliation():
    @task
    def open_run() -> str:
        from catalog_sync.airflow.tasks import run_window
        from catalog_sync.flows import reconcile

        return reconcile.open_run(**run_window(get_current_context()))

    @task(**pool("erp_api"))
    def read_erp(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reconcile

        return reconcile.read_erp(load_id, systems())

    @task(**pool("pim_api"))
    def read_pim(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reconcile

        return reconcile.read_pim(load_id, systems())

    @task(**pool("dam_api"))
    def read_dam(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reconcile

        return reconcile.read_dam(load_id, systems())

    @task(**pool("storefront_api"))
    def read_storefront(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reconcile

        return reconcile.read_storefront(load_id, systems())

    def read_channel(name: str, pool_name: str) -> Any:
        @task(task_id=f"read_channel_{name}", **pool(pool_name))
        def read(load_id: str) -> dict:
            from catalog_sync.airflow.tasks import systems
            from catalog_sync.flows import reconcile

            return reconcile.read_channel(load_id, name, systems())

        return read

    @task
    def compare(load_id: str) -> dict:
        from catalog_sync.flows import reconcile

        return reconcile.compare_systems(load_id, max_deletions=int(get_current_context()["params"]["max_deletions"]))

    @task(**pool("pim_api"))
    def apply_deletions(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reconcile

        params = get_current_context()["params"]
        return reconcile.apply_deletions(load_id, systems(), apply=bool(params["apply_deletions"]),
                                         max_deletions=int(params["max_deletions"]))

    @task(**pool("pim_api"))
    def repair_showable(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reconcile

        params = get_current_context()["params"]
        return reconcile.repair_showable(load_id, systems(), repair=bool(params["repair_showable"]),
                                         max_repairs=int(params["max_repairs"]))

    @task
    def alert_lifecycle_divergence(load_id: str) -> dict:
        from catalog_sync.airflow.notifiers import dispatch
        from catalog_sync.flows import reconcile

        return reconcile.alert_on_divergence(load_id, dispatch)

    @task(retries=0)
    def finish(load_id: str) -> dict:
        from catalog_sync.flows import reconcile

        return reconcile.finish(load_id)

    @task(**pool("pim_api"))
    def refresh_reference_data(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reference

        return reference.refresh(load_id, systems())

    @task.short_circuit
    def reference_changes_proposed(refresh: dict) -> bool:
        return refresh["proposal_id"] is not None

    @task(retries=0, **pool("pim_api"))
    def apply_reference_data(load_id: str, refresh: dict, response: dict) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import reference

        return reference.apply_decision(load_id, int(refresh["proposal_id"]), response, systems())

    load_id = open_run()
    refreshed = refresh_reference_data(load_id)
    approve_reference_data = HITLOperator(
        task_id="approve_reference_data",
        subject="Apply the refreshed reference tables (units, countries, categories)?",
        body="{{ ti.xcom_pull(task_ids='refresh_reference_data')['summary'] }}",
        options=["Approve", "Reject"],
        defaults=["Reject"],
        response_timeout=timedelta(hours=3),
    )
    reference_changes_proposed(refreshed) >> approve_reference_data
    apply_reference_data(load_id, refreshed, approve_reference_data.output)
    reads = [read_erp(load_id), read_pim(load_id), read_dam(load_id), read_storefront(load_id),
             *(read_channel(c.name, c.pool)(load_id) for c in load_channels().enabled())]
    compared = compare(load_id)
    deletions = apply_deletions(load_id)
    repaired = repair_showable(load_id)
    alerted = alert_lifecycle_divergence(load_id)
    reads >> compared >> deletions >> repaired >> alerted >> finish(load_id)


weekly_reconciliation()
