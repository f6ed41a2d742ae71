"""Read Magento 2 product exports into canonical product records.

Two CSV shapes are understood:

* the standard **product import/export** file (``sku, store_view_code, attribute_set_code, product_type,
  categories, ..., configurable_variations, additional_images``): configurable parents list their children in
  ``configurable_variations``; colour and size live in ``additional_attributes``; rows with a
  ``store_view_code`` carry a store view's translations;
* the **sample-data fixture** shape (``category, name, sku, price, qty, description, ..., attribute_set``) with a
  companion ``sku, image`` file listing each product's photographs, first one the main image. Category names are
  walked down the tree the fixtures' ``name, path`` category files declare, the way Magento's installer walks it;
  a fixture row with option lists in its axis columns (``color``, ``size``, ``size_*``) is a configurable parent
  whose variants are generated from those lists, or taken from ``associated_product_ids`` when it names them.

Every Magento product type is read with what makes it that type (:data:`MAGENTO_TYPES`): a bundle's options and
their components (``bundle_values``), a grouped product's members (``associated_skus``), a downloadable product's
links and samples. What each type becomes downstream is the loader's decision, not the reader's.

A user's export is not trusted to be tidy: a missing required column stops the read with a :class:`CatalogError`
naming the file and column; a bad row becomes a :class:`CatalogIssue` (file, line, column, message) and the rest
of the file is still read.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from catalog_sync.catalog import derive
from catalog_sync.domain import (
    ITEM_TYPES,
    KIT_ITEM_TYPES,
    PRODUCT_FIELDS,
    UNSHIPPED_ITEM_TYPES,
    AssetRole,
    LifecycleStatus,
)

#: Magento store view codes seen in exports, mapped to the PIM locales (``domain.LOCALES``).
STORE_VIEW_LOCALES: Final[dict[str, str]] = {
    "default": "en_US",
    "en": "en_US",
    "us": "en_US",
    "fr": "fr_FR",
    "french": "fr_FR",
    "fr_fr": "fr_FR",
    "de": "de_DE",
    "german": "de_DE",
    "de_de": "de_DE",
}
#: Content a store-view row may override (the rest of a store-view row is ignored, as Magento scopes it globally).
TRANSLATABLE: Final[tuple[str, ...]] = (
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
    "url_key",
)
#: Magento 2's product types. ``simple``/``configurable`` are carried as they are; the others keep their type.
MAGENTO_TYPES: Final[frozenset[str]] = ITEM_TYPES
#: Types with nothing to ship: no weight, dimensions or country of origin is required of them or invented.
NOT_SHIPPED: Final[frozenset[str]] = UNSHIPPED_ITEM_TYPES
#: Fixture columns that hold a configurable product's option lists (the axes its variants are generated from).
FIXTURE_AXES: Final[tuple[str, ...]] = ("size", "size_general", "size_pants", "size_ball", "size_strap", "color")
#: Quantity and weight Magento's sample-data installer gives every variant it generates.
GENERATED_VARIANT_QTY: Final = 10.0
GENERATED_VARIANT_WEIGHT: Final = 1.0
IMPORT_REQUIRED: Final[tuple[str, ...]] = ("sku", "product_type")
GEAR_REQUIRED: Final[tuple[str, ...]] = ("sku", "name", "category")
IMAGE_LIST_REQUIRED: Final[tuple[str, ...]] = ("sku", "image")
CATEGORY_LIST_REQUIRED: Final[tuple[str, ...]] = ("name", "path")
# additional_attributes is "k=v,k=v" where a value may itself hold commas only if the next key follows a comma
#: Magento's own limit on a SKU; a longer one cannot have come out of Magento and fits no hub key column.
MAX_SKU_LENGTH: Final = 64
#: The most a PIM text attribute holds (Akeneo textarea); a longer cell is refused, never truncated silently.
MAX_CELL_CHARS: Final = 65_535
#: csv's own default cell limit (128 KiB) raises mid-file; read up to this so an oversized cell is reported by name.
_CSV_FIELD_LIMIT: Final = 64 * 1024 * 1024
_ATTR_SPLIT = re.compile(r",(?=[A-Za-z0-9_]+=)")
_SLUG = re.compile(r"[^a-z0-9]+")


class CatalogError(ValueError):
    """The catalog cannot be read at all (missing file, unknown CSV shape, missing required column)."""


@dataclass(frozen=True)
class CatalogIssue:
    """One problem in one cell or row; the row is skipped or the cell left empty, the read goes on."""

    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class CatalogImage:
    """An image path as the export names it (``/m/h/mh01-gray_main.jpg``) and the role it plays."""

    path: str
    role: str = AssetRole.GALLERY.value
    label: str | None = None

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CatalogComponent:
    """A product a bundle or grouped product is made of: its SKU, default quantity and (bundles) its option."""

    sku: str
    qty: float = 1.0
    option: str | None = None
    required: bool = True
    price: float | None = None


@dataclass(frozen=True)
class CatalogDownload:
    """A downloadable product's link or sample: a file in Magento's media folder or a URL."""

    kind: str  # "link" | "sample"
    title: str
    url: str | None = None
    file: str | None = None
    price: float | None = None


@dataclass
class CatalogProduct:
    """One SKU as the export describes it, before it is spread over the systems that own its fields."""

    sku: str
    product_type: str  # "configurable" | "simple": the shape the systems model (parent with variants, or one item)
    parent_sku: str | None = None
    magento_type: str = "simple"  # one of MAGENTO_TYPES, as the file said
    components: list[CatalogComponent] = field(default_factory=list)
    downloads: list[CatalogDownload] = field(default_factory=list)
    bundle_price_type: str | None = None  # "fixed" | "dynamic" (bundles only)
    axes: list[str] | None = None
    product_group: str | None = None
    name: str | None = None
    description: str | None = None
    short_description: str | None = None
    meta_title: str | None = None
    meta_description: str | None = None
    url_key: str | None = None
    categories: list[str] = field(default_factory=list)
    color: str | None = None
    size: str | None = None
    weight: float | None = None
    price: float | None = None
    qty: float | None = None
    country_of_origin: str | None = None
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    images: list[CatalogImage] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    source_file: str = ""
    source_line: int = 0

    @property
    def ships(self) -> bool:
        """False for the types Magento never ships (virtual, downloadable)."""
        return self.magento_type not in NOT_SHIPPED

    @property
    def category(self) -> str | None:
        """The primary category: the first one that is not a merchandising collection or promotion."""
        for path in self.categories:
            if path.split("/", 1)[0] not in {"Collections", "Promotions"}:
                return path
        return self.categories[0] if self.categories else None

    def canonical(self, upc: str | None = None) -> dict[str, Any]:
        """The canonical record (``domain.PRODUCT_FIELDS``), with the ERP fields the export lacks derived."""
        length: float | None
        width: float | None
        height: float | None
        country: str | None
        if self.ships and self.magento_type not in KIT_ITEM_TYPES:
            length, width, height = derive.dimensions_for(self.sku, self.product_group)
            country = self.country_of_origin or derive.country_for(self.sku)
        else:  # nothing to ship, or a kit whose components are the parcels: no size or origin is made up for it
            length = width = height = None
            country = self.country_of_origin
        record: dict[str, Any] = {
            "sku": self.sku,
            "parent_sku": self.parent_sku,
            "product_type": self.product_type,
            "item_type": self.magento_type,
            "axes": list(self.axes) if self.axes else None,
            "components": ([{"sku": c.sku, "quantity": c.qty} for c in self.components]
                           if self.magento_type in KIT_ITEM_TYPES else None),
            "kit_pricing": (self.bundle_price_type or "dynamic").lower() if self.magento_type == "bundle" else None,
            "lifecycle_status": LifecycleStatus.ACTIVE.value,
            "upc": upc or derive.upc_for(self.sku),
            "product_group": self.product_group,
            "uom": "EA",
            "weight": self.weight,
            "weight_unit": "lbs" if self.weight is not None else None,
            "length": length,
            "width": width,
            "height": height,
            "dimension_unit": "in" if length is not None else None,
            "country_of_origin": country,
            "vendor_name": derive.vendor_for(self.sku),
            "reference_price": self.price,
            "currency": "USD" if self.price is not None else None,
            "name": self.name,
            "description": self.description,
            "short_description": self.short_description,
            "meta_title": self.meta_title,
            "meta_description": self.meta_description,
            "url_key": self.url_key,
            "category": self.category,
            "categories": list(self.categories),
            "color": self.color,
            "size": self.size,
            "translations": {k: dict(v) for k, v in self.translations.items()},
            "asset_links": [],
        }
        assert tuple(record) == PRODUCT_FIELDS  # the canonical shape is shared: drift here breaks every consumer
        return record


@dataclass
class Catalog:
    """Products in export order (children before or after their parent, as the file had them) plus issues."""

    products: list[CatalogProduct]
    issues: list[CatalogIssue]
    sources: list[Path]
    image_dirs: list[Path]

    @property
    def parents(self) -> list[CatalogProduct]:
        return [p for p in self.products if p.product_type == "configurable"]

    @property
    def variants(self) -> list[CatalogProduct]:
        return [p for p in self.products if p.parent_sku is not None]

    def find_image(self, image: CatalogImage | str) -> Path | None:
        """The image file shipped with the catalog, by file name (exports flatten Magento's ``/m/h/`` folders)."""
        name = image.filename if isinstance(image, CatalogImage) else image.rsplit("/", 1)[-1]
        for folder in self.image_dirs:
            candidate = folder / name
            if candidate.is_file():
                return candidate
        return None


# ----------------------------------------------------------------------------------------------------- reading


def read_catalog(path: str | Path, *, image_dirs: Iterable[str | Path] = ()) -> Catalog:
    """Read a Magento export folder (every product CSV in it) or one product CSV.

    Image files are looked for in ``image_dirs`` and, by default, in ``images/`` next to the CSVs.
    """
    root = Path(path)
    if not root.exists():
        raise CatalogError(f"{root}: no such file or folder")
    files = sorted(root.glob("*.csv")) if root.is_dir() else [root]
    if not files:
        raise CatalogError(f"{root}: no CSV file in this folder")
    folder = root if root.is_dir() else root.parent
    dirs = [Path(d) for d in image_dirs] + [folder / "images", folder]

    shapes = {f: _shape(f) for f in files}
    if not root.is_dir() and shapes[root] not in {"import", "gear"}:
        raise CatalogError(
            f"{root}: not a Magento product CSV (expected columns {', '.join(IMPORT_REQUIRED)} "
            f"or {', '.join(GEAR_REQUIRED)})"
        )
    issues: list[CatalogIssue] = []
    image_lists: dict[str, list[CatalogImage]] = {}
    tree = CategoryTree()
    for f, shape in shapes.items():
        if shape == "images":
            for sku, images in _read_image_list(f, issues).items():
                image_lists.setdefault(sku, []).extend(images)
        elif shape == "categories":
            _read_category_list(f, tree, issues)

    products: dict[str, CatalogProduct] = {}
    associations: list[tuple[str, int, str, list[str]]] = []
    for f, shape in shapes.items():
        if shape == "import":
            _read_import(f, products, issues)
        elif shape == "gear":
            _read_gear(f, products, image_lists, tree, issues, associations)
    _associate(products, associations, issues)
    if not products:
        raise CatalogError(f"{root}: no product rows found")
    return Catalog(list(products.values()), issues, [f for f, s in shapes.items() if s in {"import", "gear"}], dirs)


def _shape(path: Path) -> str | None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc
    cols = {c.strip() for c in header}
    if set(IMPORT_REQUIRED) <= cols:
        return "import"
    if set(GEAR_REQUIRED) <= cols:
        return "gear"
    if set(IMAGE_LIST_REQUIRED) <= cols:
        return "images"
    if set(CATEGORY_LIST_REQUIRED) <= cols:
        return "categories"
    return None  # attribute definitions, or unrelated files


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line where the record starts, row) pairs; quoted multi-line cells keep line numbers exact."""
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [c.strip() for c in next(reader, [])]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CatalogError(f"{path.name}: line 1: unreadable header: {exc}") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise CatalogError(f"{path.name}: line 1: missing required column(s) {', '.join(missing)}")
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                # past the first block the decoder fails mid-file: the file's encoding is wrong, not one row
                raise CatalogError(f"{path.name}: near line {start}: not UTF-8 text ({exc.reason}); "
                                   "export the file as UTF-8") from None
            except csv.Error as exc:
                line, start = start, reader.line_num + 1
                yield line, {"__error__": f"unreadable row: {exc}"}
                continue
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                # too many cells means an unquoted comma; too few a truncated row: both make columns lie
                yield line, {"__error__": f"expected {len(header)} cells, found {len(cells)}"}
                continue
            row = dict(zip(header, cells, strict=True))
            bad = next((c for c, v in row.items() if "\x00" in v or len(v) > MAX_CELL_CHARS), None)
            if bad is not None:
                value = row[bad]
                why = ("contains a NUL character" if "\x00" in value
                       else f"is {len(value):,} characters long, over the {MAX_CELL_CHARS:,} a text attribute holds")
                yield line, {"__error__": f"{bad} {why}", "__column__": bad}
                continue
            yield line, row


def _number(
    value: str, file: str, line: int, column: str, issues: list[CatalogIssue], *, minimum: float = 0.0
) -> float | None:
    text = value.strip()
    if not text:
        return None
    # a lone decimal comma ("1,5") is how some locales export; anything else that float() refuses is bad data
    candidate = text.replace(",", ".") if text.count(",") == 1 and "." not in text else text
    try:
        number = float(candidate)
    except ValueError:
        issues.append(CatalogIssue(file, line, column, f"not a number: {text[:40]!r}; left empty"))
        return None
    if not math.isfinite(number) or number < minimum:  # NaN, infinite or negative
        issues.append(CatalogIssue(file, line, column, f"out of range: {text[:40]!r}; left empty"))
        return None
    return number


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def slugify(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _ATTR_SPLIT.split(text.strip()):
        if "=" in part:
            key, _, value = part.partition("=")
            out[key.strip()] = value.strip()
    return out


def _import_categories(text: str) -> list[str]:
    """``Default Category/Men/Tops,Default Category`` -> ``["Men/Tops"]``: the root category is not a category."""
    paths: list[str] = []
    for raw in text.split(","):
        parts = [p.strip() for p in raw.split("/") if p.strip()]
        if len(parts) > 1:
            path = "/".join(parts[1:])
            if path not in paths:
                paths.append(path)
    return paths


def _read_import(path: Path, products: dict[str, CatalogProduct], issues: list[CatalogIssue]) -> None:
    file = path.name
    variations: list[tuple[int, str, str]] = []  # (line, parent sku, configurable_variations text)
    overrides: list[tuple[int, str, str, dict[str, str]]] = []  # (line, sku, store view, row)
    for line, row in _rows(path, IMPORT_REQUIRED):
        if "__error__" in row:
            issues.append(CatalogIssue(file, line, row.get("__column__"), f"malformed row skipped: {row['__error__']}"))
            continue
        sku = row["sku"].strip()
        if not sku:
            issues.append(CatalogIssue(file, line, "sku", "empty SKU; row skipped"))
            continue
        if len(sku) > MAX_SKU_LENGTH:
            issues.append(CatalogIssue(file, line, "sku", f"SKU {sku[:40]!r}... is {len(sku)} characters, over "
                                       f"Magento's {MAX_SKU_LENGTH}; row skipped"))
            continue
        store_view = (row.get("store_view_code") or "").strip()
        if store_view:
            overrides.append((line, sku, store_view, row))
            continue
        if sku in products:
            first = products[sku]
            issues.append(
                CatalogIssue(file, line, "sku", f"duplicate SKU {sku!r} (first at {first.source_file}:"
                             f"{first.source_line}); row skipped")
            )
            continue
        magento_type = (row.get("product_type") or "").strip().lower()
        if not magento_type:
            issues.append(CatalogIssue(file, line, "product_type", "empty product_type; row skipped"))
            continue
        attrs = _pairs(row.get("additional_attributes") or "")
        name = _text(row.get("name"))
        if magento_type not in MAGENTO_TYPES:
            issues.append(CatalogIssue(file, line, "product_type", f"unknown Magento product type {magento_type!r} "
                                       f"(known: {', '.join(sorted(MAGENTO_TYPES))}); row skipped"))
            continue
        product = CatalogProduct(
            sku=sku,
            product_type="configurable" if magento_type == "configurable" else "simple",
            magento_type=magento_type,
            product_group=_text(row.get("attribute_set_code")),
            name=name,
            description=_text(row.get("description")),
            short_description=_text(row.get("short_description")),
            meta_title=_text(row.get("meta_title")),
            meta_description=_text(row.get("meta_description")),
            url_key=_text(row.get("url_key")) or (slugify(name) if name else None),
            categories=_import_categories(row.get("categories") or ""),
            color=attrs.pop("color", None) or None,
            size=attrs.pop("size", None) or None,
            weight=_number(row.get("weight") or "", file, line, "weight", issues),
            price=_number(row.get("price") or "", file, line, "price", issues),
            qty=_number(row.get("qty") or "", file, line, "qty", issues),
            country_of_origin=_text(row.get("country_of_manufacture")),
            attributes={k: v for k, v in attrs.items() if k not in {"has_options", "required_options"}},
            source_file=file,
            source_line=line,
        )
        if magento_type == "bundle":
            product.components = _bundle_components(row.get("bundle_values") or "", file, line, issues)
            product.bundle_price_type = _text(row.get("bundle_price_type"))
        elif magento_type == "grouped":
            product.components = _grouped_members(row.get("associated_skus") or "", file, line, issues)
        elif magento_type == "downloadable":
            product.downloads = (_downloads("link", row.get("downloadable_links") or "", file, line, issues)
                                 + _downloads("sample", row.get("downloadable_samples") or "", file, line, issues))
        if magento_type in NOT_SHIPPED and product.weight is not None:
            product.weight = None  # Magento ignores a weight on what it never ships; so does the catalog
        base = _text(row.get("base_image"))
        if base:
            product.images.append(CatalogImage(base, AssetRole.HERO.value, _text(row.get("base_image_label"))))
        labels = [s.strip() for s in (row.get("additional_image_labels") or "").split(",")]
        for i, extra in enumerate(p.strip() for p in (row.get("additional_images") or "").split(",")):
            if extra and extra != base:
                label = labels[i] if i < len(labels) and labels[i] else None
                product.images.append(CatalogImage(extra, AssetRole.GALLERY.value, label))
        products[sku] = product
        if product.product_type == "configurable" and (row.get("configurable_variations") or "").strip():
            variations.append((line, sku, row["configurable_variations"]))

    for line, parent_sku, text in variations:
        parent = products[parent_sku]
        axes: list[str] = []
        for entry in text.split("|"):
            pairs = _pairs(entry)
            child_sku = pairs.pop("sku", "").strip()
            if not child_sku:
                issues.append(CatalogIssue(file, line, "configurable_variations", f"entry without sku: {entry[:60]!r}"))
                continue
            for axis in pairs:
                if axis not in axes:
                    axes.append(axis)
            child = products.get(child_sku)
            if child is not None and child.product_type == "configurable":
                # a parent listed as a variant (itself, or another parent): a cycle no system can model
                issues.append(CatalogIssue(file, line, "configurable_variations",
                                           f"variant {child_sku!r} is itself a configurable product (a parent "
                                           f"cannot be its own ancestor); skipped"))
                continue
            if child is None:
                issues.append(
                    CatalogIssue(file, line, "configurable_variations", f"variant {child_sku!r} has no row; skipped")
                )
                continue
            if child.parent_sku and child.parent_sku != parent_sku:
                issues.append(
                    CatalogIssue(file, line, "configurable_variations",
                                 f"variant {child_sku!r} already belongs to {child.parent_sku!r}; kept there")
                )
                continue
            child.parent_sku = parent_sku
            child.color = child.color or pairs.get("color")
            child.size = child.size or pairs.get("size")
        parent.axes = axes or None

    for product in list(products.values()):
        if product.components and product.source_file == file:
            _check_components(product, products, issues)

    for line, sku, store_view, row in overrides:
        locale = STORE_VIEW_LOCALES.get(store_view.lower())
        if sku not in products:
            issues.append(CatalogIssue(file, line, "sku", f"store view row for unknown SKU {sku!r}; skipped"))
        elif locale is None:
            issues.append(
                CatalogIssue(file, line, "store_view_code", f"store view {store_view!r} maps to no locale; skipped")
            )
        else:
            values = {k: v for k in TRANSLATABLE if (v := (row.get(k) or "").strip())}
            if values:
                products[sku].translations.setdefault(locale, {}).update(values)


def _entries(text: str) -> list[dict[str, str]]:
    """Magento's multi-value cells: ``k=v,k=v|k=v,k=v`` (one dict per ``|``-separated entry)."""
    return [_pairs(entry) for entry in text.split("|") if entry.strip()]


def _bundle_components(text: str, file: str, line: int, issues: list[CatalogIssue]) -> list[CatalogComponent]:
    out: list[CatalogComponent] = []
    for entry in _entries(text):
        sku = entry.get("sku", "").strip()
        if not sku:
            issues.append(CatalogIssue(file, line, "bundle_values", f"bundle option entry without sku: "
                                       f"{'|'.join(f'{k}={v}' for k, v in entry.items())[:60]!r}; skipped"))
            continue
        qty = _number(entry.get("default_qty", ""), file, line, "bundle_values", issues)
        price = _number(entry.get("price", ""), file, line, "bundle_values", issues)
        out.append(CatalogComponent(sku, qty if qty else 1.0, _text(entry.get("name")),
                                    entry.get("required", "1").strip() != "0", price))
    if not out:
        issues.append(CatalogIssue(file, line, "bundle_values", "bundle without any component"))
    return out


def _grouped_members(text: str, file: str, line: int, issues: list[CatalogIssue]) -> list[CatalogComponent]:
    out: list[CatalogComponent] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        sku, _, qty_text = part.partition("=")
        qty = _number(qty_text, file, line, "associated_skus", issues) if qty_text else None
        out.append(CatalogComponent(sku.strip(), qty if qty else 1.0))
    if not out:
        issues.append(CatalogIssue(file, line, "associated_skus", "grouped product without any member"))
    return out


def _downloads(kind: str, text: str, file: str, line: int, issues: list[CatalogIssue]) -> list[CatalogDownload]:
    column = f"downloadable_{kind}s"
    out: list[CatalogDownload] = []
    for entry in _entries(text):
        url = _text(entry.get(f"{kind}_url") or entry.get("url"))
        stored = _text(entry.get(f"{kind}_file") or entry.get("file"))
        if not url and not stored:
            issues.append(CatalogIssue(file, line, column, f"{kind} {entry.get('title', '')!r} has neither a URL "
                                       "nor a file; skipped"))
            continue
        price = _number(entry.get("price", ""), file, line, column, issues)
        out.append(CatalogDownload(kind, _text(entry.get("title")) or kind, url, stored, price))
    return out


def _check_components(product: CatalogProduct, products: dict[str, CatalogProduct],
                      issues: list[CatalogIssue]) -> None:
    """A component must be a row of its own; a missing one is reported and dropped from the product."""
    kept: list[CatalogComponent] = []
    column = "bundle_values" if product.magento_type == "bundle" else "associated_skus"
    for component in product.components:
        member = products.get(component.sku)
        if member is None:
            issues.append(CatalogIssue(product.source_file, product.source_line, column,
                                       f"component {component.sku!r} has no row; left out of {product.sku!r}"))
        elif member.magento_type in {"bundle", "grouped", "configurable"}:
            issues.append(CatalogIssue(product.source_file, product.source_line, column,
                                       f"component {component.sku!r} is a {member.magento_type} product; Magento "
                                       f"only puts simple or virtual products in a {product.magento_type}; "
                                       "left out"))
        else:
            kept.append(component)
    product.components = kept


def _read_image_list(path: Path, issues: list[CatalogIssue]) -> dict[str, list[CatalogImage]]:
    out: dict[str, list[CatalogImage]] = {}
    for line, row in _rows(path, IMAGE_LIST_REQUIRED):
        if "__error__" in row:
            issues.append(CatalogIssue(path.name, line, None, f"malformed row skipped: {row['__error__']}"))
            continue
        sku, image = row["sku"].strip(), row["image"].strip()
        if not sku or not image:
            issues.append(CatalogIssue(path.name, line, "sku" if not sku else "image", "empty value; row skipped"))
            continue
        images = out.setdefault(sku, [])
        role = AssetRole.HERO.value if not images else AssetRole.GALLERY.value
        images.append(CatalogImage(image, role))
    return out


class CategoryTree:
    """The category tree the fixtures' ``name, path`` files declare (``path`` is the parent's name path)."""

    def __init__(self) -> None:
        self.children: dict[str, dict[str, str]] = {"": {}}  # parent path -> {child name: child path}

    def add(self, name: str, parent: str) -> None:
        parent = "/".join(p.strip() for p in parent.split("/") if p.strip())
        path = f"{parent}/{name}" if parent else name
        self.children.setdefault(parent, {})[name] = path
        self.children.setdefault(path, {})

    def __bool__(self) -> bool:
        return bool(self.children[""])

    def walk(self, names: list[str]) -> tuple[list[str], list[str]]:
        """Magento's walk: each name is looked up among the children of the current category; a leaf sends the walk
        back to the root; a name not found there is skipped. Returns (deepest paths reached, names skipped)."""
        paths: list[str] = []
        skipped: list[str] = []
        current = ""
        for name in names:
            child = self.children[current].get(name)
            if child is None:
                skipped.append(name)
                continue
            current = child
            if not self.children[child]:
                if child not in paths:
                    paths.append(child)
                current = ""
        if current and current not in paths:
            paths.append(current)
        # a walk that passed through a category and went on below it reports only the deeper one
        return [p for p in paths if not any(q.startswith(p + "/") for q in paths)], skipped


def _read_category_list(path: Path, tree: CategoryTree, issues: list[CatalogIssue]) -> None:
    for line, row in _rows(path, CATEGORY_LIST_REQUIRED):
        if "__error__" in row:
            issues.append(CatalogIssue(path.name, line, None, f"malformed row skipped: {row['__error__']}"))
            continue
        name = row["name"].strip()
        if not name:
            issues.append(CatalogIssue(path.name, line, "name", "category without a name; skipped"))
            continue
        tree.add(name, row.get("path") or "")


def _gear_categories(text: str) -> list[str]:
    """Without a category file: the names read as (parent, child) pairs, ``Gear\\nBags\\nCollections\\n...``."""
    names = [n.strip() for n in text.splitlines() if n.strip()]
    if len(names) % 2:
        return ["/".join(names)] if names else []
    paths: list[str] = []
    for i in range(0, len(names), 2):
        path = f"{names[i]}/{names[i + 1]}"
        if path not in paths:
            paths.append(path)
    return paths


def _options(text: str) -> list[tuple[str, float]]:
    """A fixture's option list: one value per line, each optionally ``value;price delta``."""
    out: list[tuple[str, float]] = []
    for item in (v.strip() for v in text.splitlines()):
        if not item:
            continue
        value, _, delta = item.partition(";")
        try:
            out.append((value.strip(), float(delta) if delta.strip() else 0.0))
        except ValueError:
            out.append((value.strip(), 0.0))
    return out


def _read_gear(
    path: Path,
    products: dict[str, CatalogProduct],
    image_lists: dict[str, list[CatalogImage]],
    tree: CategoryTree,
    issues: list[CatalogIssue],
    associations: list[tuple[str, int, str, list[str]]],
) -> None:
    file = path.name
    known = {"category", "name", "sku", "price", "qty", "description", "attribute_set", "special_price",
             "associated_product_ids", "weight", *FIXTURE_AXES}
    for line, row in _rows(path, GEAR_REQUIRED):
        if "__error__" in row:
            issues.append(CatalogIssue(file, line, row.get("__column__"), f"malformed row skipped: {row['__error__']}"))
            continue
        sku = row["sku"].strip()
        if not sku:
            issues.append(CatalogIssue(file, line, "sku", "empty SKU; row skipped"))
            continue
        if len(sku) > MAX_SKU_LENGTH:
            issues.append(CatalogIssue(file, line, "sku", f"SKU {sku[:40]!r}... is {len(sku)} characters, over "
                                       f"Magento's {MAX_SKU_LENGTH}; row skipped"))
            continue
        if sku in products:
            issues.append(CatalogIssue(file, line, "sku", f"duplicate SKU {sku!r}; row skipped"))
            continue
        names = [n.strip() for n in (row.get("category") or "").splitlines() if n.strip()]
        if tree:
            categories, skipped = tree.walk(names)
            if skipped:
                issues.append(CatalogIssue(file, line, "category", "not below the category before them in the "
                                           f"category tree, so left out (as Magento's installer does): "
                                           f"{', '.join(repr(n) for n in skipped)}"))
        else:
            categories = _gear_categories(row.get("category") or "")
        name = _text(row.get("name"))
        axes = {a: opts for a in FIXTURE_AXES if (opts := _options(row.get(a) or ""))}
        members = [m.strip() for m in (row.get("associated_product_ids") or "").splitlines() if m.strip()]
        price = _number(row.get("price") or "", file, line, "price", issues)
        product = CatalogProduct(
            sku=sku,
            product_type="configurable" if axes else "simple",
            magento_type="configurable" if axes else "simple",
            product_group=_text(row.get("attribute_set")),
            name=name,
            description=_text(row.get("description")),
            url_key=slugify(name) if name else None,
            categories=categories,
            price=price,
            qty=_number(row.get("qty") or "", file, line, "qty", issues),
            weight=_number(row.get("weight") or "", file, line, "weight", issues),
            images=list(image_lists.get(sku, [])),
            attributes={k: " | ".join(v.split("\n")) for k, v in row.items() if k not in known and v.strip()},
            source_file=file,
            source_line=line,
        )
        products[sku] = product
        if not axes:
            continue
        product.axes = ["size" if a.startswith("size") else a for a in axes]
        if members:  # the variants are rows of their own, named here
            associations.append((file, line, sku, members))
            continue
        for combination in itertools.product(*axes.values()):
            labels = [value for value, _ in combination]
            child_sku = f"{sku}-{'-'.join(labels)}"
            if child_sku in products:
                issues.append(CatalogIssue(file, line, "sku", f"generated variant {child_sku!r} is already a row; "
                                           "the row is kept"))
                continue
            chosen = dict(zip(product.axes, labels, strict=True))
            products[child_sku] = CatalogProduct(
                sku=child_sku,
                product_type="simple",
                parent_sku=sku,
                product_group=product.product_group,
                name=f"{name}-{'-'.join(labels)}" if name else None,
                description=product.description,
                url_key=slugify(f"{name}-{'-'.join(labels)}") if name else None,
                categories=list(categories),
                color=chosen.get("color"),
                size=chosen.get("size"),
                weight=product.weight if product.weight is not None else GENERATED_VARIANT_WEIGHT,
                price=None if price is None else price + sum(delta for _, delta in combination),
                qty=product.qty if product.qty is not None else GENERATED_VARIANT_QTY,
                images=list(image_lists.get(child_sku, [])),
                source_file=file,
                source_line=line,
            )


def _associate(products: dict[str, CatalogProduct], associations: list[tuple[str, int, str, list[str]]],
               issues: list[CatalogIssue]) -> None:
    """Fixture parents whose variants are rows of their own (``associated_product_ids``), once every file is read."""
    for file, line, parent_sku, members in associations:
        for child_sku in members:
            child = products.get(child_sku)
            if child is None:
                issues.append(CatalogIssue(file, line, "associated_product_ids",
                                           f"variant {child_sku!r} has no row; skipped"))
            elif child.product_type == "configurable" or (child.parent_sku and child.parent_sku != parent_sku):
                issues.append(CatalogIssue(file, line, "associated_product_ids",
                                           f"variant {child_sku!r} is a parent or belongs to {child.parent_sku!r}; "
                                           "skipped"))
            else:
                child.parent_sku = parent_sku
