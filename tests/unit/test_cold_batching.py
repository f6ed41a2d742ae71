"""How the nightly flow cuts supplier write-backs into PIM batches (pure, no systems)."""

from __future__ import annotations

from catalog_sync.flows.cold import _distinct_sku_batches


def test_a_sku_submitted_twice_starts_a_new_batch_and_order_is_kept() -> None:
    items = [({"sku": sku, "id": n}, {}, "") for n, sku in enumerate(["A", "B", "A", "C", "D", "E", "F"])]
    batches = [[sub["id"] for sub, _, _ in batch] for batch in _distinct_sku_batches(items, 3)]
    assert batches == [[0, 1], [2, 3, 4], [5, 6]]
    assert list(_distinct_sku_batches([], 3)) == []


def test_link_batches_never_split_a_skus_assets_and_lose_nothing() -> None:
    from catalog_sync.flows.cold import _asset_stage_key, sku_batches

    skus = ["MH01", "MH01-XS", "MH01-XS-Black", "", "WJ12"]
    assets = [{"id": n, "sku": skus[n % len(skus)]} for n in range(53)]
    staged = sorted(({**a, "_key": _asset_stage_key(a, n)} for n, a in enumerate(assets)), key=lambda a: a["_key"])
    pages = [staged[i:i + 4] for i in range(0, len(staged), 4)]  # iter_staged's pages, in key order
    batches = list(sku_batches(pages, 7))
    assert sorted(a["id"] for batch in batches for a in batch) == list(range(53))
    owners: dict[str, int] = {}
    for number, batch in enumerate(batches):
        for a in batch:
            assert owners.setdefault(a["sku"], number) == number, f"{a['sku']!r} split between batches"
    assert len(batches) > 1
    assert list(sku_batches([], 7)) == []
