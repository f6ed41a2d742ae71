"""Deterministic master data the ERP holds but a Magento export does not carry (UPC, vendor, origin, dimensions).

Every value is a pure function of the SKU (through SHA-256, never Python's salted ``hash``), so seeding the same
catalog twice gives byte-identical systems.
"""

from __future__ import annotations

import hashlib
from typing import Final, TypeVar

T = TypeVar("T")

#: Vendors the seeded ERP assigns, each with the spellings other systems or people are known to use for it
#: (the vendor_name_variants scenario writes those).
VENDORS: Final[dict[str, tuple[str, ...]]] = {
    "Northwind Apparel Company": ("Northwind Apparel Co.", "NORTHWIND APPAREL CO"),
    "Summit Outdoor Goods Incorporated": ("Summit Outdoor Goods Inc.", "Summit Outdoor Goods, Inc"),
    "Blue Ridge Textiles Limited": ("Blue Ridge Textiles Ltd", "Blue Ridge Textiles Ltd."),
    "Harbor Gear Corporation": ("Harbor Gear Corp.", "Harbor Gear Corp"),
    "Keystone Sportswear LLC": ("Keystone Sportswear, L.L.C.", "Keystone Sportswear"),
}
#: ISO 3166-1 alpha-2 countries of origin the seeded ERP assigns when the export has none.
COUNTRIES: Final[tuple[str, ...]] = ("VN", "BD", "CN", "IN", "PT", "TR", "US", "MX")


def stable_int(*parts: object) -> int:
    """A 64-bit integer that depends only on ``parts`` (stable across processes and Python versions)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def stable_pick(options: tuple[T, ...] | list[T], *parts: object) -> T:
    return options[stable_int(*parts) % len(options)]


def upc_check_digit(eleven_digits: str) -> str:
    """GS1 check digit of a UPC-A: odd positions weigh 3, even positions 1."""
    if len(eleven_digits) != 11 or not eleven_digits.isdigit():
        raise ValueError(f"a UPC-A body is 11 digits, got {eleven_digits!r}")
    odd = sum(int(d) for d in eleven_digits[0::2])
    even = sum(int(d) for d in eleven_digits[1::2])
    return str((10 - (odd * 3 + even) % 10) % 10)


def upc_valid(upc: str) -> bool:
    return len(upc) == 12 and upc.isdigit() and upc_check_digit(upc[:11]) == upc[11]


def upc_for(sku: str, attempt: int = 0) -> str:
    """A valid UPC-A derived from the SKU. ``attempt`` > 0 gives the next candidate when two SKUs collide.

    The number system digit is fixed at 0 (regular retail items); the other ten body digits come from the hash.
    """
    body = "0" + f"{stable_int('upc', sku, attempt) % 10**10:010d}"
    return body + upc_check_digit(body)


def vendor_for(sku: str) -> str:
    return stable_pick(tuple(VENDORS), "vendor", sku)


def country_for(sku: str) -> str:
    return stable_pick(COUNTRIES, "country", sku)


def dimensions_for(sku: str, product_group: str | None) -> tuple[float, float, float]:
    """Packed length, width and height in inches: a folded garment or a boxed gear item, varied by SKU."""
    n = stable_int("dims", sku)
    if (product_group or "").lower() in {"top", "bottom"}:
        base = (12.0, 10.0, 1.5)
    else:
        base = (14.0, 10.0, 6.0)
    spread = ((n % 7) / 2, (n // 7 % 5) / 2, (n // 35 % 4) / 2)
    return tuple(round(b + s, 1) for b, s in zip(base, spread, strict=True))  # type: ignore[return-value]
