"""The command line finds the local Airflow home of a checkout, and never overrides one that is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog_sync import config


def test_a_checkouts_airflow_home_is_adopted_when_none_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    config.adopt_local_airflow_home()
    assert "AIRFLOW_HOME" not in os.environ  # no local Airflow yet: Airflow's own default stays
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "airflow.cfg").write_text("[core]\n")
    config.adopt_local_airflow_home()
    assert os.environ["AIRFLOW_HOME"] == str(tmp_path / "airflow")


def test_a_set_airflow_home_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(tmp_path))
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "airflow.cfg").write_text("[core]\n")
    monkeypatch.setenv("AIRFLOW_HOME", "/somewhere/else")
    config.adopt_local_airflow_home()
    assert os.environ["AIRFLOW_HOME"] == "/somewhere/else"
