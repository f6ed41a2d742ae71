"""Benchmark 13's judgement of a round and of the conditions (bench/b13_channels.py), on made-up figures: no
sandbox, no hub."""

from __future__ import annotations

from typing import Any

from bench.b13_channels import round_ok, summarise


def a_round(condition: str, storefront_s: float, *, channel_dead: int | None = None,
            letters: int | None = None, adobe_peak: int = 1) -> dict[str, Any]:
    read = 1_000
    dead = channel_dead if channel_dead is not None else read if condition == "B" else 0
    return {
        "condition": condition,
        "storefront": {"ok": True, "exit": 0}, "channel": {"ok": True, "exit": 0},
        "walls": {"storefront": storefront_s, "channel": 5.0},
        "loadavg": {"loadavg_1min_mean": 2.0},
        "in_flight": {"adobe_commerce": {"peak": adobe_peak, "pool_size": 2}},
        "hub": {"hops": {
            "pim->storefront": {"read": 300, "delivered": 280, "unchanged": 0, "dead_lettered": 20,
                                "reconciled": True},
            "pim->adobe_commerce": {"read": read, "delivered": read - dead, "unchanged": 0, "dead_lettered": dead,
                                    "reconciled": True}},
            "dead_letters": {"adobe_commerce/channel": dead if letters is None else letters}},
    }


def test_a_round_as_the_issue_asks_has_no_problem() -> None:
    assert round_ok(a_round("A", 100.0)) == []
    assert round_ok(a_round("B", 100.0)) == []


def test_the_channel_down_must_dead_letter_every_record_with_kind_channel() -> None:
    assert round_ok(a_round("B", 100.0, channel_dead=999))  # one record delivered while "down"
    assert round_ok(a_round("B", 100.0, letters=0))  # dead-lettered, but not with kind channel


def test_a_hop_that_does_not_reconcile_or_a_channel_over_its_pool_is_a_problem() -> None:
    broken = a_round("A", 100.0)
    broken["hub"]["hops"]["pim->storefront"]["reconciled"] = False
    assert any("does not reconcile" in p for p in round_ok(broken))
    assert any("over its pool" in p for p in round_ok(a_round("A", 100.0, adobe_peak=3)))


def test_growth_is_the_mean_of_b_over_the_mean_of_a_and_per_pair() -> None:
    rounds = [a_round("A", 100.0), a_round("B", 104.0), a_round("A", 120.0), a_round("B", 132.0)]
    for r in rounds:
        r["problems"] = round_ok(r)
    got = summarise(rounds)
    assert got["by_condition"]["A"]["storefront_task_s_mean"] == 110.0
    assert got["storefront_growth_a_to_b"] == round(118.0 / 110.0 - 1, 3)
    assert got["storefront_growth_per_pair"] == [0.04, 0.1]
