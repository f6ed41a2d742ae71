"""Airflow notifier that sends Catalog Sync alerts to the webhook and e-mail set in Airflow Variables.

Variables (see airflow_settings.yaml): ``catalog_sync_alert_webhook_url``, ``catalog_sync_alert_emails``
(comma-separated), ``catalog_sync_smtp_host``, ``catalog_sync_smtp_port``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from catalog_sync.alerts import Alert, AlertTargets, send_alert


def alert_targets() -> AlertTargets:
    """Read the alert targets from Airflow Variables (missing variables mean: no such target)."""
    from airflow.sdk import Variable

    def var(name: str, default: str = "") -> str:
        try:
            return str(Variable.get(name, default=default) or default)
        except Exception:  # a variable backend outage must not turn into a second failure
            return default

    emails = tuple(e.strip() for e in var("catalog_sync_alert_emails").split(",") if e.strip())
    return AlertTargets(
        webhook_url=var("catalog_sync_alert_webhook_url") or None,
        emails=emails,
        smtp_host=var("catalog_sync_smtp_host", "localhost"),
        smtp_port=int(var("catalog_sync_smtp_port", "25") or 25),
    )


class CatalogSyncAlertNotifier(BaseNotifier):
    """On task failure (or any callback), tell the people on call which DAG, task and run broke, and why."""

    template_fields = ("subject",)

    def __init__(self, subject: str = "{{ dag.dag_id }} failed", severity: str = "critical") -> None:
        super().__init__()
        self.subject = subject
        self.severity = severity

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        exc = context.get("exception")
        facts = {
            "dag_id": getattr(context.get("dag"), "dag_id", None),
            "run_id": context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
        }
        body = f"{type(exc).__name__}: {exc}" if exc else "see the task log"
        send_alert(Alert(subject=self.subject, body=body, severity=self.severity, facts=facts), alert_targets())
