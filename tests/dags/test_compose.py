"""docker-compose.yaml: the official Airflow 3 multi-service shape, built from this project, with the hub database,
the shared store, the systems' connections for every component and the demo catalog loaded (what tests/distributed
runs on one machine).

There is no Docker engine in CI; the file is checked by reading it, and by `docker-compose config -q` when that
command is installed (it resolves the anchors, merge keys and variables the way Compose will).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
STORE = "/opt/airflow/catalog-sync-store"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    # PyYAML resolves the &airflow-common anchors and <<: merge keys, as Compose does.
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_every_airflow_component_runs_its_own_command(services: dict[str, Any]) -> None:
    for name, command in AIRFLOW_SERVICES.items():
        assert name in services, name
        assert _command(services[name]) == command, name
    assert "airflow-init" in services
    assert services["flower"]["profiles"] == ["flower"]


def _stages() -> dict[str, str]:
    """The Dockerfile's stages: name -> its text (FROM line included)."""
    stages: dict[str, str] = {}
    current = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip() if " AS " in line else line
            stages[current] = ""
        if current:
            stages[current] += line + "\n"
    return stages


def test_airflow_services_and_sandbox_are_built_from_this_project(services: dict[str, Any]) -> None:
    stages = _stages()
    assert stages["runtime"].startswith("FROM apache/airflow:3.3.2-python3.11 AS runtime")
    assert "-r /opt/catalog-sync/requirements.txt" in stages["runtime"] and "--no-deps" in stages["runtime"]
    for name in [*AIRFLOW_SERVICES, "airflow-init", "flower"]:
        assert services[name]["build"] == {"context": ".", "target": "production"}, name
    assert services["sandbox"]["build"] == {"context": ".", "target": "sandbox"}


def test_the_production_image_installs_no_test_tool_and_no_sandbox() -> None:
    stages = _stages()
    assert list(stages)[-1] == "production", "a plain `docker build .` must give the production image"
    assert stages["production"].strip() == "FROM runtime AS production" or "sandbox" not in stages["production"]
    runtime = stages["runtime"]
    assert "requirements-dev.txt" not in runtime and "sandbox" not in runtime.replace("# ", "")
    pins = (REPO / "requirements.txt").read_text().lower()
    # graphql-core is not among them: the storefront client parses its own documents to cost them (2026-04)
    for tool in ("pytest", "ruff", "mypy", "playwright", "pyinstrument"):
        assert f"\n{tool}==" not in pins, f"{tool} is pinned in the runtime requirements"


def test_celery_executor_with_redis_broker_and_postgres_results(services: dict[str, Any]) -> None:
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env[
            "AIRFLOW__CELERY__BROKER_URL"
        ]
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://")
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
    assert services["redis"]["image"].startswith("redis:")


def test_postgres_hosts_the_metadata_and_the_hub_databases(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_DB"] == "airflow"
    init_mount = next(v for v in postgres["volumes"] if "/docker-entrypoint-initdb.d" in v)
    init_dir = REPO / init_mount.split(":")[0]
    init_sql = "".join(p.read_text() for p in sorted(init_dir.glob("*.sql")))
    assert "CREATE DATABASE catalog_sync_hub" in init_sql
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env = services[name]["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow"), name
        assert env["CATALOG_SYNC_HUB_URL"].endswith("@postgres/catalog_sync_hub"), name
        # one PostgreSQL driver everywhere: psycopg 3
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://"), name
        assert env["CATALOG_SYNC_HUB_URL"].startswith("postgresql+psycopg://"), name


def test_sandbox_serves_on_all_interfaces(services: dict[str, Any]) -> None:
    sandbox = services["sandbox"]
    full = " ".join([*sandbox["entrypoint"], _command(sandbox)])
    assert full == "catalog-sync-sandbox serve --host 0.0.0.0 --port 8765"
    assert "8765:8765" in sandbox["ports"]


def test_start_order_and_healthchecks(services: dict[str, Any]) -> None:
    for name in ["postgres", "redis", "sandbox", *AIRFLOW_SERVICES]:
        assert services[name]["healthcheck"]["test"], name
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    init_script = _command(services["airflow-init"])
    assert "catalog-sync hub migrate" in init_script
    assert "catalog_sync.airflow.settings_loader" in init_script


def test_docker_compose_accepts_the_file() -> None:
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed: `make test` installs it (scripts/install_test_tools.sh)")
        pytest.skip("docker-compose is not installed: run scripts/install_test_tools.sh")
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr


def _volumes(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's short-syntax volumes."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_every_airflow_component_shares_one_store_and_keeps_its_own_state(services: dict[str, Any]) -> None:
    volumes = yaml.safe_load(COMPOSE.read_text())["volumes"]
    assert "catalog-sync-store" in volumes
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env, mounts = services[name]["environment"], _volumes(services[name])
        # the same store URL everywhere, backed by the same named volume on every container
        assert env["CATALOG_SYNC_STORE_URL"] == f"file://{STORE}", name
        assert mounts.get(STORE) == "catalog-sync-store", name
        # the local state folder is the container's own: no volume holds it, and it is not the store
        home = env["CATALOG_SYNC_HOME"]
        assert home not in mounts and not home.startswith(STORE) and not STORE.startswith(home + "/"), name
    init = _command(services["airflow-init"])
    assert STORE in init.split("chown", 1)[1], "airflow-init hands the store volume to the services' user"


def test_every_airflow_component_reaches_the_systems(services: dict[str, Any]) -> None:
    from tests.conftest import airflow_connection_env

    wanted = {k: json.loads(v) for k, v in airflow_connection_env("http://sandbox:8765").items()}
    assert {"AIRFLOW_CONN_CATALOG_SYNC_PIM", "AIRFLOW_CONN_CATALOG_SYNC_STOREFRONT"} <= set(wanted)
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:  # the api-server too: the SKU trace and UI actions
        env = services[name]["environment"]
        got = {k: json.loads(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_CATALOG_SYNC_")}
        assert got == wanted, f"{name}: the connections differ from airflow_settings.yaml re-pointed at the sandbox"


def test_an_init_step_loads_the_demo_catalog_from_the_sandbox_loopback(services: dict[str, Any]) -> None:
    from catalog_sync_sandbox.control import loopback_only, router

    init = services["sandbox-init"]
    assert init["build"] == {"context": ".", "target": "sandbox"}
    # the control API answers loopback clients only: the init step runs in the sandbox's network namespace
    assert any(d.dependency is loopback_only for d in router.dependencies)
    assert init["network_mode"] == "service:sandbox"
    assert init["depends_on"] == {"sandbox": {"condition": "service_healthy"}}
    script = _command(init)
    assert 'catalog-sync-sandbox load --url http://127.0.0.1:8765 --catalog "$${CATALOG_SYNC_DEMO_CATALOG}"' in script
    assert "catalog-sync pim bootstrap" in script
    assert "ENV CATALOG_SYNC_DEMO_CATALOG=/opt/catalog-sync-demo-data/luma" in _stages()["sandbox"]
    assert _volumes(init) == {"/opt/airflow/catalog-sync": "sandbox-state"}  # its once-only marker
    worker = services["airflow-worker"]["depends_on"]
    assert worker["sandbox-init"]["condition"] == "service_completed_successfully"
