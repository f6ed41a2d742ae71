"""``[core] hostname_callable`` of the live test deployment's Celery workers (tests/integration/airflow_live.py):
each worker names itself ``CATALOG_SYNC_TEST_HOSTNAME``, so the task instances it runs record that name as their
``hostname``, as they would record the name of the machine a worker runs on. Test-only, never part of the product."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("CATALOG_SYNC_TEST_HOSTNAME") or socket.getfqdn()
