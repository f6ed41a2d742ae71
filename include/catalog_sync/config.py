"""Where Catalog Sync keeps its state, and which database is the hub.

Everything is read from the environment so that Airflow workers, the CLI and the tests agree without a config
file: ``CATALOG_SYNC_HOME`` (the local state folder) and ``CATALOG_SYNC_HUB_URL`` (a SQLAlchemy URL).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when the package is installed in editable mode from a checkout, else None.
_CHECKOUT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """The local state folder (SQLite files, Airflow home, logs). Created on first use."""
    configured = os.environ.get("CATALOG_SYNC_HOME")
    if configured:
        path = Path(configured)
    elif (_CHECKOUT / "pyproject.toml").exists():
        path = _CHECKOUT / ".state"
    else:
        path = Path.home() / ".catalog-sync"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hub_url() -> str:
    """SQLAlchemy URL of the hub database; an embedded SQLite file unless ``CATALOG_SYNC_HUB_URL`` is set."""
    return os.environ.get("CATALOG_SYNC_HUB_URL") or f"sqlite:///{state_dir() / 'hub.sqlite'}"


def sandbox_db_url() -> str:
    """SQLAlchemy URL of the sandbox systems' own database (kept apart from the hub on purpose)."""
    return os.environ.get("CATALOG_SYNC_SANDBOX_DB_URL") or f"sqlite:///{state_dir() / 'sandbox.sqlite'}"


def redact_url(url: str) -> str:
    """A database URL fit for a log line: the password, if any, is replaced."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
