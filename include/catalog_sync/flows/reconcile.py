"""The weekly reconciliation: full reads of every system, drift against each attribute's owner, deletions.

Every other flow moves deltas; this one reads the *full* id sets of the ERP (items), the PIM (products and product
models), the DAM (assets) and the storefront (products and their variants), lines them up by SKU and asks, for
each attribute ``ownership.yaml`` lets a system hold a copy of, whether the copy still equals the owner's value.

Findings are ``drift`` rows in the hub (one per record and attribute, for the run's load id):

- ``drift``: a copy differs from its owner (numbers within a tolerance; None, "" and NaN are one value);
- ``missing``: the owner has the record, the copy system does not (the storefront only for ERP-active items, since
  only those are published);
- ``deleted``: a SKU the PIM or the storefront still holds that the ERP (the owner of ``sku``) no longer has;
- ``orphan``: a DAM asset linked to no SKU, or to one the ERP does not know;
- ``reference``: an ERP unit or country the reference tables (``governance/reference_data.yaml``) do not know;
- ``showable``: a storefront product whose gallery (which images, in which order) is not the one the showable rule
  (``catalog_sync.showable``) builds from the family's PIM asset links and the DAM's current assets, as the nightly
  publishes it: an image whose rights or window ended shown again, an image due and missing, a gallery reordered
  by hand. Owner ``dam``; the wanted gallery and the live one are the two values.

Showable drift. The summary's ``showable`` section reports, per SKU, what is wrong on the storefront (``hidden``,
``unlinked``, ``missing``, ``order``, and ``status`` from the storefront ``lifecycle_status`` drift), and
:func:`repair_showable` repairs those products through the image_windows sweep's own path
(``republish.repair_showable``), which purges the CDN pages it changed. Guard: more than ``max_repairs`` (default
:data:`MAX_REPAIRS`) repairs nothing; the DAG param ``repair_showable`` turns the repairs off.

Deletions. Only this flow may declare a SKU deleted, because only it sees complete id sets. It acts
conservatively and reversibly: a deleted PIM product is *disabled* (``enabled: false``), a deleted storefront
product is *archived*; nothing is ever removed, and every change is audited and logged as a field delta, so
``sync_rollback`` can undo it. Product models have no ``enabled`` flag and storefront variants no status of their
own, so those are reported only. Guards: SKUs of ERP records that could not be parsed count as existing (an
unreadable item is not a deleted one); when more SKUs look deleted than ``max_deletions`` allows (default
:data:`MAX_DELETIONS`), nothing is applied and the run says so, because that many at once means a broken read,
not a decision. The DAG param ``apply_deletions`` (default true for scheduled runs: the guard and rollback bound
the risk) turns the writes off and leaves only the findings.

Staging (decision): the four reads run as separate tasks (one per system pool) and hand their frames to the
compare task as gzip-compressed CSV files under ``staging/<run>/`` in the shared state store
(:mod:`catalog_sync.store`: a local folder on one machine, an object store such as S3 on several). The hub's
``staged_record`` table costs one row per record and is far too slow at a million SKUs; Parquet and Feather
need pyarrow, which the project does not ship; pickle is unsafe to read back. CSV with an explicit dtype per
column (``keep_default_na=False``, so Namibia's ``NA`` stays a country) round-trips exactly the lean canonical
columns compared here. The store is what every worker sees; ``finish`` removes the run's prefix (retention removes
the prefix of a run that failed before it).
Small results (the deletion plan, the summary) go through ``staged_record`` as usual.

Hops (``read == delivered + unchanged + dead_lettered`` on each): ``erp:items``, ``pim:products``,
``dam:assets`` and ``storefront:products`` count the records each read returned; a record is ``delivered`` when a
corrective write (disable or archive) changed it, ``dead_lettered`` when that write was refused or the record could
not be parsed, ``unchanged`` otherwise. Drift is a finding about a record, not a loss of it.

Scale: frames hold only the compared columns, low-cardinality text as categoricals and descriptions as 64-bit
digests; :func:`compare` is vectorised (no loop over rows), so a million SKUs per system compare in seconds.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from catalog_sync.connectors import Page, RecordError, WriteResult
from catalog_sync.connectors.mapping import (
    akeneo_product_to_canonical,
    category_code,
    erp_item_to_canonical,
    shopify_product_to_canonical,
)
from catalog_sync.domain import STOREFRONT_STATUS, LifecycleStatus
from catalog_sync.engine.run import RunContext, chunked, json_safe
from catalog_sync.flows import freeze, steps
from catalog_sync.flows.systems import Systems
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import Drift
from catalog_sync.progress import Progress

if TYPE_CHECKING:
    from catalog_sync.alerting import Alert, AlertRules
    from catalog_sync.governance import Ownership
    from catalog_sync.governance.channels import Channel
    from catalog_sync.store import StorePath
    from catalog_sync.transforms import ReferenceData

log = logging.getLogger(__name__)

FLOW: Final = "weekly_reconciliation"
#: One hop per system read: the records of that system's full read.
HOPS: Final[dict[str, str]] = {"erp": "erp:items", "pim": "pim:products", "dam": "dam:assets",
                               "storefront": "storefront:products"}
#: A declared sales channel (governance/channels.yaml) is read on its own hop, ``<channel>:products``.
CHANNEL_HOP: Final = "{channel}:products"


def hop_of(system: str) -> str:
    """The hop a system's full read is counted on: :data:`HOPS`, or a declared channel's."""
    return HOPS.get(system) or CHANNEL_HOP.format(channel=system)


#: Above this many SKUs declared deleted in one run, no deletion is applied (a broken read, not a decision).
MAX_DELETIONS: Final = 100
#: Above this many storefront products drifted from the showable rule in one run, none is repaired (a broken read
#: of the DAM or the storefront looks like drift everywhere; each repair costs about ten calls).
MAX_REPAIRS: Final = 200
#: Absolute tolerance for numbers (prices in currency units, weights in their unit): float noise, not drift.
NUMERIC_ATOL: Final = 0.005
NUMERIC_RTOL: Final = 1e-6
FINDING_COLUMNS: Final = ("system", "entity", "record_key", "attribute", "kind", "owner_system", "owner_value",
                          "observed_value")
CATEGORY_SEP: Final = "|"


# --- frame layouts ---------------------------------------------------------------------------------------------
# Column kinds: "key" (high-cardinality text, object), "cat" (low-cardinality text, categorical), "num" (float).
# Only what is compared is kept: a frame of a million rows stays a few hundred megabytes.

_ERP_COPIED: Final = ("parent_sku", "product_type", "lifecycle_status", "upc", "product_group", "uom", "weight",
                      "weight_unit", "country_of_origin", "vendor_name", "reference_price", "currency")

LAYOUTS: Final[dict[str, dict[str, str]]] = {
    "erp": {"sku": "key", "parent_sku": "key", "upc": "key", "product_type": "cat", "lifecycle_status": "cat",
            "product_group": "cat", "uom": "cat", "weight": "num", "weight_unit": "cat", "dimension_unit": "cat",
            "country_of_origin": "cat", "vendor_name": "cat", "reference_price": "num", "currency": "cat"},
    "pim": {"sku": "key", "entity": "cat", "enabled": "num", "parent_sku": "key", "upc": "key", "name": "key",
            "description": "key", "product_type": "cat", "lifecycle_status": "cat", "product_group": "cat",
            "uom": "cat", "weight": "num", "weight_unit": "cat", "country_of_origin": "cat", "vendor_name": "cat",
            "reference_price": "num", "currency": "cat", "categories": "cat", "asset_links": "key"},
    "storefront": {"sku": "key", "row_kind": "cat", "handle": "key", "product_id": "num", "status": "cat",
                   "parent_sku": "key", "product_type": "cat", "upc": "key", "name": "key", "description": "key",
                   "vendor_name": "cat", "categories": "cat", "weight": "num", "weight_unit": "cat", "images": "key"},
    # the showable rule's inputs (showable.RULE_FIELDS) and the rendition the storefront shows
    "dam": {"asset_id": "key", "sku": "key", "status": "cat", "role": "cat", "valid_from": "key", "valid_to": "key",
            "rights_expires_at": "key", "rights_regions": "cat", "rendition": "key"},
}
#: A declared channel's frame (``channel.<name>``): each product it holds as its admin values show it (status 1
#: enabled, 2 disabled), and the ERP's live price of that SKU when the channel was read (what the nightly sends).
CHANNEL_LAYOUT: Final[dict[str, str]] = {"sku": "key", "type_id": "cat", "name": "key", "status": "num",
                                         "price": "num", "live_price": "num"}
#: Joins a list into one frame cell: PIM asset links and storefront image URLs (neither holds a space), regions.
LIST_SEP: Final = " "

#: What each copy system's wire shape can hold (the mapping reads it back); ownership decides which of these
#: the system is *supposed* to hold. The PIM has no dimensions, the storefront no country or reference price.
REPRESENTED: Final[dict[str, frozenset[str]]] = {
    "pim": frozenset(_ERP_COPIED) | {"name", "description", "categories"},
    "storefront": frozenset({"parent_sku", "product_type", "upc", "weight", "weight_unit", "vendor_name", "name",
                             "description", "categories", "lifecycle_status"}),
}
#: Which storefront rows carry an attribute: product-level fields live on the product (a configurable head or a
#: simple product), variant-level fields on the variant (or the simple product's single variant).
_STOREFRONT_ROWS: Final[dict[str, frozenset[str]]] = {
    **dict.fromkeys(("name", "description", "vendor_name", "categories", "lifecycle_status"),
                    frozenset({"head", "simple"})),
    **dict.fromkeys(("upc", "weight", "weight_unit", "parent_sku"), frozenset({"variant", "simple"})),
    "product_type": frozenset({"head", "variant", "simple"}),
}
_NUMERIC: Final = frozenset({"weight", "reference_price"})


def _layout(system: str) -> dict[str, str]:
    """The frame layout of ``system``: one of :data:`LAYOUTS`, or a declared channel's (``channel.<name>``)."""
    return LAYOUTS[system] if system in LAYOUTS else CHANNEL_LAYOUT


def empty_frame(system: str) -> pd.DataFrame:
    """A zero-row frame in ``system``'s layout."""
    return _build(system, {c: [] for c in _layout(system)})


def _build(system: str, columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    layout = _layout(system)
    data: dict[str, Any] = {}
    for name, kind in layout.items():
        values = columns[name]
        if kind == "cat":
            data[name] = pd.Categorical(values)
        elif kind == "num":
            data[name] = pd.array(values, dtype="float64") if values else np.array([], dtype="float64")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)


class FrameBuilder:
    """Collects canonical records into lean columns as pages arrive, so a full read never holds the raw dicts.

    Values of categorical columns are interned: JSON decoding makes a new string object for every occurrence of
    ``"active"``, which at a million rows costs more memory than the whole frame.
    """

    def __init__(self, system: str) -> None:
        self.system = system
        self.layout = _layout(system)
        self.columns: dict[str, list[Any]] = {c: [] for c in self.layout}
        self._interned: dict[str, dict[Any, Any]] = {c: {} for c, k in self.layout.items() if k == "cat"}

    def add(self, row: Mapping[str, Any]) -> None:
        for name, kind in self.layout.items():
            value = row.get(name)
            if value is None or (isinstance(value, str) and value == ""):
                value = np.nan if kind == "num" else None
            elif kind == "cat":
                value = self._interned[name].setdefault(value, value)
            elif kind == "num":
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    value = np.nan
            self.columns[name].append(value)

    def __len__(self) -> int:
        return len(self.columns["sku"] if "sku" in self.columns else next(iter(self.columns.values())))

    def frame(self) -> pd.DataFrame:
        return _build(self.system, self.columns)


def text_digest(text: Any) -> str | None:
    """A 64-bit digest of a long text (descriptions): compared instead of the text, to keep frames small."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text) == "":
        return None
    return hashlib.blake2b(str(text).encode(), digest_size=8).hexdigest()


def categories_key(values: Iterable[str] | None) -> str | None:
    """Categories as one comparable value: their Akeneo codes, sorted, joined (paths and codes alike)."""
    codes = sorted({category_code(str(v)) for v in values or [] if str(v).strip()})
    return CATEGORY_SEP.join(codes) if codes else None


# --- wire -> frame rows (one record at a time, while reading) ----------------------------------------------


def erp_row(item: Mapping[str, Any]) -> dict[str, Any]:
    record = erp_item_to_canonical(item)
    return {c: record.get(c) for c in LAYOUTS["erp"]}


def pim_row(product: Mapping[str, Any], entity: str) -> dict[str, Any]:
    record = akeneo_product_to_canonical(product)
    row = {c: record.get(c) for c in LAYOUTS["pim"]}
    row.update(entity=entity, description=text_digest(record.get("description")),
               categories=categories_key(product.get("categories")))
    # Akeneo product models have no enabled flag: NaN, not "disabled".
    row["enabled"] = None if entity == "model" else float(bool(product.get("enabled", True)))
    row["asset_links"] = LIST_SEP.join(map(str, record.get("asset_links") or [])) or None
    return row


def storefront_rows(product: Mapping[str, Any]) -> list[dict[str, Any]]:
    records = shopify_product_to_canonical(product)
    configurable = len(records) > 1 or records[0].get("product_type") == "configurable"
    out = []
    for i, record in enumerate(records):
        kind = "simple" if not configurable else ("head" if i == 0 else "variant")
        row = {c: record.get(c) for c in LAYOUTS["storefront"]}
        row.update(row_kind=kind, handle=product.get("handle"), product_id=product.get("id"),
                   status=product.get("status"), description=text_digest(record.get("description")),
                   categories=categories_key(record.get("categories")),
                   # the gallery is the product's: on its first row (the head, or the simple product) only
                   images=None if i else LIST_SEP.join(str(im.get("src")) for im in product.get("images") or []
                                                       if im.get("src")) or None)
        out.append(row)
    return out


def dam_row(asset: Mapping[str, Any]) -> dict[str, Any]:
    return {"asset_id": str(asset.get("id")), "sku": asset.get("sku") or None, "status": asset.get("status"),
            "role": asset.get("role"), "valid_from": asset.get("valid_from"), "valid_to": asset.get("valid_to"),
            "rights_expires_at": asset.get("rights_expires_at"),
            "rights_regions": LIST_SEP.join(sorted(map(str, asset.get("rights_regions") or []))) or None,
            "rendition": (asset.get("renditions") or {}).get("ecommerce")}


# --- the comparison (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalised:
    """The ERP frame with units, countries and vendors normalised as the nightly flow does before writing them,
    and the values the reference tables do not know (field -> sorted raw values)."""

    erp: pd.DataFrame
    unknown: dict[str, list[str]]


def normalise_erp(erp: pd.DataFrame, ref: ReferenceData | None = None) -> Normalised:
    """Normalise the ERP's units, countries and vendor names once per distinct value (never once per row).

    The PIM and the storefront hold the normalised values (``transforms.normalise_record`` runs before every
    write), so the owner's value must be normalised the same way before it is compared with a copy.
    """
    from catalog_sync.transforms import (
        FIELD_UNIT_KINDS,
        UnknownReference,
        canonical_vendor,
        load_reference_data,
        normalise_country,
        normalise_unit,
    )

    ref = ref or load_reference_data()
    out = erp.copy(deep=False)
    unknown: dict[str, list[str]] = {}

    def remap(column: str, fn: Callable[[str], str], collect: bool) -> None:
        if column not in out:
            return
        values = [v for v in pd.unique(out[column].dropna()) if str(v).strip()]
        mapping: dict[Any, Any] = {}
        bad: list[str] = []
        for value in values:
            try:
                mapping[value] = fn(str(value))
            except UnknownReference:
                mapping[value] = value  # kept raw: the nightly flow dead-letters it, so the copy lacks it
                bad.append(str(value))
        out[column] = _as_category(out[column].map(mapping))
        if collect and bad:
            unknown[column] = sorted(bad)

    def unit_of(field: str, kinds: frozenset[str]) -> Callable[[str], str]:
        return lambda value: normalise_unit(value, kinds, field=field, ref=ref)

    for field, kinds in FIELD_UNIT_KINDS.items():
        remap(field, unit_of(field, kinds), True)
    remap("country_of_origin", lambda v: normalise_country(v, ref=ref), True)
    remap("vendor_name", lambda v: canonical_vendor(v, ref=ref), False)
    return Normalised(out, unknown)


def _as_category(series: pd.Series) -> pd.Series:
    return series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category")


def _text(values: pd.Series) -> np.ndarray:
    """Text as an object array where None, NaN and "" are all "" (one missing value)."""
    arr = values.astype(object).to_numpy(dtype=object, copy=True)
    arr[pd.isna(arr)] = ""
    return arr


def _differs(attribute: str, owner: pd.Series, copy: pd.Series) -> np.ndarray:
    """Boolean mask of rows whose copy differs from the owner's value."""
    if attribute in _NUMERIC:
        a = pd.to_numeric(owner, errors="coerce").to_numpy(dtype="float64")
        b = pd.to_numeric(copy, errors="coerce").to_numpy(dtype="float64")
        both_missing = np.isnan(a) & np.isnan(b)
        with np.errstate(invalid="ignore"):
            close = np.isclose(a, b, rtol=NUMERIC_RTOL, atol=NUMERIC_ATOL)
        return ~(close | both_missing)
    return np.asarray(_text(owner) != _text(copy), dtype=bool)


def _findings(system: str, entity: str, keys: Any, attribute: str, kind: str, owner_system: str,
              owner_values: Any = None, observed: Any = None) -> pd.DataFrame:
    keys = pd.Series(keys, dtype=object).reset_index(drop=True)
    n = len(keys)

    def column(values: Any) -> pd.Series:
        if values is None:
            return pd.Series([None] * n, dtype=object)
        return pd.Series(np.asarray(values, dtype=object), dtype=object)

    return pd.DataFrame({
        "system": system, "entity": entity, "record_key": keys, "attribute": attribute, "kind": kind,
        "owner_system": owner_system, "owner_value": column(owner_values), "observed_value": column(observed),
    }, columns=list(FINDING_COLUMNS))


def _unique_by_sku(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[frame["sku"].notna()]
    return frame.drop_duplicates("sku", keep="first")


def _pim_by_sku(pim: pd.DataFrame) -> pd.DataFrame:
    """One PIM row per SKU, the product model first: a configurable parent is modelled as a product model, and a
    product under the same code (a stray, e.g. created by an asset-link write) must not stand in for it."""
    rows = pim[pim["sku"].notna()]
    order = np.argsort((rows["entity"] != "model").to_numpy(), kind="stable")
    return rows.iloc[order].drop_duplicates("sku", keep="first")


def copied_attributes(system: str, ownership: Ownership) -> list[tuple[str, str]]:
    """(attribute, owner) pairs ``system`` holds a copy of per ``ownership.yaml`` and can represent."""
    out = []
    for attribute in ownership.attributes("product"):
        rule = ownership.rule(attribute)
        if system in rule.copies_to and attribute in REPRESENTED.get(system, frozenset()) \
                and rule.owner in ("erp", "pim") and rule.owner != system:
            out.append((attribute, rule.owner))
    return out


def compare(
    erp: pd.DataFrame,
    pim: pd.DataFrame,
    storefront: pd.DataFrame,
    dam: pd.DataFrame,
    *,
    ownership: Ownership | None = None,
    ref: ReferenceData | None = None,
    protected_skus: Iterable[str] = (),
    now: datetime | None = None,
    region: str | None = None,
) -> pd.DataFrame:
    """Every finding of one reconciliation, as a frame with :data:`FINDING_COLUMNS` (no I/O besides the YAML).

    Args:
        erp, pim, storefront, dam: full reads in the :data:`LAYOUTS` of each system.
        protected_skus: SKUs known to exist in the ERP although their record could not be read (never "deleted").
        now, region: the instant and the sales region the showable rule is applied for (default: now, and the
            storefront channel's region).
    """
    from catalog_sync.governance import load_ownership
    from catalog_sync.showable import storefront_region

    ownership = ownership or load_ownership()
    region = region or storefront_region()
    normalised = normalise_erp(_unique_by_sku(erp), ref)
    owner_erp = normalised.erp.set_index("sku")
    erp_skus = pd.Index(owner_erp.index).append(pd.Index(list(protected_skus), dtype=object)).unique()
    owner_pim = _pim_by_sku(pim).set_index("sku")
    parts: list[pd.DataFrame] = []

    # Reference data: one finding per ERP record holding a unit or country the tables do not know.
    for column, values in normalised.unknown.items():
        hit = owner_erp[column].isin(values).to_numpy()
        parts.append(_findings("erp", "product", owner_erp.index[hit], column, "reference", "erp",
                               None, owner_erp[column].to_numpy(dtype=object)[hit]))

    # Membership goes through Index.get_indexer: the owner's hash table is built once and reused for every
    # attribute, where Series.isin would rebuild it each time (the difference is minutes at a million SKUs).
    erp_index = pd.Index(erp_skus)
    copies = {"pim": owner_pim.reset_index(), "storefront": storefront[storefront["sku"].notna()]}
    for system, frame in copies.items():
        present = erp_index.get_indexer(frame["sku"]) >= 0
        # Deleted: the owner of the SKU no longer has it. Reported once per record, never compared further.
        gone = frame.loc[~present].drop_duplicates("sku")
        if len(gone):
            parts.append(_findings(system, "product", gone["sku"], "sku", "deleted", "erp", None, gone["sku"]))
        # Missing: the ERP has it and the copy system does not (the storefront only sells active items).
        absent = pd.Index(frame["sku"]).unique().get_indexer(owner_erp.index) < 0
        if system == "storefront":
            absent &= (_text(owner_erp["lifecycle_status"]) == LifecycleStatus.ACTIVE.value)
        if absent.any():
            skus = owner_erp.index[absent]
            parts.append(_findings(system, "product", skus, "sku", "missing", "erp", skus, None))
        rows = _unique_by_sku(frame.loc[present])
        row_skus = rows["sku"].to_numpy(dtype=object)
        owners = {"erp": owner_erp, "pim": owner_pim}
        positions = {name: owner.index.get_indexer(row_skus) for name, owner in owners.items()}
        for attribute, owner in copied_attributes(system, ownership):
            keep = positions[owner] >= 0
            if system == "storefront":
                keep &= rows["row_kind"].isin(_STOREFRONT_ROWS[attribute]).to_numpy()
            selected = np.flatnonzero(keep)
            if not len(selected):
                continue
            expected = owners[owner][attribute].iloc[positions[owner][selected]].reset_index(drop=True)
            source = "status" if system == "storefront" and attribute == "lifecycle_status" else attribute
            observed = rows[source].iloc[selected].reset_index(drop=True)
            skus_here = row_skus[selected]
            if source == "status":
                # The storefront holds the status the lifecycle maps to, not the lifecycle itself.
                status = {s.value: v for s, v in STOREFRONT_STATUS.items()}
                expected_cmp = pd.Series(_text(expected)).map(status)
            elif system == "storefront" and attribute == "name":
                # The title falls back to the SKU when the PIM has no name (canonical_to_shopify_product).
                names = _text(expected)
                expected_cmp = pd.Series(np.where(names == "", skus_here, names))
            else:
                expected_cmp = expected
            mask = _differs(attribute, expected_cmp, observed)
            if mask.any():
                parts.append(_findings(system, "product", skus_here[mask], attribute, "drift", owner,
                                       expected.to_numpy(dtype=object)[mask], observed.to_numpy(dtype=object)[mask]))

    # Showable: each storefront gallery against the one the rule builds from the PIM links and the DAM's assets.
    parts.append(showable_drift(pim, storefront[storefront["sku"].notna()], dam, present=erp_index,
                                now=now or datetime.now(UTC), region=region))

    # Orphans: DAM assets that depict no SKU, or one the ERP does not have.
    orphan = erp_index.get_indexer(dam["sku"]) < 0  # a missing SKU (None) is not in the index either
    if orphan.any():
        parts.append(_findings("dam", "asset", dam.loc[orphan, "asset_id"], "sku", "orphan", "erp", None,
                               dam.loc[orphan, "sku"].to_numpy(dtype=object)))

    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    # One finding per business key of the drift table (a duplicated SKU in a copy is reported once).
    return out.drop_duplicates(["system", "entity", "record_key", "attribute"], keep="first").reset_index(drop=True)


def _split(cell: Any) -> list[str]:
    """A joined list cell (:data:`LIST_SEP`) back as a list; a missing one is empty."""
    return str(cell).split(LIST_SEP) if isinstance(cell, str) and cell else []


def _cell(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


class DamAssets:
    """The DAM frame as the asset dicts the showable rule reads (``showable.RULE_FIELDS``, role, rendition), built
    one at a time when asked for: a million assets are never all turned into dicts."""

    def __init__(self, dam: pd.DataFrame) -> None:
        self._columns = {c: dam[c].to_numpy(dtype=object) for c in LAYOUTS["dam"]}
        self._at = {str(a): i for i, a in enumerate(self._columns["asset_id"])}
        self._by_rendition: dict[str, str] | None = None

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._at

    def __getitem__(self, asset_id: str) -> dict[str, Any]:
        i = self._at[asset_id]
        value = {c: _cell(col[i]) for c, col in self._columns.items()}
        rendition = value.pop("rendition")
        return {**value, "id": value.pop("asset_id"), "rights_regions": _split(value.get("rights_regions")),
                "renditions": {"ecommerce": rendition} if rendition else {}}

    def by_rendition(self, src: str) -> dict[str, Any] | None:
        """The asset whose ``ecommerce`` rendition is ``src`` (None for an image the DAM does not serve)."""
        if self._by_rendition is None:
            pairs = zip(self._columns["rendition"], self._columns["asset_id"], strict=True)
            self._by_rendition = {str(r): str(a) for r, a in pairs if _cell(r) is not None}
        asset_id = self._by_rendition.get(src)
        return None if asset_id is None else self[asset_id]


def showable_drift(pim: pd.DataFrame, storefront: pd.DataFrame, dam: pd.DataFrame | DamAssets, *,
                   present: pd.Index, now: datetime, region: str | None) -> pd.DataFrame:
    """``showable`` findings: storefront products whose gallery (images and their order) is not the one the rule
    builds from the family's PIM asset links and the DAM's current assets (``showable.storefront_images`` over
    ``cold.family_asset_ids``, as the nightly publishes it). One finding per product, keyed by its SKU (the
    family's root), attribute ``images``; owner ``dam``, the wanted gallery and the live one as the two values.

    Only products whose SKU the ERP has (``present``) are compared: a deleted one is archived, not repaired.
    """
    from catalog_sync.flows.cold import family_asset_ids
    from catalog_sync.showable import storefront_images

    assets = dam if isinstance(dam, DamAssets) else DamAssets(dam)
    heads = storefront[storefront["row_kind"].isin(["head", "simple"]).to_numpy()
                       & (present.get_indexer(storefront["sku"]) >= 0)].drop_duplicates("sku")
    owners = _pim_by_sku(pim)
    links = dict(zip(owners["sku"].astype(str), owners["asset_links"], strict=True))
    variants: dict[str, list[dict[str, Any]]] = {}
    rows = pim[(pim["entity"] == "product").to_numpy() & pim["parent_sku"].notna().to_numpy()]
    for sku, parent, linked in zip(rows["sku"], rows["parent_sku"], rows["asset_links"], strict=True):
        variants.setdefault(str(parent), []).append({"sku": str(sku), "asset_links": _split(linked)})
    keys, wanted, shown = [], [], []
    for sku, images in zip(heads["sku"].astype(str), heads["images"], strict=True):
        family = {"parent": {"asset_links": _split(links.get(sku))}, "rows": variants.get(sku, [])}
        ids = family_asset_ids(family)
        observed = _split(images)
        if not ids and not observed:
            continue
        expected = [i["src"] for i in storefront_images([assets[a] for a in ids if a in assets], now, region)]
        if expected != observed:
            keys.append(sku)
            wanted.append(expected)
            shown.append(observed)
    return _findings("storefront", "product", keys, "images", "showable", "dam", _lists(wanted), _lists(shown))


def _lists(values: list[list[str]]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)  # a 2-d array would split the lists into columns
    out[:] = values
    return out


def showable_report(findings: pd.DataFrame, dam: pd.DataFrame | DamAssets, now: datetime, region: str | None,
                    sample: int = 100) -> dict[str, Any]:
    """The storefront's drift from the showable rule, per SKU: each product whose gallery (``showable`` findings)
    or status (storefront ``lifecycle_status`` drift) is not what the rule and the ERP say, with what is wrong.

    ``problems`` per SKU: ``hidden`` (images shown that the rule hides, with why), ``unlinked`` (shown, but no
    image of the family's PIM links), ``missing`` (due, not shown), ``order`` (the gallery order differs),
    ``status`` (expected and observed). The first ``sample`` SKUs are listed in full; the drift table has all.
    """
    from catalog_sync.showable import why_hidden

    assets = dam if isinstance(dam, DamAssets) else DamAssets(dam)
    per_sku: dict[str, dict[str, Any]] = {}
    if len(findings):
        shop = findings[(findings["system"] == "storefront").to_numpy()]
        gallery = shop[(shop["kind"] == "showable").to_numpy()]
        for sku, expected, observed in zip(gallery["record_key"], gallery["owner_value"], gallery["observed_value"],
                                           strict=True):
            expected, observed = list(expected or []), list(observed or [])
            problems: dict[str, Any] = {}
            for src in observed:
                if src in expected:
                    continue
                asset = assets.by_rendition(src)
                hidden = why_hidden(asset, now, region) if asset is not None else None
                if asset is not None and hidden:
                    problems.setdefault("hidden", []).append({"asset_id": asset["id"], "why": hidden})
                else:
                    problems.setdefault("unlinked", []).append(asset["id"] if asset else src)
            missing = [src for src in expected if src not in observed]
            if missing:
                problems["missing"] = [(assets.by_rendition(s) or {}).get("id", s) for s in missing]
            if [s for s in observed if s in expected] != [s for s in expected if s in observed]:
                problems["order"] = True
            per_sku[str(sku)] = {"sku": str(sku), "problems": problems}
        status = shop[((shop["attribute"] == "lifecycle_status") & (shop["kind"] == "drift")).to_numpy()]
        shown_as = {s.value: v for s, v in STOREFRONT_STATUS.items()}
        for sku, lifecycle, observed in zip(status["record_key"], status["owner_value"], status["observed_value"],
                                            strict=True):
            entry = per_sku.setdefault(str(sku), {"sku": str(sku), "problems": {}})
            expected = shown_as.get(str(lifecycle))
            entry["problems"]["status"] = {"expected": expected, "observed": _cell(observed),
                                           "erp_lifecycle": lifecycle}
    by_problem: dict[str, int] = {}
    for entry in per_sku.values():
        for problem in entry["problems"]:
            by_problem[problem] = by_problem.get(problem, 0) + 1
    skus = sorted(per_sku)
    return {"skus": len(skus), "by_problem": dict(sorted(by_problem.items())),
            "drifted": [per_sku[s] for s in skus[:sample]], "all_skus": skus}


def lifecycle_divergence(erp: pd.DataFrame, pim: pd.DataFrame, sample: int = 20) -> dict[str, Any]:
    """Share of SKUs held by both the ERP and the PIM whose PIM lifecycle differs from the ERP's."""
    owner = _unique_by_sku(erp)[["sku", "lifecycle_status"]]
    copy = _pim_by_sku(pim)[["sku", "lifecycle_status"]]
    both = owner.merge(copy, on="sku", how="inner", suffixes=("_erp", "_pim"))
    differs = _text(both["lifecycle_status_erp"]) != _text(both["lifecycle_status_pim"])
    compared = len(both)
    divergent = int(differs.sum())
    return {"compared": compared, "divergent": divergent, "share": (divergent / compared) if compared else 0.0,
            "sample": sorted(both.loc[differs, "sku"].astype(str).tolist())[:sample]}


def taxonomy_snapshot(pim: pd.DataFrame, erp: pd.DataFrame) -> dict[str, Any]:
    """The categories in use in the PIM (code -> number of products), and the units and countries in use in the
    ERP: what the nightly gate can check new records against until next week."""
    categories: dict[str, int] = {}
    combos = pim["categories"].value_counts(dropna=True)
    for combo, n in combos.items():  # one iteration per distinct combination, not per product
        for code in str(combo).split(CATEGORY_SEP):
            categories[code] = categories.get(code, 0) + int(n)

    def in_use(column: str) -> dict[str, int]:
        if column not in erp:
            return {}
        counts = erp[column].value_counts(dropna=True)
        return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])) if v}

    return {
        "categories": dict(sorted(categories.items())),
        "units": {c: in_use(c) for c in ("uom", "weight_unit", "dimension_unit")},
        "countries": in_use("country_of_origin"),
    }


# --- per channel (governance/channels.yaml) -------------------------------------------------------------------


def channel_row(product: Mapping[str, Any]) -> dict[str, Any]:
    """One product of a channel's list (``catalog-data-product-interface`` at admin scope) as a frame row."""
    return {"sku": product.get("sku"), "type_id": product.get("type_id"), "name": product.get("name"),
            "status": product.get("status"), "price": product.get("price"), "live_price": None}


def _publishable(product_type: Any) -> bool:
    """Whether the channel's connector publishes an item of this type (a kit is refused by the nightly, so a
    channel lacking one is not a finding)."""
    from catalog_sync.connectors.adobe_mapping import MAGENTO_TYPE
    from catalog_sync.domain import item_type_of

    return product_type == "configurable" or item_type_of({"product_type": product_type}) in MAGENTO_TYPE


def compare_channel(channel: Channel, erp: pd.DataFrame, pim: pd.DataFrame, held: pd.DataFrame, *,
                    protected_skus: Iterable[str] = ()) -> pd.DataFrame:
    """Findings for one declared channel (:data:`FINDING_COLUMNS`, ``system`` the channel's name).

    What the channel *should* hold is what the nightly sends it (``flows.channels``): every SKU of a family whose
    PIM categories the channel sells (a variant follows its parent) and that the ERP knows;
    named by the PIM, cut by the channel's ``formatting``; enabled when the ERP lifecycle of the family is active;
    priced at the ERP's live price, else the ERP's reference price (configurables carry no price).

    - ``missing``: the channel sells it per the PIM and does not hold it (types the connector refuses left out);
    - ``deleted``: it holds a SKU the PIM no longer has, that the ERP deleted, or that the channel no longer
      sells (the owner value says which), reported once per SKU;
    - ``drift`` of ``name`` (owner ``pim``), ``status`` and ``price`` (owner ``erp``) on the SKUs it should hold.
    """
    name = channel.name
    owner_erp = _unique_by_sku(erp).set_index("sku")
    erp_index = pd.Index(owner_erp.index).append(pd.Index(list(protected_skus), dtype=object)).unique()
    owner_pim = _pim_by_sku(pim)
    pim_skus = owner_pim["sku"].astype(str).to_numpy(dtype=object)
    parents = owner_pim["parent_sku"].to_numpy(dtype=object)
    roots = np.array([str(p) if isinstance(p, str) and p else s for s, p in zip(pim_skus, parents, strict=True)],
                     dtype=object)
    by_sku = owner_pim.set_index("sku")
    at_root = by_sku.index.get_indexer(roots)
    categories = by_sku["categories"].to_numpy(dtype=object)
    sold_of = {c: channel.sells({"categories": str(c).split(CATEGORY_SEP)}) for c in pd.unique(categories)
               if isinstance(c, str) and c}
    # a variant follows its family: the root's categories decide (the nightly keeps a family by its parent's)
    root_cats = np.where(at_root >= 0, categories[np.maximum(at_root, 0)], None)
    sold = np.array([bool(sold_of.get(c, False)) if isinstance(c, str) else False for c in root_cats], dtype=bool)
    # the PIM's enabled flag is not asked: the nightly publishes a family whatever it says (the ERP lifecycle
    # decides the channel status), and a SKU the ERP deleted is caught by the ERP check
    in_erp = erp_index.get_indexer(pim_skus) >= 0
    wanted = sold & in_erp
    why = np.where(~in_erp, "deleted in the ERP", np.where(~sold, "not sold by the channel", ""))
    reason = dict(zip(pim_skus, why, strict=True))
    holds = held[held["sku"].notna()].drop_duplicates("sku", keep="first")
    held_skus = holds["sku"].astype(str).to_numpy(dtype=object)
    parts: list[pd.DataFrame] = []

    wanted_index = pd.Index(pim_skus[wanted])
    gone = wanted_index.get_indexer(held_skus) < 0
    if gone.any():
        keys = held_skus[gone]
        parts.append(_findings(name, "product", keys, "sku", "deleted", "pim",
                               np.array([reason.get(k) or "not in the PIM" for k in keys], dtype=object), keys))
    publishable = np.array([_publishable(t) for t in owner_pim["product_type"].to_numpy(dtype=object)], dtype=bool)
    lacking = wanted & publishable & (pd.Index(held_skus).get_indexer(pim_skus) < 0)
    if lacking.any():
        parts.append(_findings(name, "product", pim_skus[lacking], "sku", "missing", "pim", pim_skus[lacking], None))

    rows = holds.loc[~gone]
    if len(rows):
        skus = rows["sku"].astype(str).to_numpy(dtype=object)
        at = by_sku.index.get_indexer(skus)
        root_of = roots[at]
        # name: the PIM's, the SKU when it has none (canonical_to_magento_product), cut by the channel's rules
        pim_names = _text(by_sku["name"].iloc[at].reset_index(drop=True))
        expected_name = np.array([channel.formatting.shape({"name": n or k})["name"]
                                  for n, k in zip(pim_names, skus, strict=True)], dtype=object)
        observed_name = rows["name"].to_numpy(dtype=object)
        mask = _differs("name", pd.Series(expected_name), pd.Series(observed_name))
        if mask.any():
            parts.append(_findings(name, "product", skus[mask], "name", "drift", "pim", expected_name[mask],
                                   observed_name[mask]))
        # status: enabled (1) only when the family's ERP lifecycle is active (the nightly sends the root's)
        erp_at = owner_erp.index.get_indexer(root_of)
        lifecycle = np.where(erp_at >= 0, _text(owner_erp["lifecycle_status"])[np.maximum(erp_at, 0)], "")
        from catalog_sync.connectors.adobe_mapping import DISABLED, ENABLED

        expected_status = np.where(lifecycle == LifecycleStatus.ACTIVE.value, ENABLED, DISABLED).astype("float64")
        observed_status = rows["status"].to_numpy(dtype="float64")
        mask = _differs("reference_price", pd.Series(expected_status), pd.Series(observed_status))
        if mask.any():
            parts.append(_findings(name, "product", skus[mask], "status", "drift", "erp",
                                   expected_status[mask].astype(int).astype(object),
                                   observed_status[mask].astype(object)))
        # price: the ERP's live price when it has one, else its reference price; a configurable has none
        own = owner_erp.index.get_indexer(skus)
        reference = np.where(own >= 0, owner_erp["reference_price"].to_numpy(dtype="float64")[np.maximum(own, 0)],
                             np.nan)
        live = rows["live_price"].to_numpy(dtype="float64")
        expected_price = np.where(np.isnan(live), reference, live)
        priced = (rows["type_id"].astype(object).to_numpy(dtype=object) != "configurable")
        observed_price = rows["price"].to_numpy(dtype="float64")
        mask = _differs("reference_price", pd.Series(expected_price), pd.Series(observed_price)) & priced
        if mask.any():
            parts.append(_findings(name, "product", skus[mask], "price", "drift", "erp",
                                   expected_price[mask].astype(object), observed_price[mask].astype(object)))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
    return pd.concat(parts, ignore_index=True).drop_duplicates(["system", "entity", "record_key", "attribute"])


def channel_unavailable(channel: str, reason: str) -> pd.DataFrame:
    """The finding of a channel that could not be read: its comparison did not run (nothing else is concluded)."""
    return _findings(channel, "channel", [channel], "availability", "unavailable", channel, None, [reason])


# --- synthetic catalogs (benchmarks) ------------------------------------------------------------------------


def synthetic_frames(n: int, *, drift_every: int = 1000, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Four consistent frames of ``n`` simple SKUs, then known defects, for benchmarking :func:`compare`.

    Every ``drift_every``-th SKU (from the first) gets a drifted PIM reference price and a drifted storefront
    title; every ``drift_every``-th from the third is removed from the ERP (its PIM and storefront records become
    ``deleted``, its asset an ``orphan``). With ``drift_every >= 3``, :func:`compare` finds exactly
    ``5 * (n // drift_every)`` findings.
    """
    rng = np.random.default_rng(seed)
    k = n // drift_every
    idx = np.arange(n)
    skus = np.array([f"SKU-{i:08d}" for i in idx], dtype=object)
    lifecycles = [s.value for s in LifecycleStatus]
    lifecycle = pd.Categorical.from_codes(rng.integers(0, len(lifecycles), n), lifecycles)
    countries = pd.Categorical.from_codes(rng.integers(0, 4, n), ["US", "CN", "VN", "PT"])
    vendors = pd.Categorical.from_codes(rng.integers(0, 3, n), ["Northwind Apparel", "Harbor Gear", "Summit Outdoor"])
    groups = pd.Categorical.from_codes(rng.integers(0, 2, n), ["Bag", "Top"])
    price = np.round(rng.uniform(5, 200, n), 2)
    weight = np.round(rng.uniform(0.1, 5, n), 3)
    upc = np.array([f"{i:012d}" for i in idx], dtype=object)
    names = np.array([f"Product {i}" for i in idx], dtype=object)
    digests = np.array([f"{i:016x}" for i in idx], dtype=object)

    def cat(value: str) -> pd.Categorical:
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [value])

    none = pd.Series([None] * n, dtype=object)
    common = {"parent_sku": none, "upc": upc, "product_type": cat("simple"), "lifecycle_status": lifecycle,
              "product_group": groups, "uom": cat("EA"), "weight": weight, "weight_unit": cat("lbs"),
              "country_of_origin": countries, "vendor_name": vendors, "reference_price": price,
              "currency": cat("USD")}
    erp = pd.DataFrame({"sku": skus, **common, "dimension_unit": cat("in")})[list(LAYOUTS["erp"])]
    # each SKU has one hero image, linked in the PIM and shown on the storefront (the showable check runs on all)
    asset_ids = np.array([f"AST-{i:09d}" for i in idx], dtype=object)
    renditions = np.array([f"https://dam.example.com/r/{a}.jpg" for a in asset_ids], dtype=object)
    pim = pd.DataFrame({"sku": skus, "entity": cat("product"), "enabled": np.ones(n), **common, "name": names,
                        "description": digests, "categories": cat("gear_bags"),
                        "asset_links": asset_ids.copy()})[list(LAYOUTS["pim"])]
    status = {s.value: v for s, v in STOREFRONT_STATUS.items()}
    storefront = pd.DataFrame({
        "sku": skus, "row_kind": cat("simple"), "handle": skus, "product_id": idx.astype("float64"),
        "status": pd.Categorical(pd.Series(lifecycle).map(status)),
        "parent_sku": none, "product_type": cat("simple"), "upc": upc, "name": names.copy(), "description": digests,
        "vendor_name": vendors, "categories": cat("gear_bags"), "weight": weight, "weight_unit": cat("lbs"),
        "images": renditions.copy(),
    })[list(LAYOUTS["storefront"])]
    dam = pd.DataFrame({"asset_id": asset_ids, "sku": skus, "status": cat("approved"), "role": cat("hero"),
                        "valid_from": none, "valid_to": none, "rights_expires_at": none,
                        "rights_regions": pd.Categorical([None] * n), "rendition": renditions})
    if k:
        drifted = idx[::drift_every][:k]
        pim.loc[drifted, "reference_price"] = pim.loc[drifted, "reference_price"] + 1.0
        storefront.loc[drifted, "name"] = "Edited title"
        erp = erp.drop(index=idx[2::drift_every][:k]).reset_index(drop=True)
    return {"erp": erp, "pim": pim, "storefront": storefront, "dam": dam}


# --- staging (CSV.gz by reference) ---------------------------------------------------------------------------


def staging_dir(load_id: str) -> StorePath:
    """Where this run's frames live between tasks: ``staging/<run>`` in the shared state store, which every worker
    reaches (the read tasks and ``compare`` may run on different machines)."""
    from catalog_sync import store

    return store.prefix(store.STAGING, load_id)


def save_frame(load_id: str, system: str, frame: pd.DataFrame) -> StorePath:
    from catalog_sync import store

    path = staging_dir(load_id) / f"{system}.csv.gz"
    # Atomic: a retried task never leaves half a file for the compare step to read.
    with store.atomic_write(path) as handle:
        # Level 1: the file lives for minutes; speed matters more than size.
        frame.to_csv(handle, index=False, compression={"method": "gzip", "compresslevel": 1})
    return path


def load_frame(load_id: str, system: str) -> pd.DataFrame:
    from catalog_sync import store

    path = staging_dir(load_id) / f"{system}.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the read_{system} task of run {load_id} did not finish")
    dtypes = {c: {"key": object, "cat": "category", "num": "float64"}[k] for c, k in _layout(system).items()}
    with store.open_binary(path, "rb") as handle:
        frame = pd.read_csv(handle, dtype=dtypes, keep_default_na=False, na_values=[""], compression="gzip")
    return frame if len(frame) else empty_frame(system)


# --- tasks ----------------------------------------------------------------------------------------------------


def open_run(*, dag_id: str | None, run_id: str | None, window_start: datetime | None,
             window_end: datetime | None, hub_url: str | None = None) -> str:
    """Register the run (a retried DAG run re-attaches to the same load id)."""
    ctx = RunContext.open(FLOW, load_id=steps.run_load_id(FLOW, run_id), dag_id=dag_id, run_id=run_id,
                          window_start=window_start, window_end=window_end, hub_url=hub_url)
    return ctx.load_id


def _read(ctx: RunContext, system: str, entity: str, pages: Iterable[Page],
          add: Callable[[FrameBuilder, dict[str, Any]], None], builder: FrameBuilder) -> dict[str, Any]:
    """Drain ``pages`` into ``builder``; malformed records are dead-lettered on the system's hop."""
    errors: list[RecordError] = []
    n_pages = records = 0
    progress = Progress(f"read {system} {entity}s", every=5000)
    for page in pages:
        n_pages += 1
        records += len(page.records)
        for record in page.records:
            add(builder, record)
        errors.extend(page.errors)
        progress.add(len(page.records))
    progress.finish()
    steps.dead_letter_read_errors(ctx, errors, hop=hop_of(system), entity=entity, source=system, target="hub")
    # One audit row for the whole read: a bulk read is one attempt, not a million.
    ctx.audit(system, entity, "*", "read", "ok", request={"full_read": True},
              response={"pages": n_pages, "records": records, "malformed": len(errors)})
    ctx.flush_audit()
    return {"records": records, "malformed": len(errors), "pages": n_pages,
            "malformed_keys": sorted({e.record_key for e in errors if e.record_key})}


def read_erp(load_id: str, systems: Systems) -> dict[str, Any]:
    """Every ERP item (the owner of ``sku`` and of the master data)."""
    ctx = RunContext.attach(load_id)
    builder = FrameBuilder("erp")
    stats = _read(ctx, "erp", "product", systems.erp.iter_items(), lambda b, r: b.add(erp_row(r)), builder)
    save_frame(load_id, "erp", builder.frame())
    # An item the ERP sent but we could not parse still exists: it must never be declared deleted.
    ctx.stage("erp_unreadable", [{"sku": k} for k in stats["malformed_keys"]])
    return {k: v for k, v in stats.items() if k != "malformed_keys"}


def read_pim(load_id: str, systems: Systems) -> dict[str, Any]:
    """Every PIM product (variants and simple products) and product model (configurable parents)."""
    ctx = RunContext.attach(load_id)
    builder = FrameBuilder("pim")
    products = _read(ctx, "pim", "product", systems.pim.iter_products(),
                     lambda b, r: b.add(pim_row(r, "product")), builder)
    models = _read(ctx, "pim", "product_model", systems.pim.iter_product_models(),
                   lambda b, r: b.add(pim_row(r, "model")), builder)
    save_frame(load_id, "pim", builder.frame())
    return {"products": products["records"], "models": models["records"],
            "malformed": products["malformed"] + models["malformed"]}


def read_dam(load_id: str, systems: Systems) -> dict[str, Any]:
    """Every DAM asset with the SKU it depicts."""
    ctx = RunContext.attach(load_id)
    builder = FrameBuilder("dam")
    stats = _read(ctx, "dam", "asset", systems.dam.iter_assets(), lambda b, r: b.add(dam_row(r)), builder)
    save_frame(load_id, "dam", builder.frame())
    return {k: v for k, v in stats.items() if k != "malformed_keys"}


def read_storefront(load_id: str, systems: Systems) -> dict[str, Any]:
    """Every storefront product, one row per product and per variant SKU."""
    ctx = RunContext.attach(load_id)
    builder = FrameBuilder("storefront")

    def add(b: FrameBuilder, product: dict[str, Any]) -> None:
        for row in storefront_rows(product):
            b.add(row)

    stats = _read(ctx, "storefront", "product", systems.storefront.iter_products(), add, builder)
    save_frame(load_id, "storefront", builder.frame())
    return {"products": stats["records"], "rows": len(builder), "malformed": stats["malformed"],
            "pages": stats["pages"]}


def _channel_frame(channel: str) -> str:
    return f"channel.{channel}"


def _channel_status_stage(channel: str) -> str:
    return f"channel_read:{channel}"


def read_channel(load_id: str, channel_name: str, systems: Systems, *, page_size: int = 100) -> dict[str, Any]:
    """Every product the declared channel ``channel_name`` holds, read through its client in pages
    (``iter_products``: Adobe Commerce's ``GET /V1/products`` with ``searchCriteria`` paging) into the staged
    frame ``channel.<name>``, with the ERP's live price of each SKU it holds.

    A channel that stays unavailable past its client's retries (``TransientError``) fails its own comparison
    only: the read stages the outage, dead-letters it as the channel's (reason kind ``channel``, expectation
    ``channel_unavailable``) and succeeds, so the other reads and the storefront's comparison go on. A channel
    with no client here (no connection configured) is reported the same way."""
    from catalog_sync.connectors import TransientError
    from catalog_sync.flows.hot import _erp_prices
    from catalog_sync.governance.channels import load_channels

    channel = load_channels().channel(channel_name)
    ctx = RunContext.attach(load_id)
    builder = FrameBuilder(_channel_frame(channel.name))
    client = systems.channels.get(channel.name)
    down: str | None = None
    stats: dict[str, Any] = {"records": 0, "pages": 0, "malformed": 0}
    if client is None:
        down = (f"no client for {channel.name} here: configure its Airflow connection {channel.connection_id} "
                "(governance/channels.yaml)")
    else:
        try:
            stats = _read(ctx, channel.name, "product", client.iter_products(page_size=page_size),
                          lambda b, r: b.add(channel_row(r)), builder)
        except TransientError as exc:
            down = f"{channel.name} was unavailable during the weekly reconciliation ({exc})"
    if down is not None:
        # a read cut short stages no frame: compare concludes nothing about the channel's products
        log.warning("%s: its comparison is skipped this week: %s", channel.name, down)
        ctx.audit(channel.name, "product", "*", "read", "dead_lettered", request={"full_read": True},
                  response={"message": down})
        ctx.flush_audit()
        ctx.dead_letter([{"entity": "catalog", "record_key": channel.name, "source_system": channel.name,
                          "target_system": "hub", "reason_kind": "channel", "expectation": "channel_unavailable",
                          "reason": down + "; the other systems were reconciled: re-run the reconciliation once "
                                           "the channel answers"}], hop=None)
    else:
        frame = builder.frame()
        skus = [str(k) for k in frame["sku"].dropna()]
        live = {k: float(p["price"]) for k, p in _erp_prices(systems, skus).items()
                if p.get("price") is not None} if skus else {}
        frame["live_price"] = frame["sku"].map(live).astype("float64")
        save_frame(load_id, _channel_frame(channel.name), frame)
    ctx.stage(_channel_status_stage(channel.name), [{"key": channel.name, "down": down}], key="key")
    return {"channel": channel.name, "records": stats["records"], "pages": stats["pages"], "down": down}


def _compare_channels(ctx: RunContext, frames: Mapping[str, pd.DataFrame], protected: Sequence[str],
                      ) -> tuple[list[pd.DataFrame], dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """Each enabled channel's findings (or its ``unavailable`` finding), its frame, and its summary."""
    from catalog_sync.governance.channels import load_channels

    parts: list[pd.DataFrame] = []
    held: dict[str, pd.DataFrame] = {}
    summary: dict[str, dict[str, Any]] = {}
    for channel in load_channels().enabled():
        status = _staged_one(ctx, _channel_status_stage(channel.name))
        down = status.get("down") if status else f"{channel.name} was not read in this run"
        if down:
            parts.append(channel_unavailable(channel.name, str(down)))
            summary[channel.name] = {"down": down, "records": 0, "by_kind": {"unavailable": 1}}
            continue
        frame = load_frame(ctx.load_id, _channel_frame(channel.name))
        found = compare_channel(channel, frames["erp"], frames["pim"], frame, protected_skus=protected)
        held[channel.name] = frame
        parts.append(found)
        by_kind = {str(k): int(v) for k, v in found["kind"].value_counts().items()} if len(found) else {}
        summary[channel.name] = {"down": None, "records": len(frame), "by_kind": by_kind}
    return parts, held, summary


def compare_systems(load_id: str, *, max_deletions: int = MAX_DELETIONS) -> dict[str, Any]:
    """Compare the staged frames, write the findings to the drift table, plan the deletions, count every record.

    Each record read is counted here (read, and unchanged unless a corrective write is planned for it); the
    planned ones are accounted for by :func:`apply_deletions`.
    """
    from catalog_sync import refdata
    from catalog_sync.showable import storefront_region

    ctx = RunContext.attach(load_id)
    frames = {s: load_frame(load_id, s) for s in LAYOUTS}
    protected = [r["sku"] for r in ctx.staged("erp_unreadable")]
    now, region = datetime.now(UTC), storefront_region()
    ref = refdata.applied(ctx.hub_url).reference_data()  # `reference` findings: what the nightly would refuse
    findings = compare(frames["erp"], frames["pim"], frames["storefront"], frames["dam"], protected_skus=protected,
                       now=now, region=region, ref=ref)
    showable = showable_report(findings, frames["dam"], now, region)
    # each declared channel apart: one down gives its own finding and leaves the others' as they are
    channel_parts, channel_frames, channels = _compare_channels(ctx, frames, protected)
    findings = pd.concat([findings, *channel_parts], ignore_index=True) if channel_parts else findings
    written = _write_drift(ctx, findings)
    plan = deletion_plan(frames["pim"], frames["storefront"], findings, channel_frames)
    ctx.stage("deletion_plan", plan, key="plan_key")
    ctx.stage("showable_plan", [{"sku": sku} for sku in showable.pop("all_skus")], key="sku")
    divergence = lifecycle_divergence(frames["erp"], frames["pim"])
    normalised = normalise_erp(_unique_by_sku(frames["erp"]), ref)
    by_kind = {str(k): int(v) for k, v in findings["kind"].value_counts().items()} if len(findings) else {}
    by_system = ({f"{s}/{k}": int(v) for (s, k), v in findings.groupby(["system", "kind"]).size().items()}
                 if len(findings) else {})
    summary = {
        "findings": written, "by_kind": by_kind, "by_system": by_system,
        "lifecycle_divergence": divergence,
        "taxonomy": taxonomy_snapshot(frames["pim"], frames["erp"]),
        "reference": {"unknown": normalised.unknown},
        "deletions_found": {"pim": int(((findings["system"] == "pim") & (findings["kind"] == "deleted")).sum()),
                            "storefront": int(((findings["system"] == "storefront")
                                               & (findings["kind"] == "deleted")).sum())} if len(findings) else
                           {"pim": 0, "storefront": 0},
        "records": {s: len(f) for s, f in frames.items()},
        "max_deletions": max_deletions,
        "showable": {"checked_at": now.isoformat(), "region": region, **showable},
        "channels": channels,
    }
    ctx.stage("summary", [{"key": "summary", **json_safe(summary)}], key="key")
    planned: dict[str, int] = {"pim": 0, "storefront": 0}
    for p in plan:
        planned[p["system"]] = planned.get(p["system"], 0) + 1
    # Counted last, after everything above succeeded, so a retried compare does not count twice.
    for system, frame in {**frames, **channel_frames}.items():
        ctx.count(hop_of(system), read=len(frame), unchanged=len(frame) - planned.get(system, 0))
    return {"findings": written, "by_kind": by_kind, "planned_deletions": planned,
            "lifecycle_divergence_share": divergence["share"], "showable_drift": showable["skus"],
            "channels": {name: {"down": c["down"], "by_kind": c["by_kind"]} for name, c in channels.items()}}


def _write_drift(ctx: RunContext, findings: pd.DataFrame) -> int:
    from sqlalchemy import delete

    rows = [
        {"load_id": ctx.load_id, "system": r[0], "entity": r[1], "record_key": str(r[2]), "attribute": r[3],
         "kind": r[4], "owner_system": r[5], "owner_value": json_safe(r[6]), "observed_value": json_safe(r[7])}
        for r in findings[list(FINDING_COLUMNS)].itertuples(index=False, name=None)
    ]
    with session_scope(ctx.hub_url) as s:
        # A retried compare replaces its own findings: what the systems hold now is the run's answer.
        s.execute(delete(Drift).where(Drift.load_id == ctx.load_id))
        repo.upsert(s, Drift.__table__, rows,  # type: ignore[arg-type]
                    key=["load_id", "system", "entity", "record_key", "attribute"])
    return len(rows)


def deletion_plan(pim: pd.DataFrame, storefront: pd.DataFrame, findings: pd.DataFrame,
                  channels: Mapping[str, pd.DataFrame] | None = None) -> list[dict[str, Any]]:
    """The corrective writes for deleted SKUs: one per PIM product and per storefront product (head or simple),
    and one per SKU a declared channel holds but should not (``channels``: each channel's frame), disabled there.

    Product models and storefront variants are reported only (no flag to turn off of their own). Records already
    disabled or archived are planned too: the apply step re-reads them and counts them unchanged.
    """
    if not len(findings):
        return []
    deleted = findings[findings["kind"] == "deleted"]
    plan: list[dict[str, Any]] = []
    pim_gone = set(deleted.loc[deleted["system"] == "pim", "record_key"])
    products = pim[(pim["entity"] == "product") & pim["sku"].isin(pim_gone)].drop_duplicates("sku")
    for sku in sorted(products["sku"].astype(str)):
        plan.append({"plan_key": f"pim:{sku}", "system": "pim", "sku": sku, "action": "disable"})
    shop_gone = set(deleted.loc[deleted["system"] == "storefront", "record_key"])
    heads = storefront[storefront["row_kind"].isin(["head", "simple"]) & storefront["sku"].isin(shop_gone)]
    for row in heads.drop_duplicates("sku").sort_values("sku").itertuples(index=False):
        plan.append({"plan_key": f"storefront:{row.sku}", "system": "storefront", "sku": str(row.sku),
                     "action": "archive", "handle": row.handle})
    for name, frame in sorted((channels or {}).items()):
        gone = deleted[deleted["system"] == name]
        why = dict(zip(gone["record_key"].astype(str), gone["owner_value"], strict=True))
        for sku in sorted(set(frame["sku"].dropna().astype(str)) & set(why)):
            plan.append({"plan_key": f"{name}:{sku}", "system": name, "sku": sku, "action": "disable",
                         "why": why[sku]})
    return plan


def _held_back(planned: int, skus: int, *, allowed: bool, limit: int, nothing: str, off: str,
               too_many: str) -> str | None:
    """Why a corrective step of this flow writes nothing (None when it may go ahead): nothing planned, turned off,
    or more SKUs at once than its guard allows (which means a broken read, not a decision)."""
    if not planned:
        return nothing
    if not allowed:
        return off
    if skus > limit:
        log.warning(too_many)
        return too_many
    return None


def apply_deletions(load_id: str, systems: Systems, *, apply: bool = True,
                    max_deletions: int = MAX_DELETIONS) -> dict[str, Any]:
    """Disable deleted SKUs in the PIM and archive them on the storefront, each audited and delta-logged.

    With ``apply`` false, or more planned than ``max_deletions``, nothing is written and the planned records count
    unchanged. Current state is re-read first, so a retry after a partial run writes only what is left.
    """
    ctx = RunContext.attach(load_id)
    plan = ctx.staged("deletion_plan")
    skus = {p["sku"] for p in plan}
    outcome: dict[str, Any] = {"planned": len(plan), "applied": False, "reason": None,
                               "disabled": [], "archived": [], "channel_disabled": [], "unchanged": [], "failed": [],
                               "held": []}
    counts = {s: {"delivered": 0, "unchanged": 0, "dead_lettered": 0}
              for s in ("pim", "storefront", *sorted({str(p["system"]) for p in plan}))}
    outcome["reason"] = _held_back(
        len(plan), len(skus), allowed=apply, limit=max_deletions, nothing="nothing deleted",
        off="apply_deletions is off: findings only",
        too_many=f"{len(skus)} SKUs look deleted, more than max_deletions={max_deletions}: nothing applied (check "
                 "the ERP read before raising the limit)")
    if outcome["reason"] is None:
        outcome["applied"] = True
        # a declared freeze holding deletions holds them for a person to release (flows/freeze.py)
        going, held = freeze.hold_deletions(ctx, plan)
        outcome["held"] = [f"{p['system']}:{p['sku']}" for p in held]
        for p in held:
            counts[p["system"]]["unchanged"] += 1
        for system in counts:
            mine = [p for p in going if p["system"] == system]
            if mine or system in ("pim", "storefront"):
                apply_for(system)(ctx, systems, mine, outcome, counts[system])
    if not outcome["applied"]:
        for p in plan:
            counts[p["system"]]["unchanged"] += 1
    ctx.flush_audit()
    for system, c in counts.items():
        ctx.count(hop_of(system), **c)
    ctx.stage("deletions", [{"key": "deletions", **outcome}], key="key")
    return {k: (len(v) if isinstance(v, list) else v) for k, v in outcome.items()}


def _disable_in_pim(ctx: RunContext, systems: Systems, plan: Sequence[Mapping[str, Any]],
                    outcome: dict[str, Any], counts: dict[str, int]) -> None:
    current: dict[str, bool] = {}
    for batch in chunked([p["sku"] for p in plan], 100):
        for page in systems.pim.iter_products(search={"identifier": [{"operator": "IN", "value": list(batch)}]}):
            current.update({str(p["identifier"]): bool(p.get("enabled", True)) for p in page.records})
    to_disable = []
    for p in plan:
        if current.get(p["sku"]) is True:
            to_disable.append(p["sku"])
        else:  # already disabled (an earlier run or a retry), or gone from the PIM since the read
            counts["unchanged"] += 1
            outcome["unchanged"].append(f"pim:{p['sku']}")
            ctx.audit("pim", "product", p["sku"], "write", "unchanged",
                      response={"message": "already disabled" if p["sku"] in current else "no longer in the PIM"})
    letters = []
    for batch in chunked(to_disable, systems.pim.batch_size):
        results = systems.pim.upsert_products([{"identifier": sku, "enabled": False} for sku in batch])
        for res in results:
            reason = "SKU deleted in the ERP (weekly reconciliation)"
            if res.ok:
                counts["delivered"] += 1
                outcome["disabled"].append(res.key)
                changes = ctx.record_deltas("pim", "product", res.key, {"enabled": True}, {"enabled": False})
                ctx.audit("pim", "product", res.key, "write", res.outcome.value, request=res.sent,
                          response={"status": res.status, "message": reason}, changes=changes)
            else:
                counts["dead_lettered"] += 1
                outcome["failed"].append(f"pim:{res.key}")
                ctx.audit("pim", "product", res.key, "write", "dead_lettered", request=res.sent,
                          response={"status": res.status, "message": res.message})
                letters.append({"entity": "product", "record_key": res.key, "source_system": "erp",
                                "target_system": "pim", "reason_kind": "api",
                                "expectation": f"http_{res.status}" if res.status else "no_answer",
                                "reason": f"could not disable a deleted SKU: {res.message}", "payload": res.sent})
    ctx.dead_letter(letters, hop=None)  # counted with the hop's other outcomes


def _archive_on_storefront(ctx: RunContext, systems: Systems, plan: Sequence[Mapping[str, Any]],
                           outcome: dict[str, Any], counts: dict[str, int]) -> None:
    archived = STOREFRONT_STATUS[LifecycleStatus.DISCONTINUED]
    letters = []
    for p in plan:
        handle = str(p.get("handle") or "")
        result: WriteResult | None = None
        before: str | None = None
        try:
            existing = systems.storefront.find_by_handle(handle) if handle else None
            if existing is None or existing.get("status") == archived:
                counts["unchanged"] += 1
                outcome["unchanged"].append(f"storefront:{p['sku']}")
                ctx.audit("storefront", "product", handle or p["sku"], "write", "unchanged",
                          response={"message": "already archived" if existing else "no longer on the storefront"})
                continue
            before = existing.get("status")
            result = systems.storefront.upsert_product({"handle": handle, "status": archived})
            error = None if result.ok else result.message
        except RecordError as exc:  # this product's problem only: dead-letter it, archive the others
            error = str(exc)
        if result is not None and result.ok:
            counts["delivered"] += 1
            outcome["archived"].append(p["sku"])
            # Keyed by handle, like every storefront product write of the nightly flow (what rollback replays).
            changes = ctx.record_deltas("storefront", "product", handle, {"status": before}, {"status": archived})
            ctx.audit("storefront", "product", handle, "write", "ok", request={"sku": p["sku"], "status": archived},
                      response={"status": result.status, "message": "SKU deleted in the ERP"}, changes=changes)
        else:
            counts["dead_lettered"] += 1
            outcome["failed"].append(f"storefront:{p['sku']}")
            ctx.audit("storefront", "product", handle, "write", "dead_lettered",
                      request={"sku": p["sku"], "status": archived}, response={"message": error})
            letters.append({"entity": "product", "record_key": handle, "source_system": "erp",
                            "target_system": "storefront", "reason_kind": "api", "expectation": "archive",
                            "reason": f"could not archive a deleted SKU: {error}", "payload": {"sku": p["sku"]}})
    ctx.dead_letter(letters, hop=None)


def _disable_on_channel(channel: str, ctx: RunContext, systems: Systems, plan: Sequence[Mapping[str, Any]],
                        outcome: dict[str, Any], counts: dict[str, int]) -> None:
    """Disable (status 2) on a declared channel the SKUs it should no longer hold, each audited and delta-logged
    (so ``sync_rollback`` can show what changed); reversible, nothing is removed from the channel. Current state is
    re-read first. A channel down dead-letters what is left as that channel's letters (kind ``channel``)."""
    from catalog_sync.connectors import TransientError
    from catalog_sync.connectors.adobe_mapping import DISABLED

    if not plan:
        return
    client = systems.channels.get(channel)
    letters: list[dict[str, Any]] = []

    def letter(sku: str, kind: str, expectation: str, reason: str, sent: Any = None) -> None:
        counts["dead_lettered"] += 1
        outcome["failed"].append(f"{channel}:{sku}")
        ctx.audit(channel, "product", sku, "write", "dead_lettered", request=sent, response={"message": reason})
        letters.append({"entity": "product", "record_key": sku, "source_system": "pim", "target_system": channel,
                        "reason_kind": kind, "expectation": expectation,
                        "reason": f"could not disable a SKU the channel should no longer hold: {reason}",
                        "payload": sent})

    todo: list[tuple[str, Any]] = []
    try:
        if client is None:
            raise LookupError(f"no client for {channel} here (its Airflow connection is not configured)")
        for p in plan:
            current = client.get_product(str(p["sku"]))
            if current is None or current.get("status") == DISABLED:
                counts["unchanged"] += 1
                outcome["unchanged"].append(f"{channel}:{p['sku']}")
                ctx.audit(channel, "product", str(p["sku"]), "write", "unchanged", response={
                    "message": "already disabled" if current else f"no longer on {channel}"})
            else:
                todo.append((str(p["sku"]), current.get("status")))
        results = client.upsert_products([{"sku": sku, "status": DISABLED} for sku, _ in todo]) if todo else []
    except (TransientError, LookupError) as exc:
        done = set(outcome["unchanged"])
        for p in plan:
            if f"{channel}:{p['sku']}" not in done:
                letter(str(p["sku"]), "channel", "channel_unavailable", str(exc))
        ctx.dead_letter(letters, hop=None)
        return
    before = dict(todo)
    why = {str(p["sku"]): p.get("why") for p in plan}
    for res in results:
        if res.ok:
            counts["delivered"] += 1
            outcome.setdefault("channel_disabled", []).append(f"{channel}:{res.key}")
            changes = ctx.record_deltas(channel, "product", res.key, {"status": before.get(res.key)},
                                        {"status": DISABLED})
            ctx.audit(channel, "product", res.key, "write", res.outcome.value, request=res.sent,
                      response={"status": res.status, "message": f"no longer sold on {channel}: {why.get(res.key)}"},
                      changes=changes)
        else:
            letter(res.key, "api", f"bulk_status_{res.status}" if res.status else "no_answer", str(res.message),
                   res.sent)
    ctx.dead_letter(letters, hop=None)  # counted with the hop's other outcomes


Apply = Callable[[RunContext, Systems, Sequence[Mapping[str, Any]], dict[str, Any], dict[str, int]], None]


def apply_for(system: str) -> Apply:
    """The corrective write of a planned deletion on ``system``: disable in the PIM, archive on the storefront,
    disable on a declared channel."""
    if system == "pim":
        return _disable_in_pim
    if system == "storefront":
        return _archive_on_storefront
    return functools.partial(_disable_on_channel, system)


def repair_showable(load_id: str, systems: Systems, *, repair: bool = True, max_repairs: int = MAX_REPAIRS,
                    hub_url: str | None = None) -> dict[str, Any]:
    """Repair the storefront products the compare step found drifted from the showable rule, through the path the
    image_windows sweep takes (``republish.repair_showable``: PIM links, storefront gallery and status, CDN purge
    of the pages it changed, each SKU verified on the live page).

    The repairs are a seasonal-republish run of their own, whose load id the outcome names; its ``triage`` hop
    accounts for each SKU (delivered, unchanged, or dead-lettered with the reason it could not be fixed). With
    ``repair`` false, or more SKUs than ``max_repairs`` (a broken read looks like drift everywhere), nothing is
    written and the findings stand.
    """
    from catalog_sync.flows import republish

    ctx = RunContext.attach(load_id, hub_url)
    skus = sorted(str(r["sku"]) for r in ctx.staged("showable_plan"))
    outcome: dict[str, Any] = {"planned": len(skus), "applied": False, "reason": None, "load_id": None,
                               "repaired": {}}
    outcome["reason"] = _held_back(
        len(skus), len(skus), allowed=repair, limit=max_repairs, nothing="no showable drift",
        off="repair_showable is off: findings only",
        too_many=f"{len(skus)} products drifted from the showable rule, more than max_repairs={max_repairs}: "
                 "nothing repaired (check the DAM and storefront reads first)")
    if outcome["reason"] is None:
        outcome.update(republish.repair_showable(systems, skus, reason=f"weekly reconciliation {load_id}",
                                                 run_id=f"{load_id}:showable", hub_url=hub_url), applied=True)
    ctx.stage("showable_repairs", [{"key": "showable_repairs", **outcome}], key="key")
    return outcome


def alert_on_divergence(load_id: str, send: Callable[[list[Alert]], list[dict[str, Any]]],
                        rules: AlertRules | None = None) -> dict[str, Any]:
    """Raise the lifecycle-divergence alert (``catalog_sync.alerting``, limit ``alerts.lifecycle_divergence_share``
    of ``thresholds.yaml``) when the run's share passes it, and hand it to ``send`` (the notifiers' ``dispatch``,
    which holds back a repeat inside the suppression window). Returns what happened, as the run's details keep it.
    """
    from catalog_sync.alerting import lifecycle_divergence_alert, load_rules

    rules = rules or load_rules()
    ctx = RunContext.attach(load_id)
    divergence = _staged_one(ctx, "summary").get("lifecycle_divergence") or {}
    alert = lifecycle_divergence_alert(load_id, divergence, rules, flow=FLOW)
    sent = send([alert]) if alert is not None else []
    record: dict[str, Any] = {"key": "alert", "threshold": rules.lifecycle_divergence_share,
                              "share": float(divergence.get("share") or 0.0), "raised": alert is not None,
                              "sent": bool(sent), "suppressed": alert is not None and not sent,
                              "reached": list(sent[0]["reached"]) if sent else []}
    ctx.stage("alert", [record], key="key")
    return {k: v for k, v in record.items() if k != "key"}


def _staged_one(ctx: RunContext, stage: str) -> dict[str, Any]:
    rows = ctx.staged(stage)
    return {k: v for k, v in rows[0].items() if k != "key"} if rows else {}


def finish(load_id: str) -> dict[str, Any]:
    """Close the run with the summary, the taxonomy snapshot, the deletions and the alert in its details."""
    ctx = RunContext.attach(load_id)
    summary = _staged_one(ctx, "summary")
    details = {**summary, "deletions": _staged_one(ctx, "deletions"), "alert": _staged_one(ctx, "alert"),
               "showable_repairs": _staged_one(ctx, "showable_repairs")}
    counts = ctx.finish(details=details)
    from catalog_sync import store

    store.remove_tree(staging_dir(load_id))
    return {"counts": counts, "findings": summary.get("findings", 0), "by_kind": summary.get("by_kind", {}),
            "showable": summary.get("showable", {}), "showable_repairs": details["showable_repairs"]}


def fail(load_id: str, error: str) -> None:
    RunContext.attach(load_id).fail(error)


def run(systems: Systems, *, send: Callable[[list[Alert]], list[dict[str, Any]]], run_id: str | None = None,
        apply: bool = True, max_deletions: int = MAX_DELETIONS, repair: bool = True,
        max_repairs: int = MAX_REPAIRS, rules: AlertRules | None = None, hub_url: str | None = None) -> dict[str, Any]:
    """The whole flow in one process (the command line and tests); the DAG runs the same steps as tasks.

    ``send`` delivers the alerts (``catalog_sync.airflow.notifiers.dispatch``); ``rules`` default to
    ``thresholds.yaml``.
    """
    load_id = open_run(dag_id=None, run_id=run_id, window_start=None, window_end=None, hub_url=hub_url)
    try:
        from catalog_sync.governance.channels import load_channels

        reads = {"erp": read_erp(load_id, systems), "pim": read_pim(load_id, systems),
                 "dam": read_dam(load_id, systems), "storefront": read_storefront(load_id, systems)}
        for channel in load_channels().enabled():
            reads[channel.name] = read_channel(load_id, channel.name, systems)
        compared = compare_systems(load_id, max_deletions=max_deletions)
        deletions = apply_deletions(load_id, systems, apply=apply, max_deletions=max_deletions)
        repairs = repair_showable(load_id, systems, repair=repair, max_repairs=max_repairs, hub_url=hub_url)
        alert = alert_on_divergence(load_id, send, rules)
        done = finish(load_id)
    except Exception as exc:  # re-raised: only recorded so the hub never shows a dead run as running
        fail(load_id, f"{type(exc).__name__}: {exc}")
        raise
    return {"load_id": load_id, "reads": reads, "compare": compared, "deletions": deletions, "repairs": repairs,
            "alert": alert, **done}


__all__ = ["FLOW", "HOPS", "LAYOUTS", "FINDING_COLUMNS", "MAX_DELETIONS", "MAX_REPAIRS", "DamAssets",
           "showable_drift", "showable_report", "repair_showable",
           "FrameBuilder", "compare", "lifecycle_divergence", "taxonomy_snapshot", "normalise_erp",
           "deletion_plan", "synthetic_frames", "open_run", "read_erp", "read_pim", "read_dam", "read_storefront",
           "read_channel", "compare_channel", "channel_unavailable", "hop_of", "apply_for", "compare_systems",
           "apply_deletions", "alert_on_divergence", "finish", "fail", "run"]
