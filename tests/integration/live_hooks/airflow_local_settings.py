"""Cluster policy of the live test deployment only (tests/integration/airflow_live.py): retries a few seconds apart
instead of the production minutes, so a test can watch Airflow retry a task. The DAG itself is unchanged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def task_policy(task: Any) -> None:
    if task.retries:
        task.retry_delay = timedelta(seconds=2)
        task.retry_exponential_backoff = 0
