"""The shared state store: what one task hands to another task, or to the UI, lives on Airflow's object storage.

Tasks of one DAG run may land on different Celery workers (different machines), and the UI is served by the
api-server, another process again. The local state folder (``CATALOG_SYNC_HOME``, :func:`config.state_dir`) is
private to each of them, so nothing that crosses a task boundary is kept there. It goes to the store, an
``airflow.sdk.ObjectStoragePath`` rooted at ``CATALOG_SYNC_STORE_URL``:

- ``gx_validations/<run>/<gate>.json``: the raw GX validation result of each gate of a run (written by the gate
  tasks, read by ``build_data_docs``);
- ``data_docs/<run>/...``: the rendered Data Docs of a run (written by ``build_data_docs``, served by the UI);
- ``staging/<run>/<system>.csv.gz``: the weekly reconciliation's full reads (written by the four read tasks, read
  by ``compare``, removed by ``finish``).

``<run>`` is the load id made path-safe (:func:`run_folder_name`). Retention prunes all three prefixes.

Configuration (read at every call, like the rest of :mod:`catalog_sync.config`):

- ``CATALOG_SYNC_STORE_URL``: any URL Airflow's object storage opens: ``file:///srv/catalog-sync`` (a folder every
  machine mounts), ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``abfs://container/prefix``. A plain path is read
  as a local folder. Unset: ``file://<CATALOG_SYNC_HOME>/store``, right for one machine (``make run``,
  ``airflow standalone``) and wrong for several.
- ``CATALOG_SYNC_STORE_CONN_ID``: the Airflow connection holding the store's credentials (an ``aws``, ``google_cloud_platform``
  or ``wasb`` connection; the scheme's provider must be installed). Unset: the filesystem's own defaults
  (instance role, environment variables). Airflow resolves the connection where the store is opened: in a task
  through the Execution API, in the api-server (the UI) from the metadata database, elsewhere (the ``catalog-sync``
  CLI) only from ``AIRFLOW_CONN_<ID>`` environment variables or a configured secrets backend.

A scheme Airflow has no filesystem for (no provider registers it) and no connection is opened with fsspec's own
implementation, so ``memory://`` (tests) and any installed fsspec filesystem work as well.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final
from urllib.parse import urlsplit

from catalog_sync import config

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    #: A path in the store, for the modules that must not import Airflow themselves (ARCHITECTURE.md, Boundaries).
    StorePath = ObjectStoragePath

STORE_URL_ENV: Final = "CATALOG_SYNC_STORE_URL"
STORE_CONN_ID_ENV: Final = "CATALOG_SYNC_STORE_CONN_ID"
#: The default store's folder under the local state folder (one machine only).
DEFAULT_FOLDER: Final = "store"

VALIDATIONS: Final = "gx_validations"
DATA_DOCS: Final = "data_docs"
STAGING: Final = "staging"
#: Every prefix the store holds; none of them may appear in the local state folder when the store is elsewhere.
PREFIXES: Final[tuple[str, ...]] = (VALIDATIONS, DATA_DOCS, STAGING)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LOCAL: Final = frozenset({"file", "local"})


def run_folder_name(load_id: str) -> str:
    """The folder name of a run under every prefix: the load id made path-safe.

    The one mapping from load id to folder: the writers, the UI that serves the Data Docs and retention all go
    through it, so a load id holding ``:`` or ``+`` (an Airflow run id) is found where it was written.
    """
    return _SAFE.sub("_", load_id)


def store_url() -> str:
    """The configured store URL (``CATALOG_SYNC_STORE_URL``), or the embedded default on the local state folder."""
    configured = os.environ.get(STORE_URL_ENV, "").strip()
    if not configured:
        return (config.state_dir() / DEFAULT_FOLDER).as_uri()
    if "://" not in configured:
        return Path(configured).expanduser().resolve().as_uri()
    return configured.rstrip("/")


def store_conn_id() -> str | None:
    """The Airflow connection id of the store's credentials (``CATALOG_SYNC_STORE_CONN_ID``), if any."""
    return os.environ.get(STORE_CONN_ID_ENV, "").strip() or None


def store_root() -> ObjectStoragePath:
    """The root of the shared state store (see the module docstring). A local root is created on first use."""
    from airflow.sdk import ObjectStoragePath

    url = store_url()
    conn_id = store_conn_id()
    protocol = urlsplit(url).scheme
    if conn_id is None:
        _attach_fsspec(protocol)
    root = ObjectStoragePath(url, conn_id=conn_id)
    if protocol in _LOCAL:
        root.mkdir(parents=True, exist_ok=True)
    return root


def _attach_fsspec(protocol: str) -> None:
    """Open a scheme no Airflow provider registers (``memory``, or an fsspec filesystem installed on its own) with
    fsspec's implementation, so ``ObjectStoragePath.fs`` finds it."""
    from airflow.sdk.io import attach, has_fs

    if has_fs(protocol):
        return
    import fsspec

    attach(protocol, fs=fsspec.filesystem(protocol))


def prefix(name: str, load_id: str, root: ObjectStoragePath | None = None) -> ObjectStoragePath:
    """A run's folder under one of :data:`PREFIXES`."""
    if name not in PREFIXES:
        raise ValueError(f"unknown store prefix {name!r}; one of {PREFIXES}")
    return (root if root is not None else store_root()) / name / run_folder_name(load_id)


def is_local(path: ObjectStoragePath) -> bool:
    return (path.protocol or "file") in _LOCAL


def open_binary(path: ObjectStoragePath, mode: str = "rb") -> IO[bytes]:
    """Open ``path`` in binary ``mode`` through its filesystem.

    Straight through the filesystem rather than ``ObjectStoragePath.open``: that one reports each read and write
    to Airflow's hook-lineage collector, and these files are intermediate state, not data assets.
    """
    if "w" in mode and is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)  # object stores have no folders; a local disk does
    handle: IO[bytes] = path.fs.open(path.path, mode)
    return handle


@contextmanager
def atomic_write(target: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """Write ``target`` so that a reader sees the old object or the whole new one, never half a file.

    The bytes go to a sibling temporary name, which is then renamed over ``target`` (``os.rename`` on a local
    disk; on an object store a PUT is already whole, and the rename is a server-side copy). A failed write leaves
    no temporary behind.
    """
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open_binary(tmp, "wb") as handle:
            yield handle
        tmp.fs.mv(tmp.path, target.path)
    except BaseException:
        with suppress(FileNotFoundError, OSError):
            tmp.fs.rm(tmp.path)
        raise


def write_bytes(target: ObjectStoragePath, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_write`)."""
    with atomic_write(target) as handle:
        handle.write(data)


def read_bytes(path: ObjectStoragePath) -> bytes:
    with open_binary(path, "rb") as handle:
        return handle.read()


def remove_tree(path: ObjectStoragePath) -> bool:
    """Remove ``path`` and everything under it; False when there was nothing."""
    if not path.exists():
        return False
    path.fs.rm(path.path, recursive=True)
    return True


def upload_tree(local: Path, target: ObjectStoragePath, *, last: str | None = None) -> int:
    """Copy every file under the local folder ``local`` to ``target`` (same relative paths); returns the count.

    ``last`` (a relative path) is written after all the others: the file a reader checks to know the tree is whole
    (a Data Docs ``index.html``).
    """
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)
    for file in files:
        dest = target / file.relative_to(local).as_posix()
        with file.open("rb") as src, open_binary(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    return len(files)


def iter_bytes(path: ObjectStoragePath, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """The bytes of ``path`` in chunks, for a streamed HTTP response."""
    with open_binary(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def local_leftovers(state_dir: Path | None = None) -> list[str]:
    """The store prefixes found directly in the local state folder: shared state a task wrote locally.

    Empty when every hand-over went through the store (the invariant that lets tasks run on separate machines).
    Meaningful only when the store is not itself under the state folder's top level.
    """
    state = state_dir or config.state_dir()
    return sorted(name for name in PREFIXES if (state / name).exists())
