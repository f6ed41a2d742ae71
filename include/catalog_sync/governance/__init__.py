"""Data governance: which system owns each attribute (``ownership.yaml``) and the reference data the
transforms normalise against (``reference_data.yaml``). Both are data files users edit; this package validates
them on load."""

from catalog_sync.governance.ownership import (
    AttributeRule,
    Flow,
    Ownership,
    OwnershipError,
    Refusal,
    WriteCheck,
    load_ownership,
    parse_ownership,
    refusals_to_dead_letters,
)

__all__ = [
    "AttributeRule",
    "Flow",
    "Ownership",
    "OwnershipError",
    "Refusal",
    "WriteCheck",
    "load_ownership",
    "parse_ownership",
    "refusals_to_dead_letters",
]
