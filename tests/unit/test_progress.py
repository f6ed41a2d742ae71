"""Progress lines: every few thousand records, with the count, the rate and what is left."""

from __future__ import annotations

import logging

import pytest

from catalog_sync.progress import Progress


def test_a_line_every_n_records_with_rate_and_what_is_left(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = Progress("load_pim", total=10_000, every=2000, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="catalog_sync.progress"):
        for _ in range(45):  # batches of 100 records, 0.1 s each
            now[0] += 0.1
            progress.add(100)
        progress.finish()
    assert progress.lines == [
        "load_pim: 2,000 of 10,000 records (20%), 1,000/s, 8,000 left, about 8 s to go",
        "load_pim: 4,000 of 10,000 records (40%), 1,000/s, 6,000 left, about 6 s to go",
        "load_pim: done, 4,500 records in 4 s (1,000/s)",
    ]
    assert [r.getMessage() for r in caplog.records] == progress.lines


def test_without_a_total_it_counts_and_a_short_loop_stays_quiet() -> None:
    now = [0.0]
    read = Progress("read erp products", every=5000, clock=lambda: now[0])
    now[0] = 2.0
    read.add(12_000)  # one big page crosses two marks: one line, the next mark after it
    assert read.lines == ["read erp products: 12,000 records so far, 6,000/s"]
    read.add(2_999)
    assert len(read.lines) == 1
    read.add(1)
    assert len(read.lines) == 2
    short = Progress("publish_products", total=10, every=1000, unit="products")
    short.add(10)
    short.finish()
    assert short.lines == []
