"""The hub's one PostgreSQL driver: psycopg 3 for every PostgreSQL hub URL, other drivers refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from catalog_sync import config
from catalog_sync.hub.db import _engine, get_engine, migrate
from tests.conftest import PG_URL, pg_schema_url


@pytest.fixture(autouse=True)
def _no_cached_engines() -> Iterator[None]:
    yield
    _engine.cache_clear()


@pytest.mark.parametrize("url", [
    "postgresql://cs:secret@db.example:5432/hub",
    "postgres://cs:secret@db.example:5432/hub",
    "postgresql+psycopg://cs:secret@db.example:5432/hub",
    "POSTGRESQL://cs:secret@db.example:5432/hub",
])
def test_a_postgresql_hub_url_runs_on_psycopg3(url: str) -> None:
    assert config.normalise_hub_url(url) == "postgresql+psycopg://cs:secret@db.example:5432/hub"
    engine = get_engine(url)  # no connection is made here
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")


def test_the_configured_hub_url_is_normalised_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", "postgresql://cs@db.example/hub")
    assert config.hub_url() == "postgresql+psycopg://cs@db.example/hub"
    assert get_engine().dialect.driver == "psycopg"


def test_other_databases_pass_unchanged(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    assert config.normalise_hub_url(url) == url
    assert get_engine(url).dialect.name == "sqlite"


@pytest.mark.parametrize("scheme", ["postgresql+psycopg2", "postgres+psycopg2", "postgresql+asyncpg",
                                    "postgresql+pg8000", "postgresql+psycopg_async"])
def test_another_postgresql_driver_is_refused_with_the_setting_named(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{scheme}://cs:secret@db.example:5432/hub"
    for attempt in (lambda: config.normalise_hub_url(url), lambda: get_engine(url), lambda: migrate(url)):
        with pytest.raises(ValueError) as refused:
            attempt()
        message = str(refused.value)
        assert "CATALOG_SYNC_HUB_URL" in message and "postgresql+psycopg://" in message
        assert f"{scheme}://" in message and "secret" not in message
    monkeypatch.setenv("CATALOG_SYNC_HUB_URL", url)
    with pytest.raises(ValueError, match="CATALOG_SYNC_HUB_URL"):
        config.hub_url()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="CATALOG_SYNC_TEST_PG_URL is not set (CI sets it)")
def test_the_postgresql_hub_tests_run_through_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL every PostgreSQL hub test gets (tests/conftest.py) connects through psycopg 3, COPY path included."""
    import psycopg
    from sqlalchemy import func, select

    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import AuditEvent

    copied: list[str] = []
    real_copy_rows = repo._copy_rows

    def spy(session, target, rows, into=None):  # noqa: ANN001, ANN202
        copied.append(target.name)
        return real_copy_rows(session, target, rows, into)

    monkeypatch.setattr(repo, "_copy_rows", spy)
    assert PG_URL
    with contextmanager(pg_schema_url)(PG_URL) as url:
        migrate(url)
        assert get_engine(url).dialect.driver == "psycopg"
        rows = [{"load_id": "L", "system": "pim", "entity": "product", "record_key": f"K{i:05d}", "action": "write",
                 "outcome": "ok", "request": {"n": i}} for i in range(repo.COPY_MIN_ROWS)]
        with session_scope(url) as s:
            assert isinstance(s.connection().connection.dbapi_connection, psycopg.Connection)
            assert repo.record_audit(s, rows) == len(rows)  # large enough for COPY
        with session_scope(url) as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == len(rows)
    assert copied == ["audit_event"]
