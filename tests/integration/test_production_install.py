"""The production install: the package with the runtime pins only, no sandbox, no test tool.

The environment is built the way the Dockerfile builds the image (``requirements.txt``, then the package with
``--no-deps``), without downloading anything: a new virtual environment sees only the runtime distributions of the
development environment (through a folder of links that leaves out every distribution ``requirements.txt`` does
not pin), and the package is installed into it from this checkout, not in editable mode.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

#: Imported by the package where the test tools or the sandbox would be: none may load in production.
NOT_IN_PRODUCTION = ["catalog_sync_sandbox", "pytest", "playwright", "ruff", "mypy", "pyinstrument"]


def _runtime_pins() -> set[str]:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def _top_level_entries(dist: md.Distribution) -> set[str]:
    """The names directly under site-packages that a distribution installed (from its RECORD)."""
    return {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}


@pytest.fixture(scope="module")
def production_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("production")
    runtime = _runtime_pins()
    site = Path(md.distribution("pip").locate_file(""))  # the development environment's site-packages
    keep: set[str] = set()
    drop: set[str] = set()
    for dist in md.distributions(path=[str(site)]):
        name = canonicalize_name(dist.metadata["Name"])
        (keep if name in runtime else drop).update(_top_level_entries(dist))
    overlay = root / "runtime-site"
    overlay.mkdir()
    for entry in site.iterdir():
        if entry.name in keep and entry.name not in drop - keep and not entry.name.endswith(".pth"):
            (overlay / entry.name).symlink_to(entry)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    own_site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                            text=True).strip())
    (own_site / "runtime.pth").write_text(f"{overlay}\n")
    source = root / "source"  # a copy, so the build leaves nothing behind in the checkout
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "include", source / "include", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(own_site), str(source)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    yield env_dir


def _run(env_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{env_dir / 'bin'}:{env.get('PATH', '')}"
    env["CATALOG_SYNC_HOME"] = str(env_dir.parent / "state")
    for name in [k for k in env if k.startswith(("AIRFLOW_CONN_", "CATALOG_SYNC_SYSTEMS_URL"))]:
        del env[name]
    return subprocess.run([str(env_dir / "bin" / "python"), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=env_dir)


def test_every_module_of_the_package_imports_with_the_runtime_pins_alone(production_env: Path) -> None:
    probe = f"""
import importlib, json, pkgutil, sys
import catalog_sync
failed = {{}}
for info in pkgutil.walk_packages(catalog_sync.__path__, "catalog_sync."):
    if ".hub.migrations" in info.name:  # Alembic scripts, loaded by Alembic
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed[info.name] = repr(exc)
print(json.dumps({{"file": catalog_sync.__file__, "failed": failed,
                  "loaded": sorted(m for m in {NOT_IN_PRODUCTION!r} if m in sys.modules)}}))
"""
    done = _run(production_env, "-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(REPO / "include") not in result["file"], "the test must run the installed copy, not the checkout"
    assert result["failed"] == {}
    assert result["loaded"] == []


def test_the_sandbox_is_not_installed_and_its_command_is_absent(production_env: Path) -> None:
    done = _run(production_env, "-c", "import catalog_sync_sandbox")
    assert "No module named 'catalog_sync_sandbox'" in done.stderr
    helped = _run(production_env, "-m", "catalog_sync.cli", "--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "hub" in helped.stdout and "explain" in helped.stdout
    assert "sandbox" not in helped.stdout


def test_an_unconfigured_system_names_the_connection_to_fill_in(production_env: Path) -> None:
    done = _run(production_env, "-m", "catalog_sync.cli", "explain", "MH01-XS-Black")
    assert done.returncode != 0
    assert "catalog_sync_erp" in done.stderr and "not configured" in done.stderr
    assert "sandbox" not in done.stderr.lower()
