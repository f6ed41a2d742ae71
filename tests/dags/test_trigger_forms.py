"""The manual DAGs' trigger forms: each can be submitted with only what a person fills in, and every field says
what it is for. Airflow's form marks a field whose schema does not allow null as required and sends a field left
empty as null, so optional fields must allow null (or have a valid default)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"

#: What a person fills in on each manual DAG's form; everything else stays as the form shows it.
FILLED: dict[str, dict[str, Any]] = {
    "seasonal_republish": {"skus": ["MH01-XS-Black"]},
    "dead_letter_replay": {"dead_letter_ids": [7]},
    "sync_rollback": {"load_id": "cold_data_nightly:2026-12-01T02:00:00+00:00"},
    "weekly_reconciliation": {},
    "hub_retention": {},
    "hot_data_sync": {},
    "freeze_release": {},
    "channel_backfill": {},
}


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def _submit(dag, filled: dict[str, Any], emptied: tuple[str, ...] = ()) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Resolve the form as the trigger does: the defaults, overridden by what was filled, emptied fields as null."""
    params = copy.deepcopy(dag.params)
    params.update(filled)
    for key in emptied:
        params[key] = None
    return params.validate()


@pytest.mark.parametrize("dag_id", sorted(FILLED))
def test_the_form_submits_with_only_what_a_person_fills(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    resolved = _submit(dagbag.dags[dag_id], FILLED[dag_id])
    for key, value in FILLED[dag_id].items():
        assert resolved[key] == value


@pytest.mark.parametrize("dag_id", sorted(FILLED))
def test_every_field_has_a_description_and_required_ones_say_so(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    params = dagbag.dags[dag_id].params
    for key in params:
        description = params.get_param(key).description
        assert description and description.strip(), f"{dag_id}.{key} has no description"
        required = key in FILLED[dag_id] and dag_id != "seasonal_republish"
        if required:
            assert "required" in description.lower(), f"{dag_id}.{key} is required but does not say so"


def test_seasonal_republish_takes_an_empty_season_and_categories(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The form sends the season and categories the operator left empty as null: the run still starts."""
    from catalog_sync.flows.republish import normalise_params

    dag = dagbag.dags["seasonal_republish"]
    resolved = _submit(dag, {"skus": ["MH01-XS-Black"]}, emptied=("season", "categories"))
    assert resolved["season"] is None and resolved["categories"] is None
    staged = normalise_params(resolved)
    assert staged["skus"] == ["MH01-XS-Black"] and staged["season"] == "" and staged["categories"] == []


def _form_requires(param) -> bool:  # type: ignore[no-untyped-def]
    """Airflow 3's trigger form's rule (ui/dist, ``isRequired``): a field is required unless its type allows null."""
    kind = param.schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


@pytest.mark.parametrize("dag_id", sorted(FILLED))
def test_a_field_the_form_requires_is_filled_in_or_prefilled_with_a_valid_default(
    dagbag, dag_id: str  # type: ignore[no-untyped-def]
) -> None:
    params = dagbag.dags[dag_id].params
    for key in params:
        param = params.get_param(key)
        if _form_requires(param) and key not in FILLED[dag_id]:
            assert param.resolve(suppress_exception=True) is not None, f"{dag_id}.{key}: required, no valid default"
    if dag_id == "seasonal_republish":
        assert not any(_form_requires(params.get_param(k)) for k in ("season", "skus", "categories"))
