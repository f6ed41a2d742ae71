"""The hot path reads what a batch needs from the ERP, not the catalog: a batch's prices and stock per SKU."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from catalog_sync.connectors.base import Page
from catalog_sync.flows import hot


@dataclass
class RecordingErp:
    """An ERP client stand-in that counts what was asked: a scan (no SKU) or one SKU."""

    catalog: int
    asked: list[str | None] = field(default_factory=list)

    def _rows(self, sku: str | None) -> list[dict[str, Any]]:
        skus = [sku] if sku else [f"SKU-{n:06d}" for n in range(self.catalog)]
        return [{"sku": s, "price": 10.0, "currency": "USD", "location": "DC-EAST", "quantity": 5} for s in skus]

    def iter_prices(self, sku: str | None = None) -> Iterator[Page]:
        self.asked.append(sku)
        yield Page(stream="erp", records=self._rows(sku), cursor=None)

    def iter_stock(self, sku: str | None = None) -> Iterator[Page]:
        self.asked.append(sku)
        yield Page(stream="erp", records=self._rows(sku), cursor=None)


@dataclass
class Systems:
    erp: RecordingErp


def test_a_batch_reads_its_own_skus_prices_and_stock_not_the_catalogs() -> None:
    erp = RecordingErp(catalog=100_000)
    batch = [f"SKU-{n:06d}" for n in range(0, 300_000, 1000)]  # 300 SKUs of a 100,000-SKU catalog
    prices = hot._erp_prices(Systems(erp), batch)  # type: ignore[arg-type]
    assert set(prices) == set(batch) and None not in erp.asked and len(erp.asked) == len(batch)
    erp.asked.clear()
    stock = hot._erp_stock(Systems(erp), batch)  # type: ignore[arg-type]
    assert stock == {sku: {"DC-EAST": 5} for sku in batch} and None not in erp.asked


def test_a_catalog_sized_set_is_read_in_one_scan() -> None:
    erp = RecordingErp(catalog=5_000)
    wanted = [f"SKU-{n:06d}" for n in range(hot.BULK_READ_AFTER + 1)]
    assert set(hot._erp_prices(Systems(erp), wanted)) == set(wanted)  # type: ignore[arg-type]
    assert erp.asked == [None]
