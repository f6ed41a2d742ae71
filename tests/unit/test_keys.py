"""KeySet: a run's keys as hashes, with a value each, answering membership the way a set and a dict would."""

from __future__ import annotations

import random

from catalog_sync.engine.keys import KeySet


def test_membership_and_values_match_a_set_and_a_dict() -> None:
    rng = random.Random(7)
    keys = [f"SKU-{n:07d}" for n in rng.sample(range(10_000_000), 20_000)]
    members, others = keys[:15_000], keys[15_000:]
    prices = {k: rng.uniform(1, 500) for k in members}
    found = KeySet()
    for k in members:
        found.add(k, prices[k])
    assert len(found) == len(members)
    assert all(k in found for k in members)
    assert not any(k in found for k in others)
    assert all(found.get(k) == prices[k] for k in members)
    assert found.get(others[0]) is None
    assert 17 not in found  # only strings are keys


def test_a_key_added_again_keeps_its_last_value_even_after_a_read() -> None:
    found = KeySet()
    found.add("A", 1.0)
    found.add("B", 2.0)
    assert found.get("A") == 1.0  # read: sorted once
    found.add("A", 3.0)
    found.add("C", 4.0)
    assert (found.get("A"), found.get("B"), found.get("C"), len(found)) == (3.0, 2.0, 4.0, 3)


def test_few_keeps_the_keys_up_to_keep_then_lets_them_go() -> None:
    assert KeySet(keep=3).few == []
    small = KeySet(["a", "b", "c"], keep=3)
    assert small.few == ["a", "b", "c"]
    small.add("d")
    assert small.few is None
    assert "d" in small and len(small) == 4
