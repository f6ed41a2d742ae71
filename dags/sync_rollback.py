"""
### Roll a run back (manual)

Restores, in every system a chosen run touched, the values its per-field delta log says that run replaced.
Pick the run's load id on the Runs page (or `catalog-sync rollback --plan LOAD_ID` to preview).

- Ownership is enforced again: a restoring write may carry only what a normal run could write.
- Fields a later run changed again are left alone and reported as conflicts.
- Stock is not rolled back: the next ERP change is its truth.
- The rollback is a run of its own, audited with its own delta log, so it can be inspected and undone.

Nothing is restored before a person approves: `preview` computes the plan, `approve_restore` (Airflow's
human-in-the-loop `ApprovalOperator`) shows it in the run's "Required actions" and waits up to 24 hours;
"Approve" lets `restore` run, "Reject" (or no answer in time) skips or fails it, and nothing is written.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, default_args

APPROVAL_WINDOW = timedelta(hours=24)


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=default_args(retries=1),
    doc_md=__doc__,
    tags=["catalog-sync", "rollback"],
    params={
        "load_id": Param("", type="string", minLength=3, title="Load id",
                         description="Required: load id of the run to roll back (Runs page)."),
    },
)
def sync_rollback():
    @task
    def preview() -> dict:
        from catalog_sync.flows import rollback

        plan = rollback.plan(get_current_context()["params"]["load_id"])
        return {"records": len(plan["records"]), "conflicts": plan["conflicts"],
                "plan_md": rollback.plan_markdown(plan)}

    approve_restore = ApprovalOperator(
        task_id="approve_restore",
        subject="Roll back run {{ params.load_id }}?",
        body="{{ ti.xcom_pull(task_ids='preview')['plan_md'] }}",
        response_timeout=APPROVAL_WINDOW,
        retries=0,
    )

    @task(**pool("pim_api"))
    def restore() -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import rollback

        context = get_current_context()
        user = getattr(context["dag_run"], "triggering_user_name", None) or "airflow"
        return rollback.rollback(context["params"]["load_id"], systems(), by=user,
                                 dag_id=context["dag_run"].dag_id, run_id=context["dag_run"].run_id)

    preview() >> approve_restore >> restore()


sync_rollback()
