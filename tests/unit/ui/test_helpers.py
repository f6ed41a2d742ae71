"""Pure helpers behind the pages: chart geometry, failing-expectation totals, redaction, Data Docs paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.ui import charts, queries


def test_a_ratio_axis_reaches_down_to_the_lowest_value_in_5_percent_steps() -> None:
    """KPIs near 100 % still show their movement: the axis starts a 5 % step under the lowest value."""
    chart = charts.line_chart([{"value": 0.988, "measured_at": "2026-12-02T17:15:01"},
                               {"value": 0.956, "measured_at": "2026-12-02T17:23:39"}], kpi="accuracy")
    assert (chart.y_min_label, chart.y_max_label) == ("95.0%", "100.0%")
    bottom = chart.height - chart.pad - 12
    assert chart.pad < chart.points[1]["y"] < bottom and chart.points[0]["y"] < chart.points[1]["y"]
    assert (chart.first_at, chart.last_at) == ("2026-12-02 17:15", "17:23")  # one day: the times tell them apart
    assert charts.ratio_floor(0.95) == pytest.approx(0.90) and charts.ratio_floor(0.02) == 0.0


def test_line_chart_scales_ratios_from_zero_when_a_value_is_zero() -> None:
    chart = charts.line_chart(
        [{"value": 0.0, "measured_at": "2025-03-01"}, {"value": 1.0, "measured_at": "2025-03-02"}]
    )
    (x0, y0), (x1, y1) = [(p["x"], p["y"]) for p in chart.points]
    bottom = chart.height - chart.pad - 12
    assert (x0, y0) == (chart.left, bottom) and (x1, y1) == (chart.width - chart.pad, chart.pad)
    assert (chart.y_min_label, chart.y_max_label, chart.last_label) == ("0.0%", "100.0%", "100.0%")
    assert charts.line_chart([]).polyline == ""
    counts = charts.line_chart([{"value": 10}, {"value": 30}])
    assert (counts.y_min_label, counts.y_max_label) == ("10.00", "30.00")


def test_each_kpi_is_shown_in_its_unit() -> None:
    from catalog_sync.quality.kpis import KPIS

    assert set(charts.KPI_UNITS) == set(KPIS)  # a new KPI must declare its unit
    assert charts.format_kpi(0.777, "timeliness") == "0.78 s"  # was "77.7%"
    assert charts.format_kpi(42.0, "timeliness") == "42.0 s"
    assert charts.format_kpi(210.0, "timeliness") == "3.5 min"
    assert charts.format_kpi(0.777, "completeness") == "77.7%"
    assert charts.format_kpi(None, "timeliness") == "–"
    lag = charts.line_chart([{"value": 0.78}, {"value": 0.5}], kpi="timeliness")
    assert (lag.y_min_label, lag.y_max_label, lag.last_label) == ("0.00 s", "0.78 s", "0.50 s")
    assert "0.78 s" in lag.points[0]["label"]


def test_aggregate_failing_sums_rows_and_counts_results() -> None:
    out = queries.aggregate_failing(
        [
            {"a": {"count": 2, "reason": "r1"}, "b": {"count": 5, "critical": True}},
            None,
            {"a": {"count": 4, "reason": "r2"}},
        ]
    )
    assert out == [
        {"expectation": "a", "rows": 6, "runs": 2, "reason": "r2", "critical": False},
        {"expectation": "b", "rows": 5, "runs": 1, "reason": "", "critical": True},
    ]


def test_redact_hides_credentials_at_any_depth() -> None:
    value = {
        "sku": "X",
        "auth": {"password": "p", "api_key": "k", "Authorization": "Bearer t"},
        "rows_passed": 3,
    }
    assert queries.redact(value) == {
        "sku": "X",
        "auth": {"password": "***", "api_key": "***", "Authorization": "***"},
        "rows_passed": 3,
    }


def test_data_docs_paths_stay_inside_the_run_folder(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(tmp_path.as_uri())
    docs = tmp_path / "data_docs" / "nightly-1"
    (docs / "sub").mkdir(parents=True)
    (docs / "index.html").write_text("x")
    (docs / "sub" / "index.html").write_text("y")
    (tmp_path / "secret.txt").write_text("s")
    (docs / "out").symlink_to(tmp_path)
    found = queries.resolve_data_docs_file(root, "nightly-1", "")
    assert found is not None and found.path == str(docs / "index.html")
    found = queries.resolve_data_docs_file(root, "nightly-1", "sub/")
    assert found is not None and found.path == str(docs / "sub" / "index.html")
    for evil in (
        "../../secret.txt",
        "/etc/passwd",
        "sub/../../../secret.txt",
        "./index.html/../../../secret.txt",
        "out/secret.txt",
        "a\x00b",
        "..\\x",
    ):
        assert queries.resolve_data_docs_file(root, "nightly-1", evil) is None, evil
    assert queries.resolve_data_docs_file(root, "..", "secret.txt") is None
    assert queries.data_docs_root(root, "../x") is None
    assert queries.resolve_data_docs_file(root, "nightly-2", "index.html") is None


def test_data_docs_are_found_in_an_object_store_without_a_local_folder() -> None:
    """The same rules on fsspec's in-memory store: no local path is involved (what S3 or GCS looks like)."""
    import uuid

    from airflow.sdk import ObjectStoragePath

    from catalog_sync import store

    url = f"memory://ui-{uuid.uuid4().hex}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_SYNC_STORE_URL", url)
        root = store.store_root()
    assert isinstance(root, ObjectStoragePath) and root.protocol == "memory"
    store.write_bytes(root / "data_docs" / "nightly-1" / "index.html", b"x")
    store.write_bytes(root / "data_docs" / "nightly-1" / "sub" / "index.html", b"y")
    store.write_bytes(root / "secret.txt", b"s")
    found = queries.resolve_data_docs_file(root, "nightly-1", "sub/")
    assert found is not None and store.read_bytes(found) == b"y"
    assert store.read_bytes(queries.resolve_data_docs_file(root, "nightly-1", "") or root) == b"x"
    for evil in ("../../secret.txt", "/secret.txt", "sub/../../../secret.txt", "a\x00b", "..\\x"):
        assert queries.resolve_data_docs_file(root, "nightly-1", evil) is None, evil
    assert queries.resolve_data_docs_file(root, "nightly-2", "index.html") is None
    store.remove_tree(root)
