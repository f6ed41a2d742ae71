"""Why is this SKU not on the storefront? One SKU followed through every system, link by link.

The chain is walked in the order the lifecycle signal travels: the ERP's lifecycle flag, the DAM's assets, the
PIM's copy of the flag, the storefront's product, the page a shopper is served, and finally the supplier portal,
whose write-backs can re-break a chain that was fixed. The first link that fails is where to look first.

``explain_sku`` is the read side the seasonal republish (``catalog_sync.flows.republish``) triages with, the
``catalog-sync explain`` command prints, and the UI's SKU trace page renders. It only reads. The shopper page is
read as shoppers get it, through the CDN (``Systems.cdn``; the storefront's own page in a deployment without
one), so the one side effect is that a cache miss fills the CDN's cache, as any shopper's visit would.

Beside the chain, ``channels`` gives the SKU's state on each declared sales channel beyond the storefront
(``governance/channels.yaml``): its last write there as the hub audited it, its open letters for that channel, and
the product the channel shows now when its client is configured.

Boundary: no Airflow here, and nothing a connector was configured with (keys, tokens) reaches the result.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from catalog_sync.connectors import RecordError
from catalog_sync.connectors.http import require_keys
from catalog_sync.connectors.mapping import akeneo_product_to_canonical, storefront_handle
from catalog_sync.domain import STOREFRONT_STATUS, AssetRole, AssetStatus, LifecycleStatus
from catalog_sync.flows.systems import Systems
from catalog_sync.showable import gallery_key, parse_ts, showable, storefront_region, why_hidden

log = logging.getLogger(__name__)

#: The links of the chain, in the order they are walked (and the UI lists them).
CHAIN: Final[tuple[str, ...]] = (
    "erp_lifecycle",
    "dam_assets",
    "pim_vs_erp",
    "storefront_feed",
    "shopper_page",
    "supplier_writeback",
)
#: The system each link is about (where a failure is dead-lettered and what the verdict names).
LINK_SYSTEM: Final[dict[str, str]] = {
    "erp_lifecycle": "erp",
    "dam_assets": "dam",
    "pim_vs_erp": "pim",
    "storefront_feed": "storefront",
    "shopper_page": "storefront",
    "supplier_writeback": "supplier",
}
#: Which image leads a SKU's page: in a seasonal push the seasonal picture is the one shoppers must see.
LEAD_ORDER: Final[dict[str, int]] = {AssetRole.SEASONAL: 0, AssetRole.HERO: 1, AssetRole.GALLERY: 2,
                                     AssetRole.SWATCH: 3}
#: Roles whose embargo (``valid_from`` in the future) blanks a product's main picture.
LEAD_ROLES: Final[frozenset[str]] = frozenset({AssetRole.SEASONAL.value, AssetRole.HERO.value})
#: The supplier portal's flag values that contradict an ERP lifecycle of ``active``.
STALE_SUPPLIER_FLAGS: Final[frozenset[str]] = frozenset({"inactive"})
_SECRET_KEY = re.compile(r"pass|secret|token|api[_-]?key|authorization|credential", re.IGNORECASE)
_UPDATED_AT = re.compile(r'data-updated-at="([^"]*)"')


class UnknownSku(LookupError):
    """No system (ERP, PIM, DAM, storefront) knows the SKU."""


# --- reading ---------------------------------------------------------------------------------------------------


def eligible(asset: Mapping[str, Any], now: datetime) -> bool:
    """May this asset be shown on the storefront now: the one rule of :mod:`catalog_sync.showable`, for the
    storefront channel's region."""
    return showable(asset, now, storefront_region())


def rendition(asset: Mapping[str, Any]) -> str | None:
    """The URL the storefront shows for an asset (the DAM's ``ecommerce`` rendition)."""
    return (asset.get("renditions") or {}).get("ecommerce")


def _own(record: dict[str, Any] | None, key: str, sku: str, system: str) -> dict[str, Any] | None:
    """``record`` when it is the one asked for; None when the system answered with another record.

    A lookup that reaches another record (an identifier sent unencoded, ``MH01?x=1`` answered as ``MH01``) must not
    be traced as this SKU's: the trace would show one SKU's state under another's name.
    """
    if record is not None and str(record.get(key)) != sku:
        log.warning("%s answered the look-up of %r with record %r; not taken as that SKU's", system, sku,
                    record.get(key))
        return None
    return record


@dataclass
class Reader:
    """Memoised reads of the five systems for one pass over a set of SKUs.

    A family's parent, storefront product and shopper page are read once however many of its variants are
    traced; a new pass (after repairs) needs a new ``Reader`` so it sees the systems as they now are.
    """

    systems: Systems
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    def _memo(self, kind: str, key: str, load: Any) -> Any:
        if (kind, key) not in self._cache:
            self._cache[(kind, key)] = load()
        return self._cache[(kind, key)]

    def erp(self, sku: str) -> dict[str, Any] | None:
        return self._memo("erp", sku, lambda: _own(self.systems.erp.get_item(sku), "sku", sku, "erp"))

    def pim_product(self, sku: str) -> dict[str, Any] | None:
        return self._memo("pim_product", sku,
                          lambda: _own(self.systems.pim.get_product(sku), "identifier", sku, "pim"))

    def pim_model(self, sku: str) -> dict[str, Any] | None:
        return self._memo("pim_model", sku,
                          lambda: _own(self.systems.pim.get_product_model(sku), "code", sku, "pim"))

    def assets_of(self, sku: str) -> list[dict[str, Any]]:
        """Every DAM asset tagged with ``sku`` (one filtered call; a SKU has a handful)."""
        def load() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            page: int | None = 1
            while page is not None:
                body = self.systems.dam.get_json("api/assets", {"sku": sku, "page": page, "per_page": 500},
                                                 validate=require_keys("assets"))
                out.extend(a for a in body["assets"] if isinstance(a, dict) and a.get("sku") == sku)
                page = body.get("next_page")
            return out

        return self._memo("assets_of", sku, load)

    def asset(self, asset_id: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            try:
                return self.systems.dam.get_asset(asset_id)
            except RecordError:  # a malformed asset answers like a missing one here: it cannot be shown
                return None

        return self._memo("asset", asset_id, load)

    def storefront(self, handle: str) -> dict[str, Any] | None:
        return self._memo("storefront", handle,
                          lambda: self.systems.storefront.find_by_handle(handle))

    def shopper_page(self, handle: str) -> Any:
        """The page shoppers get: the CDN's copy, or the storefront's own page when no CDN fronts the shop."""
        cdn = self.systems.cdn
        return self._memo("page", handle, lambda: (cdn.shopper_page(handle) if cdn is not None
                                                   else self.systems.storefront.shopper_page(handle)))

    def pending_submissions(self, sku: str) -> list[dict[str, Any]]:
        def load() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            page: int | None = 1
            while page is not None:
                body = self.systems.supplier.get_json(
                    "api/submissions", {"status": "pending", "sku": sku, "page": page},
                    validate=require_keys("submissions"))
                out.extend(s for s in body["submissions"] if isinstance(s, dict) and s.get("sku") == sku)
                page = body.get("next_page")
            return out

        return self._memo("submissions", sku, load)

    def forget(self, kind: str, key: str) -> None:
        """Drop one memoised read (after this pass itself changed it)."""
        self._cache.pop((kind, key), None)


@dataclass
class SkuState:
    """Everything the chain needs about one SKU, as read from the systems."""

    sku: str
    erp: dict[str, Any] | None
    root_sku: str  # the configurable parent of a variant, else the SKU itself
    root_erp: dict[str, Any] | None
    pim: dict[str, Any] | None  # canonical record of the PIM product, or of the product model for a parent
    pim_kind: str | None  # "product" | "product_model"
    pim_enabled: bool | None
    pim_links: list[str]  # DAM asset ids the PIM links to this SKU
    root_pim: dict[str, Any] | None
    assets: list[dict[str, Any]]  # tagged with the SKU in the DAM, plus those the PIM links to it
    handle: str | None
    storefront: dict[str, Any] | None
    page: Any  # connectors.cdn.ShopperPage (or the storefront's, without a CDN) | None
    submissions: list[dict[str, Any]]

    @property
    def known(self) -> bool:
        return bool(self.erp or self.pim or self.assets or self.storefront)

    def eligible_assets(self, now: datetime) -> list[dict[str, Any]]:
        """The SKU's own assets that may be shown now, lead image first."""
        mine = [a for a in self.assets if a.get("sku") == self.sku and eligible(a, now) and rendition(a)]
        return sorted(mine, key=lambda a: (LEAD_ORDER.get(str(a.get("role")), 9), str(a.get("id"))))


def _links(product: Mapping[str, Any] | None) -> list[str]:
    if not product:
        return []
    return [str(a) for a in akeneo_product_to_canonical(product).get("asset_links") or []]


def read_sku(reader: Reader, sku: str) -> SkuState:
    """Read one SKU (and the family it belongs to) from every system."""
    erp = reader.erp(sku)
    model = reader.pim_model(sku)
    product = reader.pim_product(sku)
    # A configurable parent lives in the PIM as a product model; the nightly keeps the parent's own asset links
    # on a product of the same identifier, so a parent's links are the union of both.
    is_parent = model is not None or (erp or {}).get("product_type") == "configurable"
    if is_parent:
        pim = akeneo_product_to_canonical(model) if model else None
        kind = "product_model" if model else None
        enabled = None  # product models carry no enabled flag
        links = list(dict.fromkeys(_links(model) + _links(product)))
    else:
        pim = akeneo_product_to_canonical(product) if product else None
        kind = "product" if product else None
        enabled = bool(product.get("enabled")) if product else None
        links = _links(product)
    parent_sku = (erp or {}).get("parent_sku") or (pim or {}).get("parent_sku")
    root_sku = str(parent_sku) if parent_sku and not is_parent else sku
    root_erp = reader.erp(root_sku) if root_sku != sku else erp
    if root_sku == sku:
        root_pim = pim
    else:
        root_model = reader.pim_model(root_sku)
        root_pim = akeneo_product_to_canonical(root_model) if root_model else None
    assets = list(reader.assets_of(sku))
    seen = {str(a.get("id")) for a in assets}
    for asset_id in links:
        if asset_id not in seen:
            found = reader.asset(asset_id)
            assets.append(found if found is not None else {"id": asset_id, "missing": True})
            seen.add(asset_id)
    handle = storefront_handle(root_pim) if root_pim else None
    shop = reader.storefront(handle) if handle else None
    if shop is None and root_pim is None and (erp or root_erp):
        # Not in the PIM: the storefront can only have it under the slug of its SKU.
        handle = storefront_handle({"sku": root_sku})
        shop = reader.storefront(handle)
    page = reader.shopper_page(handle) if handle else None
    return SkuState(sku=sku, erp=erp, root_sku=root_sku, root_erp=root_erp, pim=pim, pim_kind=kind,
                    pim_enabled=enabled, pim_links=links, root_pim=root_pim, assets=assets, handle=handle,
                    storefront=shop, page=page, submissions=reader.pending_submissions(sku))


# --- the chain --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing wrong at one link, with the repair that would fix it (a name from ``REPAIRS``)."""

    link: str
    detail: str
    repair: str | None
    target: str  # what the repair writes: a SKU, an asset id, a submission id, a storefront handle

    def as_dict(self) -> dict[str, Any]:
        return {"link": self.link, "detail": self.detail, "repair": self.repair, "target": self.target}


#: Repairs the seasonal republish may be allowed to make, in the order it makes them.
REPAIRS: Final[tuple[str, ...]] = ("activate_erp", "dam_dates", "dam_links", "pim_state", "storefront", "cache",
                                   "supplier_quarantine")


def expected_storefront_status(state: SkuState) -> str | None:
    """What the storefront should show for the SKU's product: the ERP lifecycle of the family's root."""
    lifecycle = (state.root_erp or state.erp or {}).get("lifecycle_status")
    return STOREFRONT_STATUS[LifecycleStatus(lifecycle)] if lifecycle in set(LifecycleStatus) else None


def _erp_link(state: SkuState) -> list[Finding]:
    if state.erp is None:
        return [Finding("erp_lifecycle", "the ERP does not know this SKU", None, state.sku)]
    status = state.erp.get("lifecycle_status")
    out = []
    if status != LifecycleStatus.ACTIVE.value:
        out.append(Finding("erp_lifecycle", f"ERP lifecycle is {status}, so nothing downstream may publish it",
                           "activate_erp", state.sku))
    if state.root_sku != state.sku:
        parent_status = (state.root_erp or {}).get("lifecycle_status")
        if parent_status != LifecycleStatus.ACTIVE.value:
            # The variant looks sellable on its own, but it is published through its parent's product.
            out.append(Finding("erp_lifecycle", f"parent {state.root_sku} is {parent_status} in the ERP while "
                               f"this variant is {status}: the variant was left behind by its parent's change",
                               "activate_erp", state.root_sku))
    return out


def _dam_link(state: SkuState, now: datetime) -> list[Finding]:
    out = []
    linked = set(state.pim_links)
    for asset in state.assets:
        aid = str(asset.get("id"))
        if asset.get("missing"):
            out.append(Finding("dam_assets", f"the PIM links asset {aid}, which the DAM does not have", "dam_links",
                               aid))
            continue
        if asset.get("status") != AssetStatus.APPROVED.value:
            continue  # drafts and retired pictures are not for any channel yet (or any more)
        owner = asset.get("sku")
        start = parse_ts(asset.get("valid_from"))
        if asset.get("role") in LEAD_ROLES and owner == state.sku and start is not None and start > now:
            out.append(Finding("dam_assets", f"approved {asset.get('role')} image {aid} is embargoed until "
                               f"{start.date().isoformat()}", "dam_dates", aid))
        hidden = why_hidden(asset, now, storefront_region())
        embargoed_lead = asset.get("role") in LEAD_ROLES and start is not None and start > now
        if aid in linked and owner in (state.sku, None) and hidden and not embargoed_lead:
            out.append(Finding("dam_assets", f"the PIM links image {aid}, which may not be shown: {hidden}",
                               "dam_links", aid))
        if aid in linked and owner is None:
            out.append(Finding("dam_assets", f"image {aid} lost its SKU in the DAM (an orphan) though the PIM "
                               "still links it", "dam_links", aid))
        elif aid in linked and owner != state.sku:
            out.append(Finding("dam_assets", f"image {aid} is assigned to {owner} in the DAM, not to this SKU",
                               "dam_links", aid))
        elif owner == state.sku and aid not in linked and eligible(asset, now) and rendition(asset):
            out.append(Finding("dam_assets", f"approved {asset.get('role')} image {aid} was never linked to the "
                               "PIM record", "dam_links", aid))
    own = [a for a in state.assets if a.get("sku") == state.sku and not a.get("missing")
           and a.get("status") == AssetStatus.APPROVED.value]
    if own and not state.eligible_assets(now) and not any(f.repair == "dam_dates" for f in out):
        reasons = "; ".join(f"{a.get('id')}: {why_hidden(a, now, storefront_region())}" for a in own[:3])
        out.append(Finding("dam_assets", f"no approved image of this SKU may be shown now ({reasons}); the "
                           "page shows none until the DAM renews its rights or approves another", None, state.sku))
    return out


def _pim_link(state: SkuState) -> list[Finding]:
    if state.erp is None:
        return []  # nothing to compare against; the ERP link already says so
    erp_status = state.erp.get("lifecycle_status")
    if state.pim is None:
        return [Finding("pim_vs_erp", "the PIM has no record of this SKU", "pim_state", state.sku)]
    out = []
    if state.pim.get("lifecycle_status") != erp_status:
        out.append(Finding("pim_vs_erp", f"PIM holds lifecycle {state.pim.get('lifecycle_status')} while the "
                           f"ERP says {erp_status}", "pim_state", state.sku))
    should_enable = erp_status == LifecycleStatus.ACTIVE.value
    if state.pim_kind == "product" and state.pim_enabled is not should_enable:
        out.append(Finding("pim_vs_erp", f"PIM product is {'enabled' if state.pim_enabled else 'disabled'} while "
                           f"the ERP lifecycle is {erp_status}", "pim_state", state.sku))
    return out


def _storefront_link(state: SkuState, now: datetime) -> list[Finding]:
    expected = expected_storefront_status(state)
    handle = state.handle or state.root_sku
    shop = state.storefront
    if shop is None:
        if expected == "active":
            return [Finding("storefront_feed", f"no storefront product under handle {handle}", "storefront",
                            state.root_sku)]
        return []
    out = []
    if expected is not None and shop.get("status") != expected:
        out.append(Finding("storefront_feed", f"storefront shows status {shop.get('status')}, the ERP lifecycle "
                           f"calls for {expected}", "storefront", state.root_sku))
    title = (state.root_pim or {}).get("name")
    if title and shop.get("title") != title:
        out.append(Finding("storefront_feed", f"storefront title {shop.get('title')!r} is not the PIM's "
                           f"{title!r}", "storefront", state.root_sku))
    shown = {i.get("src") for i in shop.get("images") or []}
    missing = [str(a.get("id")) for a in state.eligible_assets(now) if str(a.get("id")) in set(state.pim_links)
               and rendition(a) not in shown]
    if missing:
        out.append(Finding("storefront_feed", f"approved image(s) {', '.join(missing)} are not in the storefront "
                           "feed", "storefront", state.root_sku))
    # an image the shop shows that the one rule hides (rights expired, window closed, another region's licence)
    hidden = sorted((str(a.get("id")), a) for a in state.assets
                    if rendition(a) in shown and a.get("sku") == state.sku and not eligible(a, now))
    if hidden:
        out.append(Finding("storefront_feed", f"the storefront shows image(s) {', '.join(i for i, _ in hidden)} "
                           f"that may not be shown ({why_hidden(hidden[0][1], now, storefront_region())})",
                           "storefront", state.root_sku))
    # the SKU's images among those shown must stand in the one gallery order (a gallery reordered by hand)
    by_src = {rendition(a): a for a in state.assets if rendition(a) and eligible(a, now)}
    mine = [by_src[str(i.get("src"))] for i in shop.get("images") or [] if i.get("src") in by_src]
    if [gallery_key(a) for a in mine] != sorted(gallery_key(a) for a in mine):
        want = ", ".join(str(a.get("id")) for a in sorted(mine, key=gallery_key))
        out.append(Finding("storefront_feed", f"the storefront gallery shows image(s) "
                           f"{', '.join(str(a.get('id')) for a in mine)} out of the gallery order ({want})",
                           "storefront", state.root_sku))
    return out


def page_is_stale(state: SkuState) -> bool:
    """The page was rendered before the product's last change (a render-cache hit of an older version)."""
    if state.page is None or state.storefront is None or state.page.status != 200:
        return False
    match = _UPDATED_AT.search(state.page.html or "")
    if match is None:
        return False
    return html.unescape(match.group(1)) != str(state.storefront.get("updated_at") or "")


def has_image(state: SkuState, now: datetime) -> bool:
    """The shopper page shows the SKU's lead image (any image, when the SKU has none of its own)."""
    if state.page is None or state.page.status != 200:
        return False
    body = state.page.html or ""
    lead = [rendition(a) for a in state.eligible_assets(now) if str(a.get("id")) in set(state.pim_links)]
    if lead and lead[0]:
        return f'src="{html.escape(str(lead[0]))}"' in body
    return "<img " in body


def _page_link(state: SkuState, now: datetime) -> list[Finding]:
    if state.page is None:
        return [Finding("shopper_page", "no storefront handle to fetch a page for", "storefront", state.root_sku)]
    shop_status = (state.storefront or {}).get("status")
    want = 200 if shop_status == "active" else 404
    handle = state.handle or state.root_sku
    if state.page.status != want:
        served = f"served from the CDN's cache ({state.page.cache})" if state.page.cache == "HIT" else "rendered"
        return [Finding("shopper_page", f"shoppers get HTTP {state.page.status}, {served}, while the product is "
                        f"{shop_status or 'absent'}", "cache", handle)]
    if want == 404:
        return []
    out = []
    if page_is_stale(state):
        out.append(Finding("shopper_page", f"the page is a cached copy (X-Cache {state.page.cache}, age "
                           f"{state.page.age}s) older than the product's last change", "cache", handle))
    if not has_image(state, now):
        out.append(Finding("shopper_page", "the page does not show the SKU's lead image", "cache", handle))
    return out


def _supplier_link(state: SkuState) -> list[Finding]:
    erp_status = (state.erp or {}).get("lifecycle_status")
    out = []
    for sub in state.submissions:
        flag = sub.get("lifecycle_flag")
        if flag in STALE_SUPPLIER_FLAGS and erp_status == LifecycleStatus.ACTIVE.value:
            out.append(Finding("supplier_writeback", f"pending submission {sub.get('id')} from {sub.get('supplier')} "
                               f"flags the item {flag} while the ERP sells it as active", "supplier_quarantine",
                               str(sub.get("id"))))
    return out


def evaluate(state: SkuState, now: datetime) -> dict[str, list[Finding]]:
    """The findings of every link of the chain, in chain order (an empty list is a link that holds)."""
    return {
        "erp_lifecycle": _erp_link(state),
        "dam_assets": _dam_link(state, now),
        "pim_vs_erp": _pim_link(state),
        "storefront_feed": _storefront_link(state, now),
        "shopper_page": _page_link(state, now),
        "supplier_writeback": _supplier_link(state),
    }


_OK_DETAIL: Final[dict[str, str]] = {
    "erp_lifecycle": "active in the ERP",
    "dam_assets": "every approved image is current and linked",
    "pim_vs_erp": "the PIM agrees with the ERP",
    "storefront_feed": "the storefront shows what the PIM and ERP say",
    "shopper_page": "shoppers see the current page",
    "supplier_writeback": "no pending supplier change contradicts the ERP",
}


def chain_of(state: SkuState, findings: Mapping[str, Sequence[Finding]], now: datetime) -> list[dict[str, Any]]:
    out = []
    for link in CHAIN:
        found = findings[link]
        if found:
            detail = "; ".join(f.detail for f in found)
        elif link == "erp_lifecycle" and state.erp is not None:
            detail = f"{state.erp.get('lifecycle_status')} in the ERP"
        elif link == "shopper_page" and state.page is not None and state.page.status == 404:
            detail = "not for sale, and shoppers get 404 as they should"
        else:
            detail = _OK_DETAIL[link]
        out.append({"link": link, "ok": not found, "detail": detail})
    return out


def verdict(sku: str, chain: Sequence[Mapping[str, Any]]) -> str:
    broken = [c for c in chain if not c["ok"]]
    if not broken:
        return f"{sku} is consistent from the ERP to the shopper page; nothing holds it back."
    first = broken[0]
    rest = f" ({len(broken) - 1} later link(s) also fail)" if len(broken) > 1 else ""
    label = str(first["link"]).replace("_", " ")
    return f"{sku} is held back at the {label} link: {first['detail']}{rest}."


# --- presentation -----------------------------------------------------------------------------------------------


def scrub(value: Any) -> Any:
    """A copy of ``value`` without anything keyed like a credential (defence in depth: nothing read has one)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not (isinstance(k, str) and _SECRET_KEY.search(k))}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def systems_view(state: SkuState, now: datetime) -> dict[str, Any]:
    """The systems side by side, compact enough for a table row each."""
    erp = None
    if state.erp is not None:
        erp = {k: state.erp.get(k) for k in ("sku", "parent_sku", "product_type", "lifecycle_status", "vendor_name",
                                            "updated_at")}
        if state.root_sku != state.sku:
            erp["parent_lifecycle_status"] = (state.root_erp or {}).get("lifecycle_status")
    pim = None
    if state.pim is not None:
        pim = {"sku": state.sku, "kind": state.pim_kind, "parent": state.pim.get("parent_sku"),
               "lifecycle_status": state.pim.get("lifecycle_status"), "enabled": state.pim_enabled,
               "name": state.pim.get("name"), "asset_links": state.pim_links}
    linked = set(state.pim_links)
    dam = [{"asset_id": str(a.get("id")), "sku": a.get("sku"), "role": a.get("role"), "status": a.get("status"),
            "valid_from": a.get("valid_from"), "valid_to": a.get("valid_to"),
            "rights_expires_at": a.get("rights_expires_at"), "rights_regions": a.get("rights_regions") or [],
            "linked_in_pim": str(a.get("id")) in linked, "showable": eligible(a, now), "src": rendition(a),
            "hidden_because": why_hidden(a, now, storefront_region())}
           for a in state.assets if not a.get("missing")]
    shop = None
    if state.storefront is not None:
        s = state.storefront
        shop = {"id": s.get("id"), "handle": s.get("handle"), "status": s.get("status"), "title": s.get("title"),
                "updated_at": s.get("updated_at"), "images": [i.get("src") for i in s.get("images") or []]}
    page = None
    if state.page is not None:
        page = {"status": state.page.status, "cache": state.page.cache, "has_image": has_image(state, now)}
    supplier = [{k: sub.get(k) for k in ("id", "supplier", "submitted_at", "lifecycle_flag", "changes", "status")}
                for sub in state.submissions]
    return {"erp": erp, "pim": pim, "dam": dam, "supplier": supplier, "storefront": shop, "shopper_page": page}


def _hub_rows(sku: str, hub_url: str | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The SKU's latest seasonal diagnosis and its open dead letters; a hub that cannot answer yields none."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from catalog_sync.engine.run import json_safe
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import DeadLetter, Diagnosis

    try:
        with session_scope(hub_url) as s:
            diag = s.scalars(select(Diagnosis).where(Diagnosis.sku == sku)
                             .order_by(Diagnosis.created_at.desc(), Diagnosis.id.desc()).limit(1)).first()
            # the runbook has a page of its own (the UI's /runs/<load_id>/runbook); the trace links to it
            last = None if diag is None else {c.name: getattr(diag, c.name) for c in Diagnosis.__table__.columns
                                              if c.name != "runbook"}
            letters = s.scalars(select(DeadLetter).where(DeadLetter.record_key == sku, DeadLetter.status == "open")
                                .order_by(DeadLetter.id)).all()
            open_letters = [{c.name: getattr(d, c.name) for c in DeadLetter.__table__.columns if c.name != "payload"}
                            for d in letters]
    except SQLAlchemyError as exc:  # the systems' side of the trace is still worth showing
        log.warning("hub unavailable for the trace of %s: %s", sku, type(exc).__name__)
        return None, []
    return json_safe(last), json_safe(open_letters)


def explain(state: SkuState, now: datetime, hub_url: str | None = None, *, with_hub: bool = True) -> dict[str, Any]:
    """The trace result for an already read SKU (the seasonal republish calls this on its own reads)."""
    findings = evaluate(state, now)
    chain = chain_of(state, findings, now)
    broken = next((c["link"] for c in chain if not c["ok"]), None)
    last, letters = _hub_rows(state.sku, hub_url) if with_hub else (None, [])
    held = _held_changes(state.sku, hub_url) if with_hub else []
    return scrub({
        "sku": state.sku,
        "systems": systems_view(state, now),
        "chain": chain,
        "broken_link": broken,
        "verdict": verdict(state.sku, chain),
        "last_diagnosis": last,
        "dead_letters": letters,
        "held_changes": held,
    })


def _held_changes(sku: str, hub_url: str | None) -> list[dict[str, Any]]:
    """The changes a freeze window holds for the SKU (flows/freeze.py); a hub that cannot answer yields none."""
    from sqlalchemy.exc import SQLAlchemyError

    from catalog_sync.flows.freeze import held_for_sku

    try:
        return held_for_sku(sku, hub_url)
    except SQLAlchemyError as exc:
        log.warning("hub unavailable for the held changes of %s: %s", sku, type(exc).__name__)
        return []


def explain_sku(sku: str, systems: Systems, hub_url: str | None = None) -> dict[str, Any]:
    """Trace ``sku`` (a variant, a configurable parent or a simple product) through every system.

    ``systems`` is the caller's (the command line and the UI resolve them from the Airflow connections). Returns ``{"sku", "systems", "chain", "broken_link", "verdict", "last_diagnosis", "dead_letters",
    "held_changes"}``; see the
    module docstring for the chain. Raises ``UnknownSku`` when no system knows the SKU.
    """
    sku = sku.strip()
    now = datetime.now(UTC)
    state = read_sku(Reader(systems, now), sku)
    if not state.known:
        raise UnknownSku(f"no system knows SKU {sku!r} (not in the ERP, the PIM, the DAM or the storefront)")
    result = explain(state, now, hub_url)
    result["channels"] = scrub(channel_states(sku, systems, hub_url, result["dead_letters"]))
    return result


def channel_states(sku: str, systems: Systems, hub_url: str | None = None,
                   letters: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The SKU on each declared sales channel: ``state`` is ``published`` (its last write there was delivered or
    found unchanged), ``dead_lettered`` (an open letter for that channel), or ``never published``; with the last
    write audited (run, outcome, message) and, when the channel's client is configured, what the channel shows
    (``live``: name, status and gallery size, None when it has no such product, or the error when it does not
    answer)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from catalog_sync.connectors import ConnectorError
    from catalog_sync.engine.run import json_safe
    from catalog_sync.governance.channels import load_channels
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import AuditEvent

    out = []
    for channel in load_channels().channels.values():
        last = None
        try:
            with session_scope(hub_url) as s:
                row = s.scalars(select(AuditEvent).where(
                    AuditEvent.system == channel.name, AuditEvent.record_key == sku, AuditEvent.action == "write",
                    AuditEvent.entity == "product")
                    .order_by(AuditEvent.ended_at.desc(), AuditEvent.id.desc()).limit(1)).first()
                if row is not None:
                    last = {"load_id": row.load_id, "outcome": row.outcome, "at": row.ended_at,
                            "message": (row.response or {}).get("message") if isinstance(row.response, dict) else None}
        except SQLAlchemyError as exc:
            log.warning("hub unavailable for the channel state of %s: %s", sku, type(exc).__name__)
        open_here = [d for d in letters if d.get("target_system") == channel.name]
        state = ("dead_lettered" if open_here else "published" if last and last["outcome"] in ("ok", "unchanged")
                 else "never published")
        live: Any = None
        client = systems.channels.get(channel.name)
        if client is not None:
            try:
                product = client.get_product(sku)
                live = None if product is None else {"name": product.get("name"), "status": product.get("status"),
                                                     "images": len(product.get("media_gallery_entries") or [])}
            except ConnectorError as exc:
                live = {"error": str(exc)}
        out.append({"channel": channel.name, "enabled": channel.enabled, "state": state, "last_write": json_safe(last),
                    "open_letters": len(open_here), "configured": client is not None, "live": live})
    return out


__all__ = ["CHAIN", "LINK_SYSTEM", "REPAIRS", "Finding", "Reader", "SkuState", "UnknownSku", "eligible",
           "evaluate", "explain", "explain_sku", "read_sku", "rendition"]
