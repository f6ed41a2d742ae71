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
