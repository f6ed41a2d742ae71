"""Multiply a catalog to N SKUs keeping its shape: parents with their variants, simples, translations, images.

Copies are made family by family (a configurable parent and all its variants, or one simple product), so the ratio
of parents to variants, the axes, the locales and the images per SKU stay those of the source. Copy ``k`` of
SKU ``MH01-XS-Black`` is ``MH01-XS-Black-K0007`` (parent ``MH01-K0007``): deterministic, readable, and never
equal to a source SKU. The result is a generator so that a million SKUs never sit in memory at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from catalog_sync.catalog.magento import Catalog, CatalogProduct


def _families(catalog: Catalog) -> list[list[CatalogProduct]]:
    """Each parent followed by its variants, and each simple alone, in the catalog's order."""
    children: dict[str, list[CatalogProduct]] = {}
    for p in catalog.products:
        if p.parent_sku is not None:
            children.setdefault(p.parent_sku, []).append(p)
    known = {p.sku for p in catalog.products}
    families: list[list[CatalogProduct]] = []
    for p in catalog.products:
        if p.parent_sku is not None and p.parent_sku in known:
            continue  # emitted with its parent
        families.append([p, *children.get(p.sku, [])])
    return families


def copy_sku(sku: str, k: int) -> str:
    return sku if k == 0 else f"{sku}-K{k:04d}"


def _copy(product: CatalogProduct, k: int) -> CatalogProduct:
    if k == 0:
        return product
    suffix = f"-k{k:04d}"
    return dataclasses.replace(
        product,
        sku=copy_sku(product.sku, k),
        parent_sku=copy_sku(product.parent_sku, k) if product.parent_sku else None,
        name=f"{product.name} #{k}" if product.name else product.name,
        url_key=f"{product.url_key}{suffix}" if product.url_key else product.url_key,
        translations={
            loc: {f: (f"{v}{suffix}" if f == "url_key" else v) for f, v in vals.items()}
            for loc, vals in product.translations.items()
        },
        # image paths are shared: a copied SKU shows the same photograph, as a restocked colourway would
        images=list(product.images),
        categories=list(product.categories),
        axes=list(product.axes) if product.axes else None,
        attributes=dict(product.attributes),
        # a copied kit is made of the copies of its components, as a copied variant belongs to the copied parent
        components=[dataclasses.replace(c, sku=copy_sku(c.sku, k)) for c in product.components],
    )


def scale_catalog(catalog: Catalog, n: int) -> Iterator[CatalogProduct]:
    """Exactly ``n`` products: the source first, then copies 1, 2, ... of each family, cut at ``n``.

    A family cut short keeps its parent and its first variants, so every variant emitted has its parent before it.
    """
    if n < 1:
        raise ValueError(f"a scaled catalog needs at least one SKU, asked for {n}")
    families = _families(catalog)
    emitted = 0
    k = 0
    while True:
        for family in families:
            for product in family:
                if emitted >= n:
                    return
                yield _copy(product, k)
                emitted += 1
        k += 1
