"""
### Image windows (every 5 minutes)

Takes images down when their usage rights or validity end, and puts embargoed images up when their window opens,
within minutes and without anyone (`catalog_sync.flows.windows`). Each run asks the DAM only for the assets whose
`valid_from`, `valid_to` or `rights_expires_at` fell since the last run, and for their SKUs makes the seasonal
republish's repairs a window change needs: the PIM links, the storefront gallery (by the one showable rule and
gallery order) and the purge of the shopper page, verified on the live page. A SKU it cannot fix is in the
dead-letter queue with the reason. With nothing due, a run reads one page of the DAM and ends.

Then each declared sales channel that takes images (`governance/channels.yaml`) gets the same repair in a task of
its own, `sweep_channel_<name>` (in `pim_api`, as it re-reads the families from the PIM; that pool keeps one
request in flight for the channel): the galleries of those SKUs' families are made the showable
ones for its region (an image whose licence expired comes off Adobe Commerce too), counted in a hub run of its own
on the hop `dam-><name>`; a channel that is down dead-letters its galleries (kind `channel`), and the sweep and the
other channels go on.

Its cursor is `dam/window_edges`; the first run looks back 24 hours.

Beside it, `lifecycle_watch` (`catalog_sync.flows.lifecycle_watch`) reads the ERP's item lifecycle changes older
than `lifecycle_follow_minutes` (thresholds.yaml) and alerts, through the alert connections, for each SKU whose PIM
has not followed, naming the SKU and both states. Its cursor is `erp/lifecycle_watch`; the first run starts at the
change feed's head.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, default_args
from catalog_sync.governance.channels import load_channels


@dag(
    schedule="*/5 * * * *",  # images right within 15 minutes of their edge, with room for a slow sweep
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args=default_args(retries=2, execution_timeout=timedelta(minutes=20)),
    doc_md=__doc__,
    tags=["catalog-sync", "images"],
)
def image_windows():
    @task(**pool("pim_api"))
    def sweep() -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import windows

        run_id = get_current_context()["dag_run"].run_id
        bundle = systems()
        try:
            return windows.sweep(bundle, run_id=run_id)
        finally:
            bundle.close()

    @task(**pool("pim_api"))
    def lifecycle_watch() -> dict:
        from datetime import timedelta

        from catalog_sync.airflow.notifiers import dispatch
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import lifecycle_watch as lw
        from catalog_sync.quality.policy import load_alert_rules

        follow = timedelta(minutes=load_alert_rules().lifecycle_follow_minutes)
        bundle = systems()
        try:
            alerts, summary = lw.watch(bundle, follow_within=follow)
        finally:
            bundle.close()
        return {**summary, "sent": dispatch(alerts)}

    def sweep_channel(name: str) -> Any:
        @task(task_id=f"sweep_channel_{name}", **pool("pim_api"))
        def repair(summary: dict) -> dict:
            from datetime import datetime

            from catalog_sync.airflow.tasks import channel_client, systems
            from catalog_sync.flows import windows

            run_id = get_current_context()["dag_run"].run_id
            bundle, client = systems(), channel_client(name)
            try:
                return windows.sweep_channel(bundle, client, name, summary["skus"], run_id=run_id,
                                             now=datetime.fromisoformat(summary["until"]))
            finally:
                client.close()
                bundle.close()

        return repair

    swept = sweep()
    for channel in load_channels().enabled():
        if channel.images is not None:  # the storefront's repair first: it unlinks what may no longer be shown
            sweep_channel(channel.name)(swept)
    lifecycle_watch()


image_windows()
