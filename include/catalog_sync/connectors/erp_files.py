"""A file-fed ERP: item exports dropped as CSV files into an inbox folder (or an object-store prefix).

Legacy ERPs often export instead of answering calls. With the ERP connection's extra ``item_feed`` set to a folder
(``/data/erp/inbox``, ``file:///...``) or an object-store URL (``s3://bucket/erp/items/``), the nightly reads ERP
items from the files in it instead of the ERP's ``/items`` API. Everything else (stock, prices, the change feed of the
hot path) still comes from the ERP's API when its connection has a host; ``item_feed`` unset means the API for items
too, which stays the default.

Each file is checked as a whole before any of its rows is used:

* UTF-8 text (a byte-order mark is allowed), a comma-delimited header with the required columns
  (:data:`REQUIRED`), each column once;
* the row count, when the feed states one: a trailer line ``TRAILER,<rows>`` as the last line, or a manifest
  ``<file>.manifest.json`` holding ``{"rows": <rows>}`` beside it. A count that disagrees means a cut transfer.

A file failing any of these is refused whole: it is moved to ``rejected/`` beside a ``<file>.report.txt`` that lists
each problem with its line number, one dead letter names it, and nothing from it is used. Then the file's rows are
checked one by one against the ERP item schema (the API's own, :data:`catalog_sync.connectors.erp.ITEMS`); a bad row
is one dead letter, the others go on.

Files are read in name order (writers name them by export time, e.g. ``items_20261202T0100.csv``) and selected by
arrival: a file whose modification time is after the cursor and not after the run's window end belongs to this run,
so a run that fails leaves its files to the next one. Writers must move a finished file into the inbox (write to a
temporary name, then rename), as with any drop folder.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from catalog_sync.connectors.base import Page, split_records
from catalog_sync.connectors.erp import ITEMS
from catalog_sync.connectors.http import RecordError
from catalog_sync.domain import System

log = logging.getLogger(__name__)

REQUIRED: Final[tuple[str, ...]] = ("sku", "product_type", "lifecycle_status")
#: Columns an item file may carry; others are refused by name (a typo must not silently lose a field).
COLUMNS: Final[tuple[str, ...]] = (
    "sku", "parent_sku", "product_type", "lifecycle_status", "upc", "product_group", "uom", "weight", "weight_unit",
    "length", "width", "height", "dimension_unit", "country_of_origin", "vendor_name", "reference_price", "currency",
    "description", "updated_at", "item_type", "components", "kit_pricing",
)
NUMBERS: Final[tuple[str, ...]] = ("weight", "length", "width", "height", "reference_price")
TRAILER: Final = "TRAILER"
REJECTED: Final = "rejected"
PAGE: Final = 500


class FeedPath(Protocol):
    """What the feed needs of a path: ``pathlib.Path`` and Airflow's ``ObjectStoragePath`` both have it."""

    name: str

    def iterdir(self) -> Iterator[Any]: ...
    def read_bytes(self) -> bytes: ...
    def write_text(self, data: str, encoding: str | None = ...) -> Any: ...
    def exists(self) -> bool: ...
    def is_file(self) -> bool: ...
    def stat(self) -> Any: ...
    def rename(self, target: Any) -> Any: ...
    def mkdir(self, parents: bool = ..., exist_ok: bool = ...) -> Any: ...
    def __truediv__(self, other: str) -> Any: ...


@dataclass(frozen=True)
class FileProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class FileRefused(ValueError):
    """A whole file failed its checks; ``problems`` are line-numbered."""

    def __init__(self, name: str, problems: list[FileProblem]) -> None:
        self.name = name
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5]) + ("; ..." if len(problems) > 5 else "")
        super().__init__(f"ERP item file {name} refused: {shown}")


def _arrived(path: FeedPath) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse_file(name: str, data: bytes, manifest: dict[str, Any] | None, arrived: datetime
               ) -> list[dict[str, Any] | RecordError]:
    """The rows of one item file as ERP API item records (or a :class:`RecordError` for a row that cannot be one).

    Raises :class:`FileRefused` when the file as a whole is unusable.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileRefused(name, [FileProblem(line, f"not UTF-8 text ({exc.reason}); export the file as UTF-8")]) \
            from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise FileRefused(name, [FileProblem(1, "empty file: no header")])
    head = lines[0]
    if "," not in head:
        found = next((d for d in (";", "\t", "|") if d in head), None)
        if found is not None:
            shown = {"\t": "a tab", ";": "';'", "|": "'|'"}[found]
            raise FileRefused(name, [FileProblem(1, f"the delimiter is {shown}; the feed is comma-separated")])
    reader = csv.reader(io.StringIO(text))
    header = [c.strip() for c in next(reader)]
    problems: list[FileProblem] = []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(FileProblem(1, f"missing required column(s) {', '.join(missing)}"))
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        problems.append(FileProblem(1, f"unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})"))
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        problems.append(FileProblem(1, f"column(s) named twice: {', '.join(repeated)}"))
    rows: list[tuple[int, list[str]]] = []
    trailer: tuple[int, str] | None = None
    start = reader.line_num + 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if trailer is not None:
                problems.append(FileProblem(trailer[0], "the trailer line is not the last line"))
                trailer = None
            if cells[0].strip() == TRAILER:
                trailer = (line, cells[1].strip() if len(cells) > 1 else "")
                continue
            rows.append((line, cells))
    except csv.Error as exc:
        problems.append(FileProblem(start, f"unreadable CSV: {exc}"))
    expected: int | None = None
    if trailer is not None:
        if not trailer[1].isdigit():
            problems.append(FileProblem(trailer[0], f"trailer row count {trailer[1]!r} is not a number"))
        else:
            expected = int(trailer[1])
    if manifest is not None:
        stated = manifest.get("rows")
        if not isinstance(stated, int) or isinstance(stated, bool) or stated < 0:
            problems.append(FileProblem(0, f"manifest 'rows' is {stated!r}, not a row count"))
        elif expected is not None and stated != expected:
            problems.append(FileProblem(0, f"the manifest says {stated} rows, the trailer {expected}"))
        else:
            expected = stated
    if expected is not None and expected != len(rows):
        problems.append(FileProblem(len(lines), f"{len(rows)} data rows, but the feed states {expected}: the "
                                                "file was cut or padded on the way"))
    if problems:
        raise FileRefused(name, problems)

    out: list[dict[str, Any] | RecordError] = []
    for line, cells in rows:
        sku = cells[header.index("sku")].strip() if len(cells) > header.index("sku") else ""
        key = sku or f"{name}:{line}"
        if len(cells) != len(header):
            out.append(RecordError(key, f"{name} line {line}: expected {len(header)} cells, found {len(cells)}",
                                   record={"file": name, "line": line, "cells": cells}))
            continue
        row = {c: v.strip() for c, v in zip(header, cells, strict=True)}
        try:
            out.append(_item(row, arrived))
        except ValueError as exc:
            out.append(RecordError(key, f"{name} line {line}: {exc}", record={"file": name, "line": line, **row}))
    return out


def _item(row: dict[str, str], arrived: datetime) -> dict[str, Any]:
    """One CSV row in the shape the ERP API gives an item (weight, dimensions and price as objects)."""
    numbers: dict[str, float | None] = {}
    for column in NUMBERS:
        try:
            numbers[column] = _number(row.get(column, ""))
        except ValueError:
            raise ValueError(f"{column} {row[column]!r} is not a number") from None

    def text(column: str) -> str | None:
        return row.get(column) or None

    updated = text("updated_at") or arrived.isoformat().replace("+00:00", "Z")
    return {
        "sku": row["sku"],
        "parent_sku": text("parent_sku"),
        "product_type": row["product_type"],
        "lifecycle_status": row["lifecycle_status"],
        "upc": text("upc"),
        "product_group": text("product_group"),
        "uom": text("uom"),
        "weight": {"value": numbers["weight"], "unit": text("weight_unit")},
        "dimensions": {"length": numbers["length"], "width": numbers["width"], "height": numbers["height"],
                       "unit": text("dimension_unit")},
        "country_of_origin": text("country_of_origin"),
        "vendor_name": text("vendor_name"),
        "reference_price": {"amount": numbers["reference_price"], "currency": text("currency")},
        "description": text("description"),
        "updated_at": updated,
        "item_type": text("item_type"),
        "components": _components(row.get("components") or ""),
        "kit_pricing": text("kit_pricing"),
    }


def _components(cell: str) -> list[dict[str, Any]] | None:
    """A kit's components cell, ``SKU=quantity|SKU=quantity`` (a quantity left out is 1); None when empty."""
    if not cell.strip():
        return None
    lines = []
    for part in (p.strip() for p in cell.split("|")):
        sku, _, quantity = part.partition("=")
        try:
            amount = float(quantity) if quantity.strip() else 1.0
        except ValueError:
            raise ValueError(f"components {part!r}: the quantity is not a number") from None
        if not sku.strip() or not amount > 0:
            raise ValueError(f"components {part!r}: a component needs a SKU and a quantity above 0")
        lines.append({"sku": sku.strip(), "quantity": amount})
    return lines


class ErpItemFiles:
    """ERP items from an inbox of CSV exports; every other ERP call goes to ``api`` (the ERP's API client)."""

    system = System.ERP.value

    def __init__(self, inbox: FeedPath, api: Any | None = None) -> None:
        self.inbox = inbox
        self.api = api

    def __getattr__(self, name: str) -> Any:
        if self.api is None:
            raise AttributeError(f"the ERP is file-fed ({self.inbox}) and has no API connection for {name!r}")
        return getattr(self.api, name)

    def close(self) -> None:
        if self.api is not None:
            self.api.close()

    def __enter__(self) -> ErpItemFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pending(self, updated_since: datetime | None = None) -> list[FeedPath]:
        """The item files that arrived after ``updated_since``, in name order."""
        if not self.inbox.exists():
            raise FileNotFoundError(f"the ERP item inbox {self.inbox} does not exist")
        files = [p for p in self.inbox.iterdir() if p.name.endswith(".csv") and p.is_file()]
        if updated_since is not None:
            files = [p for p in files if _arrived(p) > updated_since]
        return sorted(files, key=lambda p: p.name)

    def iter_items(self, updated_since: datetime | str | None = None, after_sku: str | None = None
                   ) -> Iterator[Page]:
        """Pages of items from the files that arrived after ``updated_since``; a refused file yields one error."""
        since = datetime.fromisoformat(updated_since.replace("Z", "+00:00")) if isinstance(updated_since, str) \
            else updated_since
        for path in self.pending(since):
            arrived = _arrived(path)
            manifest_path = self.inbox / f"{path.name}.manifest.json"
            try:
                manifest = json.loads(manifest_path.read_bytes()) if manifest_path.exists() else None
                if manifest is not None and not isinstance(manifest, dict):
                    raise FileRefused(path.name, [FileProblem(0, "the manifest is not a JSON object")])
                parsed = parse_file(path.name, path.read_bytes(), manifest, arrived)
            except (FileRefused, json.JSONDecodeError) as exc:
                refused = exc if isinstance(exc, FileRefused) else FileRefused(
                    path.name, [FileProblem(0, f"the manifest is not JSON: {exc}")])
                self._reject(path, refused)
                yield Page("items", [], [RecordError(path.name, str(refused), record={
                    "file": path.name, "problems": [str(p) for p in refused.problems]})])
                continue
            records = [r for r in parsed if not isinstance(r, RecordError)]
            errors = [r for r in parsed if isinstance(r, RecordError)]
            if after_sku:
                records = [r for r in records if r["sku"] > after_sku]
            for i in range(0, max(len(records), 1), PAGE):
                good, bad = split_records(ITEMS, records[i:i + PAGE], self.system, offset=i)
                yield Page("items", good, bad + (errors if i == 0 else []), cursor=path.name)
            log.info("ERP item file %s: %d rows, %d refused", path.name, len(records), len(errors))

    def _reject(self, path: FeedPath, refused: FileRefused) -> None:
        """Move a refused file aside with its report; the inbox keeps only what is still to be read."""
        folder = self.inbox / REJECTED
        folder.mkdir(parents=True, exist_ok=True)
        report = [f"{refused.name} refused at {datetime.now(UTC).isoformat(timespec='seconds')}",
                  *(str(p) for p in refused.problems)]
        (folder / f"{path.name}.report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
        path.rename(folder / path.name)
        manifest = self.inbox / f"{path.name}.manifest.json"
        if manifest.exists():
            manifest.rename(folder / manifest.name)
        log.error("%s; moved to %s with its report", refused, folder)


def inbox_path(location: str) -> Path:
    """A local inbox from ``/path`` or ``file:///path`` (object-store URLs are resolved by the Airflow layer)."""
    return Path(location[len("file://"):] if location.startswith("file://") else location)
