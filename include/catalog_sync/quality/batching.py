"""Validating a staged delta in batches whose outcome equals validating it whole.

A gate's checks are of two kinds. Most judge one row on its own (a format, a value set, a price band); those give
the same answer in any batch. A few judge rows against each other: a SKU or a UPC unique over the delta, a
variant's parent present in it, a parent with its children, a variant carrying its parent's axes. Those give the
same answer only when every row they compare is in the same batch.

So a batch plan is made in two passes over the delta, each reading it a page at a time:

1. **Keys only.** For each *unit* (a staged record: one ERP item, or one family with its parent and variants) the
   plan keeps its row count and a 64-bit hash of each *link value* (the values the cross-row checks compare: the
   SKU, the parent SKU, the UPC, ...), 12 bytes a value in numpy arrays, never the rows. Units sharing a link
   value are *linked* (a union-find over the units involved, which are the duplicates and cross-references: few).
   Two different values that hash alike only link two units that did not need it: a bigger batch, never another
   outcome.
2. **Rows.** The delta is read again in the same order. A unit linked to no other joins the current batch; a
   linked group of units goes to a batch of linked groups, which is handed over when its last unit has been read.
   Inside a batch the units keep their order in the delta (a rule that keeps "the first occurrence" keeps the same
   one).

Every group of rows a cross-row check compares is therefore whole in one batch, and each batch is validated by GX
as it was before. What grows with the delta is the key hashes (about 12 bytes a link value) and the batches of
linked groups (the delta's duplicates and cross-references, a data-quality problem's size, not the catalog's).
The plan also keeps the delta's column names, so every batch's frame has every column the whole frame had (a
column some batch's records all lack is a column of nulls there, as it was in the whole frame).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import numpy as np

#: Rows a gate validates at once (``CATALOG_SYNC_GATE_BATCH`` overrides it): what a gate task holds of a delta.
DEFAULT_GATE_BATCH: Final = 50_000
_U = TypeVar("_U")


def gate_batch_size() -> int:
    """The configured gate batch size (``CATALOG_SYNC_GATE_BATCH``, default :data:`DEFAULT_GATE_BATCH`)."""
    raw = os.environ.get("CATALOG_SYNC_GATE_BATCH", "").strip()
    size = int(raw) if raw else DEFAULT_GATE_BATCH
    if size < 1:
        raise ValueError(f"CATALOG_SYNC_GATE_BATCH must be a positive number of rows, not {raw!r}")
    return size


@dataclass
class BatchPlan:
    """Which units of a delta travel together, and every column of the delta (see the module docstring)."""

    size: int
    units: int
    rows: int
    #: Every column of the delta's rows, in the order a whole frame would have them.
    columns: list[str]
    #: Linked units -> their batch of linked groups; a unit not here is linked to no other.
    linked_batch: dict[int, int] = field(default_factory=dict)
    #: Batch of linked groups -> its last unit in the delta's order (when the batch can be handed over).
    last_unit: dict[int, int] = field(default_factory=dict)

    def batches(self, units: Iterable[_U], rows: Callable[[_U], int]) -> Iterator[list[_U]]:
        """``units`` (the delta read again, in the planned order) in batches of about ``size`` rows."""
        current: list[_U] = []
        current_rows = 0
        pending: dict[int, list[_U]] = {}
        seen = 0
        for position, unit in enumerate(units):
            seen += 1
            linked = self.linked_batch.get(position)
            if linked is not None:
                pending.setdefault(linked, []).append(unit)
                if self.last_unit[linked] == position:
                    yield pending.pop(linked)
                continue
            current.append(unit)
            current_rows += rows(unit)
            if current_rows >= self.size:
                yield current
                current, current_rows = [], 0
        if current:
            yield current
        if seen != self.units or pending:
            raise RuntimeError(f"the delta changed between the two passes of a batched gate: planned {self.units} "
                               f"units, read {seen}")


def _hash(value: Hashable) -> int:
    try:
        return hash(value)
    except TypeError:  # a list where a scalar was expected: compared by its spelling
        return hash(repr(value))


def plan_batches(units: Iterable[Sequence[Mapping[str, object]]], links: Callable[[Mapping[str, object]],
                 Iterable[Hashable]], size: int) -> BatchPlan:
    """Plan the batches of a delta given as units, each the list of its rows (first pass: keys only).

    ``links(row)`` gives the row's link values (make them distinct per kind, e.g. ``("upc", value)``; a null value
    links nothing, leave it out).
    """
    hashes = array("q")
    owners = array("i")
    weights = array("i")
    columns: dict[str, None] = {}
    for position, rows in enumerate(units):
        weights.append(len(rows))
        values: set[int] = set()
        for row in rows:
            for col in row:
                if col not in columns:
                    columns[col] = None
            values.update(_hash(v) for v in links(row))
        hashes.extend(values)
        owners.extend([position] * len(values))
    plan = BatchPlan(size=size, units=len(weights), rows=int(sum(weights)), columns=list(columns))
    if not hashes:
        return plan
    h = np.frombuffer(hashes, dtype=np.int64)
    o = np.frombuffer(owners, dtype=np.int32)
    order = np.argsort(h, kind="stable")
    h, o = h[order], o[order]
    joined = np.flatnonzero((h[1:] == h[:-1]) & (o[1:] != o[:-1]))
    if not joined.size:
        return plan
    parent: dict[int, int] = {}

    def root(u: int) -> int:
        parent.setdefault(u, u)
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for a, b in zip(o[joined].tolist(), o[joined + 1].tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for unit in sorted(parent):
        groups.setdefault(root(unit), []).append(unit)
    # Groups in the order of their first unit, packed into batches of about ``size`` rows.
    batch, batch_rows = 0, 0
    for members in groups.values():
        if batch_rows and batch_rows + sum(weights[u] for u in members) > size:
            batch, batch_rows = batch + 1, 0
        for unit in members:
            plan.linked_batch[unit] = batch
        batch_rows += sum(weights[u] for u in members)
        plan.last_unit[batch] = max(plan.last_unit.get(batch, -1), members[-1])
    return plan
