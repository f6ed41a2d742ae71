"""One quality check, declared once and judged by GX (``catalog_sync.quality.gate``) or pandas (``pandas_checks``).

A :class:`Check` names a GX expectation type by its *kind* plus the columns and parameters it needs. The suite
modules declare checks as plain data; :func:`to_expectation` turns one into a GX expectation inside a task (GX is
imported lazily). Keeping the declaration engine-neutral is what lets the hand-written pandas version be held to
exactly the same rules as the GX gate.

Null semantics follow GX's column-map expectations: every kind except ``not_null``, ``flag`` and the pair kinds
ignores rows whose column is null (requiredness is a separate ``not_null`` check, so a missing UPC is never reported
twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

Kind = Literal[
    "not_null",  # ExpectColumnValuesToNotBeNull
    "in_set",  # ExpectColumnValuesToBeInSet(value_set)
    "regex",  # ExpectColumnValuesToMatchRegex(regex)
    "not_regex",  # ExpectColumnValuesToNotMatchRegex(regex)
    "between",  # ExpectColumnValuesToBeBetween(min_value, max_value), inclusive
    "length_between",  # ExpectColumnValueLengthsToBeBetween(min_value, max_value)
    "unique",  # ExpectColumnValuesToBeUnique
    "compound_unique",  # ExpectCompoundColumnsToBeUnique(column_list); rows with all columns null are ignored
    "pair_equal",  # ExpectColumnPairValuesToBeEqual(ignore_row_if)
    "pair_at_least",  # ExpectColumnPairValuesAToBeGreaterThanB(or_equal=True, ignore_row_if)
    "flag",  # ExpectColumnValuesToBeInSet([True]) on a helper column computed by the suite's pre-step
]

#: Namespace for the stable expectation ids (uuid5 of the check name): the same check has the same id in every
#: run, so Data Docs and the hub can follow one expectation over time.
_ID_NAMESPACE = uuid.UUID("6f1d3c52-7a0e-4c1b-9d8e-5b2f0c9a4e17")


@dataclass(frozen=True)
class Check:
    """One expectation of one gate layer.

    Attributes:
        name: Stable, unique name, ``<entity>.l<layer>.<what>``; used as the GX meta name and in dead letters.
        layer: 0 syntax, 1 business rules, 2 cross-system consistency.
        kind: Which GX expectation judges it (see :data:`Kind`).
        columns: Column(s) the expectation runs on (one, or two for pair kinds).
        reason: One-line business reason, shown in dead letters and Data Docs.
        critical: A failure of a critical check alerts at once; its rows are quarantined like any other.
        params: Expectation parameters (value_set, regex, min_value, max_value, ignore_row_if).
        fields: Source fields whose values explain a failure (defaults to ``columns``); helper columns are
            internal, so flag checks name the business fields they were computed from.
    """

    name: str
    layer: int
    kind: Kind
    columns: tuple[str, ...]
    reason: str
    critical: bool = False
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    fields: tuple[str, ...] = ()

    @property
    def explain_fields(self) -> tuple[str, ...]:
        return self.fields or tuple(c for c in self.columns if not c.startswith("_"))

    @property
    def expectation_id(self) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, self.name))

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "critical": self.critical, "layer": self.layer}


_QUIET = False


def quiet_gx() -> None:
    """Silence GX before its first import: it logs at INFO from import onwards and prints tqdm progress bars.

    Also switches off GX's per-batch fingerprint (an md5 over ``hash_pandas_object`` of the whole frame, computed
    on every ``get_batch``): the gate never reads it, and on a million rows it costs more than the checks.
    """
    global _QUIET
    if _QUIET:
        return
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine

    pandas_engine.HASH_THRESHOLD = 0
    _QUIET = True


def to_expectation(check: Check) -> Expectation:
    """The GX expectation that judges ``check`` (imports GX: call inside a task, never at parse time)."""
    quiet_gx()
    import great_expectations.expectations as gxe

    meta = check.meta()
    col = check.columns[0]
    p = check.params
    if check.kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=col, meta=meta, description=check.reason)
    if check.kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(
            column=col, value_set=sorted(p["value_set"]), meta=meta, description=check.reason
        )
    if check.kind == "flag":
        return gxe.ExpectColumnValuesToBeInSet(column=col, value_set=[True], meta=meta, description=check.reason)
    if check.kind == "regex":
        return gxe.ExpectColumnValuesToMatchRegex(column=col, regex=p["regex"], meta=meta, description=check.reason)
    if check.kind == "not_regex":
        return gxe.ExpectColumnValuesToNotMatchRegex(
            column=col, regex=p["regex"], meta=meta, description=check.reason
        )
    if check.kind == "between":
        return gxe.ExpectColumnValuesToBeBetween(
            column=col, min_value=p.get("min_value"), max_value=p.get("max_value"), meta=meta,
            description=check.reason,
        )
    if check.kind == "length_between":
        return gxe.ExpectColumnValueLengthsToBeBetween(
            column=col, min_value=p.get("min_value"), max_value=p.get("max_value"), meta=meta,
            description=check.reason,
        )
    if check.kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=col, meta=meta, description=check.reason)
    if check.kind == "compound_unique":
        return gxe.ExpectCompoundColumnsToBeUnique(
            column_list=list(check.columns), meta=meta, description=check.reason
        )
    if check.kind == "pair_equal":
        return gxe.ExpectColumnPairValuesToBeEqual(
            column_A=check.columns[0], column_B=check.columns[1],
            ignore_row_if=p.get("ignore_row_if", "both_values_are_missing"), meta=meta, description=check.reason,
        )
    if check.kind == "pair_at_least":
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=check.columns[0], column_B=check.columns[1], or_equal=True,
            ignore_row_if=p.get("ignore_row_if", "both_values_are_missing"), meta=meta, description=check.reason,
        )
    raise ValueError(f"unknown check kind {check.kind!r} in {check.name}")


def check_names_unique(checks: Sequence[Check]) -> None:
    """Raise if two checks share a name: names key the results, the thresholds and the dead letters."""
    seen: set[str] = set()
    for check in checks:
        if check.name in seen:
            raise ValueError(f"duplicate check name {check.name!r}")
        seen.add(check.name)
