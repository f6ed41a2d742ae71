"""
### Seasonal republish (manual, with a form)

Triage every SKU and variant of a season's scope along the lifecycle chain, then, unless it is a dry run, make
the repairs the operator allowed and republish in one coordinated pass.

1. **Triage** (reads only): for each SKU, the ERP lifecycle, the DAM's seasonal and hero assets (embargo dates,
   orphans, links the PIM never got), the PIM's copy of the lifecycle against the ERP, the storefront product
   against what the PIM and ERP say, the page shoppers are served (stale CDN copy, missing image), and
   pending supplier submissions whose stale lifecycle flag would re-break the chain.
2. **Repair and republish** (skipped on a dry run): ERP lifecycle only with `activate_erp` (the ERP owns it),
   DAM dates and links, stale supplier submissions quarantined (dead-lettered as an ownership refusal), the PIM
   brought in line with the ERP, the storefront product republished and its page purged from the CDN.
   Then the scoped families, re-read from the PIM and gated as the nightly does, are sent again to every
   declared sales channel that sells them (`republish_channel_<name>`, one task per enabled channel of
   `governance/channels.yaml`, in the channel's pool, through the channel's nightly publish with its
   fingerprints of those families forgotten). Param `channels` (default true) set to false leaves the channels
   out. A channel that is down dead-letters its own records; the storefront's repair is not held back.
3. **Verify**: everything read again, the live page checked for the season's image, one `diagnosis` row per SKU
   (its actions include each channel's result: published or dead-lettered).

Each SKU ends delivered (repaired and now holding), unchanged (nothing to fix, or a dry run) or dead-lettered
(a repair failed or was not allowed); `finish` fails the run when the counts do not reconcile. The SKU trace
page (or `catalog-sync explain SKU`) shows the latest diagnosis next to the systems' live state.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, HubRunFailed, default_args
from catalog_sync.governance.channels import load_channels

#: The repairs the form offers, in the order the run makes them (kept in step with catalog_sync.trace.REPAIRS,
#: which validates them at run time; importing it here would load the connectors at parse time).
REPAIRS = ["activate_erp", "dam_dates", "dam_links", "pim_state", "storefront", "cache", "supplier_quarantine"]


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=default_args(),
    on_failure_callback=HubRunFailed("seasonal_republish"),
    doc_md=__doc__,
    tags=["catalog-sync", "seasonal"],
    params={
        # Optional fields allow null: the trigger form marks every field whose type does not allow null as
        # required, and sends an emptied field as null.
        "season": Param(None, type=["null", "string"], title="Season or collection",
                        description="Optional: label of the season or collection being launched (recorded with "
                                    "the run)."),
        "skus": Param([], type=["null", "array"], items={"type": "string"}, title="SKUs",
                      description="SKUs to triage; a configurable parent brings all its variants. Fill the SKUs, "
                                  "the categories or both: at least one is required."),
        "categories": Param([], type=["null", "array"], items={"type": "string"}, title="Categories",
                            description="Optional when SKUs are given: PIM category codes or paths whose products "
                                        "to triage."),
        "channels": Param(True, type="boolean", title="Republish to the other channels",
                          description="After the storefront's repair, send the scoped families again to every "
                                      "declared sales channel that sells them."),
        "dry_run": Param(True, type="boolean", title="Dry run",
                         description="Diagnose only: write nothing to any system (the default)."),
        "repairs": Param(REPAIRS, type="array", items={"type": "string", "enum": REPAIRS}, title="Allowed repairs",
                         description="Repairs a real run may make; activate_erp writes the ERP lifecycle, which "
                                     "the ERP owns, so leave it out unless its owners agreed."),
    },
)
def seasonal_republish():
    @task
    def open_run() -> str:
        from catalog_sync.flows import republish

        context = get_current_context()
        dag_run = context["dag_run"]
        return republish.open_run(dict(context["params"]), dag_id=dag_run.dag_id, run_id=dag_run.run_id)

    @task(**pool("pim_api"))
    def triage(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import republish

        return republish.triage(load_id, systems())

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def unless_dry_run(load_id: str) -> bool:
        from catalog_sync.flows import republish

        return not republish.is_dry_run(load_id)

    @task(**pool("pim_api"))
    def repair_and_republish(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import republish

        return republish.repair(load_id, systems())

    def republish_channel(name: str, pool_name: str) -> Any:
        @task(task_id=f"republish_channel_{name}", **pool(pool_name))
        def republish_to(load_id: str) -> dict:
            from catalog_sync.airflow.tasks import systems
            from catalog_sync.flows import republish

            return republish.republish_channel(load_id, name, systems())

        return republish_to

    @task(**pool("pim_api"), trigger_rule="none_failed")
    def verify(load_id: str) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import republish

        return republish.verify(load_id, systems())

    @task(retries=0)
    def finish(load_id: str) -> dict:
        from catalog_sync.flows import republish

        return republish.finish(load_id)

    load_id = open_run()
    triaged = triage(load_id)
    proceed = unless_dry_run(load_id)
    repaired = repair_and_republish(load_id)
    checked = verify(load_id)
    on_channels = [republish_channel(c.name, c.pool)(load_id) for c in load_channels().enabled()]
    triaged >> proceed >> repaired >> [*on_channels, checked]
    for sent in on_channels:
        sent >> checked
    checked >> finish(load_id)


seasonal_republish()
