"""Geometry for the small inline SVG charts (no JavaScript, no CDN): the templates only draw what this computes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def format_kpi(value: float | None) -> str:
    """A KPI as a person reads it: ratios (0..1) as percentages, anything else as a plain number."""
    if value is None:
        return "–"
    if 0.0 <= value <= 1.0:
        return f"{value * 100:.1f}%"
    return f"{value:,.2f}"


@dataclass
class LineChart:
    """A KPI line over runs, in SVG user units."""

    width: int
    height: int
    left: int = 44  # room for the y-axis labels
    pad: int = 16
    points: list[dict[str, Any]] = field(default_factory=list)  # x, y, label (tooltip)
    polyline: str = ""
    y_min_label: str = ""
    y_max_label: str = ""
    last_label: str = ""
    first_at: str = ""
    last_at: str = ""


def line_chart(series: list[dict[str, Any]], width: int = 360, height: int = 130) -> LineChart:
    """Scale a KPI series (``{value, measured_at, load_id}``, oldest first) into a :class:`LineChart`.

    Ratios are drawn on a fixed 0..100 % axis so charts of different KPIs compare at a glance; other values
    on their own min..max range.
    """
    chart = LineChart(width=width, height=height)
    left, pad = chart.left, chart.pad
    if not series:
        return chart
    values = [float(p["value"]) for p in series]
    if all(0.0 <= v <= 1.0 for v in values):
        lo, hi = 0.0, 1.0
    else:
        lo, hi = min(values), max(values)
        if hi == lo:
            lo, hi = lo - 1, hi + 1
    inner_w, inner_h = width - left - pad, height - 2 * pad - 12  # 12: the date labels under the axis
    step = inner_w / (len(values) - 1) if len(values) > 1 else 0.0
    for i, (p, v) in enumerate(zip(series, values, strict=True)):
        x = left + (i * step if len(values) > 1 else inner_w / 2)
        y = pad + inner_h - (v - lo) / (hi - lo) * inner_h
        label = f"{format_kpi(v)} — {p.get('load_id') or ''} ({(p.get('measured_at') or '')[:16]})"
        chart.points.append({"x": round(x, 1), "y": round(y, 1), "label": label})
    chart.polyline = " ".join(f"{p['x']},{p['y']}" for p in chart.points)
    chart.y_min_label, chart.y_max_label = format_kpi(lo), format_kpi(hi)
    chart.last_label = format_kpi(values[-1])
    chart.first_at = (series[0].get("measured_at") or "")[:10]
    chart.last_at = (series[-1].get("measured_at") or "")[:10]
    return chart


def share(part: int, whole: int) -> float:
    """``part / whole`` as a percentage for bar widths (0 when there is nothing)."""
    return round(100.0 * part / whole, 2) if whole else 0.0
