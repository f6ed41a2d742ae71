"""Attribute ownership: every attribute has one owner system, and only the owner's value may be written anywhere.

The rules live in ``ownership.yaml`` next to this module, so that changing who owns what is an edit of a data
file, reviewed like code, and not a code change. The file is validated when loaded; every mistake is reported at
once, with its line and attribute.

A write is judged as "``writer`` puts its value of ``attribute`` into ``target``", where the writer is the system
whose value is being written, not the process that carries it. So the ERP's ``lifecycle_status`` being copied into
the PIM is a write by the ERP (allowed: the ERP owns it and ``erp -> pim`` is a declared flow), while a supplier
portal sending ``lifecycle_status`` anywhere is a write by the supplier (refused: the supplier owns nothing of the
kind). A write is allowed when

- the writer owns the attribute and the target is the owner itself, or
- the attribute declares the flow ``writer -> target`` (the owner sending a copy, or a system that received a
  copy relaying it, like the PIM passing ERP master data on to the storefront), or
- the writer is a declared contributor and the target is the owner (a proposal the owner reviews).

Anything else, including an attribute the file does not mention, is refused: an undeclared attribute has no owner,
and a write nobody owns is exactly the dual maintenance this module exists to stop.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from catalog_sync.domain import PRODUCT_FIELDS, System

#: The rules shipped with the package.
DEFAULT_PATH: Final[Path] = Path(__file__).with_name("ownership.yaml")

#: Systems that may own, read or receive a copy of an attribute. The CDN is not one: it caches rendered pages and
#: holds no attribute of its own.
SYSTEMS: Final[frozenset[str]] = frozenset(s.value for s in System if s is not System.CDN)
TEMPERATURES: Final[frozenset[str]] = frozenset({"hot", "cold"})
#: Attributes the file must declare for the product entity: the canonical record plus the hot-only fields.
REQUIRED_PRODUCT_ATTRIBUTES: Final[tuple[str, ...]] = (*PRODUCT_FIELDS, "stock", "live_price")

_ATTRIBUTE_KEYS: Final[frozenset[str]] = frozenset({"owner", "temperature", "readers", "flows", "contributors"})


class OwnershipError(ValueError):
    """The ownership file is invalid; ``errors`` holds one line per problem, each naming where it is."""

    def __init__(self, path: Path, errors: Sequence[str]) -> None:
        self.path = path
        self.errors = list(errors)
        super().__init__(f"{path} is invalid ({len(errors)} problem(s)):\n  " + "\n  ".join(errors))


@dataclass(frozen=True)
class Flow:
    """One allowed copy: ``source`` may write the owner's value of an attribute into ``target``."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True)
class AttributeRule:
    """What ``ownership.yaml`` says about one attribute of one entity."""

    entity: str
    name: str
    owner: str
    temperature: str  # hot | cold
    readers: frozenset[str]
    flows: tuple[Flow, ...]
    contributors: frozenset[str] = frozenset()
    line: int = 0

    @property
    def copies_to(self) -> frozenset[str]:
        """Every system that may hold a copy of the owner's value."""
        return frozenset(f.target for f in self.flows)


@dataclass(frozen=True)
class Refusal:
    """One attribute of one record that ``writer`` may not write into ``target``."""

    entity: str
    record_key: str | None
    attribute: str
    writer: str
    target: str
    owner: str | None  # None: the attribute is not declared, so nobody owns it
    value: Any
    reason: str


@dataclass(frozen=True)
class WriteCheck:
    """A record split into what may be written and what is refused.

    ``allowed`` keeps the record's key field (when present) so that it still addresses the record.
    """

    writer: str
    target: str
    entity: str
    record_key: str | None
    allowed: dict[str, Any]
    refused: tuple[Refusal, ...]

    @property
    def ok(self) -> bool:
        return not self.refused


@dataclass(frozen=True)
class Ownership:
    """The validated ownership rules. Build it with :func:`load_ownership`."""

    path: Path
    keys: Mapping[str, str]  # entity -> key attribute
    rules: Mapping[tuple[str, str], AttributeRule] = field(repr=False)

    # --- lookups ---------------------------------------------------------------------------------------------

    def rule(self, attribute: str, entity: str = "product") -> AttributeRule:
        """The rule for ``attribute``; KeyError naming the file when it is not declared."""
        try:
            return self.rules[(entity, attribute)]
        except KeyError:
            raise KeyError(f"{entity}.{attribute} is not declared in {self.path}") from None

    def owner(self, attribute: str, entity: str = "product") -> str:
        """The system that owns ``attribute``."""
        return self.rule(attribute, entity).owner

    def temperature(self, attribute: str, entity: str = "product") -> str:
        """``hot`` (owner -> storefront directly) or ``cold`` (nightly, through the PIM)."""
        return self.rule(attribute, entity).temperature

    def may_read(self, system: str, attribute: str, entity: str = "product") -> bool:
        rule = self.rules.get((entity, attribute))
        return rule is not None and (system == rule.owner or system in rule.readers)

    def may_write(self, system: str, attribute: str, entity: str = "product") -> bool:
        """Whether ``system`` may originate or change the value of ``attribute``: only its owner may."""
        rule = self.rules.get((entity, attribute))
        return rule is not None and rule.owner == system

    def fields_owned_by(self, system: str, entity: str = "product") -> tuple[str, ...]:
        """The attributes of ``entity`` owned by ``system``, in file order."""
        return tuple(r.name for (e, _), r in self.rules.items() if e == entity and r.owner == system)

    def attributes(self, entity: str = "product") -> tuple[str, ...]:
        return tuple(name for (e, name) in self.rules if e == entity)

    # --- writes ------------------------------------------------------------------------------------------------

    def refusal_reason(self, writer: str, target: str, attribute: str, entity: str = "product") -> str | None:
        """Why ``writer`` may not write ``attribute`` into ``target``, or None when it may."""
        rule = self.rules.get((entity, attribute))
        if rule is None:
            return f"{entity}.{attribute} has no owner declared in {self.path.name}"
        if target == rule.owner:
            if writer == rule.owner or writer in rule.contributors:
                return None
            return f"{attribute} is owned by {rule.owner}; {writer} may not write it"
        if Flow(writer, target) in rule.flows:
            return None
        allowed = ", ".join(str(f) for f in rule.flows) or "none"
        if writer != rule.owner:
            return (
                f"{attribute} is owned by {rule.owner}; {writer} may not write it to {target} "
                f"(allowed flows: {allowed})"
            )
        return f"{attribute} ({rule.temperature} data) may not flow {writer} -> {target} (allowed flows: {allowed})"

    def check_write(
        self, writer_system: str, target_system: str, record: Mapping[str, Any], entity: str = "product"
    ) -> WriteCheck:
        """Split ``record`` into the attributes ``writer_system`` may write into ``target_system`` and the rest.

        The entity's key field (``sku`` for products) only addresses the record and is passed through unchecked.
        """
        key_field = self.keys.get(entity)
        if key_field is None:
            raise KeyError(f"entity {entity!r} is not declared in {self.path}")
        raw_key = record.get(key_field)
        record_key = None if raw_key is None else str(raw_key)
        allowed: dict[str, Any] = {}
        refused: list[Refusal] = []
        for attribute, value in record.items():
            if attribute == key_field:
                allowed[attribute] = value
                continue
            reason = self.refusal_reason(writer_system, target_system, attribute, entity)
            if reason is None:
                allowed[attribute] = value
            else:
                rule = self.rules.get((entity, attribute))
                refused.append(
                    Refusal(
                        entity=entity,
                        record_key=record_key,
                        attribute=attribute,
                        writer=writer_system,
                        target=target_system,
                        owner=rule.owner if rule else None,
                        value=value,
                        reason=reason,
                    )
                )
        return WriteCheck(writer_system, target_system, entity, record_key, allowed, tuple(refused))


def refusals_to_dead_letters(
    refusals: Iterable[Refusal], load_id: str, flow: str, entity: str, target_system: str
) -> list[dict[str, Any]]:
    """Rows for :func:`catalog_sync.hub.repo.dead_letter`, one per refused attribute of a record.

    The attribute goes in ``expectation`` because the hub keeps one open letter per (flow, entity, record, target,
    reason kind, expectation): two refused attributes of one record must be two letters, and a re-run refusing the
    same attribute again must bump the existing letter rather than add one. Should the same attribute of the same
    record be refused twice in one batch, the last refusal wins (one statement may not upsert a row twice).
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for refusal in refusals:
        record_key = refusal.record_key if refusal.record_key is not None else ""
        rows[(record_key, refusal.attribute)] = {
            "load_id": load_id,
            "flow": flow,
            "entity": entity,
            "record_key": record_key,
            "source_system": refusal.writer,
            "target_system": target_system,
            "reason_kind": "ownership",
            "expectation": refusal.attribute,
            "reason": refusal.reason,
            "payload": {
                "attribute": refusal.attribute,
                "value": refusal.value,
                "writer": refusal.writer,
                "owner": refusal.owner,
            },
        }
    return list(rows.values())


# --- loading and validation ------------------------------------------------------------------------------------


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers its line, each key's line, and any key given twice."""

    line: int
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int, int]]  # (key, line, first line)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that keeps line numbers for error messages and does not let a repeated key silently win."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    mapping = _Map()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    mapping.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            mapping.duplicates.append((key, line, mapping.key_lines[key]))
            continue
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def _line(mapping: Any, key: Any = None) -> int:
    if isinstance(mapping, _Map):
        return mapping.key_lines.get(key, mapping.line) if key is not None else mapping.line
    return 0


def _parse_flow(raw: Any) -> Flow | None:
    if not isinstance(raw, str) or raw.count("->") != 1:
        return None
    source, target = (part.strip() for part in raw.split("->"))
    return Flow(source, target) if source and target else None


def _system_list(value: Any) -> list[Any] | None:
    """A YAML list of systems (a lone name is accepted as a one-item list); None when it is neither."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    return None


def _validate_attribute(
    entity: str, name: str, spec: Any, line: int, errors: list[str]
) -> AttributeRule | None:
    """Check one attribute entry; append its problems to ``errors``; return the rule if it is sound."""
    where = f"line {line}: {entity}.{name}"
    if not isinstance(spec, dict):
        errors.append(f"{where}: expected a mapping with owner, temperature, readers and flows")
        return None
    problems_before = len(errors)
    for extra in sorted(set(spec) - _ATTRIBUTE_KEYS, key=str):
        errors.append(f"line {_line(spec, extra)}: {entity}.{name}: unknown key {extra!r}")
    known = ", ".join(sorted(SYSTEMS))

    owner = spec.get("owner")
    if owner is None:
        errors.append(f"{where}: attribute without owner (add 'owner: <system>')")
    elif owner not in SYSTEMS:
        errors.append(f"line {_line(spec, 'owner')}: {entity}.{name}: unknown system {owner!r} (known: {known})")

    temperature = spec.get("temperature")
    if temperature not in TEMPERATURES:
        errors.append(
            f"line {_line(spec, 'temperature')}: {entity}.{name}: temperature must be hot or cold, "
            f"not {temperature!r}"
        )

    systems: dict[str, list[Any]] = {}
    for key in ("readers", "contributors"):
        values = _system_list(spec.get(key))
        if values is None:
            errors.append(f"line {_line(spec, key)}: {entity}.{name}: {key} must be a list of systems")
            values = []
        for system in values:
            if system not in SYSTEMS:
                errors.append(
                    f"line {_line(spec, key)}: {entity}.{name}: unknown system {system!r} in {key} (known: {known})"
                )
        systems[key] = values

    flows: list[Flow] = []
    raw_flows = _system_list(spec.get("flows"))
    flow_line = _line(spec, "flows")
    if raw_flows is None:
        errors.append(f"line {flow_line}: {entity}.{name}: flows must be a list of 'source -> target' edges")
        raw_flows = []
    for raw in raw_flows:
        flow = _parse_flow(raw)
        if flow is None:
            errors.append(f"line {flow_line}: {entity}.{name}: flow {raw!r} is not of the form 'source -> target'")
            continue
        bad = [s for s in (flow.source, flow.target) if s not in SYSTEMS]
        if bad:
            errors.append(
                f"line {flow_line}: {entity}.{name}: unknown system {bad[0]!r} in flow '{flow}' (known: {known})"
            )
            continue
        if flow in flows:
            errors.append(f"line {flow_line}: {entity}.{name}: flow '{flow}' is listed twice")
            continue
        flows.append(flow)

    if len(errors) > problems_before or owner is None:
        return None

    # Structural rules, checked only once every name above is known to be valid; one problem per flow.
    readers = set(systems["readers"])
    sound: list[Flow] = []
    for f in flows:
        if f.source == f.target:
            errors.append(f"line {flow_line}: {entity}.{name}: flow '{f}' goes nowhere")
        elif f.target == owner:
            errors.append(
                f"line {flow_line}: {entity}.{name}: flow '{f}' writes back into the owner {owner}; only the "
                "owner changes its own value (declare a contributor for reviewed proposals)"
            )
        else:
            sound.append(f)
    holders = {owner}
    pending = list(sound)
    while pending:  # edges in any order: keep taking those whose source already holds the value
        ready = [f for f in pending if f.source in holders]
        if not ready:
            for f in pending:
                errors.append(
                    f"line {flow_line}: {entity}.{name}: flow '{f}' starts at {f.source}, which never receives "
                    f"{name} (the first edge must start at the owner, {owner})"
                )
                sound.remove(f)
            break
        for f in ready:
            holders.add(f.target)
            pending.remove(f)
    for f in sound:
        if f.target not in readers:
            errors.append(
                f"line {_line(spec, 'readers')}: {entity}.{name}: {f.target} receives a copy (flow '{f}') but is "
                "not among its readers"
            )
        elif temperature == "hot" and f.source != owner:
            errors.append(
                f"line {flow_line}: {entity}.{name}: hot data goes straight from its owner; flow '{f}' relays it"
            )
        elif temperature == "cold" and f.target == System.STOREFRONT and f.source != System.PIM:
            errors.append(
                f"line {flow_line}: {entity}.{name}: cold data reaches the storefront through the PIM, "
                f"not by '{f}' (make it hot if it must bypass the PIM)"
            )
    for contributor in systems["contributors"]:
        if contributor == owner:
            errors.append(f"line {_line(spec, 'contributors')}: {entity}.{name}: the owner is not a contributor")
    if len(errors) > problems_before:
        return None
    return AttributeRule(
        entity=entity,
        name=name,
        owner=owner,
        temperature=str(temperature),
        readers=frozenset(readers),
        flows=tuple(flows),
        contributors=frozenset(systems["contributors"]),
        line=line,
    )


def parse_ownership(text: str, path: Path = DEFAULT_PATH) -> Ownership:
    """Validate the YAML ``text`` of an ownership file and build the rules; OwnershipError lists every problem."""
    try:
        # _LineLoader derives from SafeLoader: no arbitrary Python objects.
        document = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise OwnershipError(path, [f"not valid YAML: {exc}"]) from exc
    errors: list[str] = []
    if not isinstance(document, dict) or not isinstance(document.get("entities"), dict):
        raise OwnershipError(path, ["line 1: expected a mapping with an 'entities' section"])
    if document.get("version") != 1:
        errors.append(f"line {_line(document, 'version')}: version must be 1, not {document.get('version')!r}")
    for key, line, first in getattr(document, "duplicates", []):
        errors.append(f"line {line}: duplicate key {key!r} (first at line {first})")

    entities = document["entities"]
    for key, line, first in getattr(entities, "duplicates", []):
        errors.append(f"line {line}: duplicate entity {key!r} (first at line {first})")
    keys: dict[str, str] = {}
    rules: dict[tuple[str, str], AttributeRule] = {}
    for entity, spec in entities.items():
        entity_line = _line(entities, entity)
        if not isinstance(spec, dict) or not isinstance(spec.get("attributes"), dict):
            errors.append(f"line {entity_line}: entity {entity!r} needs 'key' and an 'attributes' mapping")
            continue
        attributes = spec["attributes"]
        for name, line, first in getattr(attributes, "duplicates", []):
            errors.append(f"line {line}: {entity}.{name}: duplicate attribute (first defined at line {first})")
        for name, attr_spec in attributes.items():
            rule = _validate_attribute(entity, str(name), attr_spec, _line(attributes, name), errors)
            if rule is not None:
                rules[(entity, rule.name)] = rule
        key_field = spec.get("key")
        if not isinstance(key_field, str) or not key_field:
            errors.append(f"line {entity_line}: entity {entity!r}: 'key' must name the field identifying a record")
        else:
            keys[entity] = key_field

    product = entities.get("product")
    if not isinstance(product, dict) or not isinstance(product.get("attributes"), dict):
        errors.append("entity 'product' is missing")
    else:
        declared = product["attributes"]
        for name in REQUIRED_PRODUCT_ATTRIBUTES:
            if name not in declared:
                errors.append(
                    f"line {_line(declared)}: product.{name}: attribute without owner (a canonical product "
                    "field must be declared)"
                )
    if errors:
        raise OwnershipError(path, errors)
    return Ownership(path=path, keys=keys, rules=rules)


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int, size: int) -> Ownership:
    # mtime and size are only the cache key: an edited file gets a new key and is read and validated again.
    return parse_ownership(path.read_text(encoding="utf-8"), path)


def load_ownership(path: str | Path | None = None) -> Ownership:
    """The ownership rules from ``path`` (default: the packaged ``ownership.yaml``), validated.

    Cached by path and modification time, so calling it per task is cheap and an edited file takes effect on
    the next call without a restart.
    """
    resolved = Path(path).resolve() if path is not None else DEFAULT_PATH
    stat = resolved.stat()
    return _load_cached(resolved, stat.st_mtime_ns, stat.st_size)
