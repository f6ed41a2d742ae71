"""Alert delivery through Airflow's notifiers: e-mail by the SMTP provider's ``SmtpNotifier``, a JSON webhook by
:class:`WebhookNotifier`, each configured by an Airflow connection.

- ``catalog_sync_alert_smtp`` (conn type ``smtp``): host, port, login/password, extras ``from_email`` and ``to``
  (comma-separated recipients), plus the SMTP provider's own extras (``disable_tls``, ``disable_ssl``, ``timeout``).
- ``catalog_sync_alert_webhook`` (conn type ``http``): schema, host, port; extra ``endpoint`` (path, default
  ``/``) and ``headers``; a password is sent as ``Authorization: Bearer``.

A connection that does not exist means "no such target". What to alert about and when comes from
``catalog_sync.alerting`` (thresholds in ``thresholds.yaml``); :func:`dispatch` lets through only the alerts that
are not repeats inside their suppression window, then hands each to every configured notifier. Delivery never
raises: an alert must never fail the run that raised it, so a failing target is logged (without secrets).

The deadline alerts of the DAGs call :func:`deadline_missed` in the triggerer (an ``AsyncCallback``), which uses
the notifiers' async paths.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

SMTP_CONN_ID = "catalog_sync_alert_smtp"
WEBHOOK_CONN_ID = "catalog_sync_alert_webhook"


class WebhookNotifier(BaseNotifier):
    """POST an alert as JSON to the URL of an Airflow HTTP connection (no HTTP provider needed)."""

    # Alert texts are data, not templates: a "{{" in a record key must reach people as written.
    template_fields = ()

    def __init__(self, payload: dict[str, Any], http_conn_id: str = WEBHOOK_CONN_ID, timeout: float = 10.0) -> None:
        super().__init__()
        self.payload = payload
        self.http_conn_id = http_conn_id
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        from airflow.sdk import BaseHook

        self._post(BaseHook.get_connection(self.http_conn_id))

    async def async_notify(self, context: Any) -> None:
        from airflow.sdk import BaseHook

        conn = await BaseHook.aget_connection(self.http_conn_id)
        await asyncio.to_thread(self._post, conn)

    def _post(self, conn: Any) -> None:
        import requests

        url, headers = webhook_target(conn)
        resp = requests.post(url, json=self.payload, headers=headers, timeout=self.timeout)
        resp.raise_for_status()


def webhook_target(conn: Any) -> tuple[str, dict[str, str]]:
    """URL and headers of a webhook connection."""
    extra = conn.extra_dejson or {}
    host = str(conn.host or "")
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    if conn.port:
        host = f"{host.rstrip('/')}:{conn.port}"
    endpoint = str(extra.get("endpoint") or "/")
    headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
    if conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    return host.rstrip("/") + "/" + endpoint.lstrip("/"), headers


def _smtp_notifier(alert: Any, conn: Any) -> BaseNotifier:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    extra = conn.extra_dejson or {}
    to = [a.strip() for a in str(extra.get("to") or "").split(",") if a.strip()]
    if not to:
        raise ValueError(f"connection {SMTP_CONN_ID} has no 'to' extra (comma-separated recipients)")
    return SmtpNotifier(to=to, from_email=extra.get("from_email") or "catalog-sync@localhost",
                        subject=f"[catalog-sync {alert.severity}] {alert.subject}", html_content=alert.html(),
                        smtp_conn_id=SMTP_CONN_ID)


def _targets(alert: Any, connections: dict[str, Any]) -> list[tuple[str, BaseNotifier]]:
    out: list[tuple[str, BaseNotifier]] = []
    if connections.get(SMTP_CONN_ID) is not None:
        out.append(("email", _smtp_notifier(alert, connections[SMTP_CONN_ID])))
    if connections.get(WEBHOOK_CONN_ID) is not None:
        out.append(("webhook", WebhookNotifier(alert.payload())))
    return out


def _connections() -> dict[str, Any]:
    from airflow.sdk import BaseHook

    found: dict[str, Any] = {}
    for conn_id in (SMTP_CONN_ID, WEBHOOK_CONN_ID):
        try:
            found[conn_id] = BaseHook.get_connection(conn_id)
        except Exception:  # AirflowNotFoundException: that target is not configured
            found[conn_id] = None
    return found


async def _aconnections() -> dict[str, Any]:
    from airflow.sdk import BaseHook

    found: dict[str, Any] = {}
    for conn_id in (SMTP_CONN_ID, WEBHOOK_CONN_ID):
        try:
            found[conn_id] = await BaseHook.aget_connection(conn_id)
        except Exception:
            found[conn_id] = None
    return found


def _claim(alerts: list[Any], hub_url: str | None) -> list[Any]:
    """The non-repeats; when the hub itself is down every alert goes out (better twice than never)."""
    from catalog_sync.alerting import claim

    try:
        return claim(alerts, hub_url)
    except Exception as exc:
        log.warning("alert suppression state unavailable (%s): sending without suppression", type(exc).__name__)
        return list(alerts)


def dispatch(alerts: list[Any], hub_url: str | None = None) -> list[dict[str, Any]]:
    """Send the alerts that are not repeats; returns one ``{key, subject, reached}`` per alert sent."""
    if not alerts:
        return []
    sent = _claim(alerts, hub_url)
    connections = _connections() if sent else {}
    report = []
    for alert in sent:
        reached = []
        for name, notifier in _safe_targets(alert, connections):
            try:
                notifier.notify({})
                reached.append(name)
            except Exception as exc:
                log.error("alert %s via %s failed (%s)", alert.key, name, type(exc).__name__)
        log.warning("ALERT %s: %s (sent to %s)", alert.key, alert.subject, ", ".join(reached) or "nobody")
        report.append({"key": alert.key, "subject": alert.subject, "reached": reached})
    return report


async def adispatch(alerts: list[Any], hub_url: str | None = None) -> list[dict[str, Any]]:
    """:func:`dispatch` for async code (the triggerer): the hub off the event loop, the notifiers' async paths."""
    if not alerts:
        return []
    sent = await asyncio.to_thread(_claim, alerts, hub_url)
    connections = await _aconnections() if sent else {}
    report = []
    for alert in sent:
        reached = []
        for name, notifier in _safe_targets(alert, connections):
            try:
                await notifier.async_notify({})
                reached.append(name)
            except Exception as exc:
                log.error("alert %s via %s failed (%s)", alert.key, name, type(exc).__name__)
        log.warning("ALERT %s: %s (sent to %s)", alert.key, alert.subject, ", ".join(reached) or "nobody")
        report.append({"key": alert.key, "subject": alert.subject, "reached": reached})
    return report


def _safe_targets(alert: Any, connections: dict[str, Any]) -> list[tuple[str, BaseNotifier]]:
    try:
        return _targets(alert, connections)
    except Exception as exc:
        log.error("alert targets misconfigured: %s", exc)
        return []


async def deadline_missed(context: dict[str, Any] | None = None, *, what: str = "missed its deadline") -> str:
    """Deadline-alert callback (``AsyncCallback``; runs in the triggerer when a DAG run misses its deadline).

    Returns one line saying who was reached: Airflow keeps a callback's result in a text column (``callback.output``),
    and anything else (a list) makes the triggerer fail on saving it, again and again, taking every other trigger
    (the hot path's change-feed watcher) down with it.
    """
    from catalog_sync.alerting import deadline_alert

    dag_run = (context or {}).get("dag_run") or {}
    deadline = ((context or {}).get("deadline") or {}).get("deadline_time")
    alert = deadline_alert(str(dag_run.get("dag_id")), dag_run.get("run_id") or dag_run.get("dag_run_id"),
                           deadline, what)
    report = await adispatch([alert])
    if not report:
        return f"{alert.key}: suppressed (sent within its repeat window)"
    return "; ".join(f"{r['key']}: sent to {', '.join(r['reached']) or 'nobody (no alert connection)'}"
                     for r in report)


def run_alerts(load_ids: list[str]) -> list[dict[str, Any]]:
    """Check finished runs against the alert thresholds and send what they raise (a task's body)."""
    from catalog_sync.alerting import run_alerts as evaluate

    try:
        alerts = [a for load_id in load_ids for a in evaluate(load_id)]
    except Exception as exc:  # checking thresholds must not fail the run it checks; the hub outage alerts itself
        log.error("alert thresholds not checked (%s: %s)", type(exc).__name__, exc)
        return []
    return dispatch(alerts)


class CatalogSyncAlertNotifier(BaseNotifier):
    """On task failure: an unreachable system or hub alerts as such; any other failure names the task and why."""

    template_fields = ()

    def __init__(self, severity: str = "critical") -> None:
        super().__init__()
        self.severity = severity

    def notify(self, context: Any) -> None:
        from catalog_sync.alerting import Alert, unreachable_alert, unreachable_system

        ti = context.get("ti") or context.get("task_instance")
        exc = context.get("exception")
        dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", None)
        task_id = getattr(ti, "task_id", None)
        facts = {"dag_id": dag_id, "run_id": context.get("run_id"), "task_id": task_id,
                 "try_number": getattr(ti, "try_number", None)}
        message = f"{type(exc).__name__}: {exc}" if exc else "see the task log"
        system = unreachable_system(exc) if isinstance(exc, BaseException) else None
        if system:
            alert = unreachable_alert(system, message, **facts)
        else:
            alert = Alert(key=f"task_failed:{dag_id}.{task_id}", subject=f"{dag_id}.{task_id} failed",
                          body=message, severity=self.severity, facts=facts)
        dispatch([alert])
