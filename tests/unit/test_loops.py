"""Write-back loop detection over the delta log: flips counted, a loop held, dead-lettered with its history in words,
alerted once, skipped by every write, released by resolving its letter."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from catalog_sync import alerting
from catalog_sync.engine.run import RunContext
from catalog_sync.governance import loops
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import DeadLetter, FieldDelta, FieldHold, SyncRun, utcnow

SKU = "MH01-XS-Black"
NOW = utcnow()


def _rules(flips: int = 3) -> Any:
    return dataclasses.replace(alerting.load_rules(), loop_flips=flips, loop_window_minutes=24 * 60,
                               loop_watch=(("pim", "product"),))


def _write(hub_url: str, n: int, by: str, before: Any, after: Any, *, hours_ago: float,
           field: str = "name", key: str = SKU) -> None:
    """One write of a past run: its run row and its field delta."""
    load_id = f"past-{field}-{key}-{n}"
    with session_scope(hub_url) as s:
        s.add(SyncRun(load_id=load_id, flow="cold_data_nightly", status="success"))
        s.add(FieldDelta(load_id=load_id, system="pim", entity="product", record_key=key, field=field,
                         before=before, after=after, source_system=by,
                         applied_at=NOW - timedelta(hours=hours_ago)))


def _loop(hub_url: str, field: str = "name", key: str = SKU) -> None:
    """Four flips of one field within a day, across the supplier portal, the ERP and an edit made in the PIM."""
    _write(hub_url, 1, "supplier", "Chaz Kangeroo", "Chaz Kangaroo Hoodie", hours_ago=20, field=field, key=key)
    _write(hub_url, 2, "erp", "Chaz Kangaroo Hoodie", "Chaz Kangeroo", hours_ago=16, field=field, key=key)  # flip 1
    _write(hub_url, 3, "supplier", "Chaz Kangeroo", "Chaz Kangaroo Hoodie", hours_ago=12, field=field, key=key)
    # Someone put the old name back in the PIM (flip 3), then the supplier's came back again (flip 4).
    _write(hub_url, 4, "supplier", "Chaz Kangeroo", "Chaz Kangaroo Hoodie", hours_ago=4, field=field, key=key)


def test_a_flip_is_a_return_to_an_earlier_value_not_any_change() -> None:
    rising = [{"applied_at": NOW, "before": p, "after": p + 1, "by": "erp"} for p in range(10, 15)]
    assert loops.history(rising)[1] == 0
    steps, flips = loops.history([
        {"applied_at": NOW, "before": "A", "after": "B", "by": "supplier"},
        {"applied_at": NOW, "before": "A", "after": "B", "by": "supplier"},  # someone set A in between
    ])
    assert flips == 2 and [s["by"] for s in steps] == ["supplier", "outside", "supplier"]


def test_n_plus_one_flips_hold_the_field_dead_letter_it_with_its_history_and_alert_once(hub_url: str) -> None:
    _loop(hub_url)
    ctx = RunContext.open("cold_data_nightly", load_id="night-5")
    (hold,) = loops.detect(ctx, now=NOW, rules=_rules(3))
    assert (hold["record_key"], hold["field"], hold["flips"]) == (SKU, "name", 4)

    with session_scope(hub_url) as s:
        letter = s.get(DeadLetter, hold["dead_letter_id"])
        assert letter is not None and letter.status == "open" and letter.reason_kind == "loop"
        assert letter.target_system == "pim" and letter.source_system == "supplier"
        reason, payload = letter.reason, letter.payload
        (row,) = s.scalars(select(FieldHold)).all()
        assert row.released_at is None and row.dead_letter_id == letter.id
    # The history in words: who wrote what over what, and the change made outside Catalog Sync.
    assert "flipped 4 times within 24 h (more than 3 is a loop)" in reason
    assert "the supplier portal's value \"Chaz Kangaroo Hoodie\" over \"Chaz Kangeroo\"" in reason
    assert "the ERP's value \"Chaz Kangeroo\"" in reason
    assert "changed outside Catalog Sync (by a person or another tool) from \"Chaz Kangaroo Hoodie\"" in reason
    assert len(payload["history"]) == 5 and sum(s["flip"] for s in payload["history"]) == 4

    # One alert for the hold, through the run's alerts; a later run finds the field held and raises nothing.
    alerts = [a for a in alerting.run_alerts("night-5", hub_url, _rules(3)) if a.key.startswith("write_loop:")]
    assert [a.key for a in alerts] == [f"write_loop:pim/product/{SKU}/name"]
    assert "dead letter" in alerts[0].body and alerts[0].facts["flips"] == 4
    later = RunContext.open("cold_data_nightly", load_id="night-6")
    assert loops.detect(later, now=NOW, rules=_rules(3)) == []
    assert not [a for a in alerting.run_alerts("night-6", hub_url, _rules(3)) if a.key.startswith("write_loop:")]

    # Every write leaves the held field out (the rest of the record goes on) and audits the skip.
    (kept,) = loops.drop_held(later, [{"sku": SKU, "name": "again", "description": "new copy"}], target="pim",
                              entity="product")
    assert kept == {"sku": SKU, "description": "new copy"}

    # An operator discards the letter: the hold is released, and the flips it judged do not hold the field again.
    with session_scope(hub_url) as s:
        assert repo.resolve_dead_letters(s, [hold["dead_letter_id"]], "discarded", by="ops") == 1
    assert loops.held_fields("pim", "product", hub_url) == {}
    assert loops.detect(RunContext.open("cold_data_nightly", load_id="night-7"), now=NOW, rules=_rules(3)) == []
    (again,) = loops.drop_held(later, [{"sku": SKU, "name": "again"}], target="pim", entity="product")
    assert again == {"sku": SKU, "name": "again"}


@pytest.mark.parametrize(("threshold", "held"), [(4, False), (3, True)])
def test_the_threshold_is_a_count_of_flips_more_than_which_is_a_loop(hub_url: str, threshold: int,
                                                                       held: bool) -> None:
    _loop(hub_url)
    found = loops.detect(RunContext.open("cold_data_nightly", load_id="n"), now=NOW, rules=_rules(threshold))
    assert bool(found) is held


def test_flips_outside_the_window_or_of_unwatched_systems_do_not_count(hub_url: str) -> None:
    _loop(hub_url)
    rules = dataclasses.replace(_rules(3), loop_window_minutes=10 * 60)  # only the last two writes are inside
    assert loops.detect(RunContext.open("cold_data_nightly", load_id="n1"), now=NOW, rules=rules) == []
    unwatched = dataclasses.replace(_rules(3), loop_watch=(("storefront", "product"),))
    assert loops.detect(RunContext.open("cold_data_nightly", load_id="n2"), now=NOW, rules=unwatched) == []


def test_thresholds_file_declares_the_loop_limits() -> None:
    rules = alerting.load_rules()
    assert rules.loop_flips == 3 and rules.loop_window_minutes == 1440 and rules.loop_watch == (("pim", "product"),)


def test_a_rollback_does_not_restore_a_held_field_either(hub_url: str) -> None:
    from catalog_sync.flows import rollback

    with session_scope(hub_url) as s:
        s.add(FieldHold(system="pim", entity="product", record_key=SKU, field="name", flips=4, history=[],
                        load_id="night-5", dead_letter_id=None))
    ctx = RunContext.open("sync_rollback", load_id="rb-1")
    assert rollback._allowed_fields(ctx, "pim", "product", SKU, {"name": "old", "description": "older"}) == {
        "description": "older"}
    assert rollback._allowed_fields(ctx, "pim", "product", "MH01-S-Black", {"name": "old"}) == {"name": "old"}
