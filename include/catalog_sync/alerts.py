"""Alerts to people: a generic JSON webhook and e-mail, sent when a threshold is crossed or a run fails.

No Airflow import: the Airflow notifier (catalog_sync.airflow.notifiers) and the engine both call ``send_alert``.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import requests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertTargets:
    webhook_url: str | None = None
    emails: tuple[str, ...] = ()
    smtp_host: str = "localhost"
    smtp_port: int = 25
    sender: str = "catalog-sync@localhost"
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str
    severity: str = "warning"  # info | warning | critical
    facts: dict[str, Any] = field(default_factory=dict)


def send_alert(alert: Alert, targets: AlertTargets, timeout: float = 10.0) -> list[str]:
    """Deliver an alert to every configured target; returns the targets reached.

    A failing target is logged and skipped: an alert must never fail the run that raised it.
    """
    reached: list[str] = []
    if targets.webhook_url:
        try:
            resp = requests.post(
                targets.webhook_url,
                json={"subject": alert.subject, "body": alert.body, "severity": alert.severity,
                      "facts": alert.facts, "source": "catalog-sync"},
                headers=targets.extra_headers,
                timeout=timeout,
            )
            resp.raise_for_status()
            reached.append("webhook")
        except requests.RequestException as exc:
            # Only the exception type: the URL may carry a token.
            log.warning("alert webhook failed (%s)", type(exc).__name__)
    if targets.emails:
        msg = EmailMessage()
        msg["Subject"] = f"[catalog-sync {alert.severity}] {alert.subject}"
        msg["From"] = targets.sender
        msg["To"] = ", ".join(targets.emails)
        facts = "\n".join(f"{k}: {v}" for k, v in alert.facts.items())
        msg.set_content(f"{alert.body}\n\n{facts}".strip())
        try:
            with smtplib.SMTP(targets.smtp_host, targets.smtp_port, timeout=timeout) as smtp:
                smtp.send_message(msg)
            reached.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("alert e-mail failed (%s)", type(exc).__name__)
    if not reached:
        log.warning("ALERT (no target reached): %s — %s", alert.subject, alert.body)
    return reached
