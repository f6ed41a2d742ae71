"""Contract tests: the sandbox's answers and the connectors' requests held against the vendors' published
specifications.

The specifications are read from ``../shared/specs/`` beside the checkout (Akeneo's Swagger file and filter docs,
Shopify's GraphQL Admin schema for 2026-04, Adobe Commerce's admin REST schema); they are not vendored here. Where
that folder is absent the tests that need it skip, saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO

#: Where the published specifications live; CATALOG_SYNC_SPECS points elsewhere.
SPECS = Path(os.environ.get("CATALOG_SYNC_SPECS") or REPO.parent / "shared" / "specs")


def spec_path(name: str) -> Path:
    """The path of one published specification, or a skip naming the missing file."""
    path = SPECS / name
    if not path.exists():
        pytest.skip(f"published specification {name} not found under {SPECS} (contract tests need ../shared/specs)")
    return path
