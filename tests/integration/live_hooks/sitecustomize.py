"""Loaded by every process of the live Airflow that tests/integration/airflow_live.py starts (its PYTHONPATH starts
here); test-only, never part of the product.

``CATALOG_SYNC_TEST_KILL=load_pim:3,link_assets:1`` with ``CATALOG_SYNC_TEST_KILL_MARKERS=<folder>``: the task
``load_pim`` kills itself with SIGKILL right after its 3rd successful batch write (PIM products or product models,
storefront products), before it can record that batch, as a worker lost mid-write would; ``link_assets`` after
its 1st. Each task is
killed once: a marker file left in the folder first lets the retry Airflow schedules run normally. The running task
is the one Airflow's task runner names in ``AIRFLOW_CTX_TASK_ID``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_PLAN = {task: int(n) for task, _, n in (entry.partition(":") for entry in
                                         (os.environ.get("CATALOG_SYNC_TEST_KILL") or "").split(",") if entry)}
_MARKERS = os.environ.get("CATALOG_SYNC_TEST_KILL_MARKERS")

if _PLAN and _MARKERS:
    from catalog_sync.connectors.pim import PimClient
    from catalog_sync.connectors.storefront import StorefrontClient

    _written = 0

    def _counting(write):  # type: ignore[no-untyped-def]
        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            global _written
            results = write(self, *args, **kwargs)
            task = os.environ.get("AIRFLOW_CTX_TASK_ID", "")
            _written += 1
            marker = Path(_MARKERS) / task
            if task in _PLAN and _written >= _PLAN[task] and not marker.exists():
                marker.write_text(f"pid {os.getpid()} killed after batch write {_written}\n")
                os.kill(os.getpid(), signal.SIGKILL)
            return results
        return wrapper

    PimClient.upsert_products = _counting(PimClient.upsert_products)  # type: ignore[method-assign]
    PimClient.upsert_product_models = _counting(PimClient.upsert_product_models)  # type: ignore[method-assign]
    StorefrontClient.upsert_products = _counting(StorefrontClient.upsert_products)  # type: ignore[method-assign]
