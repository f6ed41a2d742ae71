"""Geometry for the small inline SVG charts (no JavaScript, no CDN): the templates only draw what this computes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The unit of each KPI (``catalog_sync.quality.kpis``): the shares are ratios 0..1, timeliness is a median lag in
#: seconds. A KPI is formatted by its unit, never guessed from its value: a 0.78 s lag is not 78 %.
KPI_UNITS: dict[str, str] = {
    "completeness": "ratio",
    "accuracy": "ratio",
    "timeliness": "seconds",
    "first_time_pass_rate": "ratio",
}


def format_seconds(value: float) -> str:
    """A duration as a person reads it: ``0.78 s``, ``42.0 s``, ``3.5 min``, ``2.1 h``."""
    if abs(value) < 10:
        return f"{value:.2f} s"
    if abs(value) < 120:
        return f"{value:.1f} s"
    if abs(value) < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def format_kpi(value: float | None, kpi: str | None = None) -> str:
    """A KPI in its unit (:data:`KPI_UNITS`): ratios as percentages, timeliness as a duration.

    Without a known KPI name, a value in 0..1 is taken for a ratio and anything else is shown as a plain number.
    """
    if value is None:
        return "–"
    unit = KPI_UNITS.get(kpi or "")
    if unit == "seconds":
        return format_seconds(value)
    if unit == "ratio" or (unit is None and 0.0 <= value <= 1.0):
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


def line_chart(series: list[dict[str, Any]], width: int = 360, height: int = 130, kpi: str | None = None
               ) -> LineChart:
    """Scale a KPI series (``{value, measured_at, load_id}``, oldest first) into a :class:`LineChart`.

    Ratios are drawn up to 100 %, from the lowest value rounded down to a 5 % step (a KPI moving between 95 and
    99 % shows its movement instead of a flat line at the top of a 0..100 % axis); durations from 0 to their largest
    value; other values on their own min..max range. Labels are in the KPI's unit. The dates under the axis are
    the first and last measurement's; when both fall on one day, their times too.
    """
    chart = LineChart(width=width, height=height)
    left, pad = chart.left, chart.pad
    if not series:
        return chart
    values = [float(p["value"]) for p in series]
    unit = KPI_UNITS.get(kpi or "")
    if unit == "ratio" or (unit is None and all(0.0 <= v <= 1.0 for v in values)):
        lo, hi = ratio_floor(min(values)), 1.0
    elif unit == "seconds":
        lo, hi = min(0.0, min(values)), max(values)
        if hi == lo:
            hi = lo + 1
    else:
        lo, hi = min(values), max(values)
        if hi == lo:
            lo, hi = lo - 1, hi + 1
    inner_w, inner_h = width - left - pad, height - 2 * pad - 12  # 12: the date labels under the axis
    step = inner_w / (len(values) - 1) if len(values) > 1 else 0.0
    for i, (p, v) in enumerate(zip(series, values, strict=True)):
        x = left + (i * step if len(values) > 1 else inner_w / 2)
        y = pad + inner_h - (v - lo) / (hi - lo) * inner_h
        label = f"{format_kpi(v, kpi)} — {p.get('load_id') or ''} ({(p.get('measured_at') or '')[:16]})"
        chart.points.append({"x": round(x, 1), "y": round(y, 1), "label": label})
    chart.polyline = " ".join(f"{p['x']},{p['y']}" for p in chart.points)
    chart.y_min_label, chart.y_max_label = format_kpi(lo, kpi), format_kpi(hi, kpi)
    chart.last_label = format_kpi(values[-1], kpi)
    first, last = (str(series[0].get("measured_at") or ""), str(series[-1].get("measured_at") or ""))
    if len(series) > 1 and first[:10] == last[:10] and len(first) >= 16 and len(last) >= 16:
        chart.first_at, chart.last_at = f"{first[:10]} {first[11:16]}", last[11:16]
    else:
        chart.first_at, chart.last_at = first[:10], last[:10]
    return chart


def ratio_floor(lowest: float) -> float:
    """The bottom of a ratio axis: ``lowest`` rounded down to a 5 % step, a step below it when it sits on one (the
    line never runs along the axis), never under 0."""
    import math

    step = math.floor(lowest * 20 + 1e-9) / 20
    return max(0.0, step - 0.05 if lowest - step < 1e-9 else step)


def share(part: int, whole: int) -> float:
    """``part / whole`` as a percentage for bar widths (0 when there is nothing)."""
    return round(100.0 * part / whole, 2) if whole else 0.0
