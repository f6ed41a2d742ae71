"""Cluster policy of the live test deployment only (tests/integration/airflow_live.py): retries a few seconds apart
instead of the production minutes, so a test can watch Airflow retry a task; and, on the CeleryExecutor, tasks
pinned to one worker's queue (``CATALOG_SYNC_TEST_PIN_TASKS``: JSON ``{"<dag_id>.<task_id>": "<queue>"}``), so a
test knows that one task reads what another wrote on a different machine. The DAG itself is unchanged."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any


def task_policy(task: Any) -> None:
    pinned = json.loads(os.environ.get("CATALOG_SYNC_TEST_PIN_TASKS") or "{}").get(f"{task.dag_id}.{task.task_id}")
    if pinned:
        task.queue = pinned
    if task.retries:
        task.retry_delay = timedelta(seconds=2)
        task.retry_exponential_backoff = 0
