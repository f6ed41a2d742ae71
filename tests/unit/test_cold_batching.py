"""How the nightly flow cuts supplier write-backs into PIM batches (pure, no systems)."""

from __future__ import annotations

from catalog_sync.flows.cold import _distinct_sku_batches


def test_a_sku_submitted_twice_starts_a_new_batch_and_order_is_kept() -> None:
    items = [({"sku": sku, "id": n}, {}, "") for n, sku in enumerate(["A", "B", "A", "C", "D", "E", "F"])]
    batches = [[sub["id"] for sub, _, _ in batch] for batch in _distinct_sku_batches(items, 3)]
    assert batches == [[0, 1], [2, 3, 4], [5, 6]]
    assert list(_distinct_sku_batches([], 3)) == []
