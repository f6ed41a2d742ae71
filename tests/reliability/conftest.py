"""Fixtures of the reliability suite (issue #9): its own sandbox server, hubs on one backend, fault-proof clients.

The suite runs end-to-end flows several times, so it uses one hub backend per test like tests/integration:
PostgreSQL when CATALOG_SYNC_TEST_PG_URL is set, else SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LUMA, PG_URL, load_sandbox, pg_schema_url

#: The storefront's Shopify-like 2 calls/s bucket would make a 2k-SKU run last an hour; tests lift it.
FAST_STOREFRONT = {"storefront_points_max": 10_000_000, "storefront_points_restore_per_s": 10_000_000}


@pytest.fixture
def empty_hub_url(tmp_path: Path) -> Iterator[str]:
    if PG_URL:
        yield from pg_schema_url(PG_URL)
    else:
        yield f"sqlite:///{tmp_path / 'hub.sqlite'}"


@pytest.fixture(scope="session")
def rel_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A sandbox server of this suite's own (loaded per test with what the test needs)."""
    from catalog_sync_sandbox.server import SandboxServer

    folder = tmp_path_factory.mktemp("sandbox-reliability")
    server = SandboxServer(f"sqlite:///{folder / 'sandbox.sqlite'}").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def luma_sandbox(rel_sandbox: Any) -> Any:
    load_sandbox(rel_sandbox, LUMA)
    rel_sandbox.settings(**FAST_STOREFRONT)
    yield rel_sandbox
    rel_sandbox.clear_faults()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests (20,000 SKUs, many minutes) run only when asked for with ``-m soak`` (``make soak``)."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("soak") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("soak") is not None])
        items[:] = keep


#: The families of the small catalog the crash tests use (a few configurables with all their variants).
SMALL_FAMILIES = ("MH01", "MH02", "MJ01", "WS01", "WS02", "MP01")


def write_small_catalog(folder: Path) -> Path:
    """A Luma subset (about 90 SKUs: six configurable families) in Magento's import format."""
    import csv

    source = LUMA / "ConfigurableSampleData_products.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with source.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [r for r in reader if r and r[0].split("-")[0] in SMALL_FAMILIES]
    with (folder / "products.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_catalog(tmp_path_factory.mktemp("small-catalog"))
