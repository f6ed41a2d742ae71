"""The freeze calendar (catalog_sync.governance.freeze): what a window is, when it is active, and the errors a
broken calendar file gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from catalog_sync.governance import freeze
from catalog_sync.governance.freeze import KINDS, FreezeCalendarError, load_calendar

EST = timezone(timedelta(hours=-5))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "freeze.yaml"
    path.write_text(text)
    return path


PEAK = """
windows:
  - name: peak
    start: "2027-11-22T00:00:00-05:00"
    end: 2027-12-01T00:00:00Z
    holds: [category_move, deletion]
    reason: the holiday peak
  - name: launch
    start: "2027-11-29T09:00:00+01:00"
    end: "2027-12-10T00:00:00+01:00"
    holds: [category_move, bulk_content]
"""


def test_the_shipped_calendar_loads_and_holds_only_known_kinds() -> None:
    cal = load_calendar(freeze.DEFAULT_PATH)
    assert cal.windows, "the shipped calendar declares the retailer's windows"
    assert all(w.holds <= set(KINDS) and w.end > w.start and w.start.tzinfo for w in cal.windows)


def test_a_window_is_active_from_its_start_up_to_its_end(tmp_path: Path) -> None:
    cal = load_calendar(write(tmp_path, PEAK))
    start = datetime(2027, 11, 22, tzinfo=EST)
    assert cal.active("deletion", start - timedelta(seconds=1)) is None
    assert cal.active("deletion", start).name == "peak"  # type: ignore[union-attr]
    # the offsets are honoured: midnight in New York is 05:00 UTC
    assert cal.active("deletion", datetime(2027, 11, 22, 4, 59, tzinfo=UTC)) is None
    assert cal.active("deletion", datetime(2027, 12, 1, tzinfo=UTC)) is None  # end excluded
    assert cal.active("taxonomy", start) is None  # not a kind this window holds
    # overlapping windows: the one ending last answers
    assert cal.active("category_move", datetime(2027, 11, 30, tzinfo=UTC)).name == "launch"  # type: ignore[union-attr]
    assert [w.name for w in cal.current(datetime(2027, 11, 30, tzinfo=UTC))] == ["peak", "launch"]
    assert [w.name for w in cal.upcoming(datetime(2027, 1, 1, tzinfo=UTC))] == ["peak", "launch"]


def test_an_instant_without_offset_or_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    cal = load_calendar(write(tmp_path, PEAK))
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.active("deletion", datetime(2027, 11, 23))
    with pytest.raises(ValueError, match="unknown kind"):
        cal.active("stock", datetime(2027, 11, 23, tzinfo=UTC))


def test_every_mistake_is_reported_at_once_with_its_window(tmp_path: Path) -> None:
    path = write(tmp_path, """
windows:
  - name: naive
    start: 2027-11-22T00:00:00
    end: "2027-11-30T00:00:00-05:00"
    holds: [category_move]
  - name: backwards
    start: "2027-11-30T00:00:00Z"
    end: "2027-11-01T00:00:00Z"
    holds: [stock, deletion]
  - name: naive
    start: "not a date"
    end: "2027-11-30T00:00:00Z"
    holds: []
    owner: ops
  - start: "2027-11-30T00:00:00Z"
""")
    with pytest.raises(FreezeCalendarError) as caught:
        load_calendar(path)
    errors = caught.value.errors
    assert any("window 1 (naive): start" in e and "no UTC offset" in e for e in errors), errors
    assert any("window 2 (backwards): end" in e and "not after start" in e for e in errors), errors
    assert any("window 2 (backwards): cannot hold stock" in e and "hot data is never held" in e for e in errors)
    assert any("window 3 (naive): the name is used by another window" in e for e in errors), errors
    assert any("window 3 (naive): start" in e and "ISO 8601" in e for e in errors), errors
    assert any("window 3 (naive): 'holds' is a non-empty list" in e for e in errors), errors
    assert any("window 3 (naive): unknown key(s) owner" in e for e in errors), errors
    assert any("window 4: 'name' is required" in e for e in errors) and any(
        "window 4: missing end, holds" in e for e in errors), errors
    assert str(path) in str(caught.value)


def test_the_file_is_a_list_of_windows(tmp_path: Path) -> None:
    with pytest.raises(FreezeCalendarError, match="one key, 'windows'"):
        load_calendar(write(tmp_path, "freeze: []\n"))
    with pytest.raises(FreezeCalendarError, match="is a list"):
        load_calendar(write(tmp_path, "windows: {peak: 1}\n"))
    assert load_calendar(write(tmp_path, "windows:\n")).windows == ()


def test_the_calendar_named_by_the_environment_is_read_on_every_call(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "windows: []\n")
    monkeypatch.setenv(freeze.CALENDAR_ENV, str(path))
    now = datetime.now(UTC)
    assert freeze.active_windows() == {}
    path.write_text(f"""
windows:
  - name: now
    start: "{(now - timedelta(hours=1)).isoformat()}"
    end: "{(now + timedelta(hours=1)).isoformat()}"
    holds: [deletion]
""")
    assert set(freeze.active_windows()) == {"deletion"}
