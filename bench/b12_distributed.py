"""Benchmark 12: the nightly on two Celery workers beside the same run on the ``airflow standalone`` shape.

The real ``cold_data_nightly`` DAG, run by Airflow's scheduler, over N SKUs (default 100,000; quick: 2,000), once
on each of two deployments, each against its own copy of one loaded sandbox catalog (``bench.sandbox_proc.
from_template``) and an empty hub on the local PostgreSQL (a first run: every SKU is new):

- ``standalone``: the shape ``airflow standalone`` runs (tests/integration/airflow_live.py ``LiveAirflow``): an
  api-server, a dag-processor and a scheduler with the LocalExecutor, Airflow's metadata on SQLite in the Airflow
  home, one ``CATALOG_SYNC_HOME`` for every task;
- ``celery``: the multi-machine shape of the distributed test (tests/distributed/harness.py, ADR 0013): the
  CeleryExecutor with scheduler, dag-processor, triggerer, api-server and two ``airflow celery worker`` processes
  (``worker-a``, ``worker-b``), each with its own working and state folders; Airflow's metadata and Celery's
  results on PostgreSQL, the broker on Redis (database 5 by default; the test suite uses 3), the object store a
  shared folder.

Both sides use the production pools (catalog_sync.airflow.budgets) and the same storefront settings (unlimited
bucket, as benchmark 2). PostgreSQL databases are created and dropped per side with the prefix ``bench12_``.

Per side: wall time from the trigger (the DAG unpaused: the scheduler creates its run) to the run's success, as
seen by this process and as the metadata database records it (``queued_at`` to ``end_date``); every task
instance's duration, hostname, queue and pool (the metadata database); the hub's counts, reconciled per hop
(read = delivered + unchanged + dead-lettered); the PIM's peak calls in flight (``GET /_sandbox/concurrency``) and
refusals; the load average, sampled every 5 s. Each side's figures are appended to ``<workdir>/sides.jsonl``
as the side ends, so a run cut short keeps the side that finished. Target (correctness, not speed): both runs
succeed, every hop reconciles, the PIM never sees more calls at once than its limit and refuses none.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Result, base_args, emit

DAG_ID = "cold_data_nightly"
SIDES = ("standalone", "celery")
PREFIX = "bench12"
#: The broker's Redis database: not 3, which the distributed test empties.
REDIS_URL = os.environ.get("CATALOG_SYNC_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/5"


class LoadSampler:
    """``os.getloadavg()`` every ``every`` seconds in a thread, from ``start()`` to ``stop()``."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.samples = every, []  # type: list[tuple[float, float, float, float]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            self.samples.append((round(time.monotonic() - started, 1), *os.getloadavg()))
            if self._stop.wait(self.every):
                return

    def start(self) -> LoadSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        one = [s[1] for s in self.samples]
        return {"samples": len(one), "loadavg_1min_min": round(min(one), 2),
                "loadavg_1min_mean": round(sum(one) / len(one), 2), "loadavg_1min_max": round(max(one), 2),
                "loadavg_at_end_1_5_15": [round(x, 2) for x in self.samples[-1][1:]]}


@contextmanager
def deployment(side: str, root: Path, sandbox_url: str, env: dict[str, str], concurrency: int) -> Iterator[Any]:
    """The running Airflow of ``side`` and its hub's URL."""
    from tests.distributed.harness import celery_airflow, databases
    from tests.integration.airflow_live import live_airflow

    if side == "celery":
        with celery_airflow(root, [f"{DAG_ID}.py"], sandbox_url, env, concurrency=concurrency, prefix=PREFIX,
                            redis_url=REDIS_URL) as dist:
            yield dist.airflow, dist.hub_url
        return
    from catalog_sync.hub.db import _engine, migrate

    with databases(PREFIX, ("hub",)) as (hub_url,):
        migrate(hub_url)
        _engine.cache_clear()
        env = {"CATALOG_SYNC_HUB_URL": hub_url, "CATALOG_SYNC_HOME": str(root / "catalog-sync"), **env}
        with live_airflow(root, [f"{DAG_ID}.py"], sandbox_url, env) as airflow:
            yield airflow, hub_url


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def per_host(tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per hostname: the tasks that ran there and the seconds they took together."""
    out: dict[str, dict[str, Any]] = {}
    for t in tasks.values():
        host = out.setdefault(str(t["hostname"]), {"tasks": 0, "task_seconds": 0.0})
        host["tasks"] += 1
        host["task_seconds"] = round(host["task_seconds"] + float(t["duration"] or 0), 1)
    return out


def measure(side: str, airflow: Any, hub_url: str, sandbox: Any, within: float) -> dict[str, Any]:
    """Trigger the nightly, wait for it, gather the side's figures."""
    from tests.distributed.harness import hub_run, scheduled_run

    airflow.wait(lambda: airflow._query("SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID), 300, f"{DAG_ID} parsed")
    pim_limit = sandbox.control("GET", "concurrency/pim")["limit"]
    sandbox.control("DELETE", "concurrency")
    load = LoadSampler().start()
    started = time.monotonic()
    try:
        run_id = scheduled_run(airflow, DAG_ID)
        print(f"[{side}] {DAG_ID} run {run_id} triggered", flush=True)
        state = airflow.wait_finished(DAG_ID, run_id, within=within)
    finally:
        observed = round(time.monotonic() - started, 1)
        loadavg = load.stop()
    times = airflow.run_times(DAG_ID, run_id)
    tasks = airflow.task_timings(DAG_ID, run_id)
    pim = sandbox.control("GET", "concurrency/pim")
    figures: dict[str, Any] = {
        "run_id": run_id, "state": state, "wall_s_observed": observed,
        "wall_s_metadata": seconds_between(times.get("queued_at"), times.get("end_date")),
        "run_times": times, "loadavg": loadavg,
        "pim_calls_in_flight": {"peak": pim["peak"], "refused": pim["refused"], "limit": pim_limit},
        "hosts": per_host(tasks), "task_seconds_total": round(sum(float(t["duration"] or 0) for t in tasks.values()), 1),
        "tasks": tasks,
    }
    run = hub_run(hub_url, DAG_ID, run_id)
    hops = (run.details or {}).get("hops") or {}
    figures["hub"] = {
        "status": run.status, "error": run.error, "records_read": run.records_read,
        "records_delivered": run.records_delivered, "records_unchanged": run.records_unchanged,
        "records_dead_lettered": run.records_dead_lettered, "hops": hops,
        "reconciled": bool(hops) and all(c["read"] == c["delivered"] + c["unchanged"] + c["dead_lettered"]
                                         for c in hops.values()),
    }
    return figures


def run_side(side: str, workdir: Path, scale: int, template: Path, concurrency: int, within: float) -> dict[str, Any]:
    from bench.sandbox_proc import UNLIMITED_STOREFRONT, from_template

    root = workdir / side
    root.mkdir(parents=True, exist_ok=True)
    sandbox = from_template(root, "sandbox", scale, template)
    try:
        sandbox.settings(**UNLIMITED_STOREFRONT)
        env = {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
        with deployment(side, root / "airflow-deployment", sandbox.url, env, concurrency) as (airflow, hub_url):
            try:
                return measure(side, airflow, hub_url, sandbox, within)
            except AssertionError as exc:  # the run did not finish: keep what the metadata database says
                print(f"[{side}] {str(exc)[:4000]}", flush=True)
                runs = airflow.runs(DAG_ID)
                tasks = airflow.task_timings(DAG_ID, runs[-1][0]) if runs else {}
                return {"state": f"failed: {str(exc).splitlines()[0]}", "runs": runs, "tasks": tasks}
    finally:
        sandbox.stop()


def held(sides: dict[str, dict[str, Any]]) -> bool:
    return all(s.get("state") == "success" and s["hub"]["status"] == "success" and s["hub"]["reconciled"]
               and s["pim_calls_in_flight"]["refused"] == 0
               and s["pim_calls_in_flight"]["peak"] <= s["pim_calls_in_flight"]["limit"] for s in sides.values())


def main() -> int:
    parser = base_args(__doc__)
    parser.add_argument("--scale", type=int, help="SKUs (default 100,000; quick 2,000)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES), help="deployments, in this order")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="tasks at once per Celery worker")
    parser.add_argument("--within", type=float, help="seconds a run may take (default 4 h; quick 15 min)")
    parser.add_argument("--sandbox-template", help="a loaded sandbox database file: copied when it exists, written "
                        "after loading when it does not (default: <workdir>/sandbox-<scale>.sqlite)")
    parser.add_argument("--workdir", help="work directory (default: a new temporary one, removed at the end)")
    args = parser.parse_args()
    scale = args.scale or (2_000 if args.quick else 100_000)
    within = args.within or (900 if args.quick else 4 * 3600)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cs_bench_dist_"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["CATALOG_SYNC_HOME"] = str(workdir / "bench")
    template = Path(args.sandbox_template) if args.sandbox_template else workdir / f"sandbox-{scale}.sqlite"
    from tests.distributed.harness import unavailable

    os.environ.setdefault("CATALOG_SYNC_TEST_REDIS_URL", REDIS_URL)  # what unavailable() pings
    reason = unavailable()
    sides: dict[str, dict[str, Any]] = {}
    status = "ok"
    if reason:
        status = f"not run: {reason}"
    for side in args.sides if not reason else ():
        print(f"== {side}: {DAG_ID} over {scale:,} SKUs", flush=True)
        try:
            got = run_side(side, workdir, scale, template, args.worker_concurrency, within)
        except Exception as exc:  # the other side still runs; the figures so far are kept
            got = {"state": f"failed: {type(exc).__name__}: {exc}"}
        sides[side] = got
        with (workdir / "sides.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"scale": scale, "side": side, **got}, default=str) + "\n")
        print(f"[{side}] {got.get('state')}, {got.get('wall_s_metadata')} s (metadata), "
              f"hosts {json.dumps(got.get('hosts'))}, PIM {got.get('pim_calls_in_flight')}, "
              f"load {json.dumps({k: v for k, v in (got.get('loadavg') or {}).items() if k != 'samples'})}",
              flush=True)
        if got.get("state") != "success":
            status = f"failed: {side}: {got.get('state')}"
    walls = {side: s.get("wall_s_metadata") for side, s in sides.items()}
    emit(Result(
        name="distributed", title="The nightly on two Celery workers beside the same run on airflow standalone",
        scale={"skus": scale}, status=status,
        figures={"wall_s_standalone": walls.get("standalone"), "wall_s_celery": walls.get("celery"),
                 "celery_over_standalone": round(walls["celery"] / walls["standalone"], 2)
                 if walls.get("celery") and walls.get("standalone") else None,
                 "worker_concurrency": args.worker_concurrency, "sides": sides},
        target="both runs succeed, every hop reconciles, PIM calls in flight <= its limit and none refused",
        held=held(sides) if set(sides) == set(args.sides) and status == "ok" else (False if sides else None),
        notes=["standalone: LiveAirflow (api-server, dag-processor, scheduler; LocalExecutor; metadata on SQLite); "
               "celery: tests/distributed/harness.py (CeleryExecutor, two workers, metadata and Celery results on "
               "PostgreSQL, Redis broker, shared folder as the store); hub on the local PostgreSQL on both sides; "
               "sandbox in its own process (SQLite) from one template per scale, storefront bucket unlimited; "
               "wall time = dag_run.queued_at to end_date; both sides on one machine, one after the other"]))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
