"""Benchmark 13: the storefront's and Adobe Commerce's publishes side by side, with both up and with Adobe down.

Issue #21: N SKUs (default 100,000; quick: 2,000) published to both channels in one nightly, each within its own
budget; with one channel answering 503 throughout, the other's publish time grows by at most 10 %.

**Set-up, once.** A first run (empty hub on the local PostgreSQL, every SKU new) of ``cold_data_nightly`` over a
sandbox started from a loaded template (``bench.sandbox_proc``), its tasks up to ``gate_channel_content`` each in
its own process (``bench.b11_task_memory.run_child``). That is the state in which the DAG starts
``publish_products`` and ``publish_channel_adobe_commerce`` together. It is kept as three copies' source: the hub
database (a PostgreSQL template), the sandbox's SQLite file and the state folder (``CATALOG_SYNC_HOME``, the store).

**Rounds.** Each round (``--rounds``, default ``ABAB``: the conditions interleaved, because the machine is shared
and its load drifts) gets fresh copies of the three and starts the two publishes at the same instant, each in a
process of its own, as Airflow's LocalExecutor runs two task instances whose upstream finished: the DAG's own
task bodies (``resumable(cold.publish_products, ...)`` and ``resumable(channels.publish_channel, ...)``), with the
clients built by ``catalog_sync.airflow.tasks.systems()`` and ``channel_client()`` from the ``catalog_sync_*``
Airflow connections (environment variables pointed at the round's sandbox) and the request budgets of each task's
pool (``storefront_api``, ``adobe_commerce_api``). What Airflow's scheduler would add (queueing, the task runner's
start) is not in the loop: the processes are started by this benchmark, which stands in for the running task
instance only by naming the task and its pool to ``tasks.running_task``.

- ``A``: both channels up.
- ``B``: Adobe Commerce answers every request with a server error (the sandbox's fault injection,
  ``PUT /_sandbox/faults/adobe_commerce {"error_rate": 1.0, "error_statuses": [503]}``: every request answered
  503 Service Unavailable, as a Magento in maintenance mode answers). Every record of the channel is to be
  dead-lettered with kind ``channel`` and the channel's task to succeed.

The storefront is on Shopify Plus's GraphQL limits (``--bucket plus``: 10,000 points restoring 1,000 a second, set
in the sandbox and named in the storefront connection's ``plan``); ``--bucket unlimited`` is benchmark 2's setting.

Per round: each publish's wall time (process start to exit, and the task's own seconds inside it), its hop counts
from the hub (read = delivered + unchanged + dead-lettered for each hop the task counted), the channel's dead
letters by kind, the storefront client's bucket figures (GraphQL requests, THROTTLED answers, seconds waited for
points, points charged, bulk operations), Adobe's and the ERP's most requests in flight as the sandbox saw them
(``GET /_sandbox/concurrency``) against the pool's budget, and the load average every 5 s. Figures per condition
are means over its rounds; the growth of the storefront's publish time from A to B is judged against 10 %.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import PY, ROOT, Result, base_args, emit

DAG_ID = "cold_data_nightly"
CHANNEL = "adobe_commerce"
#: The two task instances the DAG starts once gate_channel_content succeeded, with their pools.
TASKS = {"storefront": ("publish_products", "storefront_api"),
         "channel": (f"publish_channel_{CHANNEL}", f"{CHANNEL}_api")}
#: The nightly's tasks before the two publishes (open_run is called in this process).
SETUP_TASKS = ["extract_erp", "gate_master_data", "load_pim", "link_assets", "writeback_supplier", "extract_pim",
               "gate_channel_content"]
BUCKETS = {"plus": {"storefront_points_max": 10_000, "storefront_points_restore_per_s": 1_000.0}}
DOWN = {"error_rate": 1.0, "error_statuses": [503], "seed": 13}
GROWTH_LIMIT = 0.10
PREFIX = "bench13"


# ----------------------------------------------------------------------------------------------- one publish
class StoppedWithStorefront(Exception):
    """The channel's publish stopped at a slice boundary because the storefront's had finished."""


def child(args: Any) -> int:
    """One of the two publishes in this process, as the DAG's task body runs it; prints ``TASK {json}``.

    Unless ``BENCH13_CHANNEL_TO_THE_END`` is set, the channel's publish stops before its next slice once the
    storefront's has finished (the storefront's process leaves ``storefront.done`` in the round's folder): what
    is judged is the storefront's time with the channel publishing beside it throughout, and at 100,000 SKUs the
    channel's tail would cost a round many minutes more. Its slices so far are committed and counted; its whole
    time is then estimated from its rate and its record count in condition B, where every record is read."""
    import logging
    from unittest import mock

    logging.basicConfig(level=logging.WARNING)
    from catalog_sync.airflow import tasks
    from catalog_sync.airflow.budgets import POOLS
    from catalog_sync.engine.run import run_task
    from catalog_sync.flows import channels, cold

    task_id, pool_name = TASKS[args.publish]
    running = (f"{DAG_ID}.{task_id}", pool_name, POOLS[pool_name].slots)
    # the only thing Airflow's task runner would give these calls: which task runs, in which pool
    with mock.patch.object(tasks, "running_task", return_value=running):
        systems = tasks.systems()
        client = tasks.channel_client(CHANNEL) if args.publish == "channel" else None
    done = Path(os.environ["CATALOG_SYNC_HOME"]).parent / "storefront.done"  # the round's folder
    stop = threading.Event()
    started = time.perf_counter()
    if args.publish == "storefront":
        try:
            out = run_task(task_id, args.load_id, cold.publish_products, systems)
        finally:
            done.touch()
    else:
        publish_slice = channels._publish_slice

        def slice_unless_stopped(*a: Any, **kw: Any) -> None:
            if stop.is_set():  # before the slice counts anything: the committed slices reconcile on their own
                raise StoppedWithStorefront
            publish_slice(*a, **kw)

        def watch() -> None:
            while not done.exists():
                time.sleep(1)
            stop.set()

        if not os.environ.get("BENCH13_CHANNEL_TO_THE_END"):
            threading.Thread(target=watch, daemon=True).start()
        try:
            with mock.patch.object(channels, "_publish_slice", slice_unless_stopped):
                out = run_task(task_id, args.load_id, channels.publish_channel, CHANNEL, systems, client)
        except StoppedWithStorefront:
            out = {"stopped_with_storefront": True}
    seconds = round(time.perf_counter() - started, 1)
    shop = None
    if args.publish == "storefront":  # the channel's task has no budget for the storefront: not even a look
        sf = systems.storefront
        shop = {"graphql_requests": sf.graphql_requests, "throttled_answers": sf.throttled_answers,
                "throttled_wait_s": round(float(sf.throttled_seconds), 1), "points_used": round(sf.points_used),
                "bulk_operations": len(sf.bulk_operations), "max_concurrency": sf.options.max_concurrency}
    figures = {"task": task_id, "pool": pool_name, "task_seconds": seconds, "result": out,
               "storefront_client": shop,
               "channel_client_max_concurrency": getattr(getattr(client, "options", None), "max_concurrency", None)}
    systems.close()
    if client is not None:
        client.close()
    print("TASK " + json.dumps(figures, default=str), flush=True)
    return 0


def start_publish(which: str, load_id: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[str], Any]:
    out = log.open("w", encoding="utf-8")
    cmd = [PY, "-m", "bench.b13_channels", "--publish", which, "--load-id", load_id]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=out, text=True), out


# ----------------------------------------------------------------------------------------------- the hub
def _admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")


def _url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def copy_database(source: str, name: str) -> str:
    """A new database ``name`` copied from ``source`` (nobody may be connected to ``source``)."""
    from sqlalchemy import text

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": source})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    admin.dispose()
    return _url(name)


def drop_database(name: str) -> None:
    from sqlalchemy import text

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def hub_figures(hub_url: str, load_id: str) -> dict[str, Any]:
    """The run's counts per hop as ``cold.finish`` reconciles them (every task's and the run's own counters: a
    hop's records are read by one task and delivered by another), each publish task's share of them, and the run's
    dead letters by target and kind."""
    from sqlalchemy import create_engine, func, select, union_all

    from catalog_sync.hub.models import DeadLetter, RunCounter, TaskCounter

    engine = create_engine(hub_url)
    try:
        with engine.connect() as conn:
            both = union_all(
                select(RunCounter.hop, RunCounter.counter, RunCounter.value).where(RunCounter.load_id == load_id),
                select(TaskCounter.hop, TaskCounter.counter, TaskCounter.value).where(TaskCounter.load_id == load_id),
            ).subquery()
            run_rows = conn.execute(select(both.c.hop, both.c.counter, func.sum(both.c.value))
                                    .group_by(both.c.hop, both.c.counter)).all()
            task_rows = conn.execute(select(TaskCounter.task, TaskCounter.hop, TaskCounter.counter,
                                            func.sum(TaskCounter.value))
                                     .where(TaskCounter.load_id == load_id,
                                            TaskCounter.task.in_([t for t, _ in TASKS.values()]))
                                     .group_by(TaskCounter.task, TaskCounter.hop, TaskCounter.counter)).all()
            letters = conn.execute(select(DeadLetter.target_system, DeadLetter.reason_kind, func.count())
                                   .where(DeadLetter.load_id == load_id)
                                   .group_by(DeadLetter.target_system, DeadLetter.reason_kind)).all()
    finally:
        engine.dispose()

    def zero() -> dict[str, int]:
        return {"read": 0, "delivered": 0, "unchanged": 0, "dead_lettered": 0}

    hops: dict[str, dict[str, Any]] = {}
    for hop, counter, value in run_rows:
        hops.setdefault(hop, zero())[counter] = int(value or 0)
    for c in hops.values():
        c["reconciled"] = c["read"] == c["delivered"] + c["unchanged"] + c["dead_lettered"]
    by_task: dict[str, dict[str, dict[str, int]]] = {}
    for task, hop, counter, value in task_rows:
        by_task.setdefault(task, {}).setdefault(hop, zero())[counter] = int(value or 0)
    return {"hops": hops, "by_task": by_task,
            "dead_letters": {f"{target}/{kind}": int(n) for target, kind, n in sorted(letters)}}


# ----------------------------------------------------------------------------------------------- set-up
def prepare(workdir: Path, scale: int, template: Path) -> dict[str, Any]:
    """The first nightly up to gate_channel_content, once: returns the load id, the staged hub database's name and
    each set-up task's figures. The sandbox is stopped at the end so that its file can be copied."""
    from bench.b11_task_memory import fresh_pg_hub, run_child
    from bench.sandbox_proc import UNLIMITED_STOREFRONT, SandboxProcess, write_template

    staged = workdir / "staged"
    staged.mkdir(parents=True, exist_ok=True)
    os.environ["CATALOG_SYNC_HOME"] = str(staged / "home")
    write_template(workdir, "sandbox", scale, template)
    shutil.copyfile(template, staged / "sandbox.sqlite")
    sandbox = SandboxProcess(staged, "sandbox").start("plus")
    database = f"{PREFIX}_{scale}_staged"  # per scale: a quick run may run beside a full one
    tasks: dict[str, Any] = {}
    try:
        sandbox.settings(**UNLIMITED_STOREFRONT)  # the set-up tasks do not call the storefront
        fresh_pg_hub(database)
        from catalog_sync.flows import cold
        from catalog_sync.hub.db import _engine

        load_id = cold.open_run(dag_id=DAG_ID, run_id=f"bench13_{scale}", window_start=None, window_end=None)
        _engine.cache_clear()  # let go of the staged database: it is copied as a template
        for task in SETUP_TASKS:
            got = run_child(task, load_id, sandbox, workdir / "setup.log")
            tasks[task] = {k: got[k] for k in ("wall_s", "seconds", "peak_rss_mb")}
            print(f"set-up {task}: {got['wall_s']} s", flush=True)
    finally:
        sandbox.stop()
    return {"load_id": load_id, "database": database, "tasks": tasks}


# ----------------------------------------------------------------------------------------------- one round
def run_round(number: int, condition: str, workdir: Path, staged: dict[str, Any], bucket: str,
              within: float, to_the_end: bool = False) -> dict[str, Any]:
    """One round of ``condition`` on fresh copies of the staged state; see the module docstring."""
    from bench.b12_distributed import LoadSampler
    from bench.sandbox_proc import UNLIMITED_STOREFRONT, SandboxProcess
    from catalog_sync.airflow.budgets import POOLS
    from tests.conftest import airflow_connection_env

    root = workdir / f"round{number}-{condition}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copyfile(workdir / "staged" / "sandbox.sqlite", root / "sandbox.sqlite")
    if (workdir / "staged" / "home").exists():
        shutil.copytree(workdir / "staged" / "home", root / "home")
    database = f"{staged['database'].removesuffix('_staged')}_round{number}"
    hub_url = copy_database(staged["database"], database)
    sandbox = SandboxProcess(root, "sandbox").start("plus")
    figures: dict[str, Any] = {"round": number, "condition": condition,
                               "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        sandbox.settings(**(BUCKETS[bucket] if bucket in BUCKETS else UNLIMITED_STOREFRONT))
        if condition == "B":
            sandbox.control("PUT", f"faults/{CHANNEL}", DOWN)
        sandbox.control("DELETE", "concurrency")
        connections = airflow_connection_env(sandbox.url)
        shop = json.loads(connections["AIRFLOW_CONN_CATALOG_SYNC_STOREFRONT"])
        shop["extra"]["plan"] = bucket if bucket in BUCKETS else "enterprise"
        connections["AIRFLOW_CONN_CATALOG_SYNC_STOREFRONT"] = json.dumps(shop)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BENCH13"))}, **connections,
               **({"BENCH13_CHANNEL_TO_THE_END": "1"} if to_the_end else {}),
               "AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "CATALOG_SYNC_HUB_URL": hub_url, "CATALOG_SYNC_HOME": str(root / "home")}
        load = LoadSampler().start()
        t0 = time.perf_counter()
        procs = {which: start_publish(which, staged["load_id"], env, root / f"{which}.log") for which in TASKS}
        ended: dict[str, tuple[str, float]] = {}

        def reap(which: str) -> None:
            proc, log = procs[which]
            try:
                stdout, _ = proc.communicate(timeout=within)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, _ = proc.communicate()
            ended[which] = (stdout, round(time.perf_counter() - t0, 1))
            log.close()

        reapers = [threading.Thread(target=reap, args=(which,)) for which in TASKS]
        for thread in reapers:
            thread.start()
        for thread in reapers:
            thread.join()
        for which, (stdout, wall) in ended.items():
            proc = procs[which][0]
            got = [json.loads(line[5:]) for line in stdout.splitlines() if line.startswith("TASK ")]
            figures[which] = {**(got[0] if got else {}), "process_wall_s": wall, "exit": proc.returncode,
                              "ok": proc.returncode == 0 and bool(got)}
            if not figures[which]["ok"]:
                figures[which]["error"] = (root / f"{which}.log").read_text(encoding="utf-8")[-3000:]
        figures["loadavg"] = load.stop()
        concurrency = sandbox.control("GET", "concurrency")
        figures["in_flight"] = {
            system: {"peak": concurrency.get(system, {}).get("peak"),
                     "refused": concurrency.get(system, {}).get("refused")}
            for system in (CHANNEL, "storefront", "erp")}
        channel_pool = POOLS[TASKS["channel"][1]]
        figures["in_flight"][CHANNEL].update({"pool": channel_pool.name, "pool_size": channel_pool.size,
                                              "task_pool_slots": channel_pool.slots})
        figures["bucket"] = {"plan": bucket, **(BUCKETS.get(bucket) or UNLIMITED_STOREFRONT)}
        figures["hub"] = hub_figures(hub_url, staged["load_id"])
    finally:
        sandbox.stop()
        drop_database(database)
        shutil.rmtree(root / "home", ignore_errors=True)
        (root / "sandbox.sqlite").unlink(missing_ok=True)
    # the judged figure: the task's own seconds, measured inside its process (the process's start-up, imports
    # and clients, is the same in both conditions; process_wall_s has it)
    figures["walls"] = {which: (figures.get(which) or {}).get("task_seconds") for which in TASKS}
    return figures


# ----------------------------------------------------------------------------------------------- figures
def round_ok(r: dict[str, Any]) -> list[str]:
    """What is wrong with a round (empty: the round is as the issue asks)."""
    problems = []
    for which in TASKS:
        if not (r.get(which) or {}).get("ok"):
            problems.append(f"{which} publish failed (exit {(r.get(which) or {}).get('exit')})")
    hub = r.get("hub") or {}
    for hop, c in (hub.get("hops") or {}).items():
        if not c["reconciled"]:
            problems.append(f"{hop} does not reconcile: {c}")
    channel_hop = (hub.get("hops") or {}).get(f"pim->{CHANNEL}")
    if r.get("condition") == "B":
        letters = (hub.get("dead_letters") or {}).get(f"{CHANNEL}/channel", 0)
        if channel_hop is None or channel_hop["read"] == 0 or channel_hop["dead_lettered"] != channel_hop["read"] \
                or letters != channel_hop["read"]:
            problems.append(f"condition B: not every channel record dead-lettered with kind channel "
                            f"({channel_hop}, {letters} letters)")
        if ((r.get("channel") or {}).get("result") or {}).get("stopped_with_storefront"):
            problems.append("condition B: the channel's publish was stopped before it had read every record")
    flight = (r.get("in_flight") or {}).get(CHANNEL) or {}
    if flight.get("peak") is not None and flight["peak"] > flight.get("pool_size", 0):
        problems.append(f"{CHANNEL}: {flight['peak']} requests in flight, over its pool of {flight['pool_size']}")
    return problems


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, dict[str, Any]] = {}
    for cond in ("A", "B"):
        mine = [r for r in rounds if r.get("condition") == cond and not r.get("problems")]
        if not mine:
            continue
        sf = [r["walls"]["storefront"] for r in mine]
        ch = [r["walls"]["channel"] for r in mine]
        by[cond] = {"rounds": len(mine), "storefront_task_s": sf, "channel_task_s": ch,
                    "storefront_task_s_mean": round(sum(sf) / len(sf), 1),
                    "channel_task_s_mean": round(sum(ch) / len(ch), 1),
                    "loadavg_1min_mean": round(sum(r["loadavg"]["loadavg_1min_mean"] for r in mine) / len(mine), 2)}
    growth = None
    if "A" in by and "B" in by:
        growth = round(by["B"]["storefront_task_s_mean"] / by["A"]["storefront_task_s_mean"] - 1, 3)
    pairs = []
    for a, b in zip([r for r in rounds if r.get("condition") == "A"], [r for r in rounds if r.get("condition") == "B"],
                    strict=False):
        if not a.get("problems") and not b.get("problems"):
            pairs.append(round(b["walls"]["storefront"] / a["walls"]["storefront"] - 1, 3))
    # the channel's records: every one is read (and dead-lettered) in B; an A round whose channel stopped with
    # the storefront read a share of them, at a rate that gives its whole time
    total = [r["hub"]["hops"][f"pim->{CHANNEL}"]["read"] for r in rounds
             if r.get("condition") == "B" and not r.get("problems")]
    channel_a = []
    for r in rounds:
        if r.get("condition") != "A" or r.get("problems"):
            continue
        read, seconds = r["hub"]["hops"].get(f"pim->{CHANNEL}", {}).get("read", 0), r["walls"]["channel"]
        stopped = bool(((r.get("channel") or {}).get("result") or {}).get("stopped_with_storefront"))
        channel_a.append({"round": r.get("round"), "stopped_with_storefront": stopped, "records_read": read,
                          "task_s": seconds, "records_per_s": round(read / seconds, 1) if seconds else None,
                          "share_done": round(read / total[0], 3) if total else None,
                          "whole_s_estimate": round(total[0] / (read / seconds), 0) if total and read and seconds
                          and stopped else seconds if not stopped else None})
    return {"by_condition": by, "storefront_growth_a_to_b": growth, "storefront_growth_per_pair": pairs,
            "channel_records": total[0] if total else None, "channel_in_a": channel_a}


def main() -> int:
    from bench.b11_task_memory import argparse_hidden

    parser = base_args(__doc__)
    parser.add_argument("--scale", type=int, help="SKUs (default 100,000; quick 2,000)")
    parser.add_argument("--rounds", default="ABAB", help="conditions in order (A both up, B Adobe down)")
    parser.add_argument("--bucket", choices=[*BUCKETS, "unlimited"], default="plus", help="the storefront's bucket")
    parser.add_argument("--no-round-after", help="HH:MM (UTC): start no further pair of rounds after this time")
    parser.add_argument("--within", type=float, help="seconds a round's publishes may take (default 1 h)")
    parser.add_argument("--sandbox-template", help="a loaded sandbox database file: copied when it exists, written "
                        "after loading when it does not (default: <workdir>/sandbox-<scale>.sqlite)")
    parser.add_argument("--workdir", help="work directory (default: a new temporary one, removed at the end)")
    parser.add_argument("--keep-staged", action="store_true", help="keep the set-up's state (hub database, "
                        "sandbox file) in the workdir, and reuse it when an earlier run kept one there")
    parser.add_argument("--first-round", type=int, default=1, help="the first round's number (more rounds on a "
                        "kept set-up: their figures go on in <workdir>/rounds.jsonl, --report-only reports them all)")
    parser.add_argument("--channel-to-the-end", action="store_true", help="let the channel's publish finish "
                        "after the storefront's (by default it stops at its next slice: see child())")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the rounds in "
                        "<workdir>/rounds.jsonl (a run stopped between rounds)")
    parser.add_argument("--publish", choices=sorted(TASKS), help=argparse_hidden())
    parser.add_argument("--load-id")
    args = parser.parse_args()
    if args.publish:
        return child(args)
    scale = args.scale or (2_000 if args.quick else 100_000)
    within = args.within or 3600
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cs_bench_channels_"))
    workdir.mkdir(parents=True, exist_ok=True)
    template = Path(args.sandbox_template) if args.sandbox_template else workdir / f"sandbox-{scale}.sqlite"
    started = time.perf_counter()
    status, rounds, staged = "ok", [], {}
    try:
        saved = workdir / "staged" / "staged.json"
        if args.report_only:  # a run stopped between rounds: report the rounds it finished
            staged = json.loads(saved.read_text(encoding="utf-8"))
            rounds = [json.loads(line) for line in (workdir / "rounds.jsonl").read_text(encoding="utf-8").splitlines()]
            args.rounds = ""
        elif args.keep_staged and saved.exists():  # an earlier run's set-up, kept: its rounds start at once
            staged = json.loads(saved.read_text(encoding="utf-8"))
            print(f"set-up of {staged['setup_at']} reused", flush=True)
        else:
            t = time.perf_counter()
            staged = prepare(workdir, scale, template)
            staged.update(setup_s=round(time.perf_counter() - t, 1),
                          setup_at=datetime.now(UTC).isoformat(timespec="seconds"))
            saved.write_text(json.dumps(staged), encoding="utf-8")
        for number, condition in enumerate(args.rounds, args.first_round):
            # a pair (A then B) is started whole or not at all, so the conditions keep the same number of rounds
            if args.no_round_after and number > args.first_round + 1 and (number - args.first_round) % 2 == 0 \
                    and datetime.now(UTC).strftime("%H:%M") >= args.no_round_after:
                print(f"rounds {number} and on not started: past {args.no_round_after} UTC", flush=True)
                break
            print(f"== round {number}: condition {condition}", flush=True)
            got = run_round(number, condition, workdir, staged, args.bucket, within, args.channel_to_the_end)
            got["problems"] = round_ok(got)
            rounds.append(got)
            with (workdir / "rounds.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps({"scale": scale, **got}, default=str) + "\n")
            print(f"[round {number} {condition}] storefront {got['walls']['storefront']} s, channel "
                  f"{got['walls']['channel']} s, load {got['loadavg']['loadavg_1min_mean']}, in flight "
                  f"{json.dumps(got['in_flight'])}, problems {got['problems']}", flush=True)
            print(f"   hops {json.dumps(got['hub'])}", flush=True)
    except Exception as exc:  # the rounds so far are kept and reported
        status = f"failed: {type(exc).__name__}: {exc}"
        print(status, flush=True)
    finally:
        if staged.get("database") and not args.keep_staged and not args.report_only:
            drop_database(staged["database"])
    summary = summarise(rounds)
    growth = summary["storefront_growth_a_to_b"]
    problems = [p for r in rounds for p in r["problems"]]
    if problems and status == "ok":
        status = "failed: " + "; ".join(problems)[:500]
    emit(Result(
        name="channels", title="Storefront and Adobe Commerce publishes side by side; Adobe answering 503",
        scale={"skus": scale}, status=status,
        figures={"storefront_growth_a_to_b": growth, **{f"{c}_storefront_s": v["storefront_task_s_mean"]
                                                         for c, v in summary["by_condition"].items()},
                 **{f"{c}_channel_s": v["channel_task_s_mean"] for c, v in summary["by_condition"].items()},
                 "summary": summary, "setup": staged, "rounds": rounds, "bucket": args.bucket,
                 "total_s": round(time.perf_counter() - started, 1)},
        target=f"both publish in each round, every hop reconciles, with Adobe down every channel record is "
               f"dead-lettered (kind channel), Adobe within its pool; storefront time grows <= "
               f"{GROWTH_LIMIT:.0%} from A to B",
        held=(growth is not None and growth <= GROWTH_LIMIT and status == "ok") if growth is not None else None,
        notes=["each publish in its own process as the DAG's task body (tasks.systems/channel_client with the "
               "task's pool), started together by the benchmark, not by Airflow's scheduler; hub on the local "
               "PostgreSQL (a copy of the staged database per round), sandbox in its own process (SQLite, a copy "
               "per round); Adobe down = sandbox fault error_rate 1.0, error_statuses [503] (every request 503)"]))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
