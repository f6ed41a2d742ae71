"""Great Expectations Data Docs for a run, built away from the hot path.

The gate task calls :func:`save_validation` (one JSON object per gate and batch of the delta, cheap); a later, separate task calls
:func:`build_data_docs` to render every saved result of the run into ``data_docs/<run>/index.html``. Both live in
the shared state store (:mod:`catalog_sync.store`), never in the local state folder: the gate tasks, the docs task
and the UI that serves the docs may each run on a different machine.

Rendering needs no file-backed GX project: a throw-away ephemeral context whose only Data Docs site writes into a
temporary local folder is enough (so no ``great_expectations.yml`` accumulates one site per run); the folder is
then uploaded to the store, ``index.html`` last, so the UI never shows half a site.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_sync import store
from catalog_sync.store import run_folder_name

if TYPE_CHECKING:
    from catalog_sync.quality.gate import GateResult
    from catalog_sync.store import StorePath

__all__ = ["run_folder_name", "validations_dir", "docs_dir", "saved_validations", "validation_counts", "validation_name",
           "save_validation", "build_data_docs"]


def validations_dir(load_id: str, root: StorePath | None = None) -> StorePath:
    """Where the raw validation results of a run are kept in the store (``gx_validations/<run>``)."""
    return store.prefix(store.VALIDATIONS, load_id, root)


def docs_dir(load_id: str, root: StorePath | None = None) -> StorePath:
    """Where the Data Docs of a run are kept in the store (``data_docs/<run>``)."""
    return store.prefix(store.DATA_DOCS, load_id, root)


def saved_validations(load_id: str, root: StorePath | None = None) -> list[StorePath]:
    """The validation results saved for a run, by gate name (none when no gate validated a record)."""
    folder = validations_dir(load_id, root)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.name.endswith(".json") and not p.name.startswith(".")),
                  key=lambda p: p.name)


def validation_name(gate: str, part: int = 1) -> str:
    """The name a gate's validation result is saved under (without ``.json``), and its Data Docs batch id: the
    gate's name for the first (often the only) batch of the delta, ``<gate>.partNNNN`` for the batches after it
    (a gate validates a big delta in batches, ``quality.batching``, each batch one validation result)."""
    base = run_folder_name(gate)
    return base if part == 1 else f"{base}.part{part:04d}"


def validation_counts(load_id: str, root: StorePath | None = None) -> dict[str, int]:
    """How many validation results each gate saved for a run (more than one: the gate checked its delta in
    batches), by the gate's folder-safe name."""
    counts: dict[str, int] = {}
    for path in saved_validations(load_id, root):
        gate = re.sub(r"\.part\d{4}$", "", path.name.removesuffix(".json"))
        counts[gate] = counts.get(gate, 0) + 1
    return counts


def save_validation(load_id: str, result: GateResult, part: int = 1) -> StorePath | None:
    """Store the raw GX validation result of ``result`` (batch ``part`` of its gate, counted from 1) for the run's
    Data Docs; None for an empty frame. Saving part 1 drops the later parts an earlier attempt saved."""
    if result.validation is None:
        return None
    name = validation_name(result.gate, part)
    if part == 1:
        later = f"{name}.part"
        for old in saved_validations(load_id):
            if old.name.startswith(later):
                store.remove_tree(old)
    target = validations_dir(load_id) / f"{name}.json"
    payload = {"gate": result.gate, "part": part, "validation": result.validation.to_json_dict()}
    # atomic: a docs build running beside a retried gate never reads half an object
    store.write_bytes(target, json.dumps(payload, default=str).encode("utf-8"))
    return target


def build_data_docs(load_id: str, run_time: str | None = None) -> StorePath:
    """Render the saved validation results of ``load_id`` as Data Docs in the store; returns the index.html path.

    Raises:
        FileNotFoundError: No validation result was saved for the run.
    """
    files = saved_validations(load_id)
    if not files:
        raise FileNotFoundError(f"no saved validation results for run {load_id!r} under {validations_dir(load_id)}")
    with tempfile.TemporaryDirectory(prefix="catalog-sync-data-docs-") as tmp:
        local = Path(tmp)
        _render(load_id, run_time, files, local)
        target = docs_dir(load_id)
        store.remove_tree(target)  # a rebuild replaces the site; no page of an older build stays behind
        store.upload_tree(local, target, last="index.html")
    return target / "index.html"


def _render(load_id: str, run_time: str | None, files: list[StorePath], out: Path) -> None:
    """Render the validation results in ``files`` as a Data Docs site in the local folder ``out``."""
    from catalog_sync.quality.spec import quiet_gx

    quiet_gx()
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    site: dict[str, Any] = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            data_docs_sites={"run": site},
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    run_id = RunIdentifier(run_name=load_id, run_time=run_time)
    schema = ExpectationSuiteValidationResultSchema()
    identifiers = []
    for file in files:
        stored = json.loads(store.read_bytes(file).decode("utf-8"))
        validation = schema.load(stored["validation"])
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=validation.suite_name),
            run_id=run_id,
            batch_identifier=validation_name(stored["gate"], int(stored.get("part") or 1)),
        )
        context.validation_results_store.set(identifier, validation)
        identifiers.append(identifier)
    context.build_data_docs(site_names=["run"], resource_identifiers=identifiers)
    if not (out / "index.html").is_file():
        raise RuntimeError(f"GX did not write the Data Docs index of run {load_id!r}")
