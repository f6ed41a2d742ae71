"""Shared pieces of the benchmarks: the machine, result files, the table, profiles."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LUMA = Path(os.environ.get("CATALOG_SYNC_BENCH_CATALOG") or os.environ.get("CATALOG_SYNC_DEMO_CATALOG")
            or ROOT / "demo-data" / "luma")
PY = sys.executable


def machine() -> dict[str, Any]:
    import psutil

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (0.0, 0.0, 0.0)
    return {
        "hostname": platform.node(),
        "cpu_count_logical": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "memory_available_gb": round(psutil.virtual_memory().available / 2**30, 1),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass
class Result:
    """One benchmark run: what was measured, against which target, and whether it held."""

    name: str
    title: str
    scale: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    target: str = ""
    held: bool | None = None  # None: not run, or no target to judge
    status: str = "ok"  # ok | not run: <why> | failed: <why>
    notes: list[str] = field(default_factory=list)
    profile: str | None = None  # path of a pyinstrument text profile, when one was taken

    def write(self, command: str | None = None) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        doc = {
            "command": command or " ".join(shlex.quote(a) for a in [Path(PY).name, *sys.argv]),
            "date": now.isoformat(timespec="seconds"),
            "machine": machine(),
            **asdict(self),
        }
        path = RESULTS / f"{self.name}-{now:%Y%m%dT%H%M%S}-{os.getpid()}.json"
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        return path


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(results: list[dict[str, Any]]) -> str:
    """A plain table: benchmark, scale, key figures, target, held."""
    lines = [f"{'benchmark':<22} {'scale':<18} {'held':<6} {'target':<34} figures"]
    lines.append("-" * 130)
    for r in results:
        scale = ",".join(f"{k}={fmt(v)}" for k, v in r.get("scale", {}).items())
        held = {True: "yes", False: "NO", None: "-"}[r.get("held")]
        figs = r.get("figures") or {}
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in figs.items() if not isinstance(v, (dict, list)))
        if r.get("status", "ok") != "ok":
            shown = r["status"] + ("; " + shown if shown else "")
        lines.append(f"{r['name']:<22} {scale[:18]:<18} {held:<6} {r.get('target', '')[:34]:<34} {shown}")
    return "\n".join(lines)


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def profiled(name: str, fn: Callable[[], Any], enabled: bool) -> tuple[Any, str | None]:
    """Run ``fn`` under pyinstrument when ``enabled``; write the text profile next to the results."""
    if not enabled:
        return fn(), None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    profiler.start()
    try:
        out = fn()
    finally:
        profiler.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.profile.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8")
    return out, str(path)


def profile_summary(path: str, lines: int = 40) -> str:
    """The top of a pyinstrument text profile (for BENCHMARKS.md)."""
    text = Path(path).read_text(encoding="utf-8").splitlines()
    return "\n".join(text[:lines])


def emit(result: Result, command: str | None = None) -> Path:
    """Write the result file and hand the result to the runner (one ``RESULT {json}`` line on stdout)."""
    path = result.write(command)
    print(f"wrote {path.relative_to(ROOT)}")
    print("RESULT " + json.dumps(asdict(result), default=str), flush=True)
    return path


def base_args(description: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    return parser
