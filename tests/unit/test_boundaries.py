"""The import boundaries of ARCHITECTURE.md, read from every import statement (at any depth, lazy ones included)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "include" / "catalog_sync"
#: Parts of the product that stay free of Airflow (they are driven by it, and tested without it).
AIRFLOW_FREE = ["connectors", "engine", "flows", "quality", "trace.py", "reliability.py", "catalog", "hub",
                "governance", "transforms.py", "domain.py"]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _offending(roots: list[Path], forbidden: str) -> list[str]:
    found = []
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for line, name in _imports(path):
                if name == forbidden or name.startswith(forbidden + "."):
                    found.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("where", ["include/catalog_sync", "dags", "plugins"])
def test_the_product_never_imports_the_sandbox(where: str) -> None:
    assert _offending([REPO / where], "catalog_sync_sandbox") == []


def test_the_sandbox_is_not_inside_the_product_package() -> None:
    assert not (PACKAGE / "sandbox").exists()
    assert (REPO / "sandbox" / "pyproject.toml").is_file()


def test_the_core_of_the_product_never_imports_airflow() -> None:
    assert _offending([PACKAGE / part for part in AIRFLOW_FREE], "airflow") == []


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from catalog_sync_sandbox.state import DEFAULT_CREDENTIALS\n")
    assert [name for _, name in _imports(module)] == ["catalog_sync_sandbox.state"]
