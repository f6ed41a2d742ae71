"""Loaded by the e2e api-server only (its PYTHONPATH starts here): serves ``catalog_sync.airflow.systems`` (where
the UI's trace gets its systems and its result) from ``fake_trace.py``, so the SKU-trace page renders a known
result without the sandbox systems.

This is a test double for the lead's module, injected into the server process the browser talks to.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_FAKE = Path(__file__).with_name("fake_trace.py")


class _FakeTraceFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname == "catalog_sync.airflow.systems":
            return importlib.util.spec_from_file_location(fullname, _FAKE)
        return None


sys.meta_path.insert(0, _FakeTraceFinder())
