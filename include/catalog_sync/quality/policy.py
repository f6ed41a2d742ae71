"""Loader for ``thresholds.yaml``: the policy of every gate (hard or soft, limits, critical checks) and the
business-rule parameters of the layer-1 suites.

Cheap to import (PyYAML only), so a DAG may read a gate's severity at parse time if it wants to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

THRESHOLDS_FILE = Path(__file__).with_name("thresholds.yaml")

Severity = Literal["hard", "soft"]


@dataclass(frozen=True)
class GatePolicy:
    """How one gate reacts to failures."""

    name: str
    entity: str
    layer: int
    severity: Severity
    max_failure_share: float
    critical: frozenset[str]
    why: str
    min_rows_to_stop: int = 20


@dataclass(frozen=True)
class PriceRange:
    min: float
    max: float


@dataclass(frozen=True)
class ChannelRules:
    """Content rules of one sales channel (field -> min/max length; where HTML is allowed; refused tags)."""

    lengths: dict[str, tuple[int | None, int | None]]
    html_allowed: frozenset[str]
    disallowed_tags: tuple[str, ...]
    region: str | None = None  # the sales region whose image rights the channel needs (DAM rights_regions)


@dataclass(frozen=True)
class Rules:
    """Business-rule parameters the layer-1 suites read."""

    price_ranges: dict[str, PriceRange]
    family_attributes: dict[str, tuple[str, ...]]
    channels: dict[str, ChannelRules]
    max_stock_quantity: int
    max_lead_time_days: int
    max_pack_size: int

    def price_range(self, product_group: str | None) -> PriceRange:
        return self.price_ranges.get(product_group or "", self.price_ranges["default"])

    def region_of(self, channel: str) -> str | None:
        rules = self.channels.get(channel)
        return rules.region if rules else None

    def attributes_for(self, product_group: str | None) -> tuple[str, ...]:
        return self.family_attributes.get(product_group or "", self.family_attributes["default"])


@dataclass(frozen=True)
class Policy:
    gates: dict[str, GatePolicy]
    rules: Rules

    def gate(self, name: str) -> GatePolicy:
        try:
            return self.gates[name]
        except KeyError:
            raise KeyError(
                f"gate {name!r} is not configured in {THRESHOLDS_FILE.name}; every gate needs an explicit "
                f"hard/soft decision (configured: {', '.join(sorted(self.gates))})"
            ) from None


def _parse(raw: dict[str, Any]) -> Policy:
    gates: dict[str, GatePolicy] = {}
    for name, g in (raw.get("gates") or {}).items():
        severity = g["severity"]
        if severity not in ("hard", "soft"):
            raise ValueError(f"gate {name}: severity must be 'hard' or 'soft', not {severity!r}")
        share = float(g["max_failure_share"])
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"gate {name}: max_failure_share must be within [0, 1], not {share}")
        gates[name] = GatePolicy(
            name=name,
            entity=str(g["entity"]),
            layer=int(g["layer"]),
            severity=severity,
            max_failure_share=share,
            critical=frozenset(g.get("critical") or ()),
            why=str(g.get("why", "")).strip(),
            min_rows_to_stop=int(g.get("min_rows_to_stop", 20)),
        )
    r = raw.get("rules") or {}
    price_ranges = {k: PriceRange(float(v["min"]), float(v["max"])) for k, v in r["price_ranges"].items()}
    if "default" not in price_ranges:
        raise ValueError("rules.price_ranges needs a 'default' range")
    family = {k: tuple(v) for k, v in r["family_attributes"].items()}
    if "default" not in family:
        raise ValueError("rules.family_attributes needs a 'default' entry")
    channels: dict[str, ChannelRules] = {}
    for ch, spec in r["channels"].items():
        lengths = {
            f: (v.get("min_length"), v.get("max_length"))
            for f, v in spec.items()
            if isinstance(v, dict)
        }
        channels[ch] = ChannelRules(
            lengths=lengths,
            html_allowed=frozenset(spec.get("html_allowed") or ()),
            disallowed_tags=tuple(spec.get("disallowed_tags") or ()),
            region=str(spec["region"]) if spec.get("region") else None,
        )
    rules = Rules(
        price_ranges=price_ranges,
        family_attributes=family,
        channels=channels,
        max_stock_quantity=int(r["stock"]["max_quantity"]),
        max_lead_time_days=int(r["supplier"]["max_lead_time_days"]),
        max_pack_size=int(r["supplier"]["max_pack_size"]),
    )
    return Policy(gates=gates, rules=rules)


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> Policy:
    """The parsed policy (cached per path; pass a path to test another file)."""
    file = Path(path) if path else THRESHOLDS_FILE
    with file.open(encoding="utf-8") as fh:
        return _parse(yaml.safe_load(fh))


@dataclass(frozen=True)
class AlertRules:
    """The ``alerts`` section of ``thresholds.yaml`` (what is sent to people, and when; see catalog_sync.alerting)."""

    suppress_minutes: float
    soft_gate_share: bool
    dead_letters_per_run: int
    dead_letters_open: int
    nightly_deadline_minutes: float
    hot_lag_minutes: float
    unreachable_minutes: float
    lifecycle_follow_minutes: float = 1560.0
    lifecycle_divergence_share: float = 0.01
    #: Write-back loops (``alerts.write_loops``): more than ``loop_flips`` flips of one field within
    #: ``loop_window_minutes`` holds it; only the (system, entity) pairs in ``loop_watch`` are watched.
    loop_flips: int = 3
    loop_window_minutes: float = 1440.0
    loop_watch: tuple[tuple[str, str], ...] = (("pim", "product"),)

    @property
    def suppress_window(self) -> timedelta:
        return timedelta(minutes=self.suppress_minutes)


@lru_cache(maxsize=4)
def load_alert_rules(path: str | None = None) -> AlertRules:
    """The alert thresholds (cached per path; PyYAML only, so a DAG reads its deadline at parse time)."""
    with (Path(path) if path else THRESHOLDS_FILE).open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    a = raw.get("alerts")
    if not isinstance(a, dict):
        raise ValueError(f"{THRESHOLDS_FILE.name} has no 'alerts' section")
    fresh = a.get("freshness") or {}
    loops = a.get("write_loops") or {}
    watch = tuple(tuple(str(w).split("/", 1)) for w in loops.get("watch", ["pim/product"]))
    if any(len(w) != 2 for w in watch):
        raise ValueError("alerts.write_loops.watch entries are 'system/entity', e.g. pim/product")
    rules = AlertRules(
        suppress_minutes=float(a["suppress_minutes"]),
        soft_gate_share=bool(a.get("soft_gate_share", True)),
        dead_letters_per_run=int(a["dead_letters_per_run"]),
        dead_letters_open=int(a["dead_letters_open"]),
        nightly_deadline_minutes=float(fresh["nightly_deadline_minutes"]),
        hot_lag_minutes=float(fresh["hot_lag_minutes"]),
        unreachable_minutes=float(a["unreachable_minutes"]),
        lifecycle_follow_minutes=float(fresh.get("lifecycle_follow_minutes", 1560)),
        lifecycle_divergence_share=float(a.get("lifecycle_divergence_share", 0.01)),
        loop_flips=int(loops.get("flips", 3)),
        loop_window_minutes=float(loops.get("window_minutes", 1440)),
        loop_watch=watch,  # type: ignore[arg-type]
    )
    if not 0.0 <= rules.lifecycle_divergence_share <= 1.0:
        raise ValueError("alerts.lifecycle_divergence_share is a share within [0, 1]")
    for name in ("suppress_minutes", "nightly_deadline_minutes", "hot_lag_minutes", "unreachable_minutes",
                 "lifecycle_follow_minutes", "loop_flips", "loop_window_minutes"):
        if getattr(rules, name) < 0:
            raise ValueError(f"alerts.{name} must not be negative")
    return rules
