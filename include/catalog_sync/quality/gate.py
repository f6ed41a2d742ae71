"""Run one quality gate on a DataFrame with Great Expectations Core and split it into passing and quarantined rows.

Call it from a task (never at DAG-parse time: GX is imported on first use)::

    from catalog_sync.quality.gate import GateFailed, run_gate
    from catalog_sync.quality.persist import persist_gate_result

    try:
        result = run_gate(frame, "products.l0", layer=0, entity="products", now=logical_date)
    except GateFailed as failed:          # hard gate breached: record why, then fail the task
        persist_gate_result(session, load_id, failed.result, flow, "erp", "pim")
        raise
    persist_gate_result(session, load_id, result, flow, "erp", "pim")
    deliver(result.passed)                 # result.failed went to dead letters

How rows are identified: every expectation runs with ``result_format=COMPLETE`` and
``unexpected_index_column_names=[key, "_row"]``. The key names the record in reports; ``_row`` (a positional row
number the gate adds) maps each unexpected row back exactly, even when the key is null or duplicated (a duplicate
SKU must not drag a well-formed namesake into quarantine for someone else's fault).

Speed: the GX data context, its pandas datasource and batch definition are built once per process; suites are
cached per set of checks. GX's per-batch fingerprint (an md5 over ``hash_pandas_object`` of the whole frame,
recomputed for every ``get_batch``) is switched off: we never use it, and on a million rows it costs more than the
checks themselves. ``exclude_unexpected_values`` keeps GX from materialising lists of bad values we do not read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from catalog_sync.quality.policy import GatePolicy, load_policy
from catalog_sync.quality.spec import Check, quiet_gx
from catalog_sync.quality.suites import GateInputs, build_suite, entity_module, layer_checks

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

#: Positional row number added to the working frame; never part of a result's rows.
ROW = "_row"
#: Columns added to ``GateResult.failed``.
FAILED_COLUMNS = ("dq_layer", "dq_expectations", "dq_reasons")

_DATASOURCE = "catalog_sync_gates"
_ASSET = "frame"
_BATCH_DEFINITION = "whole_frame"


class GateFailed(Exception):
    """A hard gate saw a systemic failure: its failure share passed the limit over enough rows to judge, or the
    frame lacks a column the suite needs. A failing row alone, critical or not, never raises: it is quarantined.

    ``result`` holds the full :class:`GateResult`, so the caller can persist the dead letters before failing.
    """

    def __init__(self, result: GateResult) -> None:
        self.result = result
        parts = [
            f"gate {result.gate!r} (hard, layer {result.layer}) failed: {result.rows_quarantined} of "
            f"{result.rows_checked} rows quarantined ({result.failure_share:.2%}, limit "
            f"{result.max_failure_share:.2%})"
        ]
        top = sorted(result.failing_expectations.items(), key=lambda item: (-int(item[1]["count"]), item[0]))[:3]
        if top:
            parts.append("top failing expectations: " + ", ".join(
                f"{name} ({failing['count']} rows: {failing['reason']})" for name, failing in top))
        if result.missing_columns:
            parts.append(f"columns missing from the frame: {', '.join(result.missing_columns)}")
        super().__init__("; ".join(parts))


@dataclass
class GateResult:
    """What one gate saw and decided.

    Attributes:
        passed: Rows that met every expectation (original columns and index).
        failed: Quarantined rows plus ``dq_layer``, ``dq_expectations`` (names, most important first) and
            ``dq_reasons`` (``"<name>: <reason>"`` per broken expectation).
        failing_expectations: ``{name: {"count", "reason", "critical"}}`` for every expectation that failed.
        success: True when every row met every expectation.
        breached: A systemic failure: the failure share passed the gate's limit over at least
            ``min_rows_to_stop`` rows, or a column the suite needs is missing. A hard gate stops the run on it.
        alert: Someone should look, though the run goes on: a soft gate breached, or a critical expectation
            failed on some rows (those rows were quarantined; the others went on).
        validation: The raw GX suite validation result (None for an empty frame), kept for Data Docs.
    """

    gate: str
    entity: str
    layer: int
    key: str
    severity: str
    max_failure_share: float
    rows_checked: int
    rows_passed: int
    rows_quarantined: int
    passed: pd.DataFrame
    failed: pd.DataFrame
    failing_expectations: dict[str, dict[str, Any]]
    success: bool
    breached: bool
    alert: bool
    validation: ExpectationSuiteValidationResult | None
    checks: dict[str, Check] = field(repr=False)
    missing_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failure_share(self) -> float:
        return self.rows_quarantined / self.rows_checked if self.rows_checked else 0.0

    @property
    def quarantined_keys(self) -> list[Any]:
        return self.failed[self.key].tolist() if self.key in self.failed.columns else []

    def summary(self) -> dict[str, Any]:
        """Small, JSON-safe summary (fit for an XCom or a log line)."""
        return {
            "gate": self.gate,
            "entity": self.entity,
            "layer": self.layer,
            "severity": self.severity,
            "rows_checked": self.rows_checked,
            "rows_passed": self.rows_passed,
            "rows_quarantined": self.rows_quarantined,
            "success": self.success,
            "breached": self.breached,
            "alert": self.alert,
            "failing_expectations": self.failing_expectations,
        }


# --- the GX context, once per process -----------------------------------------------------------------------

_GX_LOCK = threading.Lock()
_GX_DEFAULT: AbstractDataContext | None = None
_BATCH_DEFS: dict[int, BatchDefinition] = {}


def gx_context() -> AbstractDataContext:
    """The process-wide ephemeral GX context (in-memory stores, no analytics, no progress bars)."""
    global _GX_DEFAULT
    with _GX_LOCK:
        if _GX_DEFAULT is None:
            quiet_gx()
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            _GX_DEFAULT = gx.get_context(mode="ephemeral", project_config=config)
        return _GX_DEFAULT


def _batch_definition(context: AbstractDataContext) -> BatchDefinition:
    """The whole-dataframe batch definition of ``context`` (created on first use, then reused)."""
    with _GX_LOCK:
        cached = _BATCH_DEFS.get(id(context))
        if cached is not None:
            return cached
        try:
            datasource = context.data_sources.get(_DATASOURCE)
        except (KeyError, ValueError, LookupError):
            datasource = context.data_sources.add_pandas(_DATASOURCE)
        try:
            asset = datasource.get_asset(_ASSET)
        except LookupError:
            asset = datasource.add_dataframe_asset(_ASSET)  # type: ignore[attr-defined]
        try:
            batch_definition = asset.get_batch_definition(_BATCH_DEFINITION)
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)
        _BATCH_DEFS[id(context)] = batch_definition
        return batch_definition


# --- the gate -----------------------------------------------------------------------------------------------


def prepare_frame(
    frame: pd.DataFrame, entity: str, layer: int, inputs: GateInputs
) -> tuple[pd.DataFrame, list[str]]:
    """The working frame a gate validates: positional index, ``_row``, optional columns filled, helper columns.

    Returns the frame and the sorted names of columns the checks need but the frame lacks (required columns are
    left missing on purpose: every expectation on them then fails for every row).
    """
    module = entity_module(entity)
    # A shallow copy: pandas' copy-on-write keeps the caller's frame untouched while we add columns.
    work = frame.reset_index(drop=True)
    for col in module.OPTIONAL_COLUMNS[layer]:
        if col not in work.columns:
            work[col] = np.nan
    work[ROW] = np.arange(len(work), dtype=np.int64)
    work = module.prepare(work, layer, inputs)
    checks = layer_checks(entity, layer, inputs)
    needed = {c for check in checks for c in check.columns} | {f for check in checks for f in check.explain_fields}
    missing = sorted(c for c in needed if not c.startswith("_") and c not in work.columns)
    return work, missing


def run_gate(
    frame: pd.DataFrame,
    gate: str,
    *,
    layer: int,
    entity: str,
    key: str = "sku",
    context: AbstractDataContext | None = None,
    now: datetime | None = None,
    taxonomy: Collection[str] | None = None,
    known_skus: Collection[str] | None = None,
    unit_codes: Mapping[str, Collection[str]] | None = None,
    channel: str | None = None,
    enforce: bool = True,
) -> GateResult:
    """Validate ``frame`` against the ``entity`` suite of ``layer`` and apply the policy of ``gate``.

    Args:
        frame: Canonical records (or, for layer 2, the joined cross-system frame). Not modified.
        gate: Gate name configured in ``thresholds.yaml`` (e.g. ``"products.l0"``).
        layer: 0 syntax, 1 business rules, 2 cross-system consistency; must match the gate's configuration.
        entity: ``products``, ``stock_prices``, ``assets`` or ``supplier``; must match the configuration.
        key: Business key column naming each record in results and dead letters.
        context: A GX data context to validate with; default: the cached process-wide ephemeral context.
        now: Instant validity windows are judged at (pass the run's logical date); default: now, UTC.
        taxonomy: Known category paths (products layer 1).
        known_skus: The catalogue's SKUs (assets layer 2).
        unit_codes: Accepted unit codes per unit field (products layer 0), from the applied reference tables.
        channel: PIM channel whose content rules apply (default ``domain.CHANNEL``).
        enforce: Raise :class:`GateFailed` when a hard gate is breached (pass False to inspect a result).

    Raises:
        GateFailed: A hard gate was breached (``exc.result`` holds the result).
        KeyError: The gate is not configured.
        ValueError: entity/layer disagree with the gate's configuration, or reference data is missing.
    """
    started = time.perf_counter()
    policy = load_policy().gate(gate)
    if (policy.entity, policy.layer) != (entity, layer):
        raise ValueError(
            f"gate {gate!r} is configured for {policy.entity} layer {policy.layer}, called with {entity} layer {layer}"
        )
    inputs = GateInputs(
        rules=load_policy().rules,
        now=now or datetime.now(UTC),
        taxonomy=frozenset(taxonomy) if taxonomy is not None else None,
        known_skus=frozenset(known_skus) if known_skus is not None else None,
        unit_codes={f: frozenset(c) for f, c in unit_codes.items()} if unit_codes is not None else None,
        **({"channel": channel} if channel else {}),
    )
    checks = layer_checks(entity, layer, inputs)
    by_name = {c.name: c for c in checks}
    critical = {c.name for c in checks if c.critical} | set(policy.critical)
    n = len(frame)
    if key not in frame.columns and n:
        log.warning("gate %s: key column %r missing; rows are named by position", gate, key)

    validation = None
    failures: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    missing: list[str] = []
    if n:
        work, missing = prepare_frame(frame, entity, layer, inputs)
        if key not in work.columns:
            work[key] = np.nan
        suite = build_suite(entity, layer, checks)
        batch = _batch_definition(context or gx_context()).get_batch(batch_parameters={"dataframe": work})
        validation = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [key, ROW],
                "exclude_unexpected_values": True,
                "partial_unexpected_count": 20,
            },
        )
        failures, notes = _unexpected_rows(validation, by_name, work, n)
        # GX's execution engine keeps the last batch's data (the working frame) until the next batch replaces it:
        # let it go now, so a task validating batch after batch holds one batch, not two
        batch.data.execution_engine.batch_manager.batch_data_cache.pop(batch.id, None)
        batch.data.execution_engine.batch_manager.reset_batch_cache()
        del batch, work

    result = _assemble(frame, gate, entity, layer, key, policy, by_name, critical, failures, notes, missing)
    result.validation = validation
    result.success = bool(validation.success) if validation is not None else True
    result.seconds = time.perf_counter() - started
    log.info(
        "gate %s: %d checked, %d passed, %d quarantined%s",
        gate, result.rows_checked, result.rows_passed, result.rows_quarantined,
        " (BREACHED)" if result.breached else "",
    )
    if enforce and result.breached and policy.severity == "hard":
        raise GateFailed(result)
    return result


def _raised(exception_info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any.

    GX reports either one ``{"raised_exception": ...}`` dict or one such dict per failed metric.
    """
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "evaluation error").splitlines()[0]
    return None


def _unexpected_rows(
    validation: ExpectationSuiteValidationResult, by_name: dict[str, Check], work: pd.DataFrame, n: int
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Row positions each failed expectation flagged, and notes for expectations GX could not evaluate."""
    failures: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    for res in validation.results:
        if res.success:
            continue
        config = res.expectation_config
        name = (config.meta or {}).get("name") if config is not None else None
        if name not in by_name:
            # Never drop a failure: every expectation of our suites is named after its Check.
            raise RuntimeError(f"failed expectation without a known check name: {config}")
        error = _raised(res.exception_info)
        if error is not None:
            # An expectation GX could not evaluate (its column is missing) fails every row, with the reason why.
            absent = [c for c in by_name[name].columns if c not in work.columns]
            sources = [f for f in by_name[name].explain_fields if f not in work.columns]
            what = ", ".join(sources or absent)
            notes[name] = f"column(s) {what} missing from the frame" if (sources or absent) else error
            failures[name] = np.arange(n, dtype=np.int64)
            continue
        index_list = (res.result or {}).get("unexpected_index_list") or []
        rows: list[Any] = []
        for entry in index_list:
            value = entry.get(ROW)
            rows.extend(value if isinstance(value, list) else [value])
        failures[name] = np.asarray(rows, dtype=np.int64)
    return failures, notes


def _assemble(
    frame: pd.DataFrame,
    gate: str,
    entity: str,
    layer: int,
    key: str,
    policy: GatePolicy,
    by_name: dict[str, Check],
    critical: set[str],
    failures: dict[str, np.ndarray],
    notes: dict[str, str],
    missing: list[str],
) -> GateResult:
    """Split ``frame`` by the flagged rows and apply the gate's policy."""
    n = len(frame)
    # Most important first: critical expectations, then suite order (which runs from structure to content).
    order = {name: (0 if name in critical else 1, i) for i, name in enumerate(by_name)}
    names = sorted((nm for nm, rows in failures.items() if len(rows)), key=order.__getitem__)
    bad = np.zeros(n, dtype=bool)
    for nm in names:
        bad[failures[nm]] = True

    failing_expectations: dict[str, dict[str, Any]] = {}
    for nm in names:
        reason = by_name[nm].reason + (f" ({notes[nm]})" if nm in notes else "")
        failing_expectations[nm] = {
            "count": int(np.unique(failures[nm]).size),
            "reason": reason,
            "critical": nm in critical,
        }

    failed = frame.iloc[np.flatnonzero(bad)].copy()
    if len(failed):
        positions = np.flatnonzero(bad)
        slot = np.full(n, -1, dtype=np.int64)
        slot[positions] = np.arange(len(positions))
        per_row: list[list[str]] = [[] for _ in positions]
        for nm in names:  # names are already in importance order, so each row's list is too
            for s in slot[np.unique(failures[nm])]:
                per_row[s].append(nm)
        failed["dq_layer"] = layer
        failed["dq_expectations"] = per_row
        failed["dq_reasons"] = [[f"{nm}: {failing_expectations[nm]['reason']}" for nm in row] for row in per_row]
    else:
        for col in FAILED_COLUMNS:
            failed[col] = pd.Series(dtype="object")
    passed = frame.iloc[np.flatnonzero(~bad)]
    quarantined = int(bad.sum())
    breached, alert = _decide(policy, n, quarantined, any(nm in critical for nm in names), missing)
    return GateResult(
        gate=gate,
        entity=entity,
        layer=layer,
        key=key,
        severity=policy.severity,
        max_failure_share=policy.max_failure_share,
        rows_checked=n,
        rows_passed=n - quarantined,
        rows_quarantined=quarantined,
        passed=passed,
        failed=failed,
        failing_expectations=failing_expectations,
        success=not names,
        breached=breached,
        alert=alert,
        validation=None,
        checks=by_name,
        missing_columns=missing,
    )


def _decide(policy: GatePolicy, n: int, quarantined: int, critical_failed: bool, missing: Collection[str],
            ) -> tuple[bool, bool]:
    """``(breached, alert)`` of a gate that quarantined ``quarantined`` of ``n`` rows."""
    share = quarantined / n if n else 0.0
    # Only a systemic failure breaches a gate: a share over the limit where there are enough rows for a share to
    # mean something, or a frame the suite cannot check at all. One bad row, critical or not, is quarantined.
    breached = bool(missing) or (n >= policy.min_rows_to_stop and share > policy.max_failure_share)
    alert = (breached and policy.severity == "soft") or (critical_failed and not (breached and policy.severity == "hard"))
    return breached, alert


class GateTotals:
    """One gate over a delta validated in batches (``quality.batching``): the sum of its batches' results.

    Keeps counts and failing expectations, never rows: :meth:`result` is a :class:`GateResult` whose counts,
    failing expectations, ``success``, ``breached`` and ``alert`` are those the gate gives on the whole delta
    at once (the share a gate's policy judges is over the whole delta, not a batch), with empty ``passed`` and
    ``failed`` frames and no ``validation`` (each batch's own is saved for the Data Docs as it is checked).
    """

    def __init__(self, gate: str) -> None:
        self.gate = gate
        self.batches = 0
        self._first: GateResult | None = None
        self._checked = self._quarantined = 0
        self._failing: dict[str, dict[str, Any]] = {}
        self._missing: set[str] = set()
        self._success = True
        self._seconds = 0.0

    def add(self, result: GateResult) -> None:
        if result.gate != self.gate:
            raise ValueError(f"gate {result.gate!r} added to the totals of {self.gate!r}")
        self.batches += 1
        if self._first is None:  # its metadata only: a batch's rows are not kept past the batch
            self._first = replace(result, passed=result.passed.iloc[0:0].copy(), failed=result.failed.iloc[0:0].copy(),
                                  validation=None)
        self._checked += result.rows_checked
        self._quarantined += result.rows_quarantined
        for name, failing in result.failing_expectations.items():
            total = self._failing.setdefault(name, {**failing, "count": 0})
            total["count"] += int(failing["count"])
        self._missing.update(result.missing_columns)
        self._success = self._success and result.success
        self._seconds += result.seconds

    def result(self) -> GateResult:
        if self._first is None:
            raise ValueError(f"gate {self.gate!r}: no batch was checked")
        first = self._first
        policy = load_policy().gate(self.gate)
        order = {name: i for i, name in enumerate(first.checks)}
        names = sorted(self._failing, key=lambda nm: (0 if self._failing[nm]["critical"] else 1, order[nm]))
        missing = sorted(self._missing)
        breached, alert = _decide(policy, self._checked, self._quarantined,
                                  any(self._failing[nm]["critical"] for nm in names), missing)
        failed = first.failed.iloc[0:0].copy()
        return GateResult(
            gate=self.gate, entity=first.entity, layer=first.layer, key=first.key, severity=policy.severity,
            max_failure_share=policy.max_failure_share, rows_checked=self._checked,
            rows_passed=self._checked - self._quarantined, rows_quarantined=self._quarantined,
            passed=first.passed.iloc[0:0], failed=failed, failing_expectations={nm: self._failing[nm] for nm in names},
            success=self._success, breached=breached, alert=alert, validation=None, checks=first.checks,
            missing_columns=missing, seconds=self._seconds)
