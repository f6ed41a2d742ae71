"""The declared sales channels (``channels.yaml``): which channels the nightly publishes to beyond the primary Shopify
storefront, which products each sells, how PIM locales map to its store views, how it wants titles and
descriptions shaped, and which images it takes (the DAM rendition, the image roles, the region its shoppers are in).

``load_channels()`` reads and validates the file once per process; a mistake raises :class:`ChannelsError` naming the
channel and the field. Light to import (the DAG file reads it at parse time to make one task per enabled channel):
no connector, no Airflow, no database. Nothing here talks to a channel; ``catalog_sync.flows.channels`` does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from catalog_sync.domain import CHANNEL, LOCALES, AssetRole

DEFAULT_PATH: Final[Path] = Path(__file__).with_name("channels.yaml")
#: Connector kinds a channel may be (``catalog_sync.connectors``).
KINDS: Final = frozenset({"adobe_commerce"})
#: The locale value that means "the store view whose storeConfigs locale this is", read from the channel.
FROM_STORE_CONFIGS: Final = "store_configs"
#: The primary channel's name: published by ``cold.publish_products``, never declared here.
PRIMARY: Final = "storefront"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TAG_NAME = re.compile(r"^[a-z][a-z0-9]*$")
_FIELDS: Final = frozenset({"kind", "connection_id", "pool", "enabled", "sells", "locales", "formatting",
                            "images"})
_SELLS: Final = frozenset({"pim_channel", "category_trees"})
_FORMATTING: Final = frozenset({"title_max_length", "allowed_html"})
_IMAGES: Final = frozenset({"rendition", "region", "roles"})
#: The image roles a gallery entry may fill, per connector kind (Magento's ``types``; a test holds them to
#: ``connectors.adobe_mapping.MAGENTO_IMAGE_TYPES``, kept apart so this module stays light to import).
IMAGE_TYPES: Final[dict[str, frozenset[str]]] = {
    "adobe_commerce": frozenset({"image", "small_image", "thumbnail", "swatch_image"})}
_RENDITION = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: A sales region as thresholds.yaml and the DAM's rights_regions write it (US, EU, UK...).
_REGION = re.compile(r"^[A-Z]{2,3}$")
#: A title cut shorter than this would say nothing; a smaller limit is a mistake in the file.
MIN_TITLE: Final = 10


class ChannelsError(ValueError):
    """``channels.yaml`` is malformed; the message names the channel and the field."""


# --------------------------------------------------------------------------------------------- formatting rules
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WITH_CONTENT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^>]*>")


def cut_title(text: str, limit: int | None) -> str:
    """``text`` cut to at most ``limit`` characters at the last word boundary (a word longer than the limit is cut
    inside); trailing separators go with the cut."""
    if limit is None or len(text) <= limit:
        return text
    head = text[:limit + 1]  # one more: a space right after the limit is a boundary too
    space = head.rfind(" ")
    cut = head[:space] if space > 0 else text[:limit]
    return cut.rstrip(" ,;:-/&") or text[:limit]


def clean_html(text: str, allowed: Iterable[str]) -> str:
    """``text`` with only the ``allowed`` tags, each without its attributes; other tags are stripped and their text
    kept (a ``<br>`` becomes a space, so words stay apart), comments and script/style elements removed whole."""
    keep = frozenset(allowed)
    text = _WITH_CONTENT.sub("", _COMMENT.sub("", text))

    def tag(m: re.Match[str]) -> str:
        name = m.group(2).lower()
        if name in keep:
            return f"<{m.group(1)}{name}>"
        return " " if name == "br" else ""

    return _TAG.sub(tag, text)


@dataclass(frozen=True)
class Formatting:
    title_max_length: int | None = None
    allowed_html: frozenset[str] = frozenset()

    def shape(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a canonical record with its name cut and its descriptions cleaned, translations included."""
        out = self._texts(record)
        translations = record.get("translations")
        if isinstance(translations, Mapping):
            out["translations"] = {loc: self._texts(texts) for loc, texts in translations.items()
                                   if isinstance(texts, Mapping)}
        return out

    def _texts(self, texts: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(texts)
        if isinstance(out.get("name"), str):
            out["name"] = cut_title(out["name"], self.title_max_length)
        for name in ("description", "short_description"):
            if isinstance(out.get(name), str):
                out[name] = clean_html(out[name], self.allowed_html)
        return out


# ------------------------------------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageRules:
    """What a channel's galleries are made of: the DAM rendition it takes, the region its shoppers are in (the
    showable rule's ``rights_regions`` check), and which of its image roles each DAM role fills."""

    rendition: str
    region: str
    #: DAM role -> the channel's image roles (Magento ``types``) an image of that role fills
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def types(self, gallery_roles: Iterable[str | None]) -> list[list[str]]:
        """The image roles of each image of a gallery, given its DAM roles in gallery order. A channel role names
        one image (Magento moves it to the last entry given it), so the first image in gallery order whose DAM role
        maps to it takes it and later ones go without."""
        taken: set[str] = set()
        out: list[list[str]] = []
        for role in gallery_roles:
            mine = [t for t in self.roles.get(str(role or ""), ()) if t not in taken]
            taken.update(mine)
            out.append(mine)
        return out


# ------------------------------------------------------------------------------------------------------ channel
def _category_code(text: str) -> str:
    from catalog_sync.connectors.mapping import category_code

    return category_code(text)


@dataclass(frozen=True)
class Channel:
    """One declared channel."""

    name: str
    kind: str
    connection_id: str
    pool: str
    enabled: bool
    pim_channel: str
    #: Category roots as declared (paths or codes).
    category_trees: tuple[str, ...]
    #: PIM locale -> store view code, or :data:`FROM_STORE_CONFIGS`.
    locales: Mapping[str, str] = field(default_factory=dict)
    formatting: Formatting = Formatting()
    #: None: the channel takes no images from Catalog Sync
    images: ImageRules | None = None

    @property
    def hop(self) -> str:
        """The hop its records are counted on: ``pim-><name>``."""
        return f"pim->{self.name}"

    @property
    def task_id(self) -> str:
        """Its task in the nightly DAG."""
        return f"publish_channel_{self.name}"

    @property
    def image_hop(self) -> str:
        """The hop its galleries are counted on (one record per product family): ``dam-><name>``."""
        return f"dam->{self.name}"

    @property
    def image_task_id(self) -> str:
        """Its image task in the nightly DAG, after :attr:`task_id`."""
        return f"publish_channel_images_{self.name}"

    def sells(self, record: Mapping[str, Any]) -> bool:
        """Whether one of the record's categories is at or under one of the channel's category trees. Categories
        compare as Akeneo codes (``Gear/Bags`` is ``gear_bags``), so paths and codes alike match; "under" is the
        code's ``<root>_`` prefix, the way the PIM's codes are made from paths."""
        categories = record.get("categories") or ([record["category"]] if record.get("category") else [])
        codes = {_category_code(str(c)) for c in categories}
        roots = [_category_code(r) for r in self.category_trees]
        return any(code == root or code.startswith(root + "_") for code in codes for root in roots)

    def sells_family(self, family: Mapping[str, Any]) -> bool:
        """A family (a staged ``families_ready`` entry) is sold when its parent is."""
        return self.sells(family["parent"])

    def store_views(self, store_of_locale: Mapping[str, str]) -> dict[str, str]:
        """PIM locale -> store view code, :data:`FROM_STORE_CONFIGS` resolved from the channel's own store configs
        (``store_of_locale``); a locale the channel has no store view for is a :class:`ChannelsError`."""
        out: dict[str, str] = {}
        for locale, store in self.locales.items():
            if store == FROM_STORE_CONFIGS:
                found = store_of_locale.get(locale)
                if not found:
                    raise ChannelsError(f"channel {self.name!r}: locales.{locale} is {FROM_STORE_CONFIGS}, but the "
                                        f"channel's store configs give no store view for that locale (it has: "
                                        f"{dict(store_of_locale)})")
                out[locale] = found
            else:
                out[locale] = store
        return out


@dataclass(frozen=True)
class Channels:
    channels: Mapping[str, Channel]

    def channel(self, name: str) -> Channel:
        found = self.channels.get(name)
        if found is None:
            raise ChannelsError(f"no channel {name!r} in channels.yaml (declared: {sorted(self.channels)})")
        return found

    def enabled(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.enabled]


# ---------------------------------------------------------------------------------------------------- loading
def _check_keys(where: str, found: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(found) - allowed)
    if unknown:
        raise ChannelsError(f"{where}: unknown field(s) {unknown} (allowed: {sorted(allowed)})")


def _parse_channel(name: Any, doc: Any) -> Channel:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ChannelsError(f"channel {name!r}: a name is lower-case letters, digits and underscores (it names a "
                            "hop, a task and the hub's system)")
    if name == PRIMARY:
        raise ChannelsError(f"channel {name!r}: the primary storefront is published by publish_products and is not "
                            "declared here")
    where = f"channel {name!r}"
    if not isinstance(doc, Mapping):
        raise ChannelsError(f"{where}: expected a mapping of fields")
    _check_keys(where, doc, _FIELDS)
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ChannelsError(f"{where}: kind {kind!r} is not one of {sorted(KINDS)}")
    for key in ("connection_id", "pool"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ChannelsError(f"{where}: {key} must name an Airflow {key.split('_')[0]}")
    from catalog_sync.airflow.budgets import POOLS

    pool = POOLS.get(doc["pool"])
    if pool is None or pool.system != name:
        raise ChannelsError(f"{where}: pool {doc['pool']!r} is not a pool of this channel in "
                            f"catalog_sync.airflow.budgets.POOLS (declare its request budget there)")
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ChannelsError(f"{where}: enabled must be true or false, not {enabled!r}")
    sells = doc.get("sells")
    if not isinstance(sells, Mapping):
        raise ChannelsError(f"{where}: sells must say pim_channel and category_trees")
    _check_keys(f"{where} sells", sells, _SELLS)
    if sells.get("pim_channel") != CHANNEL:
        raise ChannelsError(f"{where}: sells.pim_channel {sells.get('pim_channel')!r}: the nightly stages the values "
                            f"of the PIM channel {CHANNEL!r} only")
    trees = sells.get("category_trees")
    if not isinstance(trees, list) or not trees or not all(isinstance(t, str) and t.strip() for t in trees):
        raise ChannelsError(f"{where}: sells.category_trees must list at least one category path or code")
    locales = doc.get("locales") or {}
    if not isinstance(locales, Mapping):
        raise ChannelsError(f"{where}: locales must map PIM locales to store view codes")
    for locale, store in locales.items():
        if locale == LOCALES[0]:
            raise ChannelsError(f"{where}: locales.{locale} is the reference locale, which is the channel's base "
                                "(admin) values: leave it out")
        if locale not in LOCALES:
            raise ChannelsError(f"{where}: locales.{locale} is not a locale of the PIM channel {CHANNEL!r} "
                                f"({list(LOCALES)})")
        if not isinstance(store, str) or not store.strip() or store in ("all", "admin"):
            raise ChannelsError(f"{where}: locales.{locale} must be a store view code or {FROM_STORE_CONFIGS}, "
                                f"not {store!r}")
    formatting = doc.get("formatting") or {}
    if not isinstance(formatting, Mapping):
        raise ChannelsError(f"{where}: formatting must be a mapping")
    _check_keys(f"{where} formatting", formatting, _FORMATTING)
    limit = formatting.get("title_max_length")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < MIN_TITLE):
        raise ChannelsError(f"{where}: formatting.title_max_length must be a whole number of at least {MIN_TITLE}, "
                            f"not {limit!r}")
    tags = formatting.get("allowed_html") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG_NAME.match(t) for t in tags):
        raise ChannelsError(f"{where}: formatting.allowed_html must list lower-case HTML tag names")
    return Channel(name=name, kind=str(kind), connection_id=doc["connection_id"].strip(), pool=doc["pool"],
                   enabled=enabled, pim_channel=CHANNEL, category_trees=tuple(t.strip() for t in trees),
                   locales={str(k): str(v) for k, v in locales.items()},
                   formatting=Formatting(limit, frozenset(tags)),
                   images=_parse_images(where, str(kind), doc.get("images")))


def _parse_images(where: str, kind: str, images: Any) -> ImageRules | None:
    if images is None:
        return None
    if not isinstance(images, Mapping):
        raise ChannelsError(f"{where}: images must say rendition, region and roles")
    _check_keys(f"{where} images", images, _IMAGES)
    rendition = images.get("rendition")
    if not isinstance(rendition, str) or not _RENDITION.match(rendition):
        raise ChannelsError(f"{where}: images.rendition must name a DAM rendition (such as ecommerce), not "
                            f"{rendition!r}")
    region = images.get("region")
    if not isinstance(region, str) or not _REGION.match(region):
        raise ChannelsError(f"{where}: images.region must be the sales region its shoppers are in, as the DAM's "
                            f"rights_regions write it (US, EU, UK...), not {region!r}")
    roles = images.get("roles")
    if not isinstance(roles, Mapping) or not roles:
        raise ChannelsError(f"{where}: images.roles must map DAM roles to the channel's image roles")
    allowed = IMAGE_TYPES[kind]
    dam_roles = [r.value for r in AssetRole]
    parsed: dict[str, tuple[str, ...]] = {}
    for role, types in roles.items():
        if role not in dam_roles:
            raise ChannelsError(f"{where}: images.roles.{role} is not a DAM role ({dam_roles})")
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ChannelsError(f"{where}: images.roles.{role} must list image roles of the channel")
        unknown = sorted(set(types) - allowed)
        if unknown:
            raise ChannelsError(f"{where}: images.roles.{role}: {unknown} are not image roles of a {kind} channel "
                                f"({sorted(allowed)})")
        parsed[str(role)] = tuple(dict.fromkeys(types))
    return ImageRules(rendition=rendition, region=region, roles=parsed)


def parse_channels(doc: Any) -> Channels:
    """Validate a loaded ``channels.yaml``; :class:`ChannelsError` names what is wrong."""
    if not isinstance(doc, Mapping) or doc.get("version") != 1:
        raise ChannelsError("channels.yaml: expected a mapping with version: 1")
    _check_keys("channels.yaml", doc, frozenset({"version", "channels"}))
    declared = doc.get("channels") or {}
    if not isinstance(declared, Mapping):
        raise ChannelsError("channels.yaml: channels must map each channel's name to its fields")
    parsed = {str(name): _parse_channel(name, body) for name, body in declared.items()}
    connections = [c.connection_id for c in parsed.values()]
    if len(set(connections)) != len(connections):
        raise ChannelsError("channels.yaml: two channels share one Airflow connection")
    return Channels(parsed)


@functools.cache
def _load(path: str) -> Channels:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ChannelsError(f"{path}: cannot be read: {exc}") from None
    return parse_channels(doc)


def load_channels(path: Path | str | None = None) -> Channels:
    """The declared channels (read once per process and path)."""
    return _load(str(path or DEFAULT_PATH))

