"""Create or update, through Akeneo's own REST endpoints, the PIM structure the declared model needs.

``bootstrap(pim)`` reads what the PIM holds, compares it with ``pim_model.yaml`` and writes only the differences,
in dependency order: the channel's category tree, the channel (which activates its locales and currencies),
attribute groups, attributes, their options, families, family variants. A second run finds nothing to change.

What Akeneo's API cannot create is only checked, with an error naming what is missing: locales and currencies
(every installation has them; a channel activates them) and the units of the standard measurement families.

The bootstrap adds and never removes: an attribute the PIM team added to a family, a label in another locale, an
option the model does not list all stay. A difference Akeneo would refuse to apply (an attribute's type, a family
variant's axes) is a :class:`BootstrapError` naming it; nothing is half-changed in that attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog_sync.connectors.pim import PimClient, path_segment
from catalog_sync.governance.pim_model import IMMUTABLE_ATTRIBUTE_PROPERTIES, PimModel, load_pim_model

log = logging.getLogger(__name__)


class BootstrapError(RuntimeError):
    """The PIM cannot be brought in line with the model through its API; the message says what to do."""


@dataclass(frozen=True)
class Change:
    kind: str  # category, channel, attribute_group, attribute, attribute_option, family, family_variant,
    # association_type
    code: str
    action: str  # create | update
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        what = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action} {self.kind} {self.code}{what}"


@dataclass
class BootstrapReport:
    changes: list[Change] = field(default_factory=list)
    #: What was only checked (locales, currencies, units), for the operator's log.
    checked: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"changes": len(self.changes), "dry_run": self.dry_run, "checked": self.checked,
                "details": [{"kind": c.kind, "code": c.code, "action": c.action, "fields": list(c.fields)}
                            for c in self.changes]}


def _merged_labels(existing: Mapping[str, Any] | None, declared: Mapping[str, str]) -> dict[str, Any] | None:
    """The labels to send so that the declared ones hold (others kept); None when they already hold."""
    current = dict(existing or {})
    if all(current.get(locale) == text for locale, text in declared.items()):
        return None
    return {**current, **declared}


def _union(existing: Sequence[Any] | None, declared: Iterable[Any]) -> list[Any]:
    """``existing`` in its order, then whatever of ``declared`` it lacks."""
    out = list(existing or [])
    out.extend(x for x in declared if x not in out)
    return out


class _Run:
    def __init__(self, pim: PimClient, model: PimModel, dry_run: bool) -> None:
        self.pim = pim
        self.model = model
        self.report = BootstrapReport(dry_run=dry_run)

    # ------------------------------------------------------------------------------------------------ helpers

    def write(self, resource: str, kind: str, payloads: list[tuple[Change, dict[str, Any]]]) -> None:
        """Send one collection PATCH for ``payloads`` (nothing on a dry run) and record the changes."""
        if not payloads:
            return
        self.report.changes.extend(change for change, _ in payloads)
        for change, _ in payloads:
            log.debug("pim bootstrap: %s", change)
        if self.report.dry_run:
            return
        results = self.pim.patch_structure(resource, [payload for _, payload in payloads])
        refused = [f"{r.key}: {r.message}" for r in results if not r.ok]
        if refused:
            raise BootstrapError(f"the PIM refused {len(refused)} {kind} write(s): " + "; ".join(refused))

    # -------------------------------------------------------------------------------------------------- checks

    def check_locales_and_currencies(self) -> None:
        channel = self.model.channel
        locales = {item["code"] for item in self.pim.list_structure("locales")}
        missing = [code for code in channel["locales"] if code not in locales]
        if missing:
            raise BootstrapError(
                f"the PIM has no locale {', '.join(missing)}: Akeneo's API cannot create locales (they come with "
                "the installation); use locale codes the PIM lists under /api/rest/v1/locales")
        currencies = {item["code"] for item in self.pim.list_structure("currencies")}
        missing = [code for code in channel["currencies"] if code not in currencies]
        if missing:
            raise BootstrapError(f"the PIM has no currency {', '.join(missing)}: Akeneo's API cannot create "
                                 "currencies; use currency codes the PIM lists under /api/rest/v1/currencies")
        self.report.checked.append(f"locales {', '.join(channel['locales'])}")
        self.report.checked.append(f"currencies {', '.join(channel['currencies'])}")

    def check_units(self) -> None:
        families = {item.get("code"): item for item in self.pim.measurement_families()}
        for family, units in sorted(self.model.units_needed().items()):
            found = families.get(family)
            if found is None:
                raise BootstrapError(f"the PIM has no measurement family {family!r}: the model relies on Akeneo's "
                                     "standard measurement families, which every installation ships")
            missing = sorted(set(units) - set(found.get("units") or {}))
            if missing:
                raise BootstrapError(f"the measurement family {family!r} has no unit {', '.join(missing)}")
            self.report.checked.append(f"measurement family {family}: {', '.join(sorted(units))}")

    # -------------------------------------------------------------------------------------------------- writes

    def categories(self) -> None:
        existing = {c["code"]: c for c in self.pim.list_structure("categories")}
        out = []
        for declared in self.model.categories:
            found = existing.get(declared["code"])
            if found is None:
                out.append((Change("category", declared["code"], "create"), dict(declared)))
                continue
            payload: dict[str, Any] = {"code": declared["code"]}
            if found.get("parent") != declared["parent"]:
                payload["parent"] = declared["parent"]
            labels = _merged_labels(found.get("labels"), declared["labels"])
            if labels is not None:
                payload["labels"] = labels
            if len(payload) > 1:
                out.append((Change("category", declared["code"], "update", tuple(sorted(set(payload) - {"code"}))),
                            payload))
        self.write("categories", "category", out)

    def channel(self) -> None:
        declared = self.model.channel
        found = self.pim.get_structure(f"channels/{path_segment(declared['code'])}")
        if found is None:
            self.write("channels", "channel", [(Change("channel", declared["code"], "create"), dict(declared))])
            return
        payload: dict[str, Any] = {"code": declared["code"]}
        for name in ("locales", "currencies"):
            wanted = _union(found.get(name), declared[name])
            if wanted != list(found.get(name) or []):
                payload[name] = wanted
        if found.get("category_tree") != declared["category_tree"]:
            payload["category_tree"] = declared["category_tree"]
        labels = _merged_labels(found.get("labels"), declared["labels"])
        if labels is not None:
            payload["labels"] = labels
        if len(payload) > 1:
            self.write("channels", "channel", [(Change("channel", declared["code"], "update",
                                                       tuple(sorted(set(payload) - {"code"}))), payload)])

    def labelled(self, resource: str, kind: str, what: str,
                 declared: Mapping[str, tuple[dict[str, Any], Mapping[str, str]]]) -> None:
        """Create the declared items (code -> (create payload, labels)) the PIM lacks under ``resource``, and
        complete the labels of those it has: the only property of theirs the model holds and Akeneo lets change."""
        existing = {item["code"]: item for item in self.pim.list_structure(resource)}
        out = []
        for code, (payload, wanted) in declared.items():
            found = existing.get(code)
            if found is None:
                out.append((Change(kind, code, "create"), payload))
                continue
            labels = _merged_labels(found.get("labels"), wanted)
            if labels is not None:
                out.append((Change(kind, code, "update", ("labels",)), {"code": code, "labels": labels}))
        self.write(resource, what, out)

    def attribute_groups(self) -> None:
        self.labelled("attribute-groups", "attribute_group", "attribute group",
                      {code: ({"code": code, "labels": d["labels"]}, d["labels"])
                       for code, d in self.model.attribute_groups.items()})

    def attributes(self) -> set[str]:
        """Create or update the declared attributes; returns the codes that exist (or would, on a dry run)."""
        existing = {a["code"]: a for a in self.pim.list_structure("attributes")}
        conflicts = []
        out = []
        for code, spec in self.model.attributes.items():
            declared = spec.payload()
            found = existing.get(code)
            if found is None:
                out.append((Change("attribute", code, "create"), declared))
                continue
            differs = [name for name in IMMUTABLE_ATTRIBUTE_PROPERTIES
                       if name in declared and found.get(name) != declared[name]]
            if differs:
                conflicts.append(f"{code} ({', '.join(f'{n}: PIM {found.get(n)!r}, model {declared[n]!r}' for n in differs)})")
                continue
            payload: dict[str, Any] = {"code": code}
            for name, value in declared.items():
                if name in ("code", "labels", *IMMUTABLE_ATTRIBUTE_PROPERTIES):
                    continue
                if found.get(name) != value:
                    payload[name] = value
            labels = _merged_labels(found.get("labels"), declared["labels"])
            if labels is not None:
                payload["labels"] = labels
            if len(payload) > 1:
                out.append((Change("attribute", code, "update", tuple(sorted(set(payload) - {"code"}))), payload))
        if conflicts:
            raise BootstrapError("attribute properties Akeneo cannot change differ from the model (rename the "
                                 "attribute in the model, or fix it in the PIM by hand): " + "; ".join(conflicts))
        self.write("attributes", "attribute", out)
        return set(existing) | set(self.model.attributes)

    def options(self, existing_attributes: set[str]) -> None:
        for code, spec in self.model.attributes.items():
            if not spec.options:
                continue
            found: dict[str, Any] = {}
            if code in existing_attributes and not (self.report.dry_run and self._created("attribute", code)):
                found = {o["code"]: o for o in self.pim.list_structure(f"attributes/{path_segment(code)}/options")}
            out = []
            for option in spec.option_payloads():
                current = found.get(option["code"])
                if current is None:
                    out.append((Change("attribute_option", f"{code}.{option['code']}", "create"), option))
                    continue
                labels = _merged_labels(current.get("labels"), option["labels"])
                if labels is not None:
                    out.append((Change("attribute_option", f"{code}.{option['code']}", "update", ("labels",)),
                                {"code": option["code"], "attribute": code, "labels": labels}))
            self.write(f"attributes/{path_segment(code)}/options", f"{code} option", out)

    def families(self) -> None:
        existing = {f["code"]: f for f in self.pim.list_structure("families")}
        out = []
        for code in self.model.families:
            declared = self.model.family_payload(code)
            found = existing.get(code)
            if found is None:
                out.append((Change("family", code, "create"), declared))
                continue
            payload: dict[str, Any] = {"code": code}
            attributes = _union(found.get("attributes"), declared["attributes"])
            if attributes != list(found.get("attributes") or []):
                payload["attributes"] = attributes
            if found.get("attribute_as_label") != declared["attribute_as_label"]:
                payload["attribute_as_label"] = declared["attribute_as_label"]
            requirements = dict(found.get("attribute_requirements") or {})
            changed_requirements = False
            for channel, required in declared["attribute_requirements"].items():
                wanted = _union(requirements.get(channel), required)
                if wanted != list(requirements.get(channel) or []):
                    requirements[channel] = wanted
                    changed_requirements = True
            if changed_requirements:
                payload["attribute_requirements"] = requirements
            labels = _merged_labels(found.get("labels"), declared["labels"])
            if labels is not None:
                payload["labels"] = labels
            if len(payload) > 1:
                out.append((Change("family", code, "update", tuple(sorted(set(payload) - {"code"}))), payload))
        self.write("families", "family", out)

    def family_variants(self) -> None:
        conflicts = []
        for family in self.model.families:
            found: dict[str, Any] = {}
            if not (self.report.dry_run and self._created("family", family)):
                found = {v["code"]: v for v in self.pim.list_structure(f"families/{path_segment(family)}/variants")}
            out = []
            for declared in self.model.family_variant_payloads(family):
                current = found.get(declared["code"])
                if current is None:
                    out.append((Change("family_variant", declared["code"], "create"), declared))
                    continue
                levels = {s.get("level"): s for s in current.get("variant_attribute_sets") or []}
                sets = []
                changed = False
                for wanted in declared["variant_attribute_sets"]:
                    have = levels.get(wanted["level"]) or {}
                    if list(have.get("axes") or []) != wanted["axes"]:
                        conflicts.append(f"{declared['code']} level {wanted['level']} (PIM axes {have.get('axes')}, "
                                         f"model {wanted['axes']})")
                        break
                    attributes = _union(have.get("attributes"), wanted["attributes"])
                    changed |= attributes != list(have.get("attributes") or [])
                    sets.append({"level": wanted["level"], "axes": wanted["axes"], "attributes": attributes})
                else:
                    payload: dict[str, Any] = {"code": declared["code"]}
                    if changed:
                        payload["variant_attribute_sets"] = sets
                    labels = _merged_labels(current.get("labels"), declared["labels"])
                    if labels is not None:
                        payload["labels"] = labels
                    if len(payload) > 1:
                        out.append((Change("family_variant", declared["code"], "update",
                                           tuple(sorted(set(payload) - {"code"}))), payload))
            self.write(f"families/{path_segment(family)}/variants", "family variant", out)
        if conflicts:
            raise BootstrapError("family variant axes cannot change in Akeneo and differ from the model: "
                                 + "; ".join(conflicts))

    def association_types(self) -> None:
        """The association types kits list their components under."""
        self.labelled("association-types", "association_type", "association type",
                      {code: (spec.payload(), spec.labels) for code, spec in self.model.association_types.items()})

    def _created(self, kind: str, code: str) -> bool:
        return any(c.kind == kind and c.code == code and c.action == "create" for c in self.report.changes)


def bootstrap(pim: PimClient, model: PimModel | None = None, *, dry_run: bool = False) -> BootstrapReport:
    """Bring the PIM's structure in line with the declared model; returns what changed (or would, on a dry run).

    Raises :class:`BootstrapError` when the PIM lacks something its API cannot create, or holds something the
    model contradicts and Akeneo cannot change.
    """
    run = _Run(pim, model or load_pim_model(), dry_run)
    run.check_locales_and_currencies()
    run.check_units()
    run.categories()  # the channel's tree must exist before the channel names it
    run.channel()  # activates the locales and currencies that labels and values use
    run.attribute_groups()
    existing = run.attributes()
    run.options(existing)
    run.families()
    run.family_variants()
    run.association_types()
    return run.report
