"""Reference vocabularies the layer-0 (syntax) gates check values against.

These are the canonical codes connectors must translate into: a record carrying ``"each"`` or ``"ea"`` as its unit
of measure was not translated, and the gate says so rather than guessing. Kept as plain constants (no GX import) so
that DAG files may import them at parse time.
"""

from __future__ import annotations

from typing import Final

from catalog_sync.domain import ITEM_TYPES, AssetRole, AssetStatus, LifecycleStatus

#: Sales / stocking units of measure (ERP "UoM" codes, upper case, as in UN/ECE Rec. 20 short forms).
UOM_CODES: Final[frozenset[str]] = frozenset({"EA", "PR", "PK", "BX", "CS", "ST"})
#: Weight units the canonical record allows.
WEIGHT_UNITS: Final[frozenset[str]] = frozenset({"lbs", "kg", "g", "oz"})
#: Dimension units the canonical record allows.
DIMENSION_UNITS: Final[frozenset[str]] = frozenset({"in", "cm", "mm"})

PRODUCT_TYPES: Final[frozenset[str]] = frozenset({"configurable", "simple"})
#: What an item may be (Magento's product types, as the ERP keeps them).
ITEM_TYPE_CODES: Final[frozenset[str]] = ITEM_TYPES
LIFECYCLE_STATES: Final[frozenset[str]] = frozenset(s.value for s in LifecycleStatus)
ASSET_ROLES: Final[frozenset[str]] = frozenset(r.value for r in AssetRole)
ASSET_STATES: Final[frozenset[str]] = frozenset(s.value for s in AssetStatus)
#: Storefront publication states (Shopify ProductStatus values).
STOREFRONT_STATES: Final[frozenset[str]] = frozenset({"active", "draft", "archived"})

#: Our SKUs: letters, digits and dashes, starting with a letter or digit (Luma style: ``MH01-XS-Black``, ``24-MB01``).
SKU_PATTERN: Final[str] = r"^[A-Za-z0-9][A-Za-z0-9-]{1,63}$"
#: UPC-A (12 digits) or EAN-13 (13 digits); the check digit is verified separately.
GTIN_PATTERN: Final[str] = r"^(?:\d{12}|\d{13})$"
#: ISO 4217 alphabetic currency code.
CURRENCY_PATTERN: Final[str] = r"^[A-Z]{3}$"
#: Any HTML tag (opening, closing, comment or doctype): for fields that must be plain text.
ANY_HTML_PATTERN: Final[str] = r"<\s*/?\s*[A-Za-z!][^>]*>"
