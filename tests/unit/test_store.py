"""The shared state store: its configuration, its atomic writes, and that what tasks hand each other (validation
results, Data Docs, staged frames) lives there and nowhere in the local state folder.

Each hand-over runs on a ``file://`` store in a folder unrelated to CATALOG_SYNC_HOME, and on fsspec's in-memory
store (``memory://``, the shape of S3 or GCS: no local path at all). The local state folder is then thrown away
and CATALOG_SYNC_HOME pointed at an empty one, as if the reading task ran on another machine: it must still
find everything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_sync import config, store
from catalog_sync.flows import reconcile
from catalog_sync.quality import docs
from catalog_sync.quality.gate import run_gate
from tests.conftest import SplitState
from tests.unit.quality._quality_cases import NOW, PRODUCTS_L0

LOAD_ID = "cold_data_nightly:manual__2026-12-02T10:00:00+00:00"  # a load id holding ':' and '+'


@pytest.fixture(params=["file", "memory"])
def split(request: pytest.FixtureRequest, store_elsewhere: SplitState,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[SplitState]:
    """The local state folder in one place, the store in another: a ``file://`` folder, or ``memory://``."""
    if request.param == "memory":
        monkeypatch.setenv("CATALOG_SYNC_STORE_URL", f"memory://catalog-sync-{uuid.uuid4().hex}")
    yield store_elsewhere
    if request.param == "memory":
        store.remove_tree(store.store_root())


def _local_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_default_store_is_a_folder_under_the_local_state_folder(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("CATALOG_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CATALOG_SYNC_STORE_URL", raising=False)
    monkeypatch.delenv("CATALOG_SYNC_STORE_CONN_ID", raising=False)
    root = store.store_root()
    assert root.protocol == "file" and root.path == str(tmp_path / "home" / "store") and root.conn_id is None
    assert (tmp_path / "home" / "store").is_dir()


def test_the_store_url_and_connection_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setenv("CATALOG_SYNC_STORE_URL", str(tmp_path / "plain" / "path"))  # a plain path is a local folder
    assert store.store_url() == (tmp_path / "plain" / "path").as_uri()
    monkeypatch.setenv("CATALOG_SYNC_STORE_URL", "s3://catalog-bucket/sync/")
    monkeypatch.setenv("CATALOG_SYNC_STORE_CONN_ID", "catalog_sync_store")
    assert store.store_url() == "s3://catalog-bucket/sync" and store.store_conn_id() == "catalog_sync_store"
    monkeypatch.setenv("CATALOG_SYNC_STORE_CONN_ID", " ")
    assert store.store_conn_id() is None


def test_the_connection_id_reaches_the_object_storage_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Airflow resolves the connection of a path's scheme (the local filesystem takes none, so no connection needs
    to exist here); the store hands the id over, and every path below the root keeps it."""
    monkeypatch.setenv("CATALOG_SYNC_STORE_URL", (tmp_path / "store").as_uri())
    monkeypatch.setenv("CATALOG_SYNC_STORE_CONN_ID", "catalog_sync_store")
    root = store.store_root()
    target = store.prefix(store.VALIDATIONS, "run-1", root) / "gate.json"
    assert root.conn_id == target.conn_id == "catalog_sync_store"
    store.write_bytes(target, b"{}")
    assert (tmp_path / "store" / "gx_validations" / "run-1" / "gate.json").read_bytes() == b"{}"


def test_a_prefix_is_one_of_the_known_ones_and_a_run_folder_is_path_safe(split: SplitState) -> None:
    folder = store.prefix(store.STAGING, LOAD_ID)
    assert folder.name == "cold_data_nightly_manual__2026-12-02T10_00_00_00_00"
    assert folder.parent.name == "staging" and folder.parent.parent == store.store_root()
    with pytest.raises(ValueError, match="unknown store prefix"):
        store.prefix("elsewhere", LOAD_ID)


def test_a_failed_write_keeps_the_old_object_and_leaves_no_temporary(split: SplitState) -> None:
    target = store.store_root() / store.STAGING / "run" / "erp.csv.gz"
    store.write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="cut"), store.atomic_write(target) as handle:
        handle.write(b"half a ne")
        raise RuntimeError("cut")
    assert store.read_bytes(target) == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["erp.csv.gz"]
    store.write_bytes(target, b"new")
    assert store.read_bytes(target) == b"new" and [p.name for p in target.parent.iterdir()] == ["erp.csv.gz"]


def test_an_uploaded_tree_keeps_its_layout(split: SplitState, tmp_path: Path) -> None:
    local = tmp_path / "rendered"
    (local / "static" / "css").mkdir(parents=True)
    (local / "index.html").write_text("<html>index</html>")
    (local / "static" / "css" / "site.css").write_text("body{}")
    target = store.store_root() / store.DATA_DOCS / "run"
    assert store.upload_tree(local, target, last="index.html") == 2
    assert store.read_bytes(target / "static" / "css" / "site.css") == b"body{}"
    assert b"".join(store.iter_bytes(target / "index.html", chunk_size=4)) == b"<html>index</html>"
    assert store.remove_tree(target) and not target.exists() and not store.remove_tree(target)


def test_tasks_hand_each_other_state_through_the_store_only(split: SplitState,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Gate task -> docs task and read tasks -> compare task, with the local state folder replaced in between."""
    # "worker 1": a gate saves its validation result, the reads stage their frames
    result = run_gate(PRODUCTS_L0.frame(), "products.l0", layer=0, entity="products", enforce=False, now=NOW)
    assert docs.save_validation(LOAD_ID, result) is not None
    frames = reconcile.synthetic_frames(50, drift_every=10)
    for system, frame in frames.items():
        reconcile.save_frame(LOAD_ID, system, frame)
    assert store.local_leftovers(split.home) == [] and _local_files(split.home) == []

    # "worker 2": nothing of worker 1's local folder is left
    home = split.fresh_home(monkeypatch)
    assert config.state_dir() == home and _local_files(home) == []
    assert [p.name for p in docs.saved_validations(LOAD_ID)] == ["products.l0.json"]
    index = docs.build_data_docs(LOAD_ID)
    assert index.exists() and b"catalog_sync.products.l0" in store.read_bytes(
        next(p for p in _walk(index.parent) if p.name == "products.l0.html"))
    back = {s: reconcile.load_frame(LOAD_ID, s) for s in frames}
    found = reconcile.compare(back["erp"], back["pim"], back["storefront"], back["dam"])
    wanted = reconcile.compare(frames["erp"], frames["pim"], frames["storefront"], frames["dam"])
    assert len(found) == 25 and found["kind"].value_counts().to_dict() == \
        wanted["kind"].value_counts().to_dict() == {"deleted": 10, "drift": 10, "orphan": 5}
    # the docs task renders in a temporary folder and uploads: the local state folder is still empty
    assert store.local_leftovers(home) == [] and _local_files(home) == []

    # a rebuild replaces the site (no page of the older build stays), and finish removes the staged frames
    stale = index.parent / "stale.html"
    store.write_bytes(stale, b"old build")
    docs.build_data_docs(LOAD_ID)
    assert not stale.exists() and index.exists()
    assert store.remove_tree(reconcile.staging_dir(LOAD_ID)) and not reconcile.staging_dir(LOAD_ID).exists()


def _walk(folder: store.StorePath) -> Iterator[store.StorePath]:
    for child in folder.iterdir():
        if child.is_dir():
            yield from _walk(child)
        else:
            yield child


def test_local_leftovers_names_each_prefix_found_in_the_local_folder(tmp_path: Path) -> None:
    (tmp_path / "staging" / "run").mkdir(parents=True)
    (tmp_path / "data_docs").mkdir()
    (tmp_path / "hub.sqlite").write_text("")
    assert store.local_leftovers(tmp_path) == ["data_docs", "staging"]
    assert os.path.isdir(tmp_path / "staging")

