"""
### Channel backfill (manual)
Brings one declared sales channel (`include/catalog_sync/governance/channels.yaml`) level with the PIM for every
family it sells, not only those a nightly's window saw change. Run it when a channel is first enabled, when it
starts taking images or changes its rendition, or after products were removed on the channel by hand.

Every family root in the PIM is read again; the families the channel sells go through the nightly's business-rules
gate and then through the nightly's own channel publish: products (with their store-view values), then galleries
(`catalog_sync.flows.channels.backfill`). A family whose content the channel already holds (its fingerprint) is
counted unchanged and not sent; tick *Send again* to forget those fingerprints first. Records the channel refuses,
or every record while it is down, are that channel's dead letters, replayed from the Dead letters page. A freeze
window holds the backfill as it holds a nightly's bulk publish. The run's counts are on the *Catalog Sync* tab.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, default_args
from catalog_sync.governance.channels import load_channels

CHANNELS = sorted(c.name for c in load_channels().enabled())


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    default_args=default_args(retries=1),
    doc_md=__doc__,
    tags=["catalog-sync", "channels"],
    params={
        "channel": Param(CHANNELS[0] if CHANNELS else "", type="string", enum=CHANNELS or [""], title="Channel",
                         description="The declared sales channel to bring level with the PIM."),
        "resend": Param(False, type="boolean", title="Send again",
                        description="Forget what the channel was last sent and send every family it sells, for "
                                    "products changed or removed on the channel by hand."),
    },
)
def channel_backfill():
    # pim_api: the PIM is read whole; that pool keeps one request in flight for each declared channel
    @task(**pool("pim_api"))
    def backfill() -> dict:
        from catalog_sync.airflow.tasks import channel_client, systems
        from catalog_sync.flows import channels

        context = get_current_context()
        name = context["params"]["channel"]
        bundle, client = systems(), channel_client(name)
        try:
            return channels.backfill(name, bundle, client, resend=bool(context["params"]["resend"]),
                                     dag_id=context["dag_run"].dag_id, run_id=context["dag_run"].run_id)
        finally:
            client.close()
            bundle.close()

    backfill()


channel_backfill()
