"""Failure scenarios: each puts the sandbox systems into one state that retail catalogs are known to reach.

A scenario plays the people and integrations that change systems behind the sync's back. It picks its SKUs
deterministically (candidates ordered by a hash of the scenario name and the SKU) unless told which, makes its
changes through the same helpers as the APIs (so ERP changes reach the change feed and webhooks, and PIM
``updated`` moves), and returns the SKUs it affected with what it did to each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Select, or_, select

from catalog_sync.catalog import derive
from catalog_sync.catalog.magento import slugify
from catalog_sync.domain import CHANNEL, LOCALES, AssetRole, AssetStatus, LifecycleStatus
from catalog_sync_sandbox import cdn, db
from catalog_sync_sandbox.dam import write_asset
from catalog_sync_sandbox.erp import set_price, upsert_item
from catalog_sync_sandbox.pim import merge_values
from catalog_sync_sandbox.state import SandboxState
from catalog_sync_sandbox.storefront import render_page, save_product
from catalog_sync_sandbox.supplier import add_submission

Result = dict[str, Any]


class ScenarioError(ValueError):
    """The scenario cannot run as asked (unknown name, unknown SKU, no candidate)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    symptom: str
    run: Callable[[SandboxState, list[str] | None], list[dict[str, Any]]]
    default_count: int = 3


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, symptom: str, default_count: int = 3) -> Callable[..., Any]:
    def register(fn: Callable[[SandboxState, list[str] | None], list[dict[str, Any]]]) -> Any:
        SCENARIOS[name] = Scenario(name, symptom, fn, default_count)
        return fn

    return register


def run_scenario(state: SandboxState, name: str, skus: list[str] | None = None) -> Result:
    found = SCENARIOS.get(name)
    if found is None:
        raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    changes = found.run(state, skus or None)
    affected: list[str] = []
    for change in changes:
        if change["sku"] not in affected:
            affected.append(change["sku"])
    return {"name": name, "symptom": found.symptom, "skus": affected, "changes": changes}


def _pick(state: SandboxState, name: str, query: Select[Any], skus: list[str] | None, count: int) -> list[str]:
    with state.engine.connect() as conn:
        candidates = [r[0] for r in conn.execute(query)]
    if skus:
        known = set(candidates)
        missing = [s for s in skus if s not in known]
        if missing:
            raise ScenarioError(f"{name}: not a candidate SKU here (unknown, or not in the state this scenario "
                                f"starts from): {', '.join(missing)}")
        return skus
    if not candidates:
        raise ScenarioError(f"{name}: no candidate SKU; load a catalog first")
    return sorted(candidates, key=lambda s: (derive.stable_int(name, s), s))[:count]


def _sellable_active() -> Select[Any]:
    t = db.erp_item
    return select(t.c.sku).where(t.c.product_type == "simple",
                                 t.c.lifecycle_status == LifecycleStatus.ACTIVE.value)


def _set_pim(state: SandboxState, identifier: str, values: dict[str, list[dict[str, Any]]],
             enabled: bool | None = None) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # the PIM keeps dates to the second, as Akeneo does
    with state.write_lock, state.engine.begin() as conn:
        for table, key in ((db.pim_product, "identifier"), (db.pim_product_model, "code")):
            row = conn.execute(select(table.c["values"]).where(table.c[key] == identifier)).first()
            if row is not None:
                cols: dict[str, Any] = {"values": merge_values(row[0] or {}, values), "updated": now}
                if enabled is not None and "enabled" in table.c:
                    cols["enabled"] = enabled
                conn.execute(table.update().where(table.c[key] == identifier).values(**cols))
                return
    raise ScenarioError(f"{identifier} is not in the PIM")


def _asset_id(prefix: str, sku: str) -> str:
    return f"{prefix}-{derive.stable_int(prefix, sku) % 10**12:012d}"


# ------------------------------------------------------------------------------------------------ scenarios
@scenario(
    "erp_pre_active_with_approved_seasonal_images",
    "The DAM holds approved, current seasonal images for the SKU, yet the storefront keeps the old picture or none: "
    "the ERP still says pre-active, so nothing downstream will publish the item or its new images.",
)
def _pre_active(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    query = _sellable_active().where(db.erp_item.c.sku.in_(select(db.dam_asset.c.sku)))
    out = []
    for sku in _pick(state, "erp_pre_active_with_approved_seasonal_images", query, skus, 3):
        upsert_item(state, sku, {"lifecycle_status": LifecycleStatus.PRE_ACTIVE.value})
        asset_id = _asset_id("SEA", sku)
        write_asset(state, asset_id, {
            "sku": sku, "role": AssetRole.SEASONAL, "status": AssetStatus.APPROVED,
            "valid_from": datetime.now(UTC) - timedelta(days=1), "rights_regions": ["US", "CA", "EU", "UK"],
            "rights_expires_at": datetime.now(UTC) + timedelta(days=180),
            "filename": f"{slugify(sku)}_seasonal.png"})
        out.append({"sku": sku, "erp": {"lifecycle_status": "pre-active"}, "dam": {"asset": asset_id,
                    "role": "seasonal", "status": "approved"}})
    return out


@scenario(
    "dam_valid_from_in_future",
    "An approved hero image is not live yet (valid_from next month); publishing it early shows an embargoed "
    "picture, ignoring it leaves the product without a main image until the date passes.",
)
def _future(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.dam_asset
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    # hero images whose rights outlast the embargo: once it lifts, they are what shoppers should see
    lead = (t.c.role == AssetRole.HERO.value, or_(t.c.rights_expires_at.is_(None), t.c.rights_expires_at > start))
    query = select(t.c.sku).distinct().where(t.c.sku.is_not(None), *lead)
    out = []
    for sku in _pick(state, "dam_valid_from_in_future", query, skus, 3):
        with state.engine.connect() as conn:
            ids = list(conn.execute(select(t.c.id).where(t.c.sku == sku, *lead)).scalars())
        for asset_id in ids:
            write_asset(state, asset_id, {"status": AssetStatus.APPROVED, "valid_from": start})
        out.append({"sku": sku, "dam": {"assets": ids, "valid_from": start.isoformat()}})
    return out


@scenario(
    "dam_rights_expired",
    "A gallery image whose usage licence ran out yesterday is still on the product page: the rights holder's "
    "deadline passed and nobody took the picture down.",
    default_count=1,
)
def _rights_expired(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.dam_asset
    now = datetime.now(UTC).replace(microsecond=0)
    shown = (t.c.role == AssetRole.GALLERY.value, t.c.status == AssetStatus.APPROVED.value,
             or_(t.c.rights_expires_at.is_(None), t.c.rights_expires_at > now))
    query = select(t.c.sku).distinct().where(t.c.sku.is_not(None), *shown)
    out = []
    for sku in _pick(state, "dam_rights_expired", query, skus, 1):
        with state.engine.connect() as conn:
            asset_id = str(conn.execute(select(t.c.id).where(t.c.sku == sku, *shown).order_by(t.c.id)).scalars().first()
                           or "")
        if not asset_id:
            raise ScenarioError(f"dam_rights_expired: {sku} has no gallery image shoppers may see")
        expired = now - timedelta(days=1)
        write_asset(state, asset_id, {"rights_expires_at": expired})
        out.append({"sku": sku, "dam": {"asset": asset_id, "rights_expires_at": expired.isoformat()}})
    return out


@scenario(
    "orphan_assets",
    "Gallery images vanish from product pages: their DAM assets lost the SKU link and now belong to no product.",
)
def _orphans(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.dam_asset
    # gallery images a shopper could see (approved, rights in force): the ones whose loss a page shows
    shown = (t.c.role == AssetRole.GALLERY.value, t.c.status == AssetStatus.APPROVED.value,
             or_(t.c.rights_expires_at.is_(None), t.c.rights_expires_at > datetime.now(UTC)))
    query = select(t.c.sku).distinct().where(t.c.sku.is_not(None), *shown)
    out = []
    for sku in _pick(state, "orphan_assets", query, skus, 3):
        with state.engine.connect() as conn:
            ids = list(conn.execute(select(t.c.id).where(t.c.sku == sku, *shown)).scalars())
        for asset_id in ids:
            write_asset(state, asset_id, {"sku": None})
        out.append({"sku": sku, "dam": {"orphaned_assets": ids}})
    return out


@scenario(
    "pim_cached_draft_while_erp_active",
    "The ERP made the item active but the PIM still holds its old cached draft state (disabled, lifecycle draft), "
    "so the product never reaches the storefront.",
)
def _pim_draft(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    query = _sellable_active().where(db.erp_item.c.sku.in_(select(db.pim_product.c.identifier)))
    out = []
    for sku in _pick(state, "pim_cached_draft_while_erp_active", query, skus, 3):
        _set_pim(state, sku, {"lifecycle_status": [{"locale": None, "scope": None, "data": "draft"}]}, enabled=False)
        out.append({"sku": sku, "pim": {"lifecycle_status": "draft", "enabled": False}, "erp": {"lifecycle_status":
                    "active"}})
    return out


@scenario(
    "supplier_stale_inactive_flag",
    "A supplier's content edit arrives flagged inactive for an item the ERP sells as active; applying the flag "
    "would pull a live product from sale.",
)
def _stale_flag(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for sku in _pick(state, "supplier_stale_inactive_flag", _sellable_active(), skus, 3):
        with state.engine.connect() as conn:
            vendor = conn.execute(select(db.erp_item.c.vendor_name).where(db.erp_item.c.sku == sku)).scalar()
        sub = add_submission(state, vendor or "Unknown supplier", sku,
                             {"short_description": f"Updated care instructions for {sku}."}, "inactive")
        out.append({"sku": sku, "supplier": {"submission": sub["id"], "lifecycle_flag": "inactive"},
                    "erp": {"lifecycle_status": "active"}})
    return out


@scenario(
    "storefront_stale_cached_page",
    "The admin API shows the new price but shoppers still see the old one: the CDN serves the product page from "
    "its cache (X-Cache: HIT) until its TTL runs out or it is purged.",
    default_count=1,
)
def _stale_page(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.erp_item
    query = select(t.c.sku).where(t.c.product_type == "simple", t.c.lifecycle_status == "active")
    out = []
    for sku in _pick(state, "storefront_stale_cached_page", query, skus, 1):
        now = datetime.now(UTC)
        with state.write_lock, state.engine.begin() as conn:
            ix = db.storefront_variant_index
            found = conn.execute(select(ix.c.product_id).where(ix.c.sku == sku)).first()
            if found is not None:
                doc = dict(conn.execute(select(db.storefront_product.c.doc)
                                        .where(db.storefront_product.c.id == found[0])).one()[0])
            else:
                doc = save_product(conn, _storefront_doc(conn, sku), None)
            doc["status"] = "active"
            status, page = render_page(doc)
            cdn.cache_page(conn, cdn.product_path(doc["handle"]), status, page, now, [cdn.surrogate_key(doc["handle"])])
            variant = next(v for v in doc["variants"] if v.get("sku") == sku)
            old_price = variant.get("price")
            variant["price"] = f"{float(old_price or 0) * 1.25 + 1:.2f}"
            doc = save_product(conn, {"variants": doc["variants"], "status": "active"}, doc)
        out.append({"sku": sku, "storefront": {"product_id": doc["id"], "handle": doc["handle"],
                                               "cached_price": old_price, "current_price": variant["price"]}})
    return out


def _storefront_doc(conn: Any, sku: str) -> dict[str, Any]:
    item = conn.execute(select(db.erp_item).where(db.erp_item.c.sku == sku)).one()
    price = conn.execute(select(db.erp_price.c.price).where(db.erp_price.c.sku == sku)).scalar()
    values = conn.execute(select(db.pim_product.c["values"]).where(db.pim_product.c.identifier == sku)).scalar() or {}

    def text(attr: str) -> str | None:
        for entry in values.get(attr, []):
            if entry.get("locale") in (None, LOCALES[0]):
                return str(entry.get("data"))
        return None

    title = text("name") or sku
    return {"title": title, "body_html": text("description") or "", "handle": text("url_key") or slugify(sku),
            "vendor": item.vendor_name, "product_type": item.product_group or "", "status": "active",
            "variants": [{"sku": sku, "price": price or 0, "barcode": item.upc, "option1": text("size"),
                          "option2": text("color"), "weight": item.weight, "weight_unit": "lb"}]}


@scenario(
    "variants_left_behind",
    "A configurable parent moved to seasonal hold in the ERP but its size/colour variants stayed active, so "
    "children of a held product still look sellable.",
    default_count=1,
)
def _left_behind(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.erp_item
    query = select(t.c.sku).where(t.c.product_type == "configurable",
                                  t.c.lifecycle_status == LifecycleStatus.ACTIVE.value)
    if skus:  # a variant given stands for its parent
        with state.engine.connect() as conn:
            skus = [conn.execute(select(t.c.parent_sku).where(t.c.sku == s)).scalar() or s for s in skus]
    out = []
    for parent in _pick(state, "variants_left_behind", query, skus, 1):
        upsert_item(state, parent, {"lifecycle_status": LifecycleStatus.SEASONAL_HOLD.value})
        out.append({"sku": parent, "erp": {"lifecycle_status": "seasonal-hold", "role": "parent"}})
        with state.engine.connect() as conn:
            children = list(conn.execute(select(t.c.sku).where(t.c.parent_sku == parent).order_by(t.c.sku))
                            .scalars())
        out.extend({"sku": c, "erp": {"lifecycle_status": "active", "role": "variant", "parent": parent}}
                   for c in children)
    return out


@scenario(
    "uom_spelling_variants",
    'The same unit arrives spelled "each", "ea" or "Each" instead of "EA"; a channel that matches units '
    "literally rejects or mis-sells the items.",
)
def _uom(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    spellings = ("each", "ea", "Each")
    query = select(db.erp_item.c.sku).where(db.erp_item.c.uom == "EA")
    out = []
    for i, sku in enumerate(_pick(state, "uom_spelling_variants", query, skus, 3)):
        upsert_item(state, sku, {"uom": spellings[i % len(spellings)]})
        out.append({"sku": sku, "erp": {"uom": spellings[i % len(spellings)]}})
    return out


@scenario(
    "vendor_name_variants",
    "One vendor appears under several spellings (\"... Company\" and \"... Co.\"), splitting its products in "
    "reports and breaking vendor-based rules.",
)
def _vendor(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    query = select(db.erp_item.c.sku).where(db.erp_item.c.vendor_name.in_(list(derive.VENDORS)))
    out = []
    for i, sku in enumerate(_pick(state, "vendor_name_variants", query, skus, 3)):
        with state.engine.connect() as conn:
            vendor = conn.execute(select(db.erp_item.c.vendor_name).where(db.erp_item.c.sku == sku)).scalar()
        spelling = derive.VENDORS[str(vendor)][i % 2]
        upsert_item(state, sku, {"vendor_name": spelling})
        out.append({"sku": sku, "erp": {"vendor_name": spelling, "canonical": vendor}})
    return out


@scenario(
    "duplicate_skus_and_upcs",
    "Two items share one UPC, and a second item exists whose SKU differs from another only by letter case; "
    "channels keyed by barcode or by case-insensitive SKU merge or reject them.",
    default_count=2,
)
def _duplicates(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.erp_item
    query = select(t.c.sku).where(t.c.product_type == "simple")
    picked = _pick(state, "duplicate_skus_and_upcs", query, skus, 2)
    if len(picked) < 2:
        raise ScenarioError("duplicate_skus_and_upcs needs two SKUs")
    first, second = picked[0], picked[1]
    with state.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.sku == first)).one()._asdict()
    upsert_item(state, second, {"upc": row["upc"]})
    twin = first.lower() if first.lower() != first else first.upper()
    copy = {k: v for k, v in row.items() if k not in {"sku", "updated_at"}}
    upsert_item(state, twin, copy)
    return [
        {"sku": first, "erp": {"upc": row["upc"]}},
        {"sku": second, "erp": {"upc": row["upc"], "duplicate_of": first}},
        {"sku": twin, "erp": {"upc": row["upc"], "case_duplicate_of": first}},
    ]


@scenario(
    "price_out_of_range_for_category",
    "A live price far outside its product group's band (a 50-cent jacket, a 25,000-dollar hoodie) is about to be "
    "published.",
    default_count=2,
)
def _price(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    prices = (0.5, 25000.0)
    query = select(db.erp_price.c.sku).where(db.erp_price.c.sku.in_(select(db.erp_item.c.sku).where(
        db.erp_item.c.product_type == "simple")))
    out = []
    for i, sku in enumerate(_pick(state, "price_out_of_range_for_category", query, skus, 2)):
        price = prices[i % 2]
        set_price(state, sku, price, "USD")
        upsert_item(state, sku, {"reference_price": price, "currency": "USD"})
        out.append({"sku": sku, "erp": {"price": price}})
    return out


@scenario(
    "description_breaks_channel_rules",
    "Product copy the channel refuses: one description far too long, one carrying a <script> tag, one empty.",
)
def _descriptions(state: SandboxState, skus: list[str] | None) -> list[dict[str, Any]]:
    t = db.pim_product
    query = select(t.c.identifier).where(t.c.identifier.in_(_sellable_active()))
    bad = (
        ("too_long", "<p>" + ("Soft, breathable fabric for every season. " * 300) + "</p>"),
        ("script", "<p>Lightweight training layer.</p><script>document.location='https://example.invalid'"
                   "</script>"),
        ("empty", ""),
    )
    out = []
    for i, sku in enumerate(_pick(state, "description_breaks_channel_rules", query, skus, 3)):
        kind, text = bad[i % len(bad)]
        with state.write_lock, state.engine.begin() as conn:
            values = dict(conn.execute(select(t.c["values"]).where(t.c.identifier == sku)).scalar() or {})
            kept = [e for e in values.get("description", [])
                    if (e.get("locale"), e.get("scope")) != (LOCALES[0], CHANNEL)]
            # written straight to the table, as a legacy import would: the PIM API would refuse an empty value
            values["description"] = [*kept, {"locale": LOCALES[0], "scope": CHANNEL, "data": text}]
            conn.execute(t.update().where(t.c.identifier == sku).values(
                values=values, updated=datetime.now(UTC).replace(microsecond=0)))
        out.append({"sku": sku, "pim": {"description": kind, "length": len(text)}})
    return out


#: name -> symptom, for listings.
def catalogue() -> list[dict[str, str]]:
    return [{"name": s.name, "symptom": s.symptom} for s in SCENARIOS.values()]


NAMES: Final = tuple(SCENARIOS)
