"""
### Hot-data sync (ERP stock, live prices and lifecycle status straight to the storefront and the sales channels)

Event-driven, not scheduled: the `erp_changes` asset is watched by `ErpChangeFeedTrigger` in the triggerer,
which polls the ERP change feed's head against the hub's committed cursor (`erp/changes`) every 2 s and fires
when the ERP has committed changes the storefront has not received. Each event becomes an asset event and
queues a run of this DAG (see `docs/adr/0004-hot-path-event-driven.md` for the choice and measured latency).

One task, `sync_changes`, does the whole hop in seconds:

1. reads every ERP change after the cursor up to the feed head frozen at start, and keeps only the latest value
   per SKU, topic and location (a burst of 30 stock moves is one write);
2. passes the stock/price gates `stock_prices.l0` and `.l1` (soft in `thresholds.yaml`: failing rows are
   dead-lettered and the rest go on; a gate made hard there fails the run instead) and the ownership rules
   (the ERP owns `stock`, `live_price`, `lifecycle_status`);
3. writes the storefront: stock with a deterministic `Idempotency-Key` per ERP change, live price on the
   variant, lifecycle as the product status; SKUs not published yet are audited and left to the nightly publish;
4. commits the cursor only when every change read is delivered, unchanged or dead-lettered, and records the
   `timeliness` KPI (ERP commit to storefront write).

The task keeps going while changes keep coming (`hot.drain`): after each batch it polls the feed head every
0.25 s and syncs what arrived, until `drain_idle_s` (10) seconds pass with nothing new or `drain_budget_s`
(240) are spent. A fresh task process costs seconds of start-up (imports, the GX context), so under a steady
stream it is paid once, not per batch. Each batch is its own hub run (load id = the Airflow run's + the cursor
it starts from).

The hot path has its own pool, `storefront_hot` (two slots: its task keeps two requests to the shop in flight),
and the highest priority weight of the project's tasks, so a nightly publish filling `storefront_api` never holds
a hot batch back. A batch reads at most
`max_batch_changes` (5,000) changes: a backlog after an outage is worked off in bounded, separately committed
batches. After the drain, each batch is checked against the alert thresholds (`thresholds.yaml`, `alerts`).
A run not finished `hot_lag_minutes` after it was queued misses its Airflow deadline and alerts; the change-feed
watcher alerts when the ERP's head stays ahead of the committed cursor that long, or when it cannot reach the
ERP or the hub.

Beside it, each enabled declared sales channel (`governance/channels.yaml`, today Adobe Commerce) has its own task,
`sync_channel_<name>`, in the channel's pool: the same changes from the channel's own cursor (`erp/changes@<name>`),
for the SKUs the channel has been given by the nightly (the others are counted unchanged), through the same gates,
written as MSI source items, base prices and product status. A channel still down after its client's retries
ends its task successfully with its cursor left where it was: the next run reads its changes again, and the
storefront's task never waits on it (`docs/adr/0018-hot-data-to-every-channel.md`).

`max_active_runs=1`: events that arrive during a run collapse into one follow-up run, which reads everything
after the cursor. A failed run leaves the cursor; the retry (or the next event) re-reads the same changes and
the idempotency keys make re-applying them harmless. A breached hard gate (if one is configured) fails
without retry.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetWatcher, Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, HubRunFailed, default_args, freshness_deadline
from catalog_sync.airflow.triggers import ErpChangeFeedTrigger
from catalog_sync.governance.channels import load_channels
from catalog_sync.quality.policy import load_alert_rules

FLOW = "hot_data_sync"
HOT_LAG = timedelta(minutes=load_alert_rules().hot_lag_minutes)

ERP_CHANGES = Asset(
    "erp_changes",
    uri="catalog-sync://erp/changes",
    watchers=[AssetWatcher(name="erp_change_feed", trigger=ErpChangeFeedTrigger(poll_interval=2.0))],
)


@dag(
    schedule=[ERP_CHANGES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=15),
    # Hot data is worth nothing late: retry soon and often, but give up within minutes and alert.
    default_args=default_args(
        retries=3,
        retry_delay=timedelta(seconds=10),
        retry_exponential_backoff=3.0,
        max_retry_delay=timedelta(minutes=2),
        execution_timeout=timedelta(minutes=5),
    ),
    params={
        # How long one task keeps syncing batches (inside its 5-minute execution timeout), and after how many
        # seconds without a new change it stops and leaves the next change to the asset watcher.
        "drain_budget_s": Param(240, type="number", minimum=0, maximum=270, title="Drain budget (s)",
                                description="Seconds one task keeps syncing batches, inside its 5-minute timeout."),
        "drain_idle_s": Param(10, type="number", minimum=0, maximum=120, title="Stop after idle (s)",
                              description="Seconds without a new change after which the task stops."),
        "max_batch_changes": Param(5000, type="integer", minimum=1, maximum=100000, title="Changes per batch",
                                   description="Most changes synced in one batch."),
    },
    on_failure_callback=HubRunFailed(FLOW),
    deadline=freshness_deadline(HOT_LAG, f"hot run not finished {HOT_LAG} after it was queued"),
    doc_md=__doc__,
    tags=["catalog-sync", "hot"],
)
def hot_data_sync():
    # Its own pool and the top priority: the nightly's publish tasks queue on storefront_api, never in front.
    @task(**pool("storefront_hot"), priority_weight=100, weight_rule="absolute")
    def sync_changes() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from catalog_sync.airflow.notifiers import run_alerts
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import hot
        from catalog_sync.quality.gate import GateFailed

        context = get_current_context()
        dag_run, params = context["dag_run"], context["params"]
        try:
            out = hot.drain(systems(), dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                            budget_s=float(params["drain_budget_s"]), idle_s=float(params["drain_idle_s"]),
                            max_changes=int(params["max_batch_changes"]))
        except GateFailed as exc:  # a breached hard gate fails the same way again: no retry, alert now
            raise AirflowFailException(str(exc)) from exc
        return {**out, "alerts": run_alerts(out["load_ids"])}

    # Each enabled declared sales channel: the same changes from its own cursor, in its own pool, beside the
    # storefront's task (neither waits on the other). A channel that is down ends its task successfully, its
    # changes left after its cursor, so no retry holds this run (and the next one, max_active_runs=1) open.
    def sync_channel(name: str, pool_name: str) -> Any:
        @task(task_id=f"sync_channel_{name}", **pool(pool_name), priority_weight=100, weight_rule="absolute")
        def sync() -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from catalog_sync.airflow.notifiers import run_alerts
            from catalog_sync.airflow.tasks import channel_client, channel_source_map, systems
            from catalog_sync.flows import hot
            from catalog_sync.quality.gate import GateFailed

            context = get_current_context()
            dag_run, params = context["dag_run"], context["params"]
            try:
                out = hot.drain(systems(), channel=name, client=channel_client(name),
                                source_map=channel_source_map(name), dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                budget_s=float(params["drain_budget_s"]), idle_s=float(params["drain_idle_s"]),
                                max_changes=int(params["max_batch_changes"]))
            except GateFailed as exc:  # as sync_changes: no retry (auth and configuration: the FailFast policy)
                raise AirflowFailException(str(exc)) from exc
            return {**out, "alerts": run_alerts(out["load_ids"])}

        return sync

    sync_changes()
    for channel in load_channels().enabled():
        sync_channel(channel.name, channel.pool)()


hot_data_sync()
