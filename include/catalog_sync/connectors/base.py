"""What every connector declares and returns: streams, pages of records, per-record write results."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, Final

from catalog_sync.connectors.http import ConnectorError, Disposition, RecordError

#: JSON Schema type names -> the Python types ``json.loads`` produces for them.
_JSON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Stream:
    """One collection a connector can read: what identifies a record, what orders changes, what a record holds.

    ``schema`` is a JSON Schema subset (``required``, ``properties`` with ``type``/``enum``), enough to tell a
    complete record from a malformed one before it reaches the quality gates.
    """

    name: str
    primary_key: str | tuple[str, ...]  # a tuple for composite keys (stock: sku + location)
    cursor_field: str | None
    schema: Mapping[str, Any]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.schema.get("properties", {}))

    def problems(self, record: Any) -> list[str]:
        """Why ``record`` does not fit the schema; empty when it does."""
        if not isinstance(record, dict):
            return [f"record is a {type(record).__name__}, not an object"]
        required, rules = self._rules
        found = [f"missing {name!r}" for name in required if name not in record]
        for name, names, allowed, enum in rules:
            if name not in record:
                continue
            value = record[name]
            if allowed is not None:
                # bool is an int subclass in Python but not a JSON number
                if not isinstance(value, allowed) or (isinstance(value, bool) and "boolean" not in names):
                    found.append(f"{name!r} is {type(value).__name__}, expected {'/'.join(names)}")
                    continue
            if enum is not None and value not in enum:
                found.append(f"{name!r} = {value!r} is not one of {list(enum)}")
        return found

    def key_of(self, record: Any, position: int | None = None) -> str:
        """The record's primary key, or a positional stand-in when the record is too broken to have one."""
        keys = (self.primary_key,) if isinstance(self.primary_key, str) else self.primary_key
        if isinstance(record, dict) and all(record.get(k) not in (None, "") for k in keys):
            return "/".join(str(record[k]) for k in keys)
        return f"<{self.name} #{position}>" if position is not None else f"<{self.name}>"

    def check(self, record: Any, system: str = "", position: int | None = None) -> RecordError | None:
        """A :class:`RecordError` (dead-letter) for a malformed record, None for a good one."""
        return self.error(record, self.problems(record), system, position)

    def error(self, record: Any, problems: Sequence[str], system: str = "",
              position: int | None = None) -> RecordError | None:
        """The :class:`RecordError` for ``record`` with the ``problems`` already found in it; None when none."""
        if not problems:
            return None
        return RecordError(self.key_of(record, position), "; ".join(problems), record=record, system=system)

    @cached_property
    def _rules(self) -> tuple[tuple[str, ...], list[tuple[str, tuple[str, ...], tuple[type, ...] | None, Any]]]:
        """The schema's required names and per-property (name, type names, Python types, enum), worked out once
        per stream rather than once per record."""
        rules = []
        for name, spec in self.schema.get("properties", {}).items():
            types = spec.get("type")
            names = (types,) if isinstance(types, str) else tuple(types or ())
            allowed = tuple(t for n in names for t in _JSON_TYPES[n]) if types is not None else None
            rules.append((name, names, allowed, spec.get("enum")))
        return tuple(self.schema.get("required", ())), rules


def nullable(*types: str) -> dict[str, Any]:
    """Schema property helper: any of ``types`` or null."""
    return {"type": [*types, "null"]}


@dataclass
class Page:
    """One page of a read: the good records, the malformed ones (already classified), and where to go next.

    ``cursor`` is the connector's position after this page (next SKU, next page number, next link...), None on
    the last page; an engine that checkpoints pages can resume from it.
    """

    stream: str
    records: list[dict[str, Any]]
    errors: list[RecordError] = field(default_factory=list)
    cursor: Any = None


#: How many times a page holding malformed records is read again before they are dead-lettered.
REREADS: Final = 3


def split_records(stream: Stream, raw: Sequence[Any], system: str, offset: int = 0,
                  refetch: Callable[[], Sequence[Any]] | None = None) -> tuple[list[dict], list[RecordError]]:
    """Validate one page of raw records: good ones pass, each bad one becomes its own :class:`RecordError`.

    With ``refetch`` (the same page requested again), a page with malformed records is re-read up to
    :data:`REREADS` times and each malformed record replaced by a well-formed copy from the same position: a
    record garbled on the way (a proxy, a flaky gateway) is recovered instead of dead-lettered, while one that is
    malformed at the source stays malformed in every read and is dead-lettered as before. Without this, callers
    that look records up (rather than dead-letter what they read) silently worked on a partial page.
    """
    raw = list(raw)
    found = [stream.problems(r) for r in raw]
    if refetch is not None and any(found):
        raw = _heal(stream, raw, refetch)
        found = [stream.problems(r) for r in raw]
    good: list[dict[str, Any]] = []
    bad: list[RecordError] = []
    for i, (record, problems) in enumerate(zip(raw, found, strict=True)):
        error = stream.error(record, problems, system, offset + i)
        if error is None:
            good.append(record)
        else:
            bad.append(error)
    return good, bad


def _heal(stream: Stream, raw: list[Any], refetch: Callable[[], Sequence[Any]]) -> list[Any]:
    keys = (stream.primary_key,) if isinstance(stream.primary_key, str) else stream.primary_key
    for _ in range(REREADS):
        bad = [i for i, r in enumerate(raw) if stream.problems(r)]
        if not bad:
            break
        again = list(refetch())
        if len(again) != len(raw):
            break  # the collection changed between reads: positions no longer name the same records
        for i in bad:
            old, new = raw[i], again[i]
            # same record: its key, where the garbled copy still has one, must match
            same = all(old.get(k) in (None, "") or old.get(k) == (new or {}).get(k) for k in keys) \
                if isinstance(old, dict) and isinstance(new, dict) else True
            if same and not stream.problems(new):
                raw[i] = new
    return raw


@dataclass
class ReadResult:
    """Every record of a read, gathered from its pages."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    pages: int = 0
    cursor: Any = None  # the last non-None page cursor (ERP change feed: the last seq read)

    @classmethod
    def collect(cls, pages: Iterator[Page]) -> ReadResult:
        result = cls()
        for page in pages:
            result.records.extend(page.records)
            result.errors.extend(page.errors)
            result.pages += 1
            if page.cursor is not None:
                result.cursor = page.cursor
        return result


class Outcome(StrEnum):
    OK = "ok"  # created or changed
    UNCHANGED = "unchanged"  # the target already held exactly this (or an idempotent replay)
    FAILED = "failed"


@dataclass(frozen=True)
class WriteResult:
    """What happened to one record of a write: enough to dead-letter it and to write its audit row."""

    key: str
    outcome: Outcome
    status: int | None
    message: str | None = None
    sent: Any = None  # the payload as sent (or as it would have been sent)
    disposition: Disposition | None = None  # for failures: DEAD_LETTER (bad record) or RETRY/FAIL_FAST
    response: Any = None  # the system's answer for this record, when it gave one

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.FAILED

    @classmethod
    def failure(cls, key: str, error: ConnectorError, sent: Any = None) -> WriteResult:
        message = error.reason if isinstance(error, RecordError) else str(error)
        return cls(key, Outcome.FAILED, error.status, message, sent, error.disposition)
