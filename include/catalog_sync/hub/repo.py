"""Hub writes and reads. Every write is an idempotent upsert on a business key.

Callers pass plain dicts and get plain values back, so the engine and the DAGs never hold ORM objects across
transactions.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import JSON, Table, and_, case, exists, func, literal_column, select, text, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog_sync.hub.models import (
    AuditEvent,
    DeadLetter,
    FieldDelta,
    FieldHold,
    RecordFingerprint,
    SyncRun,
    SyncState,
    utcnow,
)

#: Rows per INSERT statement; keeps SQLite under its bound-parameter limit for wide tables.
CHUNK = 500
#: Parameter sets per executemany call of ``upsert`` (bounds memory only: no bound-parameter limit applies).
EXECUTEMANY_CHUNK = 10_000
#: On PostgreSQL, batches of at least this many rows go through ``COPY`` into a temporary table and one
#: ``INSERT ... SELECT`` (about 4x the rows per second of a batched INSERT; bench/b6_hub_writes.py). Smaller
#: batches keep the plain statement, whose fixed cost is lower. The two cost the same near 100 rows of the delta
#: log; at 1,000 rows (an audit flush) the batched INSERT took 2.5x as long, most of it psycopg parsing the
#: multi-row statement on the client.
COPY_MIN_ROWS = 200
_temp_names = itertools.count()


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update_cols: Sequence[str] | None = None,
    index_where: Any = None,
) -> int:
    """INSERT ... ON CONFLICT (key) DO UPDATE, chunked, on SQLite and PostgreSQL alike.

    ``update_cols`` defaults to every non-key column present in the rows; an empty list means DO NOTHING.
    ``index_where`` names the predicate of a partial unique index used as the conflict target.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert: Any = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"hub database dialect {dialect!r} is not supported (use SQLite or PostgreSQL)")
    cols = update_cols if update_cols is not None else [c for c in rows[0] if c not in key]
    # A multi-row ON CONFLICT DO UPDATE must not touch a key twice, so repeated keys are folded first with the
    # result a row-by-row run would give: DO UPDATE keeps the last row of a key, DO NOTHING the first.
    rows = _fold(rows, key, keep_last=bool(cols))

    def on_conflict(stmt: Any) -> Any:
        if not cols:
            return stmt.on_conflict_do_nothing(index_elements=list(key), index_where=index_where)
        return stmt.on_conflict_do_update(index_elements=list(key), index_where=index_where,
                                          set_={c: getattr(stmt.excluded, c) for c in cols})

    if dialect == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        with _copied(session, table, rows) as (temp, names):
            copied = select(*(temp.c[n] for n in names))
            clash = and_(*(table.c[k] == temp.c[k] for k in key), *([index_where] if index_where is not None else []))
            if not session.scalar(select(exists().where(clash))):
                # None of the keys is there yet: a plain INSERT ... SELECT costs about half of ON CONFLICT's
                # speculative insertion. A writer that adds one of the keys meanwhile makes it fail; then the
                # savepoint is rolled back and the ON CONFLICT statement below does the work.
                try:
                    with session.begin_nested():
                        session.execute(insert(table).from_select(names, copied))
                    return len(rows)
                except IntegrityError:
                    pass
            session.execute(on_conflict(insert(table).from_select(names, copied)))
        return len(rows)
    # One statement executed with a list of parameter sets (executemany): compiled once and cached, sent by the
    # driver in batches (SQLAlchemy's insertmanyvalues on PostgreSQL, cursor.executemany on SQLite). Building a
    # multi-row VALUES clause per chunk instead re-compiled a 3,000-parameter statement every 500 rows and ran at
    # about 6% of the raw driver's rate (bench/b6_hub_writes.py).
    stmt = on_conflict(insert(table))
    if dialect == "sqlite":
        _sqlite_executemany(session, table, stmt, rows)
        return len(rows)
    if dialect == "postgresql":
        # SQLAlchemy batches an ON CONFLICT executemany into multi-row statements only with RETURNING (without it,
        # the driver's executemany sends one statement per row).
        stmt = stmt.returning(*(table.c[k] for k in key))
    for start in range(0, len(rows), EXECUTEMANY_CHUNK):
        session.execute(stmt, list(rows[start : start + EXECUTEMANY_CHUNK]))
    return len(rows)


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Plain INSERT of many rows (no conflict handling): ``COPY`` on PostgreSQL for large batches."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy_rows(session, table, rows)
        return len(rows)
    if dialect == "sqlite":
        _sqlite_executemany(session, table, table.insert(), rows)
        return len(rows)
    for start in range(0, len(rows), EXECUTEMANY_CHUNK):
        session.execute(table.insert(), list(rows[start : start + EXECUTEMANY_CHUNK]))
    return len(rows)


def _fold(rows: Sequence[dict[str, Any]], key: Sequence[str], *, keep_last: bool) -> Sequence[dict[str, Any]]:
    """One row per key: the last one (``keep_last``) or the first."""
    key_of = itemgetter(*key)
    if keep_last:
        folded = {key_of(row): row for row in rows}
    else:
        folded = {}
        for row in rows:
            folded.setdefault(key_of(row), row)
    return rows if len(folded) == len(rows) else list(folded.values())


def _python_defaults(table: Table, given: Iterable[str]) -> dict[str, Any]:
    """Values of the Python-side column defaults (``default=``) for the columns the rows leave out, computed once
    per batch, as SQLAlchemy would compute them for an INSERT."""
    out: dict[str, Any] = {}
    given = set(given)
    for col in table.columns:
        default: Any = col.default
        if col.name in given or default is None or not (default.is_scalar or default.is_callable):
            continue
        out[col.name] = default.arg(None) if default.is_callable else default.arg
    return out


def _sqlite_executemany(session: Session, table: Table, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Run an INSERT statement once per row through sqlite3's own ``executemany``, with the parameters converted
    by each column type's bind processor here.

    This is what ``session.execute(stmt, rows)`` does, minus SQLAlchemy's per-row bookkeeping, which cost more
    than SQLite's own work on large batches (bench/b6_hub_writes.py).
    """
    dialect = session.get_bind().dialect
    names = list(rows[0])
    defaults = _python_defaults(table, names)
    compiled = stmt.compile(dialect=dialect, column_keys=[*names, *defaults])
    constants = compiled.construct_params({**rows[0], **defaults})
    getters: list[Any] = []
    for bind_name in compiled.positiontup:
        bind = compiled.binds[bind_name]
        processor = bind.type.bind_processor(dialect)
        if bind_name in names:
            getters.append((itemgetter(bind_name), processor))
        else:
            value = defaults[bind_name] if bind_name in defaults else constants[bind_name]
            value = processor(value) if processor is not None else value
            getters.append((lambda _row, v=value: v, None))
    params = [tuple([get(row) if proc is None else proc(get(row)) for get, proc in getters]) for row in rows]
    session.connection().exec_driver_sql(compiled.string, params)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def _escape(text_: str) -> str:
    """A value in COPY's text format: backslash, tab and line breaks escaped (checked first: most need none)."""
    if "\\" in text_ or "\t" in text_ or "\n" in text_ or "\r" in text_:
        return text_.translate(_COPY_ESCAPES)
    return text_


def _copy_encoder(type_: Any, dialect: Any) -> Any:
    """value -> its field in COPY's text format, for a column of this type.

    JSON is serialised here (the psycopg 3 dialect's bind processor returns an adapter object, not text), and
    None becomes JSON null unless the type says ``none_as_null``, as SQLAlchemy's own INSERT stores it. Other
    types go through the type's bind processor, as they would in an INSERT.
    """
    if isinstance(type_, JSON):
        dumps = getattr(dialect, "_json_serializer", None) or json.dumps
        none_as_null = type_.none_as_null
        return lambda v: _COPY_NULL if v is None and none_as_null else _escape(dumps(v))
    processor = type_.bind_processor(dialect)

    def encode(v: Any) -> str:
        if processor is not None:
            v = processor(v)
        if v is None:
            return _COPY_NULL
        if isinstance(v, str):
            return _escape(v)
        if isinstance(v, bool):
            return "t" if v else "f"
        if isinstance(v, datetime):
            return v.isoformat()
        return _escape(str(v))

    return encode


def _copy_rows(session: Session, target: Table, rows: Sequence[dict[str, Any]], into: str | None = None) -> list[str]:
    """``COPY`` the rows into ``into`` (default: ``target`` itself), a table with ``target``'s columns; returns the
    column names written.

    Python-side column defaults (``default=``) that the rows leave out are filled in, as an INSERT through
    SQLAlchemy would; columns with neither a value nor such a default get the table's own default (a serial id).
    """
    dialect = session.get_bind().dialect
    names = list(rows[0])
    defaults = _python_defaults(target, names)
    encoders = [_copy_encoder(target.c[n].type, dialect) for n in names]
    fixed = "".join("\t" + _copy_encoder(target.c[n].type, dialect)(v) for n, v in defaults.items())
    pairs = list(zip(names, encoders, strict=True))
    buf = io.StringIO()
    write = buf.write
    for row in rows:
        write("\t".join([encode(row[name]) for name, encode in pairs]))
        write(fixed)
        write("\n")
    names += list(defaults)
    quoted = ", ".join(f'"{n}"' for n in names)
    copy_sql = f'COPY "{into or target.name}" ({quoted}) FROM STDIN'
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(copy_sql) as copy:  # psycopg 3, the hub's one PostgreSQL driver (config.py)
            copy.write(buf.getvalue())
    finally:
        cursor.close()
    return names


@contextmanager
def _copied(session: Session, target: Table, rows: Sequence[dict[str, Any]]) -> Iterator[tuple[Any, list[str]]]:
    """``COPY`` the rows into a temporary table with ``target``'s columns; yields it and the column names."""
    temp_name = f"_cs_copy_{next(_temp_names)}"
    session.execute(text(f'CREATE TEMP TABLE "{temp_name}" ON COMMIT DROP AS SELECT * FROM "{target.name}" '
                         "WITH NO DATA"))
    names = _copy_rows(session, target, rows, into=temp_name)
    yield sa_table(temp_name, *(sa_column(n) for n in names)), names
    session.execute(text(f'DROP TABLE "{temp_name}"'))


def new_load_id(flow: str) -> str:
    return f"{flow}-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def content_hash(payload: Any) -> str:
    """Stable hash of a JSON-able payload (key order does not matter)."""
    raw = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


# --- runs ---------------------------------------------------------------------------------------------------


def start_run(
    session: Session,
    flow: str,
    *,
    load_id: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> str:
    """Register a run (or re-open it, when the same load id is retried) and return its load id."""
    load_id = load_id or new_load_id(flow)
    upsert(
        session,
        SyncRun.__table__,  # type: ignore[arg-type]
        [
            {
                "load_id": load_id,
                "flow": flow,
                "dag_id": dag_id,
                "run_id": run_id,
                "window_start": window_start,
                "window_end": window_end,
                "status": "running",
                "started_at": utcnow(),
                "ended_at": None,
                "error": None,
            }
        ],
        key=["load_id"],
    )
    return load_id


def finish_run(
    session: Session,
    load_id: str,
    *,
    status: str,
    counts: dict[str, int] | None = None,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "ended_at": utcnow(), "error": error}
    for name, value in (counts or {}).items():
        values[f"records_{name}"] = value
    if details is not None:
        values["details"] = details
    session.execute(update(SyncRun).where(SyncRun.load_id == load_id).values(**values))


def get_run(session: Session, load_id: str) -> dict[str, Any] | None:
    run = session.get(SyncRun, load_id)
    if run is None:
        return None
    return {c.name: getattr(run, c.name) for c in SyncRun.__table__.columns}


# --- audit ----------------------------------------------------------------------------------------------------


def record_audit(session: Session, events: Iterable[dict[str, Any]]) -> int:
    """Append audit rows (the trail is append-only: every attempt is its own row)."""
    return insert_rows(session, cast(Table, AuditEvent.__table__), list(events))


# --- dead letters ---------------------------------------------------------------------------------------------

_DL_KEY = ["flow", "entity", "record_key", "target_system", "reason_kind", "expectation"]
#: The predicate of the open-letter unique index (models.py), with 'open' written into the SQL. As a bound parameter
#: it stops matching the index once psycopg 3 has prepared the statement (after 5 runs on a connection) and
#: PostgreSQL plans it generically (after 5 more): a generic plan cannot prove the predicate, and the INSERT fails
#: with "no unique or exclusion constraint matching the ON CONFLICT specification".
_DL_OPEN = DeadLetter.__table__.c.status == literal_column("'open'")


def dead_letter(session: Session, letters: Iterable[dict[str, Any]]) -> int:
    """Open dead letters; a letter already open for the same record and reason gets ``attempts + 1`` when a later
    run finds it again. The run that opened it finding it again (a retried or cleared task) changes only its
    reason and payload: ``attempts`` counts runs, not task attempts, and no second letter is ever opened.

    Returns how many letters were given (each is a record accounted as dead-lettered). Letters for the same record
    and reason within one call (the same change read twice, say) become one open letter, the latest payload kept
    and ``attempts`` counting them: one statement may not upsert the same row twice.
    """
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    given = 0
    now = utcnow()
    for letter in letters:
        given += 1
        row = {
            "gate_layer": None,
            "expectation": "",
            "payload": None,
            "attempts": 1,
            "status": "open",
            "created_at": now,
            "updated_at": now,
            **letter,
        }
        key = tuple(row.get(k) for k in _DL_KEY)
        if key in by_key:
            row["attempts"] = by_key.pop(key)["attempts"] + row["attempts"]
        by_key[key] = row
    rows = list(by_key.values())
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
    table = cast(Table, DeadLetter.__table__)
    for start in range(0, len(rows), CHUNK):
        stmt = insert(table).values(rows[start : start + CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=_DL_KEY,
            index_where=_DL_OPEN,
            set_={
                "attempts": case((table.c.load_id == stmt.excluded.load_id, table.c.attempts),
                                 else_=table.c.attempts + 1),
                "load_id": stmt.excluded.load_id,
                "reason": stmt.excluded.reason,
                "payload": stmt.excluded.payload,
                "gate_layer": stmt.excluded.gate_layer,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        session.execute(stmt)
    return given


def resolve_dead_letters(session: Session, ids: Sequence[int], status: str, by: str) -> int:
    """Mark open dead letters replayed or discarded; returns how many were open.

    Resolving the letter of a write-back loop (reason kind ``loop``) releases its field's hold: the operator has
    judged the flips, and the flows write the field again from the next run on.
    """
    if status not in {"replayed", "discarded"}:
        raise ValueError(f"status must be 'replayed' or 'discarded', not {status!r}")
    release_holds(session, ids, by)
    result = session.execute(
        update(DeadLetter)
        .where(and_(DeadLetter.id.in_(list(ids)), DeadLetter.status == "open"))
        .values(status=status, resolved_by=by, updated_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def release_holds(session: Session, letter_ids: Sequence[int], by: str) -> int:
    """Release the open write-back-loop holds of these dead letters; returns how many were held."""
    result = session.execute(
        update(FieldHold)
        .where(and_(FieldHold.dead_letter_id.in_(list(letter_ids)), FieldHold.released_at.is_(None)))
        .values(released_at=utcnow(), released_by=by)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def count_dead_letters(session: Session, load_id: str) -> int:
    return int(session.scalar(select(func.count()).where(DeadLetter.load_id == load_id)) or 0)


# --- sync state -------------------------------------------------------------------------------------------------


def get_cursor(session: Session, system: str, stream: str) -> str | None:
    state = session.get(SyncState, (system, stream))
    return state.cursor_value if state else None


def commit_cursor(session: Session, system: str, stream: str, cursor_field: str, value: str, load_id: str) -> None:
    """Move a stream's cursor. Call only after the data up to ``value`` was written and passed its gates."""
    upsert(
        session,
        SyncState.__table__,  # type: ignore[arg-type]
        [
            {
                "system": system,
                "stream": stream,
                "cursor_field": cursor_field,
                "cursor_value": value,
                "load_id": load_id,
                "updated_at": utcnow(),
            }
        ],
        key=["system", "stream"],
    )


# --- delta log and fingerprints ------------------------------------------------------------------------------


def record_deltas(session: Session, deltas: Iterable[dict[str, Any]]) -> int:
    """Log field changes; the first before-value a run saw for a field is kept if the run writes it again."""
    rows = [{"applied_at": utcnow(), **d} for d in deltas]
    return upsert(
        session,
        FieldDelta.__table__,  # type: ignore[arg-type]
        rows,
        key=["load_id", "system", "entity", "record_key", "field"],
        update_cols=["after", "applied_at"],
    )


def deltas_for_run(session: Session, load_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(FieldDelta).where(FieldDelta.load_id == load_id).order_by(FieldDelta.id)
    ).all()
    return [{c.name: getattr(r, c.name) for c in FieldDelta.__table__.columns} for r in rows]


def fingerprints(session: Session, system: str, entity: str, keys: Iterable[str] | None = None) -> dict[str, str]:
    """record_key -> content hash of what was last delivered to ``system``: of ``keys`` only when given (a
    batch's records), else of every record."""
    query = select(RecordFingerprint.record_key, RecordFingerprint.content_hash).where(
        RecordFingerprint.system == system, RecordFingerprint.entity == entity)
    if keys is None:
        return {key: h for key, h in session.execute(query)}
    out: dict[str, str] = {}
    wanted = sorted({str(k) for k in keys})
    for start in range(0, len(wanted), 500):
        out.update({key: h for key, h in session.execute(
            query.where(RecordFingerprint.record_key.in_(wanted[start:start + 500])))})
    return out


def save_fingerprints(
    session: Session, system: str, entity: str, hashes: dict[str, str], load_id: str
) -> int:
    now = utcnow()
    rows = [
        {"system": system, "entity": entity, "record_key": k, "content_hash": h, "load_id": load_id, "updated_at": now}
        for k, h in hashes.items()
    ]
    return upsert(session, RecordFingerprint.__table__, rows, key=["system", "entity", "record_key"])  # type: ignore[arg-type]
