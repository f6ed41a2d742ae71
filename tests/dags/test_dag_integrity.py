"""DAG integrity and policy: every file imports, the expected DAGs exist, and each follows the house rules."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "hot_data_sync",
    "cold_data_nightly",
    "weekly_reconciliation",
    "seasonal_republish",
    "dead_letter_replay",
    "sync_rollback",
    "hub_retention",
    "image_windows",
    "erp_item_files",
    "freeze_release",
    "channel_backfill",
}


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


def test_expected_dags_exist(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert set(dagbag.dag_ids) == EXPECTED


def test_each_dag_has_docs_tags_owner_and_backoff(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id}: doc_md missing or too thin"
        assert "catalog-sync" in dag.tags, f"{dag_id}: tags"
        for task in dag.tasks:
            assert task.owner == "catalog-sync", f"{dag_id}.{task.task_id}: owner"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id}: no execution timeout"
            if task.retries:
                assert task.retry_exponential_backoff > 1, f"{dag_id}.{task.task_id}: retries without backoff"
                assert task.max_retry_delay and task.max_retry_delay <= timedelta(minutes=30)


def test_gates_are_never_retried(dagbag) -> None:  # type: ignore[no-untyped-def]
    """A failed quality gate will fail the same way again: retrying it only delays the alert."""
    gated = [t for d in dagbag.dags.values() for t in d.tasks if t.task_id.startswith("gate")]
    assert gated, "no gate task found"
    assert all(t.retries == 0 for t in gated), [t.task_id for t in gated if t.retries]


def test_dag_files_parse_fast(dagbag) -> None:  # type: ignore[no-untyped-def]
    slow = {s.file: s.duration for s in dagbag.dagbag_stats if s.duration.total_seconds() >= 1.0}
    assert slow == {}


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_stay_thin(path: Path) -> None:
    """Orchestration only: no heavy module imported at parse time, no DAG file importing another."""
    tree = ast.parse(path.read_text())
    top_imports = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_imports |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_imports.add(node.module)
    heavy = {"pandas", "great_expectations", "requests", "sqlalchemy", "numpy"}
    assert not ({m.split(".")[0] for m in top_imports} & heavy), top_imports
    own = {p.stem for p in DAGS_DIR.glob("*.py")}
    assert not ({m.split(".")[0] for m in top_imports} & own), "DAG files must not import each other"
