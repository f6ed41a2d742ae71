"""Where Catalog Sync keeps its state, and which database is the hub.

Everything is read from the environment so that Airflow workers, the CLI and the tests agree without a config
file: ``CATALOG_SYNC_HOME`` (the local state folder) and ``CATALOG_SYNC_HUB_URL`` (a SQLAlchemy URL). The local
state folder is private to one machine: what a task hands to another task or to the UI goes to the shared state
store instead (``CATALOG_SYNC_STORE_URL``, :mod:`catalog_sync.store`).

The hub runs on one PostgreSQL driver, psycopg 3 (``postgresql+psycopg://``), in production and in the tests alike:
a URL without a driver (``postgresql://``, ``postgres://``) is read as psycopg 3, any other driver is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when the package is installed in editable mode from a checkout, else None.
_CHECKOUT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """The local state folder (SQLite files, Airflow home, logs; by default the store's folder). Created on first
    use."""
    configured = os.environ.get("CATALOG_SYNC_HOME")
    if configured:
        path = Path(configured)
    elif (_CHECKOUT / "pyproject.toml").exists():
        path = _CHECKOUT / ".state"
    else:
        path = Path.home() / ".catalog-sync"
    path.mkdir(parents=True, exist_ok=True)
    return path


def adopt_local_airflow_home() -> None:
    """Point ``AIRFLOW_HOME`` at the state folder's Airflow home (where ``make run`` keeps it) when it is unset and
    that home exists, so that ``catalog-sync`` in a checkout reads the same connections as the local Airflow."""
    if os.environ.get("AIRFLOW_HOME"):
        return
    local = state_dir() / "airflow"
    if (local / "airflow.cfg").is_file():
        os.environ["AIRFLOW_HOME"] = str(local)


def hub_url() -> str:
    """SQLAlchemy URL of the hub database; an embedded SQLite file unless ``CATALOG_SYNC_HUB_URL`` is set."""
    configured = os.environ.get("CATALOG_SYNC_HUB_URL")
    return normalise_hub_url(configured) if configured else f"sqlite:///{state_dir() / 'hub.sqlite'}"


#: The one form of a PostgreSQL hub URL: SQLAlchemy's psycopg 3 dialect.
HUB_PG_SCHEME = "postgresql+psycopg"


def normalise_hub_url(url: str) -> str:
    """A hub URL in the form the hub runs on: PostgreSQL through psycopg 3 (other databases pass unchanged).

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``. A PostgreSQL URL naming another driver
    (``postgresql+psycopg2://``, ``+asyncpg``, ``+pg8000``...) raises ValueError, so the hub never runs on a driver
    that production does not use.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    backend, _, driver = scheme.lower().partition("+")
    if backend not in ("postgresql", "postgres"):
        return url
    if driver in ("", "psycopg"):
        return f"{HUB_PG_SCHEME}://{rest}"
    raise ValueError(
        f"CATALOG_SYNC_HUB_URL: the hub runs on PostgreSQL through psycopg 3 only, not {scheme}://; "
        f"write {HUB_PG_SCHEME}://user:password@host:port/database (postgresql:// means the same)")


def sandbox_db_url() -> str:
    """SQLAlchemy URL of the sandbox systems' own database (kept apart from the hub on purpose)."""
    return os.environ.get("CATALOG_SYNC_SANDBOX_DB_URL") or f"sqlite:///{state_dir() / 'sandbox.sqlite'}"


def redact_url(url: str) -> str:
    """A database URL fit for a log line: the password, if any, is replaced."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
