"""What `make run` starts on a developer's machine: the Airflow UI and the sandbox on loopback only, and a task
and API-worker count a 2-core machine carries. Read from the environment the Makefile exports and from what
scripts/run.sh really launches (its commands replaced by stubs that record their arguments and environment)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBBED = ("airflow", "catalog-sync", "python", "curl", "setsid", "nohup")
STUB = """#!/usr/bin/env bash
name=$(basename "$0")
if [[ $name == setsid || $name == nohup ]]; then exec "$@"; fi
printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$name $*" "${AIRFLOW__API__HOST-unset}" "${AIRFLOW__CORE__PARALLELISM-unset}" \\
  "${AIRFLOW__API__WORKERS-unset}" "${AIRFLOW__API__PORT-unset}" >>"$STUB_LOG"
"""



def make_environment(home: Path, **overrides: str) -> dict[str, str]:
    """The environment the Makefile's targets run in (its exports over a clean caller environment)."""
    caller = {"PATH": os.environ["PATH"], "HOME": str(home), "CATALOG_SYNC_HOME": str(home / "state"), **overrides}
    out = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "--eval", "__env: ; @env -0",
                          "__env"], env=caller, capture_output=True, check=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def launched(tmp_path: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """Run scripts/run.sh with its commands stubbed; {command: [host, parallelism, workers, port]} as launched."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in STUBBED:
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    log = tmp_path / "launched.tsv"
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    env = {**env, "PATH": f"{stubs}:{env['PATH']}", "STUB_LOG": str(log),
           "CATALOG_SYNC_DEMO_CATALOG": str(catalog)}
    subprocess.run(["bash", str(REPO / "scripts" / "run.sh")], env=env, check=True, capture_output=True,
                   timeout=60)
    deadline = time.monotonic() + 10  # the services start in the background
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if any(" serve " in line for line in lines) and any(line.startswith("airflow standalone") for line in lines):
            break
        time.sleep(0.1)
    return {line.split("\t")[0]: line.split("\t")[1:] for line in lines}


def test_make_run_binds_loopback_and_sizes_for_a_small_machine(tmp_path: Path) -> None:
    env = make_environment(tmp_path)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["CATALOG_SYNC_SANDBOX_HOST"] == "127.0.0.1"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) <= 4  # Airflow's default, 32, on 2 cores
    assert env["AIRFLOW__API__WORKERS"] == "1"

    started = launched(tmp_path, env)
    (airflow,) = [v for k, v in started.items() if k.startswith("airflow standalone")]
    assert airflow[:3] == ["127.0.0.1", env["AIRFLOW__CORE__PARALLELISM"], "1"]
    (sandbox,) = [k for k in started if k.startswith("catalog-sync sandbox serve")]
    assert "--host 127.0.0.1" in sandbox


def test_opening_them_is_a_deliberate_setting(tmp_path: Path) -> None:
    env = make_environment(tmp_path, AIRFLOW__API__HOST="0.0.0.0", CATALOG_SYNC_SANDBOX_HOST="0.0.0.0",
                           AIRFLOW__CORE__PARALLELISM="8")
    assert (env["AIRFLOW__API__HOST"], env["CATALOG_SYNC_SANDBOX_HOST"]) == ("0.0.0.0", "0.0.0.0")
    started = launched(tmp_path, env)
    (airflow,) = [v for k, v in started.items() if k.startswith("airflow standalone")]
    assert airflow[:2] == ["0.0.0.0", "8"]
    assert any(k.startswith("catalog-sync sandbox serve --host 0.0.0.0") for k in started)


def test_run_sh_on_its_own_keeps_the_same_defaults(tmp_path: Path) -> None:
    """Started without the Makefile's exports (only what run.sh requires), the script still binds loopback."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CATALOG_SYNC_HOME": str(tmp_path / "state"),
           "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json")}
    started = launched(tmp_path, env)
    (airflow,) = [v for k, v in started.items() if k.startswith("airflow standalone")]
    assert airflow[:3] == ["127.0.0.1", "4", "1"]
    assert any(k.startswith("catalog-sync sandbox serve --host 127.0.0.1") for k in started)
