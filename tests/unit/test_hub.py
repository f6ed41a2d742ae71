"""Hub database: migrations both ways on every backend, and idempotent writes."""

from __future__ import annotations

from sqlalchemy import func, inspect, select

from catalog_sync.hub import repo
from catalog_sync.hub.db import downgrade, get_engine, migrate, session_scope
from catalog_sync.hub.models import Base, DeadLetter, FieldDelta, RecordFingerprint, SyncRun


def test_migrations_apply_from_empty_and_downgrade(empty_hub_url: str) -> None:
    migrate(empty_hub_url)
    tables = set(inspect(get_engine(empty_hub_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables
    migrate(empty_hub_url)  # idempotent
    downgrade(empty_hub_url, "base")
    left = set(inspect(get_engine(empty_hub_url)).get_table_names()) - {"alembic_version"}
    assert left == set()
    migrate(empty_hub_url)
    assert set(Base.metadata.tables) <= set(inspect(get_engine(empty_hub_url)).get_table_names())


def test_schema_matches_models(hub_url: str) -> None:
    """The migration creates exactly what the models declare (no drift between the two)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with get_engine(hub_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_run_lifecycle(hub_url: str) -> None:
    with session_scope(hub_url) as s:
        load_id = repo.start_run(s, "cold_nightly", dag_id="cold_data_nightly", run_id="r1")
    with session_scope(hub_url) as s:
        repo.finish_run(s, load_id, status="success", counts={"read": 10, "delivered": 9, "dead_lettered": 1})
    with session_scope(hub_url) as s:
        run = repo.get_run(s, load_id)
    assert run is not None
    assert (run["status"], run["records_read"], run["records_delivered"], run["records_dead_lettered"]) == (
        "success", 10, 9, 1,
    )


def test_dead_letters_are_idempotent_per_open_reason(hub_url: str) -> None:
    letter = {
        "load_id": "L1", "flow": "cold_nightly", "entity": "product", "record_key": "MH01-XS-Black",
        "source_system": "erp", "target_system": "pim", "reason_kind": "gate", "gate_layer": 1,
        "expectation": "price_in_category_range", "reason": "price 0 outside 5..500", "payload": {"price": 0},
    }
    with session_scope(hub_url) as s:
        repo.dead_letter(s, [letter])
    with session_scope(hub_url) as s:
        repo.dead_letter(s, [{**letter, "load_id": "L2"}])
    with session_scope(hub_url) as s:
        rows = s.scalars(select(DeadLetter)).all()
        assert len(rows) == 1 and rows[0].attempts == 2 and rows[0].load_id == "L2"
        assert repo.resolve_dead_letters(s, [rows[0].id], "replayed", by="tester") == 1
    # Once resolved, a new failure of the same record opens a fresh letter.
    with session_scope(hub_url) as s:
        repo.dead_letter(s, [{**letter, "load_id": "L3"}])
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 2
        assert repo.resolve_dead_letters(s, [1], "replayed", by="tester") == 0  # already resolved


def test_dead_letters_keep_matching_the_open_index_when_the_statement_is_prepared(hub_url: str) -> None:
    """psycopg 3 prepares a statement after 5 runs on a connection and PostgreSQL then plans it generically: the
    ON CONFLICT predicate must still match the partial index then (it did not while it was a bound parameter)."""
    letter = {"load_id": "L1", "flow": "cold_nightly", "entity": "product", "record_key": "MH01-XS-Black",
              "source_system": "supplier", "target_system": "pim", "reason_kind": "ownership",
              "expectation": "lifecycle_status", "reason": "owned by erp"}
    with session_scope(hub_url) as s:  # one connection for every run
        for run in range(15):
            repo.dead_letter(s, [{**letter, "load_id": f"L{run}"}])
    with session_scope(hub_url) as s:
        assert s.scalars(select(DeadLetter.attempts)).all() == [15]


def test_a_retried_task_finding_its_own_letter_again_adds_no_attempt(hub_url: str) -> None:
    """``attempts`` counts the runs that found the record failing: a retry of the task that opened the letter (the
    same load id) refreshes it, and neither adds an attempt nor opens a second letter."""
    letter = {"load_id": "L1", "flow": "cold_nightly", "entity": "product", "record_key": "MH01-XS-Black",
              "source_system": "erp", "target_system": "pim", "reason_kind": "transform",
              "expectation": "uom", "reason": "unknown unit"}
    for reason in ("unknown unit", "unknown unit 'furlong'"):
        with session_scope(hub_url) as s:
            repo.dead_letter(s, [{**letter, "reason": reason}])
    with session_scope(hub_url) as s:
        rows = s.scalars(select(DeadLetter)).all()
        assert [(r.attempts, r.reason) for r in rows] == [(1, "unknown unit 'furlong'")]
        repo.dead_letter(s, [{**letter, "load_id": "L2"}])
    with session_scope(hub_url) as s:
        assert s.scalars(select(DeadLetter.attempts)).all() == [2]



def test_the_same_record_twice_in_one_batch_is_one_letter(hub_url: str) -> None:
    """PostgreSQL refuses an upsert that touches one row twice; the batch is collapsed before it is sent."""
    letter = {
        "load_id": "L1", "flow": "hot", "entity": "change", "record_key": "MH01-XS-Black",
        "source_system": "erp", "target_system": "storefront", "reason_kind": "api", "gate_layer": 0,
        "expectation": "record_schema", "reason": "qty is not a number", "payload": {"qty": "x"},
    }
    other = {**letter, "record_key": "MH01-XS-Blue"}
    with session_scope(hub_url) as s:
        given = repo.dead_letter(s, [letter, other, {**letter, "payload": {"qty": "y"}}])
    assert given == 3  # every record is accounted for
    with session_scope(hub_url) as s:
        rows = {r.record_key: r for r in s.scalars(select(DeadLetter)).all()}
    assert set(rows) == {"MH01-XS-Black", "MH01-XS-Blue"}
    assert rows["MH01-XS-Black"].attempts == 2 and rows["MH01-XS-Black"].payload == {"qty": "y"}

def test_cursor_commits_and_reads_back(hub_url: str) -> None:
    with session_scope(hub_url) as s:
        assert repo.get_cursor(s, "erp", "changes") is None
        repo.commit_cursor(s, "erp", "changes", "seq", "41", "L1")
        repo.commit_cursor(s, "erp", "changes", "seq", "42", "L2")
    with session_scope(hub_url) as s:
        assert repo.get_cursor(s, "erp", "changes") == "42"


def test_delta_log_keeps_first_before_value(hub_url: str) -> None:
    base = {"load_id": "L1", "system": "pim", "entity": "product", "record_key": "MH01", "field": "name"}
    with session_scope(hub_url) as s:
        repo.record_deltas(s, [{**base, "before": "Old", "after": "Mid"}])
        repo.record_deltas(s, [{**base, "before": "Mid", "after": "New"}])
    with session_scope(hub_url) as s:
        (delta,) = repo.deltas_for_run(s, "L1")
        assert (delta["before"], delta["after"]) == ("Old", "New")
        assert s.scalar(select(func.count()).select_from(FieldDelta)) == 1


def test_fingerprints_upsert(hub_url: str) -> None:
    with session_scope(hub_url) as s:
        repo.save_fingerprints(s, "pim", "product", {"A": "h1", "B": "h2"}, "L1")
        repo.save_fingerprints(s, "pim", "product", {"A": "h3"}, "L2")
    with session_scope(hub_url) as s:
        assert repo.fingerprints(s, "pim", "product") == {"A": "h3", "B": "h2"}
        assert s.scalar(select(func.count()).select_from(RecordFingerprint)) == 2


def test_upsert_many_rows_is_chunked_and_idempotent(hub_url: str) -> None:
    rows = [{"load_id": f"L{i}", "flow": "bulk", "status": "success"} for i in range(1234)]
    with session_scope(hub_url) as s:
        repo.upsert(s, SyncRun.__table__, rows, key=["load_id"])
        repo.upsert(s, SyncRun.__table__, rows, key=["load_id"])
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 1234


def test_content_hash_ignores_key_order() -> None:
    assert repo.content_hash({"a": 1, "b": [1, 2]}) == repo.content_hash({"b": [1, 2], "a": 1})
    assert repo.content_hash({"a": 1}) != repo.content_hash({"a": 2})


AWKWARD = ["tab\there", "line\nbreak\r\n", "back\\slash \\N", "quote \" ' ; DROP TABLE x;--", "", "Ünïcødé ✓",
           "\\.", "null"]


def test_bulk_writes_store_exactly_what_small_batches_store(hub_url: str, monkeypatch) -> None:
    """Batches of COPY_MIN_ROWS and more take the COPY path on PostgreSQL: awkward text, JSON, NULLs and column
    defaults must come back exactly as the row-by-row INSERT path stores them."""
    from sqlalchemy import Table

    copies: list[str] = []
    real_copy_rows = repo._copy_rows

    def spy(session, target, rows, into=None):  # noqa: ANN001, ANN202
        copies.append(target.name)
        return real_copy_rows(session, target, rows, into)

    monkeypatch.setattr(repo, "_copy_rows", spy)

    from catalog_sync.hub.models import AuditEvent

    def events(load_id: str, n: int) -> list[dict]:
        return [{"load_id": load_id, "system": "pim", "entity": "product", "record_key": f"K{i:05d}",
                 "action": "write", "outcome": "ok", "request": {"text": AWKWARD[i % len(AWKWARD)], "n": i},
                 "response": None if i % 3 else {"list": [1, 2.5, None, AWKWARD[i % len(AWKWARD)]]},
                 "changes": {"name": {"before": None, "after": AWKWARD[(i + 1) % len(AWKWARD)]}},
                 "ended_at": None} for i in range(n)]

    big, small = events("BIG", repo.COPY_MIN_ROWS + 7), events("SMALL", 40)
    with session_scope(hub_url) as s:
        assert repo.record_audit(s, big) == len(big)
        repo.record_audit(s, small)
    cols = ["record_key", "request", "response", "changes", "attempt", "ended_at"]
    with session_scope(hub_url) as s:
        got = {load: {r.record_key: r for r in s.execute(
            select(*(AuditEvent.__table__.c[c] for c in cols), AuditEvent.started_at)
            .where(AuditEvent.load_id == load))} for load in ("BIG", "SMALL")}
        null_responses = {load: s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.load_id == load, AuditEvent.response.is_(None))) for load in ("BIG", "SMALL")}
    assert len(got["BIG"]) == len(big)
    for row in big:
        stored = got["BIG"][row["record_key"]]
        assert (stored.request, stored.response, stored.changes) == (row["request"], row["response"], row["changes"])
        assert stored.attempt == 1 and stored.started_at is not None  # Python-side defaults filled in
    for row in small:  # both paths agree row for row, including how a None JSON value is stored
        a, b = got["SMALL"][row["record_key"]], got["BIG"][row["record_key"]]
        assert (a.request, a.response, a.changes, a.attempt) == (b.request, b.response, b.changes, b.attempt)
    # SQLAlchemy stores a None JSON value as JSON null, not SQL NULL; the COPY path must do the same
    assert null_responses == {"BIG": 0, "SMALL": 0}

    # upsert: repeated keys in one batch fold to the last row (DO UPDATE) or the first (DO NOTHING)
    table: Table = SyncRun.__table__  # type: ignore[assignment]
    n = repo.COPY_MIN_ROWS + 3
    rows = [{"load_id": f"R{i % (n - 2)}", "flow": AWKWARD[i % len(AWKWARD)] or "x", "status": f"s{i}"}
            for i in range(n)]
    with session_scope(hub_url) as s:
        assert repo.upsert(s, table, rows, key=["load_id"]) == n - 2
        repo.upsert(s, table, [{**r, "status": "ignored"} for r in rows], key=["load_id"], update_cols=[])
    with session_scope(hub_url) as s:
        runs = {r.load_id: r for r in s.execute(select(SyncRun.load_id, SyncRun.flow, SyncRun.status,
                                                       SyncRun.records_read, SyncRun.started_at))}
    assert len(runs) == n - 2
    assert runs["R0"].status == f"s{n - 2}" and runs["R1"].status == f"s{n - 1}" and runs["R5"].status == "s5"
    assert runs["R3"].flow == AWKWARD[3] and runs["R0"].records_read == 0 and runs["R0"].started_at is not None
    expected_copies = ["audit_event", "sync_run", "sync_run"] if hub_url.startswith("postgresql") else []
    assert copies == expected_copies
