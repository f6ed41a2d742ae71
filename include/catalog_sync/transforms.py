"""Transforms applied to canonical records before they are written anywhere.

- Units of measure go through one table (``units`` in ``governance/reference_data.yaml``): "each", "Ea.", "pcs"
  all become ``EA``; "lb", "pound" become ``lbs``. An unknown unit is never guessed: it raises :class:`UnknownUnit`
  (or, through :func:`normalise_record`, becomes an issue the engine dead-letters with ``reason_kind="transform"``).
- Vendor names are compared by a key (casefolded, accents, punctuation and legal suffixes removed) and shown under
  one canonical display name per key, taken from the alias table when the vendor is listed there.
- Countries become ISO 3166-1 alpha-2 codes.
- Duplicates within a batch (one SKU twice, one UPC on two SKUs) are split off so that the engine dead-letters
  them (``reason_kind="duplicate"``) instead of writing one version at random.

The reference tables are data, not code: :func:`load_reference_data` reads the YAML file, validates it and caches
it by modification time, so a weekly refresh of the file takes effect on the next call without a restart.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import yaml

log = logging.getLogger(__name__)

#: The reference data shipped with the package (refreshed in place by the weekly job).
REFERENCE_DATA_PATH: Final[Path] = Path(__file__).with_name("governance") / "reference_data.yaml"

UNIT_KINDS: Final[frozenset[str]] = frozenset({"count", "weight", "length"})
#: Which kinds of unit each canonical field accepts. A sales unit may be a weight or a length (sold by the kg or
#: the metre), so ``uom`` takes any kind; the physical attributes take only their own.
FIELD_UNIT_KINDS: Final[dict[str, frozenset[str]]] = {
    "uom": UNIT_KINDS,
    "weight_unit": frozenset({"weight"}),
    "dimension_unit": frozenset({"length"}),
}

# Words kept lower case inside a display name derived from a vendor key ("Bank of Nova Scotia").
_MINOR_WORDS: Final[frozenset[str]] = frozenset({"and", "of", "the", "for", "de", "du", "la", "von", "van", "der"})


class ReferenceDataError(ValueError):
    """The reference data file is invalid."""


class UnknownReference(ValueError):
    """A value has no entry in the reference data; it must be fixed at the source or added to the table."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


class UnknownUnit(UnknownReference):
    """A unit of measure that is not in the units table (or not of the kind the field needs)."""


class UnknownCountry(UnknownReference):
    """A country that is not in the countries table."""


@dataclass(frozen=True)
class Unit:
    code: str
    kind: str  # count | weight | length


@dataclass(frozen=True)
class ReferenceData:
    """The validated lookup tables, keyed by :func:`_lookup_key` of each spelling."""

    path: Path
    units: Mapping[str, Unit]
    countries: Mapping[str, str]  # spelling -> alpha-2
    legal_suffixes: frozenset[str]
    vendor_aliases: Mapping[str, str]  # vendor key -> canonical display name


@dataclass(frozen=True)
class TransformIssue:
    """A field :func:`normalise_record` could not normalise; the record must not be delivered as it is."""

    field: str
    value: Any
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """One occurrence of a record that collides with another record of the same batch.

    ``rule`` is ``"sku"`` (the SKU occurs more than once with different payloads) or ``"upc"`` (the UPC is also
    on another SKU, named in ``other_skus``). ``position`` is the occurrence's index in the batch.
    """

    rule: str
    record_key: str
    position: int
    record: dict[str, Any]
    reason: str
    other_skus: tuple[str, ...] = ()


# --- reference data --------------------------------------------------------------------------------------------


def _lookup_key(value: str) -> str:
    """How spellings are compared: casefolded, accents and dots removed, spaces collapsed."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(text.replace(".", "").split())


def parse_reference_data(text: str, path: Path = REFERENCE_DATA_PATH) -> ReferenceData:
    """Validate the YAML ``text`` of a reference data file and build the lookup tables."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ReferenceDataError(f"{path}: not valid YAML: {exc}") from exc
    return parse_reference_document(document, path)


def parse_reference_document(document: Any, path: Path = REFERENCE_DATA_PATH) -> ReferenceData:
    """Validate a reference data mapping (the YAML file's, or the hub's applied tables as ``refdata`` builds it)."""
    if not isinstance(document, dict):
        raise ReferenceDataError(f"{path}: expected a mapping with units, countries, legal_suffixes")
    errors: list[str] = []

    units: dict[str, Unit] = {}
    for code, spec in (document.get("units") or {}).items():
        if not isinstance(spec, dict) or spec.get("kind") not in UNIT_KINDS:
            errors.append(f"units.{code}: needs kind: one of {sorted(UNIT_KINDS)}")
            continue
        unit = Unit(str(code), spec["kind"])
        for alias in [str(code), *(str(a) for a in spec.get("aliases") or [])]:
            key = _lookup_key(alias)
            other = units.get(key)
            if other is not None and other != unit:
                errors.append(f"units.{code}: alias {alias!r} already means {other.code}")
            units[key] = unit

    countries: dict[str, str] = {}
    for code, spec in (document.get("countries") or {}).items():
        code = str(code)
        if not re.fullmatch(r"[A-Z]{2}", code) or not isinstance(spec, dict):
            errors.append(f"countries.{code}: key must be an ISO 3166-1 alpha-2 code with alpha3 and names")
            continue
        for spelling in [code, str(spec.get("alpha3") or ""), *(str(n) for n in spec.get("names") or [])]:
            key = _lookup_key(spelling)
            if not key:
                continue
            if countries.get(key, code) != code:
                errors.append(f"countries.{code}: {spelling!r} already means {countries[key]}")
            countries[key] = code

    suffixes = frozenset(_lookup_key(str(s)) for s in document.get("legal_suffixes") or [])

    aliases: dict[str, str] = {}
    for display, spellings in (document.get("vendor_aliases") or {}).items():
        for spelling in [str(display), *(str(s) for s in spellings or [])]:
            key = _vendor_key(spelling, suffixes)
            if aliases.get(key, display) != display:
                errors.append(f"vendor_aliases.{display}: {spelling!r} is already a spelling of {aliases[key]!r}")
            aliases[key] = str(display)

    if errors:
        raise ReferenceDataError(f"{path} is invalid:\n  " + "\n  ".join(errors))
    return ReferenceData(path, units, countries, suffixes, aliases)


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int, size: int) -> ReferenceData:
    # mtime and size only key the cache: a refreshed file gets a new key and is read and validated again.
    return parse_reference_data(path.read_text(encoding="utf-8"), path)


def load_reference_data(path: str | Path | None = None) -> ReferenceData:
    """The reference tables from ``path`` (default :data:`REFERENCE_DATA_PATH`), cached by modification time."""
    resolved = Path(path).resolve() if path is not None else REFERENCE_DATA_PATH
    stat = resolved.stat()
    return _load_cached(resolved, stat.st_mtime_ns, stat.st_size)


# --- units and countries ------------------------------------------------------------------------------------------


def normalise_unit(
    value: str, kinds: Iterable[str] | None = None, *, field: str = "uom", ref: ReferenceData | None = None
) -> str:
    """The canonical code of a unit ("each" -> "EA", "pound" -> "lbs"); UnknownUnit when there is none.

    ``kinds`` restricts the accepted kinds (``{"weight"}`` for a weight unit); a unit of another kind is as unknown
    to that field as a misspelling.
    """
    ref = ref or load_reference_data()
    unit = ref.units.get(_lookup_key(str(value)))
    if unit is None:
        raise UnknownUnit(field, value, f"{field}: unknown unit of measure {value!r}")
    allowed = frozenset(kinds) if kinds is not None else UNIT_KINDS
    if unit.kind not in allowed:
        raise UnknownUnit(
            field, value, f"{field}: {value!r} is a {unit.kind} unit, expected {' or '.join(sorted(allowed))}"
        )
    return unit.code


def normalise_country(value: str, *, field: str = "country_of_origin", ref: ReferenceData | None = None) -> str:
    """The ISO 3166-1 alpha-2 code of a country code or name ("USA", "United States" -> "US")."""
    ref = ref or load_reference_data()
    code = ref.countries.get(_lookup_key(str(value)))
    if code is None:
        raise UnknownCountry(field, value, f"{field}: unknown country {value!r}")
    return code


# --- vendors --------------------------------------------------------------------------------------------------------


def _vendor_key(name: str, suffixes: frozenset[str]) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    # "&" and "and" are one word; dots and apostrophes vanish ("L.L.C." -> "llc"); other punctuation splits words.
    text = text.replace("&", " and ")
    text = re.sub(r"[.'\u2019]", "", text)
    tokens = re.sub(r"[^\w\s]|_", " ", text).split()
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    # Strip legal forms from the end, including chains like "GmbH & Co. KG"; never strip the whole name.
    while len(tokens) > 1 and (tokens[-1] in suffixes or tokens[-1] == "and"):
        tokens.pop()
    return " ".join(tokens)


def vendor_key(name: str, *, ref: ReferenceData | None = None) -> str:
    """What two spellings of one vendor have in common ("Ford Motor Co." and "FORD MOTOR COMPANY": "ford motor")."""
    ref = ref or load_reference_data()
    return _vendor_key(name, ref.legal_suffixes)


def _display_from_key(key: str) -> str:
    words = []
    for i, word in enumerate(key.split()):
        if i and word == "and":
            words.append("&")  # the key spells "&" as "and"; company names mostly use the ampersand
        elif i and word in _MINOR_WORDS:
            words.append(word)
        elif any(ch.isdigit() for ch in word):
            words.append(word.upper())  # model-number-like words ("3m", "x100") read best upper case
        else:
            words.append(word.capitalize())
    return " ".join(words)


def canonical_vendor(
    name: str, *, aliases: Mapping[str, str] | None = None, ref: ReferenceData | None = None
) -> str:
    """The one display name of the vendor ``name`` belongs to.

    Looked up by vendor key in ``aliases`` (display name -> spelling, merged over the reference table's
    ``vendor_aliases``), else derived from the key alone, so that every spelling of a vendor maps to the same
    string whatever batch it arrives in.
    """
    ref = ref or load_reference_data()
    key = _vendor_key(name, ref.legal_suffixes)
    if not key:
        return name.strip()
    if aliases:
        extra = {_vendor_key(spelling, ref.legal_suffixes): display for spelling, display in aliases.items()}
        extra.update({_vendor_key(display, ref.legal_suffixes): display for display in set(aliases.values())})
        if key in extra:
            return extra[key]
    return ref.vendor_aliases.get(key) or _display_from_key(key)


# --- one record -------------------------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    """None, NaN, pd.NA or NaT: how a missing value looks in a dict or in a DataFrame row."""
    return value is None or (not isinstance(value, (list, tuple, dict, set)) and bool(pd.isna(value)))


def _blank(value: Any) -> bool:
    return _missing(value) or (isinstance(value, str) and not value.strip())


def normalise_record(
    record: Mapping[str, Any],
    *,
    vendor_aliases: Mapping[str, str] | None = None,
    ref: ReferenceData | None = None,
) -> tuple[dict[str, Any], list[TransformIssue]]:
    """A copy of ``record`` with units, vendor name and country normalised, and what could not be normalised.

    A field that cannot be normalised keeps its original value and yields a :class:`TransformIssue`; the caller
    dead-letters the record (``reason_kind="transform"``) rather than delivering a value no target understands.
    Empty fields are left alone: whether a field is required is the quality gates' decision.
    """
    ref = ref or load_reference_data()
    out = dict(record)
    issues: list[TransformIssue] = []
    for field, kinds in FIELD_UNIT_KINDS.items():
        if field in out and not _blank(out[field]):
            try:
                out[field] = normalise_unit(out[field], kinds, field=field, ref=ref)
            except UnknownUnit as exc:
                issues.append(TransformIssue(field, exc.value, str(exc)))
    if "country_of_origin" in out and not _blank(out["country_of_origin"]):
        try:
            out["country_of_origin"] = normalise_country(out["country_of_origin"], ref=ref)
        except UnknownCountry as exc:
            issues.append(TransformIssue("country_of_origin", exc.value, str(exc)))
    if "vendor_name" in out and not _blank(out["vendor_name"]):
        out["vendor_name"] = canonical_vendor(str(out["vendor_name"]), aliases=vendor_aliases, ref=ref)
    return out, issues


def issues_to_dead_letters(
    record: Mapping[str, Any],
    issues: Sequence[TransformIssue],
    *,
    load_id: str,
    flow: str,
    entity: str,
    source_system: str,
    target_system: str,
    key_field: str = "sku",
) -> list[dict[str, Any]]:
    """Rows for :func:`catalog_sync.hub.repo.dead_letter`, one per failed field (the field is the expectation)."""
    return [
        {
            "load_id": load_id,
            "flow": flow,
            "entity": entity,
            "record_key": str(record.get(key_field) or ""),
            "source_system": source_system,
            "target_system": target_system,
            "reason_kind": "transform",
            "expectation": issue.field,
            "reason": issue.reason,
            "payload": dict(record),
        }
        for issue in {i.field: i for i in issues}.values()
    ]


# --- duplicates within a batch ------------------------------------------------------------------------------------


def duplicate_links(record: Mapping[str, Any], *, key: str = "sku", upc_field: str = "upc") -> list[tuple[str, str]]:
    """The values :func:`find_duplicates` compares a record by: two records sharing none of them are judged
    independently of each other (so a delta checked in batches that keep records sharing one together gives the
    same duplicates as the whole delta; see ``quality.batching``)."""
    sku, upc = _normal_key(record.get(key)), _normal_upc(record.get(upc_field))
    return [(kind, value) for kind, value in (("sku", sku), ("upc", upc)) if value is not None]


def _normal_key(value: Any) -> str | None:
    if _blank(value):
        return None
    return str(value).strip()


def _normal_upc(value: Any) -> str | None:
    """UPC-A, EAN-13 and GTIN-14 spellings of one number compare equal once padded to 14 digits."""
    text = _normal_key(value)
    if text is None:
        return None
    return text.zfill(14) if text.isdigit() else text


def _payload_hash(record: Mapping[str, Any]) -> str:
    # Sorted keys: the same payload read through two code paths must compare equal whatever its key order.
    return json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))


def find_duplicates(
    records: pd.DataFrame | Sequence[Mapping[str, Any]], *, key: str = "sku", upc_field: str = "upc"
) -> tuple[pd.DataFrame | list[Mapping[str, Any]], list[Duplicate]]:
    """Split a batch of canonical records into the records to deliver and the duplicates to dead-letter.

    The rules, in this order:

    1. The same SKU more than once with identical payloads: the first occurrence is kept, the others are
       dropped silently (a source paging twice over a record is not a data problem).
    2. The same SKU more than once with different payloads: every occurrence is a duplicate; none is kept,
       because nothing says which version is right.
    3. One UPC on two or more different SKUs: every record carrying it is a duplicate naming the other SKUs,
       because a barcode scanned at the till must resolve to exactly one item.

    Records without a SKU are kept for the quality gates, which reject them with a clearer reason; records
    without a UPC never collide on rule 3. The clean batch keeps the input's order and type (a DataFrame in,
    a DataFrame out; a list of dicts in, the same dicts out).
    """
    is_frame = isinstance(records, pd.DataFrame)
    if is_frame:
        # A frame spells "missing" NaN; dead-letter payloads are JSON, which has only null.
        rows = [
            {k: (None if _missing(v) else v) for k, v in row.items()}
            for row in records.to_dict("records")  # type: ignore[union-attr]
        ]
    else:
        rows = [dict(r) for r in records]
    frame = pd.DataFrame(
        {
            "sku": pd.Series([_normal_key(r.get(key)) for r in rows], dtype=object),
            "upc": pd.Series([_normal_upc(r.get(upc_field)) for r in rows], dtype=object),
            "payload": pd.Series([_payload_hash(r) for r in rows], dtype=object),
        }
    )
    keyed = frame[frame["sku"].notna()]
    by_sku = keyed.groupby("sku", sort=False)
    occurrences = by_sku["payload"].transform("size")
    versions = by_sku["payload"].transform("nunique")
    conflicting = keyed.index[(occurrences > 1) & (versions > 1)]
    repeats = keyed.index[(occurrences > 1) & (versions == 1) & keyed.duplicated("sku", keep="first")]

    # Rule 3 looks at one occurrence per distinct payload: a repeat of an identical record is not another SKU.
    with_upc = keyed.drop(index=repeats)
    with_upc = with_upc[with_upc["upc"].notna()]
    skus_per_upc = with_upc.groupby("upc", sort=False)["sku"].transform("nunique")
    clashing = with_upc[skus_per_upc > 1]
    skus_by_upc: dict[str, list[str]] = (
        clashing.groupby("upc", sort=False)["sku"].agg(lambda s: sorted(set(s))).to_dict()
    )

    duplicates: list[Duplicate] = []
    counts = occurrences.to_dict()
    for pos in conflicting:
        sku = frame.at[pos, "sku"]
        duplicates.append(
            Duplicate(
                rule="sku",
                record_key=sku,
                position=int(pos),
                record=rows[pos],
                reason=f"SKU {sku} occurs {counts[pos]} times in the batch with different payloads",
            )
        )
    for pos, sku, upc in zip(clashing.index, clashing["sku"], clashing["upc"], strict=True):
        others = tuple(s for s in skus_by_upc[upc] if s != sku)
        duplicates.append(
            Duplicate(
                rule="upc",
                record_key=sku,
                position=int(pos),
                record=rows[pos],
                reason=f"UPC {rows[pos].get(upc_field)} of SKU {sku} is also on SKU {', '.join(others)}",
                other_skus=others,
            )
        )
    rejected = set(conflicting) | set(repeats) | set(clashing.index)
    keep = [pos for pos in range(len(rows)) if pos not in rejected]
    if len(repeats):
        log.info("dropped %d identical repeat(s) of records already in the batch", len(repeats))
    duplicates.sort(key=lambda d: (d.position, d.rule))
    if is_frame:
        return records.iloc[keep], duplicates  # type: ignore[union-attr]
    originals = list(records)
    return [originals[pos] for pos in keep], duplicates


def duplicates_to_dead_letters(
    duplicates: Iterable[Duplicate],
    *,
    load_id: str,
    flow: str,
    entity: str,
    source_system: str,
    target_system: str,
) -> list[dict[str, Any]]:
    """Rows for :func:`catalog_sync.hub.repo.dead_letter`: one per (SKU, rule), holding every occurrence.

    The hub keeps one open letter per record and expectation, so the occurrences of one SKU are grouped into one
    letter (``expectation`` ``duplicate_sku`` or ``duplicate_upc``) whose payload lists them all for the replay.
    """
    grouped: dict[tuple[str, str], list[Duplicate]] = {}
    for duplicate in duplicates:
        grouped.setdefault((duplicate.record_key, duplicate.rule), []).append(duplicate)
    letters = []
    for (record_key, rule), group in grouped.items():
        letters.append(
            {
                "load_id": load_id,
                "flow": flow,
                "entity": entity,
                "record_key": record_key,
                "source_system": source_system,
                "target_system": target_system,
                "reason_kind": "duplicate",
                "expectation": f"duplicate_{rule}",
                "reason": group[0].reason,
                "payload": {
                    "positions": [d.position for d in group],
                    "occurrences": [d.record for d in group],
                    "other_skus": sorted({s for d in group for s in d.other_skus}),
                },
            }
        )
    return letters
