"""
### Hub retention (weekly)

Prunes what the hub and the state folder keep past its use (`catalog_sync.retention`; by hand:
`catalog-sync retention --dry-run`):

- hot-batch runs finished more than 14 days ago, with their counters, audit rows, staged records, gate results
  and validation folders (every hot batch is a run of its own, seconds apart under a steady stream);
- audit rows of any flow older than 90 days;
- validation and Data Docs folders older than 30 days, or of runs the hub no longer has.

Kept whatever their age: runs that can still be rolled back (field deltas younger than 30 days, stock aside),
runs with open dead letters, the runs that committed the current cursors, running runs, and every run's
data-quality KPIs (the Quality page's trends).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.defaults import START_DATE, default_args


@dag(
    schedule="0 4 * * 0",  # Sundays 04:00 UTC: after the nightly, far from the weekday peaks
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    params={
        "hot_runs_days": Param(14, type="number", minimum=1, title="Hot-batch runs kept (days)",
                               description="Hot-batch runs finished longer ago are pruned with their rows."),
        "audit_days": Param(90, type="number", minimum=1, title="Audit rows kept (days)",
                            description="Audit rows of any flow older than this are pruned."),
        "validations_days": Param(30, type="number", minimum=1, title="Validation folders kept (days)",
                                  description="Validation and Data Docs folders older than this are removed."),
        "rollback_days": Param(30, type="number", minimum=1, title="Rollback window (days)",
                               description="Runs whose field deltas are younger stay, so they can be rolled back."),
    },
    doc_md=__doc__,
    tags=["catalog-sync", "maintenance"],
)
def hub_retention():
    @task
    def prune() -> dict:
        from catalog_sync.retention import RetentionPolicy, prune

        p = get_current_context()["params"]
        return prune(RetentionPolicy(hot_runs_days=float(p["hot_runs_days"]), audit_days=float(p["audit_days"]),
                                     validations_days=float(p["validations_days"]),
                                     rollback_days=float(p["rollback_days"])))

    prune()


hub_retention()
