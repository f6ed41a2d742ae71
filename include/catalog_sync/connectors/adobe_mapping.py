"""Pure translations from the canonical product record (``domain.PRODUCT_FIELDS``) to Adobe Commerce's REST payloads.

No I/O: the channel's own identifiers (attribute ids, option ids of ``color`` and ``size``, the store view of each
locale, the inventory source of each ERP location) arrive as a :class:`MagentoCatalog`, which
``AdobeCommerceClient.catalog()`` reads from the channel. Shapes are those of Adobe's admin REST schema
(``catalog-data-product-interface``, ``inventory-api-data-source-item-interface``,
``catalog-data-product-attribute-media-gallery-entry-interface``); see docs/adr/0014-adobe-commerce-channel.md.

What the channel does not take is refused per record with a :class:`ChannelRefusal` (dead-letter, reason kind
``channel``), never published as something else: kits (bundle, grouped), downloadable items and gift cards,
a variant whose color or size has no option in the channel, a variant axis the channel cannot configure on.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from catalog_sync.connectors.http import RecordError
from catalog_sync.domain import LOCALES, LifecycleStatus, has_parcel, item_type_of

SYSTEM: Final = "adobe_commerce"
#: Magento product status: 1 enabled, 2 disabled. Only an active item is enabled on a sales channel.
ENABLED: Final = 1
DISABLED: Final = 2
#: Magento visibility: 1 not visible individually (a configurable's variant), 4 catalog and search.
NOT_VISIBLE_INDIVIDUALLY: Final = 1
CATALOG_AND_SEARCH: Final = 4
#: Item types this connector publishes, and the Magento type each becomes.
MAGENTO_TYPE: Final[dict[str, str]] = {"simple": "simple", "configurable": "configurable", "virtual": "virtual"}
#: Canonical text fields sent as Magento custom attributes (same codes in Magento's default attribute set).
TEXT_ATTRIBUTES: Final[tuple[str, ...]] = ("description", "short_description", "meta_title", "meta_description",
                                           "url_key")
#: Canonical fields a store view may carry in its own language (Magento's store-scoped attributes).
STORE_SCOPED_FIELDS: Final[tuple[str, ...]] = ("name", *TEXT_ATTRIBUTES)
#: Image roles of a Magento gallery entry (``types``), by the DAM asset role that fills them.
IMAGE_ROLES: Final[dict[str, tuple[str, ...]]] = {
    "hero": ("image", "small_image", "thumbnail"),
    "swatch": ("swatch_image",),
    "gallery": (),
    "seasonal": (),
}


#: Every image role a Magento gallery entry may fill (``types``); channels.yaml maps DAM roles onto these.
MAGENTO_IMAGE_TYPES: Final = frozenset({"image", "small_image", "thumbnail", "swatch_image"})
#: File extension Magento gives a stored image, by media type.
IMAGE_EXTENSIONS: Final[dict[str, str]] = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
#: The file names of the gallery entries Catalog Sync makes start so; entries made by hand in Adobe Commerce do not,
#: and are never changed or removed by it.
MEDIA_PREFIX: Final = "cs-"
_SLUG = re.compile(r"[^a-z0-9]+")
#: Magento's ``_1``, ``_2``... when the media folder already holds a file of that name.
_DEDUP_SUFFIX = re.compile(r"_\d+$")


class ChannelRefusal(RecordError):
    """The channel cannot take this record as it is (its type, an option it lacks): dead-letter, kind ``channel``."""


@dataclass(frozen=True)
class MagentoCatalog:
    """The channel's identifiers a payload needs, read from it once per run."""

    attribute_set_id: int = 4
    website_ids: tuple[int, ...] = (1,)
    #: configurable attribute code -> its attribute id (``color`` 93, ``size`` 144 on a Luma install)
    attribute_ids: Mapping[str, int] = field(default_factory=dict)
    #: attribute code -> option label -> option id (``GET /V1/products/attributes/{code}/options``)
    option_ids: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: PIM locale -> the store view that shows it (``GET /V1/store/storeConfigs``' ``locale``)
    store_of_locale: Mapping[str, str] = field(default_factory=dict)
    #: ERP location -> inventory source code (the connection's ``source_map``)
    source_of_location: Mapping[str, str] = field(default_factory=dict)

    def option_id(self, sku: str, attribute: str, label: Any) -> int:
        options = self.option_ids.get(attribute)
        if options is None:
            raise ChannelRefusal(sku, f"adobe_commerce has no attribute {attribute!r} to configure on", system=SYSTEM)
        found = options.get(str(label))
        if found is None:
            raise ChannelRefusal(sku, f"adobe_commerce: {attribute} {label!r} is not an option of the attribute "
                                 f"{attribute!r} (add it in Adobe Commerce first)", system=SYSTEM)
        return found



def _custom(record: Mapping[str, Any], names: Iterable[str]) -> list[dict[str, Any]]:
    return [{"attribute_code": name, "value": str(record[name])} for name in names
            if record.get(name) not in (None, "")]


def magento_type(record: Mapping[str, Any]) -> str:
    """The Magento ``type_id`` of a canonical record; :class:`ChannelRefusal` for a type this connector leaves out."""
    if record.get("product_type") == "configurable":
        return "configurable"
    item_type = item_type_of(record)
    found = MAGENTO_TYPE.get(item_type)
    if found is None:
        raise ChannelRefusal(str(record.get("sku")), f"adobe_commerce: {item_type} items are not published to Adobe "
                             "Commerce by this connector (it creates simple, virtual and configurable products only)",
                             system=SYSTEM)
    return found


def canonical_to_magento_product(record: Mapping[str, Any], catalog: MagentoCatalog,
                                 variants: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The ``product`` of ``POST /V1/products`` (admin scope) for one canonical record.

    A configurable parent carries ``extension_attributes.configurable_product_options`` built from its ``axes`` and
    the option values its ``variants`` hold; its children are linked afterwards by SKU
    (``configurable-products/bySku/child``), since ``configurable_product_links`` names entity ids that a new child
    only has once the channel has created it.
    """
    sku = str(record["sku"])
    type_id = magento_type(record)
    lifecycle = record.get("lifecycle_status")
    product: dict[str, Any] = {
        "sku": sku,
        "name": record.get("name") or sku,
        "attribute_set_id": catalog.attribute_set_id,
        "type_id": type_id,
        "status": magento_status(lifecycle),
        "visibility": NOT_VISIBLE_INDIVIDUALLY if record.get("parent_sku") else CATALOG_AND_SEARCH,
    }
    if type_id != "configurable":
        price = record.get("reference_price")
        if price is None:
            raise ChannelRefusal(sku, "adobe_commerce: a simple product needs a price and the record has no "
                                 "reference_price", system=SYSTEM)
        product["price"] = float(price)
    if has_parcel(record) and type_id == "simple" and record.get("weight") is not None:
        product["weight"] = float(record["weight"])
    custom = _custom(record, TEXT_ATTRIBUTES)
    if record.get("parent_sku"):
        for axis in ("color", "size"):
            if record.get(axis) not in (None, ""):
                custom.append({"attribute_code": axis, "value": str(catalog.option_id(sku, axis, record[axis]))})
    product["custom_attributes"] = custom
    extension: dict[str, Any] = {"website_ids": list(catalog.website_ids)}
    if type_id == "configurable":
        axes = list(record.get("axes") or [])
        if not axes:
            raise ChannelRefusal(sku, "adobe_commerce: a configurable product needs its variant axes", system=SYSTEM)
        options = []
        for position, axis in enumerate(axes):
            attribute_id = catalog.attribute_ids.get(axis)
            if attribute_id is None:
                raise ChannelRefusal(sku, f"adobe_commerce has no attribute {axis!r} to configure on", system=SYSTEM)
            ids = sorted({catalog.option_id(sku, axis, v[axis]) for v in variants if v.get(axis) not in (None, "")})
            if not ids:
                raise ChannelRefusal(sku, f"adobe_commerce: no variant of {sku} has a {axis}", system=SYSTEM)
            options.append({"attribute_id": str(attribute_id), "label": axis.replace("_", " ").title(),
                            "position": position, "values": [{"value_index": i} for i in ids]})
        extension["configurable_product_options"] = options
    product["extension_attributes"] = extension
    return product


def magento_store_values(record: Mapping[str, Any], locale: str) -> dict[str, Any] | None:
    """The ``product`` of ``PUT /rest/<store>/V1/products/{sku}`` holding ``locale``'s translations; None when the
    record has none for it (the store view then shows the admin values)."""
    if locale == LOCALES[0]:
        texts: Mapping[str, Any] = record
    else:
        texts = (record.get("translations") or {}).get(locale) or {}
    values = {name: texts.get(name) for name in STORE_SCOPED_FIELDS if texts.get(name) not in (None, "")}
    if not values:
        return None
    product: dict[str, Any] = {"sku": str(record["sku"])}
    if "name" in values:
        product["name"] = values.pop("name")
    product["custom_attributes"] = [{"attribute_code": k, "value": str(v)} for k, v in values.items()]
    return product


def magento_status(lifecycle_status: Any) -> int:
    """Magento's product status for an ERP lifecycle: enabled only when the item is ``active``."""
    return ENABLED if lifecycle_status == LifecycleStatus.ACTIVE.value else DISABLED


#: Store id of the admin scope: a base price saved there is the price of every store view while the price
#: attribute has Magento's default global scope (``BasePriceStorage`` saves any store id as 0 then).
ADMIN_STORE_ID: Final = 0


def base_price(sku: str, price: Any) -> dict[str, Any]:
    """An item of ``POST /V1/products/base-prices`` (``catalog-data-base-price-interface``): the ERP's live price of
    ``sku`` at the admin scope."""
    return {"sku": str(sku), "price": float(price), "store_id": ADMIN_STORE_ID}


def stock_to_source_items(rows: Iterable[Mapping[str, Any]],
                          catalog: MagentoCatalog) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """ERP stock rows (``sku``, ``location``, ``quantity``) as MSI source items; a location the channel has no
    source for is dead-lettered, naming it."""
    items: list[dict[str, Any]] = []
    errors: list[RecordError] = []
    for row in rows:
        key = f"{row['sku']}/{row['location']}"
        source = catalog.source_of_location.get(str(row["location"]))
        if source is None:
            errors.append(ChannelRefusal(key, f"adobe_commerce has no inventory source for the ERP location "
                                         f"{row['location']!r} (the connection's source_map)", system=SYSTEM))
            continue
        quantity = float(row.get("quantity") or 0)
        items.append({"sku": str(row["sku"]), "source_code": source, "quantity": quantity,
                      "status": 1 if quantity > 0 else 0})
    return items, errors


def media_stem(asset_id: str, rendition: str, checksum: str) -> str:
    """The file name (without extension) of the gallery entry holding one version of one asset in one rendition:
    what identifies Catalog Sync's entry when the gallery is read back (``media_entry_stem``). A new version of the
    file (another checksum) or another rendition is another entry. Lower-case letters, digits and ``-`` only, and
    short, since Magento rewrites other characters and refuses long file names."""
    slug = _SLUG.sub("-", str(asset_id).lower()).strip("-")[:40]
    return f"{MEDIA_PREFIX}{slug}-{_SLUG.sub('', rendition.lower())[:12]}-{str(checksum).lower()[:12]}"


def media_entry_stem(entry: Mapping[str, Any]) -> str | None:
    """The :func:`media_stem` of a gallery entry as Magento lists it (``file`` ``/c/s/cs-...png``, perhaps with
    Magento's ``_1`` when the name was taken); None for an entry Catalog Sync did not make."""
    name = str(entry.get("file") or "").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not name.startswith(MEDIA_PREFIX):
        return None
    return _DEDUP_SUFFIX.sub("", name)


def magento_media_entry(content: bytes, mime: str, file_name: str, label: str, role: str,
                        position: int, types: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``entry`` of ``POST /V1/products/{sku}/media``: the image itself, base64-encoded, with the Magento image
    roles ``types`` (by default the ones its DAM role stands for: a hero fills image, small_image and thumbnail)."""
    return {
        "media_type": "image",
        "label": label,
        "position": position,
        "disabled": False,
        "types": list(IMAGE_ROLES.get(role, ()) if types is None else types),
        "content": {"base64_encoded_data": base64.b64encode(content).decode("ascii"), "type": mime,
                    "name": file_name},
    }
