"""Fixtures of the distributed tests (harness.py): PostgreSQL and Redis are checked once, and fail the tests where
they are promised (CI, or CATALOG_SYNC_TEST_PG_URL / CATALOG_SYNC_TEST_REDIS_URL set) rather than skip them."""

from __future__ import annotations

import pytest

from tests.distributed.harness import PG_URL, REDIS_URL, required, unavailable


@pytest.fixture(scope="session")
def pg_and_redis() -> None:
    """PostgreSQL and Redis answer; otherwise fail (where promised) or skip, saying which one is missing."""
    reason = unavailable()
    if reason is None:
        return
    if required():
        pytest.fail(f"{reason} (the distributed tests need PostgreSQL at {PG_URL} and Redis at {REDIS_URL})")
    pytest.skip(f"{reason}; set CATALOG_SYNC_TEST_PG_URL / CATALOG_SYNC_TEST_REDIS_URL (CI sets CI=1 and fails)")
