"""Known hub contents shared by the UI unit tests and the browser tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SCRIPT = "<script>alert('pwned')</script>"
T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def seed_hub(hub_url: str) -> dict[str, Any]:
    """Seed a migrated hub with known runs, gate results, KPIs, dead letters and drift.

    Returns ``{"dead_letters": {record_key: id}, "hub_url": hub_url}``. The figures the tests assert on:
    layer 2 checked 150 / passed 137 / quarantined 13; the top failing expectation ``...not_be_null:name``
    with 9 rows over 2 gate results; latest completeness 95 %; 3 drift rows in ``weekly-new``.
    """
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import DeadLetter, DqKpi, DqResult, Drift, SyncRun

    runs = [
        (
            "nightly-1",
            "nightly_product_sync",
            "nightly_product_sync",
            "scheduled__2025-03-01T02:00:00+00:00",
            0,
        ),
        (
            "nightly-2",
            "nightly_product_sync",
            "nightly_product_sync",
            "scheduled__2025-03-02T02:00:00+00:00",
            1,
        ),
        ("weekly-old", "weekly_reconciliation", "weekly_reconciliation", "scheduled__old", 0),
        ("weekly-new", "weekly_reconciliation", "weekly_reconciliation", "scheduled__new", 7),
    ]
    failing_1 = {
        "expect_column_values_to_not_be_null:name": {
            "count": 6,
            "reason": "A product without a name cannot be sold",
            "critical": False,
        },
        "expect_column_values_to_match_regex:upc": {
            "count": 4,
            "reason": "Scanners reject it",
            "critical": True,
        },
    }
    failing_2 = {
        "expect_column_values_to_not_be_null:name": {
            "count": 3,
            "reason": "A product without a name cannot be sold",
            "critical": False,
        }
    }
    with session_scope(hub_url) as s:
        for load_id, flow, dag_id, run_id, day in runs:
            s.add(
                SyncRun(
                    load_id=load_id,
                    flow=flow,
                    dag_id=dag_id,
                    run_id=run_id,
                    status="success",
                    records_read=100,
                    records_delivered=90,
                    records_dead_lettered=10,
                    started_at=T0 + timedelta(days=day),
                    ended_at=T0 + timedelta(days=day, minutes=5),
                    details={"note": "ok", "password": "hunter2"},
                )
            )
        for load_id, gate, layer, checked, passed, quarantined, failing in [
            ("nightly-1", "products_l1_schema", 1, 100, 100, 0, None),
            ("nightly-1", "products_l2_content", 2, 100, 90, 10, failing_1),
            ("nightly-2", "products_l1_schema", 1, 50, 50, 0, None),
            ("nightly-2", "products_l2_content", 2, 50, 47, 3, failing_2),
        ]:
            s.add(
                DqResult(
                    load_id=load_id,
                    gate=gate,
                    layer=layer,
                    entity="product",
                    severity="hard" if layer == 1 else "soft",
                    rows_checked=checked,
                    rows_passed=passed,
                    rows_quarantined=quarantined,
                    success=True,
                    failing_expectations=failing,
                    created_at=T0,
                )
            )
        kpis = {"completeness": (0.90, 0.95), "accuracy": (0.80, 0.85), "timeliness": (1.0, 0.5),
                "first_time_pass_rate": (0.70, 0.75)}  # fmt: skip
        for kpi, (v1, v2) in kpis.items():
            s.add(DqKpi(load_id="nightly-1", kpi=kpi, value=v1, measured_at=T0))
            s.add(DqKpi(load_id="nightly-2", kpi=kpi, value=v2, measured_at=T0 + timedelta(days=1)))
        repo.dead_letter(
            s,
            [
                {
                    "load_id": "nightly-1",
                    "flow": "nightly_product_sync",
                    "entity": "product",
                    "record_key": "MH01-XS-Black",
                    "source_system": "pim",
                    "target_system": "storefront",
                    "reason_kind": "gate",
                    "gate_layer": 2,
                    "expectation": "expect_column_values_to_not_be_null:name",
                    "reason": "name is missing",
                    "payload": {"sku": "MH01-XS-Black", "description": SCRIPT, "api_key": "sekrit-api-value"},
                },
                {
                    "load_id": "nightly-2",
                    "flow": "nightly_product_sync",
                    "entity": "product",
                    "record_key": "WJ01-S-Red",
                    "source_system": "erp",
                    "target_system": "storefront",
                    "reason_kind": "api",
                    "reason": "HTTP 422 from the storefront",
                    "payload": {"sku": "WJ01-S-Red"},
                },
                {
                    "load_id": "nightly-2",
                    "flow": "nightly_product_sync",
                    "entity": "asset",
                    "record_key": "IMG-1",
                    "source_system": "dam",
                    "target_system": "pim",
                    "reason_kind": "transform",
                    "reason": "unknown role",
                    "payload": {"asset": "IMG-1"},
                },
            ],
        )
        s.flush()
        from sqlalchemy import select

        ids = {key: i for key, i in s.execute(select(DeadLetter.record_key, DeadLetter.id))}
        repo.resolve_dead_letters(s, [ids["IMG-1"]], "discarded", by="seed")
        for load_id, system, key, attribute, kind in [
            ("weekly-old", "storefront", "OLD-1", "name", "drift"),
            ("weekly-new", "storefront", "MH01-XS-Black", "name", "drift"),
            ("weekly-new", "storefront", "WJ01-S-Red", "name", "drift"),
            ("weekly-new", "pim", "MH01-XS-Black", "weight", "missing"),
        ]:
            s.add(
                Drift(
                    load_id=load_id,
                    system=system,
                    entity="product",
                    record_key=key,
                    attribute=attribute,
                    kind=kind,
                    owner_system="erp" if attribute == "weight" else "pim",
                    owner_value="Owner " + SCRIPT if key == "WJ01-S-Red" else "Owner",
                    observed_value=None if kind == "missing" else "Observed",
                )
            )
    return {"dead_letters": ids, "hub_url": hub_url}
