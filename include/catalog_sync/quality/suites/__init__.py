"""Expectation suites as code, one module per entity.

Every entity module exposes the same three functions, all lazy (nothing is built at import time):

* ``checks(layer, inputs) -> tuple[Check, ...]``: the declared expectations of one layer;
* ``prepare(frame, layer, inputs) -> DataFrame``: the documented vectorised pre-step adding helper columns
  (prefixed ``_``) for the rules GX has no built-in expectation for;
* ``OPTIONAL_COLUMNS[layer]``: columns a frame may lack (they are added as nulls). A *required* column that is
  missing is left missing, so every expectation on it fails for every row with a clear reason.

:func:`build_suite` turns a layer's checks into a GX ``ExpectationSuite`` (GX imported on call, suites cached).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from catalog_sync.domain import CHANNEL
from catalog_sync.quality.policy import Rules, load_policy
from catalog_sync.quality.spec import Check, check_names_unique, quiet_gx, to_expectation

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

ENTITIES: tuple[str, ...] = ("products", "stock_prices", "assets", "supplier")


@dataclass(frozen=True)
class GateInputs:
    """Reference data a suite needs beyond the frame itself.

    Attributes:
        rules: Business-rule parameters (``thresholds.yaml`` ``rules``).
        now: The instant validity windows are judged at; pass the run's logical date for reproducible re-runs.
        channel: PIM channel whose content rules apply.
        taxonomy: Known category paths (products layer 1).
        known_skus: SKUs that exist in the catalogue (assets layer 2).
        unit_codes: ``{unit field: accepted codes}`` for the products layer-0 unit checks, from the hub's applied
            reference tables (``catalog_sync.refdata``); None keeps the vocabularies of ``quality.reference``.
    """

    rules: Rules = field(default_factory=lambda: load_policy().rules)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    channel: str = CHANNEL
    taxonomy: frozenset[str] | None = None
    known_skus: frozenset[str] | None = None
    unit_codes: Mapping[str, frozenset[str]] | None = None


def entity_module(entity: str) -> ModuleType:
    """The suite module of ``entity``."""
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    import importlib

    return importlib.import_module(f"catalog_sync.quality.suites.{entity}")


def layer_checks(entity: str, layer: int, inputs: GateInputs) -> tuple[Check, ...]:
    """The checks of one entity and layer (validated for unique names)."""
    module = entity_module(entity)
    if layer not in module.OPTIONAL_COLUMNS:
        raise ValueError(f"entity {entity!r} has no layer {layer} suite (layers: {sorted(module.OPTIONAL_COLUMNS)})")
    checks: tuple[Check, ...] = module.checks(layer, inputs)
    check_names_unique(checks)
    return checks


_SUITES: dict[tuple[Any, ...], ExpectationSuite] = {}
_SUITES_LOCK = threading.Lock()


def build_suite(entity: str, layer: int, checks: Sequence[Check]) -> ExpectationSuite:
    """The GX suite judging ``checks``, built once per distinct set of checks and process.

    Suites are reused across runs (building ~30 expectation objects costs milliseconds, but a DAG that gates
    hundreds of small batches pays it every time). The cache key is the checks' names and parameters, so a new
    taxonomy or a changed price band yields a new suite.
    """
    key = (entity, layer, tuple((c.name, repr(sorted(c.params.items()))) for c in checks))
    with _SUITES_LOCK:
        suite = _SUITES.get(key)
        if suite is None:
            quiet_gx()
            from great_expectations.core import ExpectationSuite

            suite = ExpectationSuite(
                name=f"catalog_sync.{entity}.l{layer}",
                expectations=[to_expectation(c) for c in checks],
                meta={"entity": entity, "layer": layer},
            )
            # Stable ids: the suite refuses expectations that already carry an id, so set them after adding.
            by_name = {c.name: c for c in checks}
            for expectation in suite.expectations:
                expectation.id = by_name[(expectation.meta or {})["name"]].expectation_id
            if len(_SUITES) > 64:  # taxonomies change rarely; bound the cache anyway
                _SUITES.clear()
            _SUITES[key] = suite
        return suite
