"""
### Dead-letter replay (manual)

Sends selected dead letters through their hop again, after the cause was fixed in the source system. Each
record is re-read fresh from its source (the ERP item, the DAM asset, the PIM family) and passes the same
quality gates and ownership checks as a normal run: nothing can be forced through. Letters the replay
delivered are marked `replayed`; the others stay open with one more attempt.

Trigger it from the Dead letters page (select letters, *Replay*) or with
`catalog-sync dlq replay ID [ID ...]`, or from this form with the letter ids. Cursors never move in a replay.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from catalog_sync.airflow.budgets import pool
from catalog_sync.airflow.defaults import START_DATE, default_args


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args=default_args(retries=1),
    doc_md=__doc__,
    tags=["catalog-sync", "dead-letters"],
    params={
        "dead_letter_ids": Param([], type="array", items={"type": "integer"}, minItems=1,
                                 title="Dead-letter ids",
                                 description="Required: ids of the open dead letters to replay (see the Dead "
                                             "letters page); at least one."),
    },
)
def dead_letter_replay():
    @task(**pool("pim_api"))
    def replay_letters() -> dict:
        from catalog_sync.airflow.tasks import systems
        from catalog_sync.flows import replay

        context = get_current_context()
        user = getattr(context["dag_run"], "triggering_user_name", None) or "airflow"
        return replay.replay(context["params"]["dead_letter_ids"], systems(), by=user,
                             dag_id=context["dag_run"].dag_id, run_id=context["dag_run"].run_id)

    replay_letters()


dead_letter_replay()
