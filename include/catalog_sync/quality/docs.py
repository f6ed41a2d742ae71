"""Great Expectations Data Docs for a run, built away from the hot path.

The gate task calls :func:`save_validation` (one JSON file per gate, cheap); a later, separate task calls
:func:`build_data_docs` to render every saved result of the run into
``<state_dir>/data_docs/<load_id>/index.html``. Rendering needs no file-backed GX project: a throw-away
ephemeral context whose only Data Docs site writes into that folder is enough, so no ``great_expectations.yml``
accumulates one site per run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_sync import config

if TYPE_CHECKING:
    from catalog_sync.quality.gate import GateResult

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    return _SAFE.sub("_", name)


def run_folder_name(load_id: str) -> str:
    """The folder name of a run's validation results and Data Docs: the load id made path-safe.

    The one mapping from load id to folder: the writers here, the UI that serves the Data Docs
    (``ui.queries.data_docs_root``) and retention all go through it, so a load id holding ``:`` or ``+`` (an
    Airflow run id) is found where it was written.
    """
    return _safe(load_id)


def validations_dir(load_id: str, state_dir: Path | None = None) -> Path:
    """Where the raw validation results of a run are kept."""
    return (state_dir or config.state_dir()) / "gx_validations" / run_folder_name(load_id)


def docs_dir(load_id: str, state_dir: Path | None = None) -> Path:
    """Where the Data Docs of a run are written."""
    return (state_dir or config.state_dir()) / "data_docs" / run_folder_name(load_id)


def save_validation(load_id: str, result: GateResult) -> Path | None:
    """Store the raw GX validation result of ``result`` for the run's Data Docs; None for an empty frame."""
    if result.validation is None:
        return None
    target = validations_dir(load_id) / f"{_safe(result.gate)}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"gate": result.gate, "validation": result.validation.to_json_dict()}
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, default=str), encoding="utf-8")
    tmp.replace(target)  # atomic: a concurrent docs build never reads half a file
    return target


def build_data_docs(load_id: str, run_time: str | None = None) -> Path:
    """Render the saved validation results of ``load_id`` as Data Docs and return the index.html path.

    Raises:
        FileNotFoundError: No validation result was saved for the run.
    """
    files = sorted(validations_dir(load_id).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no saved validation results for run {load_id!r} under {validations_dir(load_id)}")

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

    out = docs_dir(load_id)
    out.mkdir(parents=True, exist_ok=True)
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
        stored = json.loads(file.read_text(encoding="utf-8"))
        validation = schema.load(stored["validation"])
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=validation.suite_name),
            run_id=run_id,
            batch_identifier=_safe(stored["gate"]),
        )
        context.validation_results_store.set(identifier, validation)
        identifiers.append(identifier)
    context.build_data_docs(site_names=["run"], resource_identifiers=identifiers)
    index = out / "index.html"
    if not index.exists():
        raise RuntimeError(f"GX did not write {index}")
    return index
