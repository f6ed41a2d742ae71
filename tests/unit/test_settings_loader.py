"""airflow_settings.yaml loader: the conversion to Airflow's import shapes, and one real import into Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catalog_sync.airflow import settings_loader
from catalog_sync.airflow.settings_loader import (
    SettingsError,
    load_settings,
    redact,
    to_import_files,
)

SAMPLE = """\
airflow:
  connections:
    - conn_id: catalog_sync_pim
      conn_type: http
      conn_schema: http
      conn_host: 127.0.0.1
      conn_port: 8765
      conn_login: catalog_sync
      conn_password: pim-password-123
      conn_extra:
        path_prefix: /pim
        client_secret: pim-client-secret
        max_concurrency: 4
    - conn_id: catalog_sync_erp
      conn_type: http
      conn_host: 127.0.0.1
      conn_port: "8765"
      conn_login:
      conn_password: erp-key-456
      conn_extra: '{"path_prefix": "/erp"}'
  pools:
    - pool_name: pim_api
      pool_slot: 4
      pool_description: Akeneo allows 4 requests in flight per token
    - pool_name: erp_api
      pool_slot: 8
  variables:
    - variable_name: catalog_sync_alert_emails
      variable_value: ""
    - variable_name: catalog_sync_smtp_port
      variable_value: 25
    - variable_name: catalog_sync_smtp_host
      variable_value: localhost
"""


def test_connections_pools_and_variables_get_airflow_import_shapes() -> None:
    files = to_import_files(yaml.safe_load(SAMPLE))
    assert files.connections == {
        "catalog_sync_pim": {
            "conn_type": "http",
            "schema": "http",
            "host": "127.0.0.1",
            "port": 8765,
            "login": "catalog_sync",
            "password": "pim-password-123",
            "extra": json.dumps({"client_secret": "pim-client-secret", "max_concurrency": 4, "path_prefix": "/pim"}),
        },
        "catalog_sync_erp": {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": 8765,
            "password": "erp-key-456",
            "extra": json.dumps({"path_prefix": "/erp"}),
        },
    }
    assert files.pools == {
        "pim_api": {"slots": 4, "description": "Akeneo allows 4 requests in flight per token", "include_deferred": False},
        "erp_api": {"slots": 8, "description": "", "include_deferred": False},
    }
    assert files.variables == {
        "catalog_sync_alert_emails": "",
        "catalog_sync_smtp_port": "25",
        "catalog_sync_smtp_host": "localhost",
    }
    assert files.secrets == {"pim-password-123", "pim-client-secret", "erp-key-456"}


def test_hosts_can_be_rewritten_for_docker_compose() -> None:
    files = to_import_files(yaml.safe_load(SAMPLE), replace_hosts={"127.0.0.1": "sandbox"})
    assert {c["host"] for c in files.connections.values()} == {"sandbox"}


def test_urls_in_a_connections_extra_follow_the_host_rewrite() -> None:
    settings = {"airflow": {"connections": [{
        "conn_id": "catalog_sync_cdn", "conn_type": "catalog_sync_cdn", "conn_host": "127.0.0.1", "conn_port": 8765,
        "conn_extra": {"site_url": "http://127.0.0.1:8765/cdn/edge", "other": "https://shop.example.com",
                       "path_prefix": "/cdn"}}]}}
    files = to_import_files(settings, replace_hosts={"127.0.0.1": "sandbox"})
    extra = json.loads(files.connections["catalog_sync_cdn"]["extra"])
    assert extra == {"site_url": "http://sandbox:8765/cdn/edge", "other": "https://shop.example.com",
                     "path_prefix": "/cdn"}


def test_ports_can_be_rewritten_for_a_sandbox_on_another_port() -> None:
    """``make run`` with CATALOG_SYNC_SANDBOX_PORT: every connection, and every URL of an extra, on the new port."""
    settings = {"airflow": {"connections": [
        {"conn_id": "catalog_sync_cdn", "conn_type": "catalog_sync_cdn", "conn_host": "127.0.0.1", "conn_port": 8765,
         "conn_extra": {"site_url": "http://127.0.0.1:8765/cdn/edge", "other": "https://shop.example.com:8443/x"}},
        {"conn_id": "catalog_sync_smtp", "conn_type": "smtp", "conn_host": "localhost", "conn_port": 25}]}}
    files = to_import_files(settings, replace_ports={8765: 9876})
    assert files.connections["catalog_sync_cdn"]["port"] == 9876 and files.connections["catalog_sync_smtp"]["port"] == 25
    extra = json.loads(files.connections["catalog_sync_cdn"]["extra"])
    assert extra == {"site_url": "http://127.0.0.1:9876/cdn/edge", "other": "https://shop.example.com:8443/x"}
    both = to_import_files(settings, replace_hosts={"127.0.0.1": "sandbox"}, replace_ports={8765: 9876})
    assert json.loads(both.connections["catalog_sync_cdn"]["extra"])["site_url"] == "http://sandbox:9876/cdn/edge"
    with pytest.raises(SystemExit):  # argparse refuses a port that is not a number, before anything is read
        settings_loader.main(["--replace-port", "8765=x", "airflow_settings.yaml"])


def test_the_projects_own_settings_file_converts() -> None:
    path = Path(__file__).resolve().parents[2] / "airflow_settings.yaml"
    if not path.exists():
        pytest.skip("airflow_settings.yaml is not in this checkout")
    files = to_import_files(yaml.safe_load(path.read_text()))
    assert files.connections and all(c["conn_type"] for c in files.connections.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("connections: []", "top-level 'airflow:'"),
        ("airflow:\n  connections:\n    - conn_type: http", r"connections\[0\]: conn_id is required"),
        ("airflow:\n  connections:\n    - {conn_id: a}", "conn_type is required"),
        ("airflow:\n  connections:\n    - {conn_id: a, conn_type: http, conn_hots: x}", "unknown keys"),
        ("airflow:\n  connections:\n    - {conn_id: a, conn_type: http, conn_port: http}", "conn_port must be a number"),
        ("airflow:\n  pools:\n    - {pool_name: p, pool_slot: many}", "pool_slot must be a whole number"),
        ("airflow:\n  pools:\n    - {pool_name: p, pool_slot: 1}\n    - {pool_name: p, pool_slot: 2}", "defined twice"),
        ("airflow:\n  variables:\n    - {variable_value: x}", "variable_name is required"),
    ],
)
def test_malformed_settings_are_refused(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        to_import_files(yaml.safe_load(text))


def test_redact_hides_every_secret_even_when_one_contains_another() -> None:
    assert redact("login failed: abc / abcdef", frozenset({"abc", "abcdef"})) == "login failed: *** / ***"


def _fake_airflow(tmp_path: Path, stdout: str = "", exit_code: int = 0) -> tuple[str, Path]:
    """A stand-in ``airflow`` command that records its arguments and the files it was given."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "airflow"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "path = sys.argv[3]\n"
        "entry = {'args': sys.argv[1:], 'mode': oct(os.stat(path).st_mode & 0o777), 'doc': json.load(open(path))}\n"
        f"open({str(log)!r}, 'a').write(json.dumps(entry) + '\\n')\n"
        f"print({stdout!r})\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return str(script), log


def test_each_section_is_imported_with_overwrite_from_a_private_temp_file(tmp_path: Path) -> None:
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(SAMPLE)
    airflow, log = _fake_airflow(tmp_path)
    result = load_settings(settings, airflow=airflow)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["args"][:2] for c in calls] == [["connections", "import"], ["pools", "import"], ["variables", "import"]]
    # Overwrite everywhere (pools import always updates): loading the file again converges to the same state.
    assert calls[0]["args"][3:] == ["--overwrite"]
    assert calls[2]["args"][3:] == ["--action-on-existing-key", "overwrite"]
    assert all(c["mode"] == "0o600" for c in calls)
    assert calls[0]["doc"]["catalog_sync_pim"]["password"] == "pim-password-123"
    assert not any(Path(c["args"][2]).exists() for c in calls), "temporary files left behind"
    assert result.pools == ("pim_api", "erp_api")


def test_a_rejection_airflow_reports_with_exit_0_still_fails_and_is_redacted(tmp_path: Path) -> None:
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(SAMPLE)
    airflow, _ = _fake_airflow(tmp_path, stdout="Could not import connection catalog_sync_pim: pim-password-123")
    with pytest.raises(SettingsError) as err:
        load_settings(settings, airflow=airflow)
    assert "Could not import connection catalog_sync_pim: ***" in str(err.value)
    assert "pim-password-123" not in str(err.value)


def test_real_import_into_a_throwaway_airflow_home(tmp_path: Path) -> None:
    """Slow (about 20 s): `airflow db migrate`, the loader, and the result read back with the Airflow CLI."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIRFLOW") and not key.startswith("CATALOG_SYNC")
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    airflow = str(Path(sys.executable).with_name("airflow"))

    def cli(*args: str) -> str:
        result = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    cli("db", "migrate")
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(SAMPLE)
    # Through the command-line entry point, as `make run` and the compose init service call it.
    run = subprocess.run(
        [sys.executable, "-m", "catalog_sync.airflow.settings_loader", str(settings)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Loaded 2 connection(s), 2 pool(s) and 3 variable(s)" in run.stdout
    assert "pim-password-123" not in run.stdout + run.stderr

    (pim,) = json.loads(cli("connections", "get", "catalog_sync_pim", "-o", "json"))
    assert (pim["host"], str(pim["port"]), pim["login"], pim["password"]) == (
        "127.0.0.1", "8765", "catalog_sync", "pim-password-123",
    )  # fmt: skip
    assert pim["extra_dejson"]["path_prefix"] == "/pim"
    pools = {p["pool"]: p for p in json.loads(cli("pools", "list", "-o", "json"))}
    assert str(pools["pim_api"]["slots"]) == "4" and str(pools["erp_api"]["slots"]) == "8"
