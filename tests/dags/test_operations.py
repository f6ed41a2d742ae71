"""DAG policy for operations: the hot path is protected from the nightly, every task carries the fail-fast
policy, freshness deadlines and alert checks are wired, a rollback waits for approval, retention runs weekly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_the_hot_path_never_queues_behind_the_nightly(dagbag) -> None:  # type: ignore[no-untyped-def]
    hot = dagbag.dags["hot_data_sync"].get_task("sync_changes")
    assert hot.pool == "storefront_hot"
    others = [t for d in dagbag.dags.values() if d.dag_id != "hot_data_sync" for t in d.tasks]
    assert all(t.pool != "storefront_hot" for t in others), "another task takes the hot path's slot"
    # Absolute weights: what the scheduler compares is the task's own weight (others: default 1, downstream sums
    # stay far below 100 in DAGs of at most a dozen tasks).
    assert hot.weight_rule == "absolute" or str(hot.weight_rule).endswith("absolute")
    assert hot.priority_weight > sum(t.priority_weight for t in others)
    assert dagbag.dags["hot_data_sync"].params["max_batch_changes"] == 5000


def test_every_task_fails_fast_on_configuration_and_auth(dagbag) -> None:  # type: ignore[no-untyped-def]
    from catalog_sync.airflow.defaults import FailFast

    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert isinstance(task.retry_policy, FailFast), f"{dag.dag_id}.{task.task_id}: no FailFast policy"


def test_fail_fast_policy_decisions() -> None:
    from airflow.sdk.definitions.retry_policy import RetryAction

    from catalog_sync.airflow.defaults import FailFast
    from catalog_sync.connectors.http import AuthError, ConfigurationError, TransientError

    policy = FailFast()
    auth = policy.evaluate(AuthError("pim: 401 after a token refresh", system="pim"), 1, 4)
    assert auth.action is RetryAction.FAIL and "pim: 401 after a token refresh" in str(auth.reason)
    try:
        try:
            raise ConfigurationError("storefront: 404 of /admin/api/2099-01/products.json")
        except ConfigurationError as exc:
            raise RuntimeError("publish failed") from exc
    except RuntimeError as wrapped:
        assert policy.evaluate(wrapped, 1, 4).action is RetryAction.FAIL
    assert policy.evaluate(TransientError("erp: 503 x5", system="erp"), 1, 4).action is RetryAction.DEFAULT
    assert policy.evaluate(ValueError("bug"), 1, 4).action is RetryAction.DEFAULT


def test_freshness_deadlines_and_alert_checks(dagbag) -> None:  # type: ignore[no-untyped-def]
    from catalog_sync.quality.policy import load_alert_rules

    rules = load_alert_rules()
    cold, hot = dagbag.dags["cold_data_nightly"], dagbag.dags["hot_data_sync"]
    [nightly] = cold.deadline if isinstance(cold.deadline, list) else [cold.deadline]
    [hot_deadline] = hot.deadline if isinstance(hot.deadline, list) else [hot.deadline]
    assert nightly.interval == timedelta(minutes=rules.nightly_deadline_minutes)
    assert hot_deadline.interval == timedelta(minutes=rules.hot_lag_minutes)
    assert nightly.callback.path == "catalog_sync.airflow.notifiers.deadline_missed"
    check = cold.get_task("check_alerts")
    # a teardown: it runs whatever happened upstream, and (unlike a plain all_done leaf) never turns a failed
    # night into a successful DAG run
    assert check.is_teardown and not check.on_failure_fail_dagrun and "finish" in check.upstream_task_ids
    assert check.trigger_rule in ("all_done", "all_done_setup_success")


def test_a_rollback_restores_only_after_a_person_approves_the_plan(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = dagbag.dags["sync_rollback"]
    approve, restore = dag.get_task("approve_restore"), dag.get_task("restore")
    assert isinstance(approve, ApprovalOperator)
    assert approve.upstream_task_ids == {"preview"} and restore.upstream_task_ids == {"approve_restore"}
    assert restore.trigger_rule == "all_success"  # a rejection skips the approval's downstream: no restore
    assert "plan_md" in approve.body and approve.response_timeout is not None
    assert approve.retries == 0


def test_held_changes_are_released_only_after_a_person_approves(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.providers.standard.operators.hitl import HITLOperator

    dag = dagbag.dags["freeze_release"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # by hand only
    approve, apply = dag.get_task("approve_release"), dag.get_task("apply_release")
    assert isinstance(approve, HITLOperator)
    assert approve.upstream_task_ids == {"something_held"}  # nothing held: no question, no release
    assert "approve_release" in apply.upstream_task_ids and apply.trigger_rule == "all_success"
    # no answer keeps everything held; "Keep held" must reach apply_release to be recorded (an ApprovalOperator
    # would skip it)
    assert approve.defaults == ["Keep held"] and approve.response_timeout is not None and approve.retries == 0
    assert apply.retries == 0 and apply.pool == "pim_api"


def test_retention_runs_weekly(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["hub_retention"]
    assert [t.task_id for t in dag.tasks] == ["prune"]
    assert dag.timetable.expression == "0 4 * * 0"


def test_a_breached_hard_gate_is_not_retried() -> None:
    from airflow.sdk.definitions.retry_policy import RetryAction

    from catalog_sync.airflow.defaults import FailFast
    from catalog_sync.quality.gate import GateFailed

    failed = GateFailed.__new__(GateFailed)
    Exception.__init__(failed, "products.l0 breached: 12% of rows failed")
    assert FailFast().evaluate(failed, 1, 4).action is RetryAction.FAIL
