"""Benchmark 11: peak memory of each task of the nightly, each task in its own process, on a first run.

A first run (empty hub, every SKU new) of ``cold_data_nightly`` over N SKUs (default 1,000,000; quick: 5,000)
through the sandbox, the hub on PostgreSQL. Every task runs in a fresh Python process, as an Airflow worker runs
each task instance: ``python -m bench.b11_task_memory --task <name> ...`` calls the flow step through
``engine.run.run_task`` (what the DAG's ``resumable`` does) and reports its peak resident set
(``getrusage(RUSAGE_SELF).ru_maxrss``) and the resident set after its imports (what any task costs before it
touches a record). ``publish_images`` is a mapped task of one chunk: a sample of its chunks (at most
``--image-samples``, spread over the run) runs one process each; the others run in one process whose peak is
reported apart (it is not a task's figure).

Each task's figures are appended to ``<workdir>/tasks.jsonl`` as the task ends, so a run cut short still tells
the peak of every task it finished. Target: a task's peak does not grow with the catalog (judged by comparing two
scales, in BENCHMARKS.md), and stays under 2 GB at 1,000,000 SKUs.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PY, ROOT, Result, base_args, emit

#: The nightly's tasks in DAG order (open_run, plan_image_chunks and the images are handled apart).
TASKS = ["extract_erp", "gate_master_data", "load_pim", "link_assets", "writeback_supplier", "extract_pim",
         "gate_channel_content", "publish_products"]
IMAGE_CHUNK = 200  # as dags/cold_data_nightly.py
PEAK_TARGET_MB = 2048


class Stopped(Exception):
    """The run stopped where ``--stop-before`` asked."""


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def child(args: Any) -> int:
    """One task in this process; prints ``TASK {json}``."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from catalog_sync.engine.run import run_task
    from catalog_sync.flows import cold
    from catalog_sync.flows.systems import Systems

    creds = json.loads(os.environ["BENCH_SANDBOX_CREDENTIALS"])
    systems = Systems.from_base_url(args.sandbox_url, creds)
    after_imports = _rss_mb()
    started = time.perf_counter()
    chunks: list[int] = [int(c) for c in args.chunks.split(",")] if args.chunks else []
    if args.task in ("gate_master_data", "gate_channel_content", "finish"):
        out = run_task(args.task, args.load_id, getattr(cold, args.task))
    elif args.task == "plan_image_chunks":
        out = run_task(args.task, args.load_id, cold.plan_image_chunks, IMAGE_CHUNK)
    elif args.task == "publish_images":
        out = [run_task(f"publish_images[{c}]", args.load_id, cold.publish_images, c, systems, IMAGE_CHUNK)
               for c in chunks]
    elif args.task == "check_consistency":
        out = run_task("gate_consistency", args.load_id, cold.check_consistency, systems)
    else:
        out = run_task(args.task, args.load_id, getattr(cold, args.task), systems)
    systems.close()
    print("TASK " + json.dumps({"task": args.task, "chunks": chunks, "seconds": round(time.perf_counter() - started, 1),
                                "rss_after_imports_mb": round(after_imports, 1), "peak_rss_mb": round(_rss_mb(), 1),
                                "result": f"{len(out)} chunks" if args.task == "publish_images" and len(out) > 1 else out},
                               default=str), flush=True)
    return 0


def run_child(task: str, load_id: str, sandbox: Any, log: Path, chunks: list[int] | None = None) -> dict[str, Any]:
    cmd = [PY, "-m", "bench.b11_task_memory", "--task", task, "--load-id", load_id, "--sandbox-url", sandbox.url]
    if chunks:
        cmd += ["--chunks", ",".join(map(str, chunks))]
    env = {**os.environ, "BENCH_SANDBOX_CREDENTIALS": json.dumps(sandbox.credentials)}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(f"== {task} {chunks or ''} exit {proc.returncode}\n{proc.stderr[-20000:]}\n")
    got = [json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("TASK ")]
    if proc.returncode != 0 or not got:
        raise RuntimeError(f"task {task} failed (exit {proc.returncode}); see {log}")
    got[0]["wall_s"] = round(time.perf_counter() - t, 1)
    return got[0]


def sample(chunks: list[int], n: int) -> list[int]:
    if len(chunks) <= n:
        return chunks
    step = (len(chunks) - 1) / (n - 1)
    return sorted({chunks[round(i * step)] for i in range(n)})


def fresh_pg_hub(name: str) -> str:
    from sqlalchemy import create_engine, text

    from catalog_sync.hub.db import migrate

    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    os.environ["CATALOG_SYNC_HUB_URL"] = url
    migrate(url)
    return url


def main() -> int:
    parser = base_args(__doc__)
    parser.add_argument("--scale", type=int, help="SKUs (default 1,000,000; quick 5,000)")
    parser.add_argument("--database", default="stream_bench", help="PostgreSQL database of the hub (recreated)")
    parser.add_argument("--image-samples", type=int, default=8, help="image chunks measured in a process each")
    parser.add_argument("--workdir", help="work directory (default: a new temporary one, removed at the end)")
    parser.add_argument("--label", default="", help="a label for the result (e.g. the commit measured)")
    parser.add_argument("--sandbox-template", help="a loaded sandbox database file: copied instead of loading the "
                        "catalog when it exists, written after loading when it does not")
    parser.add_argument("--prepare-only", action="store_true", help="only write the sandbox template")
    parser.add_argument("--resume", action="store_true", help="go on with the run in --workdir where it stopped: "
                        "its sandbox and hub as they are, the tasks already in tasks.jsonl skipped")
    parser.add_argument("--stop-before", metavar="TASK", help="stop before this task (to copy the hub and the "
                        "sandbox as they are, say), and go on later with --resume")
    parser.add_argument("--task", help=argparse_hidden())
    parser.add_argument("--load-id")
    parser.add_argument("--sandbox-url")
    parser.add_argument("--chunks")
    args = parser.parse_args()
    if args.task:
        return child(args)
    scale = args.scale or (5_000 if args.quick else 1_000_000)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cs_bench_mem_"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["CATALOG_SYNC_HOME"] = str(workdir)
    from bench.sandbox_proc import UNLIMITED_STOREFRONT, SandboxProcess, write_template

    log = workdir / "tasks.log"
    jsonl = workdir / "tasks.jsonl"
    figures: dict[str, Any] = {}
    template = Path(args.sandbox_template) if args.sandbox_template else None
    state = workdir / "run.json"  # the run's load id, for --resume
    if args.resume:
        if not state.exists():
            parser.error(f"--resume: {state} not found (no run was started in {args.workdir})")
        template = None
        for line in jsonl.read_text(encoding="utf-8").splitlines() if jsonl.exists() else []:
            done = json.loads(line)
            figures[done.pop("name")] = done
    elif template is not None:
        write_template(workdir, "sandbox", scale, template)
    if args.prepare_only:
        return 0
    sandbox = SandboxProcess(workdir, "sandbox")
    if template is not None:
        shutil.copyfile(template, workdir / "sandbox.sqlite")
    sandbox.start("plus")
    status = "ok"
    try:
        t = time.perf_counter()
        if template is None and not args.resume:
            sandbox.load(scale)
        load_s = round(time.perf_counter() - t, 1)
        sandbox.settings(**UNLIMITED_STOREFRONT)
        if not args.resume:
            print(f"sandbox loaded {scale:,} SKUs in {load_s} s", flush=True)
        if args.resume:
            os.environ["CATALOG_SYNC_HUB_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{args.database}"
            load_id = json.loads(state.read_text(encoding="utf-8"))["load_id"]
            print(f"resuming {load_id}: {len(figures)} tasks done", flush=True)
        else:
            fresh_pg_hub(args.database)
            from catalog_sync.flows import cold

            load_id = cold.open_run(dag_id="cold_data_nightly", run_id=f"bench_mem_{scale}", window_start=None,
                                    window_end=None)
            state.write_text(json.dumps({"load_id": load_id, "scale": scale}), encoding="utf-8")

        def record(name: str, got: dict[str, Any]) -> None:
            figures[name] = got
            with jsonl.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"scale": scale, "name": name, **got}, default=str) + "\n")
            print(f"{name}: peak {got['peak_rss_mb']} MB (after imports {got['rss_after_imports_mb']} MB), "
                  f"{got['wall_s']} s", flush=True)

        def step(name: str, task: str, chunks: list[int] | None = None) -> None:
            if task == args.stop_before:
                raise Stopped(f"stopped before {task}, as asked: go on with --resume")
            if name not in figures:  # (a resumed run skips what it recorded)
                record(name, run_child(task, load_id, sandbox, log, chunks))

        for task in [*TASKS, "plan_image_chunks"]:
            step(task, task)
        chunks = [int(c) for c in figures["plan_image_chunks"]["result"] or []]
        measured = sample(chunks, args.image_samples)
        for c in measured:
            step(f"publish_images[{c}]", "publish_images", [c])
        rest = [c for c in chunks if c not in measured]
        if rest:
            step("publish_images (the other chunks, one process)", "publish_images", rest)
        for task in ("check_consistency", "finish"):
            step(task, task)
    except Stopped as stop:
        status = str(stop)
        print(status, flush=True)
    except Exception as exc:  # the figures so far are kept and reported
        status = f"failed: {exc}"
        print(status, flush=True)
    finally:
        sandbox.stop()
    per_task = {k: v["peak_rss_mb"] for k, v in figures.items() if not k.startswith("publish_images (")}
    worst = max(per_task.values()) if per_task else None
    emit(Result(
        name="task_memory", title="Peak RSS of each nightly task in its own process, first run",
        scale={"skus": scale}, status=status,
        figures={"peak_rss_mb_by_task": per_task, "largest_task_peak_mb": worst,
                 "detail": figures, "label": args.label},
        target=f"each task's peak <= {PEAK_TARGET_MB} MB at 1,000,000 SKUs, flat with catalog size",
        held=(worst is not None and worst <= PEAK_TARGET_MB) if scale >= 1_000_000 and status == "ok" else None,
        notes=["hub on the local PostgreSQL (database recreated), sandbox in its own process (SQLite), storefront "
               "bucket unlimited; peak = ru_maxrss of the task's process, which includes the interpreter and "
               "imports (rss_after_imports_mb)"]))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if status == "ok" else 1


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
