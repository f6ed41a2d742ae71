"""Freeze windows: the declared calendar of periods (a holiday peak, a launch) during which structural changes and
bulk content changes are held for a person to release instead of applied, while hot data keeps flowing.

The calendar is ``freeze_windows.yaml`` next to this module (or the file ``CATALOG_SYNC_FREEZE_CALENDAR`` names),
reviewed like code. Each window has a ``name``, a ``start`` and an ``end`` with their UTC offset (a freeze is
agreed in the business's local time; a time without an offset is refused rather than guessed), the kinds of change
it ``holds`` and a ``reason``. The file is validated when loaded and every mistake is reported at once.

What each kind is, and where it is held (``catalog_sync.flows.freeze``):

- ``category_move``: a storefront product's categories (its tags) changing in the nightly publish;
- ``deletion``: the weekly reconciliation disabling a PIM product or archiving a storefront product the ERP deleted;
- ``taxonomy``: an approved change of the category reference table the gates use;
- ``bulk_content``: a nightly publish that would update more than ``freeze.bulk_content_share`` of the products on
  the storefront (``quality/thresholds.yaml``): its updates of products already on the shop are held.

Hot data (stock, live prices, lifecycle status through ``hot_data_sync``) is never held: the calendar has no kind
for it, and the hot path does not read the calendar.

A window is active at instant ``t`` when ``start <= t < end``. The flows ask at the moment they would apply a
change (``active``), not for their run's data interval: a freeze is about what reaches the shop now.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

#: The calendar shipped with the package.
DEFAULT_PATH: Final[Path] = Path(__file__).with_name("freeze_windows.yaml")
#: Environment variable naming another calendar file (a deployment's own, or a test's).
CALENDAR_ENV: Final[str] = "CATALOG_SYNC_FREEZE_CALENDAR"
#: The kinds of change a window can hold.
KINDS: Final[tuple[str, ...]] = ("category_move", "deletion", "taxonomy", "bulk_content")
_WINDOW_KEYS: Final[frozenset[str]] = frozenset({"name", "start", "end", "holds", "reason"})


class FreezeCalendarError(ValueError):
    """The freeze calendar is invalid; ``errors`` holds one line per problem, each naming the window."""

    def __init__(self, path: Path, errors: Sequence[str]) -> None:
        self.path = path
        self.errors = list(errors)
        super().__init__(f"{path} is invalid ({len(errors)} problem(s)):\n  " + "\n  ".join(errors))


@dataclass(frozen=True)
class FreezeWindow:
    """One declared freeze: ``[start, end)``, the kinds it holds, and why."""

    name: str
    start: datetime
    end: datetime
    holds: frozenset[str]
    reason: str = ""

    def active_at(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "holds": sorted(self.holds), "reason": self.reason}


@dataclass(frozen=True)
class FreezeCalendar:
    path: Path
    windows: tuple[FreezeWindow, ...]

    def active(self, kind: str, when: datetime | None = None) -> FreezeWindow | None:
        """The window holding ``kind`` at ``when`` (default: now), the one ending last when several overlap."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of held change {kind!r}; one of {', '.join(KINDS)}")
        at = _aware(when or datetime.now(UTC))
        found = [w for w in self.windows if kind in w.holds and w.active_at(at)]
        return max(found, key=lambda w: w.end) if found else None

    def current(self, when: datetime | None = None) -> list[FreezeWindow]:
        at = _aware(when or datetime.now(UTC))
        return [w for w in self.windows if w.active_at(at)]

    def upcoming(self, when: datetime | None = None) -> list[FreezeWindow]:
        at = _aware(when or datetime.now(UTC))
        return sorted((w for w in self.windows if w.start > at), key=lambda w: w.start)


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("a freeze is judged at an instant: pass a timezone-aware datetime")
    return when


def _instant(value: Any, where: str, errors: list[str]) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            errors.append(f"{where}: {value!r} is not an ISO 8601 date and time (e.g. 2027-11-22T00:00:00-05:00)")
            return None
    else:
        errors.append(f"{where}: {value!r} is not a date and time with its UTC offset")
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        errors.append(f"{where}: {value!s} has no UTC offset; write it as agreed, e.g. "
                      f"{parsed.replace(microsecond=0).isoformat()}-05:00 or ...Z")
        return None
    return parsed


def parse(raw: Any, path: Path) -> FreezeCalendar:
    """Validate a loaded calendar; raises :class:`FreezeCalendarError` listing every problem."""
    errors: list[str] = []
    if not isinstance(raw, Mapping) or set(raw) - {"windows"}:
        raise FreezeCalendarError(path, ["the file holds one key, 'windows': a list of freeze windows"])
    entries = raw.get("windows")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise FreezeCalendarError(path, ["'windows' is a list of freeze windows"])
    windows: list[FreezeWindow] = []
    names: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        label = f"window {i}"
        if not isinstance(entry, Mapping):
            errors.append(f"{label}: a window is a mapping with {', '.join(sorted(_WINDOW_KEYS))}")
            continue
        name = entry.get("name")
        if isinstance(name, str) and name.strip():
            label = f"window {i} ({name})"
            if name in names:
                errors.append(f"{label}: the name is used by another window")
            names.add(name)
        else:
            errors.append(f"{label}: 'name' is required (a non-empty text)")
        unknown = sorted(set(entry) - _WINDOW_KEYS)
        if unknown:
            errors.append(f"{label}: unknown key(s) {', '.join(map(str, unknown))}")
        missing = [k for k in ("start", "end", "holds") if k not in entry]
        if missing:
            errors.append(f"{label}: missing {', '.join(missing)}")
            continue
        start = _instant(entry["start"], f"{label}: start", errors)
        end = _instant(entry["end"], f"{label}: end", errors)
        if start is not None and end is not None and end <= start:
            errors.append(f"{label}: end {end.isoformat()} is not after start {start.isoformat()}")
        holds = entry["holds"]
        if not isinstance(holds, list) or not holds:
            errors.append(f"{label}: 'holds' is a non-empty list of {', '.join(KINDS)}")
            holds = []
        bad = sorted(str(h) for h in holds if h not in KINDS)
        if bad:
            errors.append(f"{label}: cannot hold {', '.join(bad)}; the kinds are {', '.join(KINDS)} (hot data is "
                          "never held)")
        if start is not None and end is not None and holds and not bad and isinstance(name, str):
            windows.append(FreezeWindow(name=name, start=start, end=end, holds=frozenset(holds),
                                        reason=str(entry.get("reason") or "")))
    if errors:
        raise FreezeCalendarError(path, errors)
    return FreezeCalendar(path=path, windows=tuple(sorted(windows, key=lambda w: w.start)))


def calendar_path() -> Path:
    return Path(os.environ.get(CALENDAR_ENV) or DEFAULT_PATH)


def load_calendar(path: str | Path | None = None) -> FreezeCalendar:
    """The calendar at ``path``, else ``CATALOG_SYNC_FREEZE_CALENDAR``, else the shipped file. Read on every call
    (a few windows): an edited calendar counts from the next change a flow applies, without a restart."""
    file = Path(path) if path else calendar_path()
    with file.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    return parse(raw if raw is not None else {}, file)


def active_windows(kinds: Iterable[str] = KINDS, when: datetime | None = None,
                   calendar: FreezeCalendar | None = None) -> dict[str, FreezeWindow]:
    """For each of ``kinds``, the window holding it at ``when``; kinds no window holds are left out."""
    cal = calendar or load_calendar()
    return {k: w for k in kinds if (w := cal.active(k, when)) is not None}
