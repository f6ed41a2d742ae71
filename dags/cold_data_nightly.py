"""
### Nightly cold-data sync (ERP and DAM into the PIM, PIM out to the storefront)

Moves the slow-changing product data through the PIM once a day, inside the run's data window:

1. **ERP -> PIM**: items changed since the committed cursor; units, vendors and countries normalised,
   duplicates dead-lettered, the **syntax gate** (layer 0, hard), then ERP-owned attributes written to the PIM.
2. **DAM -> PIM**: approved assets inside their validity and rights windows linked to their products;
   orphans and pre-staged images are quarantined with their reason (asset gates, layers 0-2).
3. **Supplier portal -> PIM**: pending submissions written field by field; a supplier's (often stale) lifecycle
   flag is refused by the ownership rules and dead-lettered, never written.
4. **PIM -> storefront**: every changed product family through the **business-rules gate** (layer 1, soft), then
   published (content from the PIM, status from the ERP); images follow in separate chunked tasks.
   **PIM -> each declared sales channel** (`governance/channels.yaml`, today Adobe Commerce): one task per enabled
   channel, `publish_channel_<name>`, beside `publish_products`, from the same gated content, in the channel's own
   pool; a channel that is down dead-letters its records (kind `channel`) and never holds the storefront back.
   A channel that takes images gets `publish_channel_images_<name>` after its products: each sold product's
   showable gallery (the channel's DAM rendition, image roles and region), read back so nothing is added twice,
   and images no longer showable there removed.
5. **Consistency gate** (layer 2, soft): ERP, PIM and storefront agree for what was published.
6. Cursors commit only in `finish`, after every write and gate succeeded; a failed run leaves them where they
   were, so the next run picks the same changes up again.

Every record read is delivered, unchanged or dead-lettered (see the Dead letters page); `finish` fails the run
loudly when the counts of any hop do not reconcile. Data Docs are built afterwards by a teardown, from whatever
the gates validated (a quiet night validated nothing and builds none); the teardown never decides the run's state.

**Retries.** Every task is safe to retry and resumes: its counts, audit rows and dead letters are kept per (run,
task) and replaced by a retry, and what an attempt committed (a batch of PIM writes) is not written again. A task
cleared in a finished run returns what it returned before and changes nothing. A hard gate fails the run once,
with the gate, its failing share and its top failing expectations in the hub run's error and in the one alert.

Alerts (thresholds in `thresholds.yaml`, section `alerts`): `check_alerts`, also a teardown, runs after `finish`
whatever happened and sends soft-gate shares past their limit and dead-letter counts past theirs; a run not finished
`nightly_deadline_minutes` after its logical date misses its Airflow deadline and sends a freshness alert.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, HubRunFailed, default_args, freshness_deadline
from catalog_sync.governance.channels import load_channels
from catalog_sync.quality.policy import load_alert_rules

IMAGE_CHUNK = 200
DEADLINE = timedelta(minutes=load_alert_rules().nightly_deadline_minutes)


@dag(
    schedule="0 2 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    default_args=default_args(),
    on_failure_callback=HubRunFailed("cold_data_nightly"),
    deadline=freshness_deadline(DEADLINE, f"nightly not finished {DEADLINE} after its logical date",
                                from_logical_date=True),
    doc_md=__doc__,
    tags=["catalog-sync", "cold", "pim"],
)
def cold_data_nightly():
    @task
    def open_run() -> str:
        from catalog_sync.airflow.tasks import run_window
        from catalog_sync.flows import cold

        return cold.open_run_task(**run_window(get_current_context()))

    @task(**pool("erp_api"))
    def extract_erp(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.extract_erp, load_id, systems())

    @task(retries=0)
    def gate_master_data(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable
        from catalog_sync.flows import cold

        return resumable(cold.gate_master_data, load_id)

    @task(**pool("pim_api"))
    def load_pim(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.load_pim, load_id, systems())

    @task(**pool("pim_api"))
    def link_assets(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.link_assets, load_id, systems())

    @task(**pool("pim_api"))
    def writeback_supplier(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.writeback_supplier, load_id, systems())

    @task(**pool("pim_api"))
    def extract_pim(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.extract_pim, load_id, systems())

    @task(retries=0)
    def gate_channel_content(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable
        from catalog_sync.flows import cold

        return resumable(cold.gate_channel_content, load_id)

    @task(**pool("storefront_api"))
    def publish_products(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.publish_products, load_id, systems())

    def publish_channel(name: str, pool_name: str) -> Any:
        @task(task_id=f"publish_channel_{name}", **pool(pool_name))
        def publish(load_id: str) -> dict:
            from catalog_sync.airflow.tasks import channel_client, resumable, systems
            from catalog_sync.flows import channels

            return resumable(channels.publish_channel, load_id, name, systems(), channel_client(name))

        return publish

    def publish_channel_images(name: str, pool_name: str) -> Any:
        @task(task_id=f"publish_channel_images_{name}", **pool(pool_name))
        def publish(load_id: str) -> dict:
            from catalog_sync.airflow.tasks import channel_client, resumable, systems
            from catalog_sync.flows import channels

            return resumable(channels.publish_channel_images, load_id, name, systems(), channel_client(name))

        return publish

    @task
    def plan_image_chunks(load_id: str) -> list[int]:
        from catalog_sync.airflow.tasks import resumable
        from catalog_sync.flows import cold

        return resumable(cold.plan_image_chunks, load_id, IMAGE_CHUNK)

    @task(**pool("storefront_api"))
    def publish_images(chunk: int, load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.publish_images, load_id, chunk, systems(), IMAGE_CHUNK)

    # none_failed: a night without image changes maps publish_images over nothing (skipped), and the run must
    # still be checked and finished, or its cursors would never move.
    @task(**pool("storefront_api"), retries=0, trigger_rule="none_failed")
    def gate_consistency(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable, systems
        from catalog_sync.flows import cold

        return resumable(cold.check_consistency, load_id, systems())

    @task(retries=0)
    def finish(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import resumable
        from catalog_sync.flows import cold

        return resumable(cold.finish, load_id)

    # A teardown: it runs however the run went (once every other task is done) and never decides the run's state.
    @task(retries=1)
    def build_data_docs(load_id: str) -> str | None:
        from catalog_sync.flows import cold

        return cold.build_docs(load_id)

    @task(retries=0, trigger_rule="all_done")
    def check_alerts(load_id: str) -> list:
        from catalog_sync.airflow.notifiers import run_alerts

        return run_alerts([load_id])

    load_id = open_run()
    erp = extract_erp(load_id)
    gated = gate_master_data(load_id)
    pim = load_pim(load_id)
    assets = link_assets(load_id)
    supplier = writeback_supplier(load_id)
    changed = extract_pim(load_id)
    content = gate_channel_content(load_id)
    products = publish_products(load_id)
    chunks = plan_image_chunks(load_id)
    images = publish_images.partial(load_id=load_id).expand(chunk=chunks)
    consistency = gate_consistency(load_id)
    done = finish(load_id)
    erp >> gated >> pim >> assets >> supplier >> changed >> content >> products >> chunks >> images >> consistency >> done
    # each declared sales channel beside the storefront: same gated content, its own pool; it succeeds when the
    # channel is down (its records dead-lettered), so the consistency gate and finish still run
    for channel in load_channels().enabled():
        published = publish_channel(channel.name, channel.pool)(load_id)
        content >> published >> consistency
        if channel.images is not None:  # its galleries after its products, as the storefront's: separate work
            published >> publish_channel_images(channel.name, channel.pool)(load_id) >> consistency
    done >> build_data_docs(load_id).as_teardown()
    # a teardown too: it runs whatever happened, and like Data Docs never decides the run's state
    done >> check_alerts(load_id).as_teardown()


cold_data_nightly()
