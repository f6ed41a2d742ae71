"""Integration tests run once, on the production-like hub: PostgreSQL when CATALOG_SYNC_TEST_PG_URL is set (CI),
else the embedded SQLite file. The hub's own behaviour on both backends is covered in tests/unit; running every
end-to-end flow twice would double the suite for no new coverage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.flows.systems import Systems
from tests.conftest import PG_URL, pg_schema_url


@pytest.fixture
def empty_hub_url(tmp_path: Path) -> Iterator[str]:
    if PG_URL:
        yield from pg_schema_url(PG_URL)
    else:
        yield f"sqlite:///{tmp_path / 'hub.sqlite'}"


@pytest.fixture
def systems(fresh_sandbox: Any) -> Iterator[Systems]:
    """The five systems' clients on a function-scoped sandbox loaded with Luma (a module may narrow it)."""
    bundle = Systems.from_base_url(fresh_sandbox.url, fresh_sandbox.credentials)
    yield bundle
    bundle.close()
