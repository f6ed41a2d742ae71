"""Loaded by every process of the live Airflow that tests/integration/airflow_live.py starts (its PYTHONPATH starts
here); test-only, never part of the product.

``CATALOG_SYNC_TEST_KILL_AFTER_PIM_WRITES=N`` with ``CATALOG_SYNC_TEST_KILL_MARKER=<file>``: the first process
whose N-th PIM batch write (products or product models) succeeds kills itself with SIGKILL right after it, before
the task can record that batch, as a worker lost mid-write would. It leaves the marker file first, so only one
process ever dies and the retry Airflow schedules runs normally.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_AFTER = int(os.environ.get("CATALOG_SYNC_TEST_KILL_AFTER_PIM_WRITES") or 0)
_MARKER = os.environ.get("CATALOG_SYNC_TEST_KILL_MARKER")

if _AFTER and _MARKER:
    from catalog_sync.connectors.pim import PimClient

    _written = 0

    def _counting(write):  # type: ignore[no-untyped-def]
        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            global _written
            results = write(self, *args, **kwargs)
            _written += 1
            marker = Path(_MARKER)
            if _written >= _AFTER and not marker.exists():
                marker.write_text(f"pid {os.getpid()} killed after PIM batch write {_written}\n")
                os.kill(os.getpid(), signal.SIGKILL)
            return results
        return wrapper

    PimClient.upsert_products = _counting(PimClient.upsert_products)  # type: ignore[method-assign]
    PimClient.upsert_product_models = _counting(PimClient.upsert_product_models)  # type: ignore[method-assign]
