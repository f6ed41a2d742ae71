"""Alerts reach a real SMTP server and a real webhook through Airflow's notifiers, once, with their figures; a
repeat inside the suppression window is counted in the hub, not sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest

from catalog_sync import alerting
from catalog_sync.airflow import notifiers
from catalog_sync.hub.db import session_scope
from catalog_sync.hub.models import AlertState, DeadLetter, DqResult, SyncRun, utcnow
from tests.alerting.sinks import SmtpSink, WebhookReceiver, alert_connection_env


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmtpSink, WebhookReceiver]]:
    smtp, hook = SmtpSink(), WebhookReceiver()
    for key, value in alert_connection_env(smtp, hook).items():
        monkeypatch.setenv(key, value)
    yield smtp, hook
    smtp.close()
    hook.close()


def _seed_run(hub_url: str, load_id: str, *, checked: int, quarantined: int, letters: int) -> None:
    with session_scope(hub_url) as s:
        s.add(SyncRun(load_id=load_id, flow="cold_data_nightly", status="success"))
        s.add(DqResult(load_id=load_id, gate="products.l1", layer=1, entity="products", severity="soft",
                       rows_checked=checked, rows_passed=checked - quarantined, rows_quarantined=quarantined,
                       success=True, failing_expectations={"products.l1.price_in_band": {"count": quarantined}}))
        for i in range(letters):
            s.add(DeadLetter(load_id=load_id, flow="cold_data_nightly", entity="product", record_key=f"SKU-{i}",
                             source_system="pim", target_system="storefront", reason_kind="gate",
                             expectation=f"e{load_id}", reason="price out of band"))


def test_run_alerts_arrive_once_with_figures_and_repeats_are_suppressed(hub_url, sinks) -> None:
    smtp, hook = sinks
    rules = dataclasses.replace(alerting.load_rules(), dead_letters_per_run=25, dead_letters_open=40)
    _seed_run(hub_url, "run-1", checked=200, quarantined=30, letters=30)

    alerts = alerting.run_alerts("run-1", hub_url, rules)
    assert [a.key for a in alerts] == ["soft_gate:products.l1", "dead_letters_run:cold_data_nightly"]
    sent = notifiers.dispatch(alerts, hub_url)
    assert [r["reached"] for r in sent] == [["email", "webhook"], ["email", "webhook"]]

    assert len(smtp.messages) == 2 and len(hook.received) == 2
    gate_mail = next(m for m in smtp.messages if "products.l1" in m.subject)
    assert "15.0%" in gate_mail.subject and "limit 10%" in gate_mail.subject
    assert "30" in gate_mail.text and "200" in gate_mail.text and "price_in_band" in gate_mail.text
    assert gate_mail.recipients == ["oncall@example.com", "merch@example.com"]
    letters = next(h["json"] for h in hook.received if h["json"]["key"].startswith("dead_letters_run"))
    assert letters["facts"]["dead_letters"] == 30 and letters["facts"]["limit"] == 25
    assert hook.received[0]["path"] == "/hooks/catalog-sync"
    assert hook.received[0]["headers"]["Authorization"] == "Bearer hook-token-1"

    # The next run shows the same conditions (and now more than 40 open letters in total): only the new
    # condition goes out, the two repeats are counted.
    _seed_run(hub_url, "run-2", checked=100, quarantined=20, letters=30)
    second = notifiers.dispatch(alerting.run_alerts("run-2", hub_url, rules), hub_url)
    assert [r["key"] for r in second] == ["dead_letters_open"]
    assert len(smtp.messages) == 3 and len(hook.received) == 3
    assert hook.received[-1]["json"]["facts"]["open_dead_letters"] == 60
    with session_scope(hub_url) as s:
        state = {a.alert_key: (a.sent, a.suppressed) for a in s.query(AlertState)}
    assert state == {"soft_gate:products.l1": (1, 1), "dead_letters_run:cold_data_nightly": (1, 1),
                     "dead_letters_open": (1, 0)}


def test_a_write_back_loop_reaches_people_once_with_its_history(hub_url, sinks) -> None:
    """A field held by the loop detector (catalog_sync.governance.loops) alerts with the run that held it."""
    from catalog_sync.hub.models import FieldHold

    smtp, hook = sinks
    steps = [{"at": "2026-12-01 02:10:00 UTC", "by": "supplier", "from": "A", "to": "B", "flip": False},
             {"at": "2026-12-02 02:10:00 UTC", "by": "outside", "from": "B", "to": "A", "flip": True}]
    with session_scope(hub_url) as s:
        s.add(SyncRun(load_id="night-9", flow="cold_data_nightly", status="success"))
        s.add(FieldHold(system="pim", entity="product", record_key="MH01-XS-Black", field="name", flips=4,
                        history=steps, load_id="night-9", dead_letter_id=7))
    sent = notifiers.dispatch(alerting.run_alerts("night-9", hub_url), hub_url)
    assert [r["key"] for r in sent] == ["write_loop:pim/product/MH01-XS-Black/name"]
    assert len(smtp.messages) == 1 and len(hook.received) == 1
    mail = smtp.messages[0]
    assert "Write-back loop: name of MH01-XS-Black flipped 4 times" in mail.subject
    assert "dead letter 7" in mail.text and "changed outside Catalog Sync" in mail.text
    assert hook.received[0]["json"]["facts"]["dead_letter_id"] == 7
    # The same run's alerts checked again (a cleared alert task) send nothing new.
    assert notifiers.dispatch(alerting.run_alerts("night-9", hub_url), hub_url) == []
    assert len(smtp.messages) == 1


def test_an_alert_goes_out_again_after_its_window_and_says_how_many_were_held(hub_url, sinks) -> None:
    smtp, hook = sinks
    alert = alerting.unreachable_alert("erp", "TransientError: connection refused", since_s=180)
    now = utcnow()
    assert alerting.claim([alert], hub_url, now=now) == [alert]
    assert alerting.claim([alert], hub_url, now=now + timedelta(minutes=5)) == []
    assert alerting.claim([alert], hub_url, now=now + timedelta(minutes=30)) == []
    later = alerting.claim([alert], hub_url, now=now + timedelta(minutes=61))
    assert [a.facts["suppressed_since_last"] for a in later] == [2]
    assert not smtp.messages and not hook.received  # claim decides, it never sends


def test_failure_callback_names_an_unreachable_erp(hub_url, sinks) -> None:
    from catalog_sync.connectors.http import TransientError

    smtp, hook = sinks
    try:
        try:
            raise TransientError("GET /erp/changes: connection refused after 5 attempts", system="erp")
        except TransientError as exc:
            raise RuntimeError("hot batch failed") from exc
    except RuntimeError as exc:
        failure = exc

    class Ti:
        dag_id, task_id, try_number = "hot_data_sync", "sync_changes", 4

    notifier = notifiers.CatalogSyncAlertNotifier()
    notifier.notify({"ti": Ti(), "exception": failure, "run_id": "r1"})
    notifier.notify({"ti": Ti(), "exception": failure, "run_id": "r2"})  # a repeat within the window
    assert len(hook.received) == 1 and len(smtp.messages) == 1
    body = hook.received[0]["json"]
    assert body["key"] == "unreachable:erp" and body["facts"]["task_id"] == "sync_changes"
    assert "erp unreachable" in smtp.messages[0].subject


def test_a_missing_target_is_not_an_error_and_the_other_still_gets_the_alert(hub_url, sinks, monkeypatch) -> None:
    smtp, hook = sinks
    monkeypatch.delenv("AIRFLOW_CONN_CATALOG_SYNC_ALERT_SMTP")
    sent = notifiers.dispatch([alerting.open_letters_alert(900, alerting.load_rules())], hub_url)
    assert sent[0]["reached"] == ["webhook"] and not smtp.messages and len(hook.received) == 1


def test_hot_lag_alert_only_past_its_limit() -> None:
    rules = alerting.load_rules()
    assert alerting.hot_lag_alert(10, 10, 3600, rules) is None
    assert alerting.hot_lag_alert(10, 20, rules.hot_lag_minutes * 60 - 1, rules) is None
    lag = alerting.hot_lag_alert(10, 20, rules.hot_lag_minutes * 60 + 60, rules)
    assert lag is not None and lag.facts["pending"] == 10 and lag.key == "freshness:hot"
    assert lag.subject.startswith("Hot path behind on storefront:") and "sync_changes" in lag.body
    # a declared channel's cursor behind: the alert names the channel, its task and its cursor, under its own key
    channel = alerting.hot_lag_alert(10, 20, rules.hot_lag_minutes * 60 + 60, rules, "adobe_commerce")
    assert channel is not None and channel.key == "freshness:hot:adobe_commerce"
    assert channel.subject.startswith("Hot path behind on adobe_commerce:") and channel.facts["target"] == "adobe_commerce"
    assert "sync_channel_adobe_commerce" in channel.body and "erp/changes@adobe_commerce" in channel.body


def test_the_change_feed_watcher_alerts_a_lagging_hot_path_and_an_outage_once(hub_url, sinks) -> None:
    """The trigger's health watch, driven with a fake clock: lag past hot_lag_minutes alerts once, a hub outage
    past unreachable_minutes alerts once (through the notifiers' async paths, as in the triggerer)."""
    import asyncio

    from sqlalchemy.exc import OperationalError

    from catalog_sync.airflow.triggers import _Health

    smtp, hook = sinks
    rules = alerting.load_rules()
    lag_limit, down_limit = rules.hot_lag_minutes * 60, rules.unreachable_minutes * 60

    class Log:
        def warning(self, *args: object) -> None: ...
        def error(self, *args: object) -> None: ...

    health, log = _Health(), Log()

    async def scenario() -> None:
        await health.polled(10, 12, 0.0, log)  # behind from now on
        await health.polled(10, 15, lag_limit - 1, log)  # within the limit
        assert not hook.received
        await health.polled(10, 15, lag_limit + 60, log)  # past it: alert
        await health.polled(10, 16, lag_limit + 90, log)  # still behind: a repeat
        await health.polled(10, 16, lag_limit + 91, log, "adobe_commerce")  # the channel's cursor, as far behind
        await health.polled(16, 16, lag_limit + 95, log)  # caught up
        await health.polled(16, 20, lag_limit + 100, log)  # behind again, but only just
        outage = OperationalError("SELECT sync_state", {}, ConnectionRefusedError("hub down"))
        for t in (0.0, down_limit / 2, down_limit + 1, down_limit + 30):
            await health.failed(outage, 5000.0 + t, log)

    asyncio.run(scenario())
    assert [h["json"]["key"] for h in hook.received] == ["freshness:hot", "freshness:hot:adobe_commerce",
                                                        "unreachable:hub"]
    lag = hook.received[0]["json"]["facts"]
    assert (lag["cursor"], lag["head"], lag["pending"]) == (10, 15, 5)
    assert lag["lag_minutes"] == round((lag_limit + 60) / 60, 1)
    assert len(smtp.messages) == 3 and "adobe_commerce" in smtp.messages[1].subject
    assert "hub unreachable" in smtp.messages[2].subject


def _reconciled(run_id: str, divergent: int, compared: int = 2000) -> str:
    """A weekly reconciliation run whose compare step measured ``divergent`` of ``compared`` SKUs diverging."""
    from catalog_sync.engine.run import RunContext
    from catalog_sync.flows import reconcile

    load_id = reconcile.open_run(dag_id=None, run_id=run_id, window_start=None, window_end=None)
    sample = [f"SKU-{i}" for i in range(min(divergent, 3))]
    RunContext.attach(load_id).stage("summary", [{"key": "summary", "lifecycle_divergence": {
        "compared": compared, "divergent": divergent, "share": divergent / compared, "sample": sample}}], key="key")
    return load_id


def test_the_reconciliations_divergence_alert_arrives_once_with_its_figures(hub_url, sinks) -> None:
    """The limit is thresholds.yaml's (alerts.lifecycle_divergence_share); the alert goes through the same
    notifiers and suppression as every other alert: one e-mail and one webhook call, then a counted repeat."""
    from catalog_sync.flows import reconcile

    smtp, hook = sinks
    limit = alerting.load_rules().lifecycle_divergence_share
    assert limit == 0.01
    first = _reconciled("week-1", divergent=50)  # 2.5%
    record = reconcile.alert_on_divergence(first, notifiers.dispatch)
    assert record == {"threshold": 0.01, "share": 0.025, "raised": True, "sent": True, "suppressed": False,
                      "reached": ["email", "webhook"]}
    assert len(smtp.messages) == 1 and len(hook.received) == 1
    assert "2.50%" in smtp.messages[0].subject and "limit 1.00%" in smtp.messages[0].subject
    mail = smtp.messages[0].text
    assert "<th align='left'>divergent</th><td>50</td>" in mail and "<td>2000</td>" in mail
    assert "<td>SKU-0, SKU-1, SKU-2</td>" in mail
    facts = hook.received[0]["json"]["facts"]
    assert hook.received[0]["json"]["key"] == "lifecycle_divergence_share"
    assert (facts["load_id"], facts["divergent"], facts["compared"], facts["share"], facts["limit"]) == (
        first, 50, 2000, 0.025, 0.01)
    assert facts["sample"] == ["SKU-0", "SKU-1", "SKU-2"]

    again = reconcile.alert_on_divergence(_reconciled("week-1-rerun", divergent=60), notifiers.dispatch)
    assert again["raised"] and again["suppressed"] and not again["sent"]
    assert len(smtp.messages) == 1 and len(hook.received) == 1
    with session_scope(hub_url) as s:
        state = s.get(AlertState, "lifecycle_divergence_share")
        assert (state.sent, state.suppressed) == (1, 1)


def test_the_reconciliations_divergence_below_its_limit_sends_nothing(hub_url, sinks) -> None:
    from catalog_sync.flows import reconcile

    smtp, hook = sinks
    at_limit = _reconciled("week-2", divergent=20)  # exactly 1%: not past the limit
    record = reconcile.alert_on_divergence(at_limit, notifiers.dispatch)
    assert record == {"threshold": 0.01, "share": 0.01, "raised": False, "sent": False, "suppressed": False,
                      "reached": []}
    assert not smtp.messages and not hook.received
    with session_scope(hub_url) as s:
        assert s.get(AlertState, "lifecycle_divergence_share") is None


def test_the_deadline_callback_reports_in_one_line_of_text(hub_url, sinks) -> None:  # type: ignore[no-untyped-def]
    """Airflow saves a deadline callback's result in a text column: a list there stops the triggerer."""
    import asyncio

    smtp, hook = sinks
    context = {"dag_run": {"dag_id": "cold_data_nightly", "run_id": "scheduled__2026-12-02T02:00:00+00:00"},
               "deadline": {"deadline_time": "2026-12-02T06:00:00+00:00"}}
    first = asyncio.run(notifiers.deadline_missed(context, what="nightly not finished"))
    again = asyncio.run(notifiers.deadline_missed(context, what="nightly not finished"))
    assert isinstance(first, str) and first.startswith("freshness:cold_data_nightly: sent to "), first
    assert isinstance(again, str) and "suppressed" in again
    assert len([h for h in hook.received if h["json"]["key"] == "freshness:cold_data_nightly"]) == 1
