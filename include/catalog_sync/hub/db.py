"""Engine, sessions and migrations for the hub database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from catalog_sync import config

MIGRATIONS = Path(__file__).with_name("migrations")


def get_engine(url: str | None = None) -> Engine:
    """One pooled engine per URL and process; ``None`` means the configured hub (read on every call).

    PostgreSQL URLs go through ``config.normalise_hub_url``: psycopg 3 always, any other driver refused.
    """
    return _engine(config.normalise_hub_url(url or config.hub_url()))


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the UI read while a task writes; NORMAL sync is safe with WAL.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction: committed when the block ends normally, rolled back when it raises."""
    session = sessionmaker(get_engine(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # '%' is Alembic's interpolation character; URLs may contain it (escaped passwords).
    cfg.set_main_option("sqlalchemy.url", config.normalise_hub_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Bring the hub schema up to ``revision`` (idempotent)."""
    from alembic import command

    command.upgrade(_alembic_config(url or config.hub_url()), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(_alembic_config(url or config.hub_url()), revision)
