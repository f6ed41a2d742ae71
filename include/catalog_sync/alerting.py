"""Which alerts a run or a watcher raises, with their figures, and which of them are repeats to suppress.

The thresholds are declared once, in ``quality/thresholds.yaml`` (section ``alerts``; the soft-gate limits are the
gates' own ``max_failure_share``). This module decides *what* to say; delivery is Airflow's (``SmtpNotifier`` and
the webhook notifier in ``catalog_sync.airflow.notifiers``), and this module never imports Airflow.

Suppression: an alert has a key naming its condition (``dead_letters_open``, ``soft_gate:products.l1``,
``unreachable:erp``...). :func:`claim` lets an alert through when its key was not sent within
``suppress_minutes``, and otherwise counts the repeat in the hub's ``alert_state`` row; the next alert that does
go out says how many repeats were held back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AlertState, DeadLetter, DqResult, FieldHold, SyncRun, utcnow
from catalog_sync.quality.policy import AlertRules, load_alert_rules, load_policy


@dataclass(frozen=True)
class Alert:
    """One message to people: ``key`` names the condition (the unit of suppression), ``facts`` its figures."""

    key: str
    subject: str
    body: str
    severity: str = "warning"  # info | warning | critical
    facts: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The plain-text body: the sentence, then one ``name: value`` line per figure."""
        lines = "\n".join(f"{k}: {_shown(v)}" for k, v in self.facts.items())
        return f"{self.body}\n\n{lines}".strip()

    def html(self) -> str:
        from html import escape

        rows = "".join(f"<tr><th align='left'>{escape(str(k))}</th><td>{escape(_shown(v))}</td></tr>"
                       for k, v in self.facts.items())
        return f"<p>{escape(self.body)}</p><table>{rows}</table>"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {"source": "catalog-sync", "key": self.key, "subject": self.subject, "body": self.body,
                "severity": self.severity, "facts": self.facts}


def _shown(value: Any) -> str:
    """A fact as people read it: a list as its items joined (a sample of SKUs), anything else as text."""
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


# --- conditions ----------------------------------------------------------------------------------------------


def run_alerts(load_id: str, hub_url: str | None = None, rules: AlertRules | None = None) -> list[Alert]:
    """The alerts one finished (or failed) run raises: soft gates past their share, too many dead letters in the
    run, too many open in total."""
    rules = rules or load_alert_rules()
    policy = load_policy()
    alerts: list[Alert] = []
    with session_scope(hub_url) as s:
        run = s.get(SyncRun, load_id)
        if run is None:
            raise LookupError(f"no run {load_id!r} in the hub")
        results = s.scalars(select(DqResult).where(DqResult.load_id == load_id).order_by(DqResult.gate)).all()
        run_letters = int(s.scalar(select(func.count()).select_from(DeadLetter)
                                   .where(DeadLetter.load_id == load_id)) or 0)
        open_letters = int(s.scalar(select(func.count()).select_from(DeadLetter)
                                    .where(DeadLetter.status == "open")) or 0)
        flow = run.flow
    if rules.soft_gate_share:
        for r in results:
            if r.severity != "soft" or not r.rows_checked:
                continue
            limit = policy.gate(r.gate).max_failure_share if r.gate in policy.gates else None
            share = r.rows_quarantined / r.rows_checked
            if limit is not None and share > limit:
                worst = sorted((r.failing_expectations or {}).items(), key=lambda kv: -int(kv[1].get("count", 0)))
                alerts.append(Alert(
                    key=f"soft_gate:{r.gate}",
                    subject=f"{flow}: soft gate {r.gate} quarantined {share:.1%} of the rows (limit {limit:.0%})",
                    body=(f"The soft gate {r.gate} held back {r.rows_quarantined} of {r.rows_checked} rows in run "
                          f"{load_id}; the rest went on. A share this high usually means a rule or an export "
                          f"changed, not a few bad records."),
                    facts={"flow": flow, "load_id": load_id, "gate": r.gate, "rows_checked": r.rows_checked,
                           "rows_quarantined": r.rows_quarantined, "share": round(share, 4), "limit": limit,
                           "top_expectations": ", ".join(f"{k} ({v.get('count')})" for k, v in worst[:3])},
                ))
    if run_letters > rules.dead_letters_per_run:
        alerts.append(Alert(
            key=f"dead_letters_run:{flow}",
            subject=f"{flow}: {run_letters} dead letters in one run (limit {rules.dead_letters_per_run})",
            body=f"Run {load_id} dead-lettered {run_letters} records; see the Dead letters page.",
            facts={"flow": flow, "load_id": load_id, "dead_letters": run_letters,
                   "limit": rules.dead_letters_per_run},
        ))
    if open_letters > rules.dead_letters_open:
        alerts.append(open_letters_alert(open_letters, rules))
    alerts.extend(loop_alerts(load_id, hub_url, rules))
    return alerts


def loop_alerts(load_id: str, hub_url: str | None = None, rules: AlertRules | None = None) -> list[Alert]:
    """One alert per field the run held in a write-back loop (``governance.loops``); a hold is made once."""
    from catalog_sync.governance.loops import describe

    rules = rules or load_alert_rules()
    with session_scope(hub_url) as s:
        holds = s.scalars(select(FieldHold).where(FieldHold.load_id == load_id).order_by(FieldHold.id)).all()
        found = [(h.system, h.entity, h.record_key, h.field, h.flips, list(h.history), h.dead_letter_id)
                 for h in holds]
    return [Alert(
        key=f"write_loop:{system}/{entity}/{key}/{field}"[:128],
        subject=f"Write-back loop: {field} of {key} flipped {flips} times in the {system}; it is held",
        body=(f"{field} of {entity} {key} in the {system} flipped {flips} times within "
              f"{rules.loop_window_minutes / 60:g} h (more than {rules.loop_flips} is a loop). No flow writes it "
              f"until the writers agree and dead letter {letter} is replayed or discarded. "
              + " ".join(f"{line}." for line in describe(history)[-6:])),
        facts={"load_id": load_id, "system": system, "entity": entity, "record_key": key, "field": field,
               "flips": flips, "threshold": rules.loop_flips, "dead_letter_id": letter},
    ) for system, entity, key, field, flips, history, letter in found]


def open_letters_alert(open_letters: int, rules: AlertRules) -> Alert:
    return Alert(
        key="dead_letters_open",
        subject=f"{open_letters} dead letters open (limit {rules.dead_letters_open})",
        body="Dead letters are piling up unresolved: replay or discard them on the Dead letters page.",
        facts={"open_dead_letters": open_letters, "limit": rules.dead_letters_open},
    )


def hot_lag_alert(cursor: int, head: int, lag_s: float, rules: AlertRules | None = None,
                  target: str = "storefront") -> Alert | None:
    """The ERP's feed head has been ahead of ``target``'s committed cursor (the storefront's, or a declared sales
    channel's) for ``lag_s`` seconds; None within limits. The alert names the target, so whoever is paged knows
    which system's stock and prices are stale and which task and connection to look at."""
    rules = rules or load_alert_rules()
    if head <= cursor or lag_s <= rules.hot_lag_minutes * 60:
        return None
    storefront = target == "storefront"
    task = "sync_changes" if storefront else f"sync_channel_{target}"
    cursor_name = "erp/changes" if storefront else f"erp/changes@{target}"
    return Alert(
        key="freshness:hot" if storefront else f"freshness:hot:{target}",
        severity="critical",
        subject=f"Hot path behind on {target}: ERP changes {cursor + 1}..{head} waiting {lag_s / 60:.1f} min "
                f"(limit {rules.hot_lag_minutes:g} min)",
        body=f"Stock and live prices on {target} are stale: its committed cursor ({cursor_name}) has not reached "
             f"the ERP change feed's head. Check hot_data_sync's {task} task and the {target} connection; the "
             "changes wait after the cursor and go out with the first run that reaches it.",
        facts={"target": target, "cursor": cursor, "head": head, "pending": head - cursor,
               "lag_minutes": round(lag_s / 60, 1), "limit_minutes": rules.hot_lag_minutes},
    )


def lifecycle_divergence_alert(load_id: str, divergence: Mapping[str, Any], rules: AlertRules | None = None,
                               flow: str = "weekly_reconciliation") -> Alert | None:
    """More than ``lifecycle_divergence_share`` of the SKUs the ERP and the PIM both hold have a PIM lifecycle that
    differs from the ERP's (the weekly reconciliation's measure); None within the limit."""
    rules = rules or load_alert_rules()
    share = float(divergence.get("share") or 0.0)
    limit = rules.lifecycle_divergence_share
    if share <= limit:
        return None
    return Alert(
        key="lifecycle_divergence_share",
        subject=f"Lifecycle divergence {share:.2%} between ERP and PIM (limit {limit:.2%})",
        body=(f"{divergence.get('divergent')} of {divergence.get('compared')} SKUs have a PIM lifecycle status "
              "that differs from the ERP's. The ERP owns lifecycle_status: check why the nightly sync did not "
              "carry it (dead letters, failed runs) before the storefront shows the wrong items."),
        facts={"flow": flow, "load_id": load_id, "share": round(share, 6), "limit": limit,
               "divergent": divergence.get("divergent"), "compared": divergence.get("compared"),
               "sample": list(divergence.get("sample") or [])},
    )


def unreachable_alert(system: str, error: str, since_s: float | None = None, **facts: Any) -> Alert:
    """An external system (``erp``, ``storefront``...) or the hub could not be reached."""
    return Alert(
        key=f"unreachable:{system}",
        severity="critical",
        subject=f"{system} unreachable" + (f" for {since_s / 60:.1f} min" if since_s is not None else ""),
        body=f"Catalog Sync could not reach the {system}: {error}",
        facts={"system": system, "error": error,
               **({"down_minutes": round(since_s / 60, 1)} if since_s is not None else {}), **facts},
    )


def deadline_alert(dag_id: str, run_id: str | None, deadline: Any, what: str) -> Alert:
    """An Airflow deadline was missed (the nightly not finished by its deadline, a hot run late)."""
    return Alert(
        key=f"freshness:{dag_id}",
        severity="critical",
        subject=f"{dag_id}: {what}",
        body=f"The run {run_id} of {dag_id} missed its deadline ({deadline}); the data it carries is late.",
        facts={"dag_id": dag_id, "run_id": run_id, "deadline": str(deadline)},
    )


def unreachable_system(exc: BaseException) -> str | None:
    """``erp``/``storefront``/... when ``exc`` says a system stayed unreachable after the client's retries,
    ``hub`` when the hub database could not be reached, None for any other failure."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from catalog_sync.connectors.http import TransientError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TransientError):
            return current.system or "a system"
        if isinstance(current, (OperationalError, InterfaceError)):
            return "hub"
        current = current.__cause__ or current.__context__
    return None


# --- suppression ---------------------------------------------------------------------------------------------


def claim(alerts: Iterable[Alert], hub_url: str | None = None, rules: AlertRules | None = None,
          now: datetime | None = None) -> list[Alert]:
    """The alerts to send now; each other one is a repeat inside its window and only counted.

    An alert that goes out carries ``suppressed_since_last`` when repeats were held back since it was last sent.
    Claiming and recording happen in one transaction, so two tasks raising the same alert at once send it once
    (the primary key refuses the second insert; that caller treats the alert as a repeat).
    """
    from sqlalchemy.exc import IntegrityError

    rules = rules or load_alert_rules()
    now = now or utcnow()
    out: list[Alert] = []
    for alert in _dedupe(alerts):
        try:
            with session_scope(hub_url) as s:
                state = s.get(AlertState, alert.key, with_for_update=True)
                if state is not None and _aware(state.last_sent_at) > now - rules.suppress_window:
                    state.suppressed += 1
                    state.last_suppressed_at = now
                    continue
                held = 0
                if state is None:
                    s.add(AlertState(alert_key=alert.key, last_sent_at=now, last_subject=alert.subject,
                                     last_facts=_json_safe(alert.facts), sent=1, suppressed=0))
                else:
                    held = state.suppressed
                    state.last_sent_at, state.last_subject = now, alert.subject
                    state.last_facts, state.sent, state.suppressed = _json_safe(alert.facts), state.sent + 1, 0
        except IntegrityError:
            continue  # another process claimed the same alert a moment ago
        if held:
            alert = Alert(alert.key, alert.subject, alert.body, alert.severity,
                          {**alert.facts, "suppressed_since_last": held})
        out.append(alert)
    return out


def _dedupe(alerts: Iterable[Alert]) -> Sequence[Alert]:
    seen: dict[str, Alert] = {}
    for a in alerts:
        seen.setdefault(a.key, a)
    return list(seen.values())


def _aware(ts: datetime) -> datetime:
    from datetime import UTC

    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _json_safe(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for k, v in facts.items()}


#: Read the thresholds (``thresholds.yaml``, section ``alerts``).
load_rules = load_alert_rules
__all__ = ["Alert", "AlertRules", "claim", "deadline_alert", "hot_lag_alert", "lifecycle_divergence_alert",
           "load_rules", "loop_alerts", "open_letters_alert", "run_alerts", "unreachable_alert",
           "unreachable_system"]
