"""
### Release changes held by a freeze window (manual)

During a freeze window declared in `include/catalog_sync/governance/freeze_windows.yaml`, the flows hold category
moves and bulk content changes (nightly publish, to the storefront and, per channel, to each declared sales
channel), deletions (weekly reconciliation, a channel's disables included) and category-table changes (reference
data) instead of applying them; hot data keeps flowing. This DAG applies what is held once a person
agrees, during the freeze or after it:

1. `list_held` opens the release run and lists every change held now (optionally only some kinds); those, and
   only those, are what an approval releases. With nothing held the run ends here.
2. `approve_release` (Airflow's Human-in-the-loop operator: Browse > Required Actions) shows them and waits up to
   24 hours for *Approve* or *Keep held*; no answer keeps them held.
3. `apply_release` applies an approval through the code that held each change: held products are re-read from the
   PIM and published by the nightly's own publish (a channel's through that channel's own publish), deletions by the reconciliation's own disable and archive, a
   category-table change by the reference data's decision. Every write is audited; a record the target refuses is
   dead-lettered and its held change marked so. *Keep held* is recorded and changes nothing.

The Catalog Sync UI's *Freeze windows* page shows the active windows and what they hold.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, HubRunFailed, default_args

APPROVAL_WINDOW = timedelta(hours=24)


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=26),
    default_args=default_args(retries=1),
    on_failure_callback=HubRunFailed("freeze_release"),
    doc_md=__doc__,
    tags=["catalog-sync", "freeze"],
    params={
        "kinds": Param([], type=["null", "array"],
                       items={"type": "string", "enum": ["category_move", "deletion", "taxonomy", "bulk_content"]},
                       title="Kinds to release", description="The kinds of held change to release; empty releases "
                                                             "every held change."),
    },
)
def freeze_release():
    @task
    def list_held() -> dict:
        from catalog_sync.flows import freeze

        context = get_current_context()
        return freeze.open_release(dag_id=context["dag_run"].dag_id, run_id=context["dag_run"].run_id,
                                   kinds=list(context["params"]["kinds"] or []) or None)

    @task.short_circuit
    def something_held(listed: dict) -> bool:
        return int(listed["held"]) > 0

    @task(retries=0, **pool("pim_api"))
    def apply_release(listed: dict, response: dict) -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import freeze

        return freeze.release(listed["load_id"], response, systems())

    listed = list_held()
    approve_release = HITLOperator(
        task_id="approve_release",
        subject="Release the changes held by the freeze?",
        body="{{ ti.xcom_pull(task_ids='list_held')['summary'] }}",
        options=["Approve", "Keep held"],
        defaults=["Keep held"],
        response_timeout=APPROVAL_WINDOW,
        retries=0,
    )
    something_held(listed) >> approve_release
    apply_release(listed, approve_release.output)


freeze_release()
