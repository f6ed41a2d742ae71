"""Benchmark 6: hub bulk writes. ``repo.upsert`` (fingerprint rows) and ``RunContext.stage`` (staged records) in
rows/s, side by side with the raw floor on the same database: ``COPY`` through psycopg 3 (the hub's own driver) on
PostgreSQL, and ``sqlite3`` ``executemany`` on SQLite. Target: hub rate >= 0.5 x raw rate.

PostgreSQL: the hub tables are created in a private schema (``bench_<pid>``) of the ``test`` database and dropped
afterwards. The judged raw floor is a COPY into an ordinary table of the same shape and keys in that schema (the
hub's tables are ordinary, WAL-logged tables); a COPY into a TEMP table, which skips the write-ahead log, is
reported beside it.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Result, base_args, emit, profiled

TARGET = 0.5
PG_URL = os.environ.get("CATALOG_SYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def fingerprint_rows(n: int, load_id: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [{"system": "storefront", "entity": "product", "record_key": f"MH{i:08d}",
             "content_hash": f"{i:064x}", "load_id": load_id, "updated_at": now} for i in range(n)]


def staged_records(n: int) -> list[dict[str, Any]]:
    return [{"sku": f"MH{i:08d}", "parent_sku": f"MH{i // 10:07d}", "name": "Chaz Kangeroo Hoodie",
             "weight": 1.234, "lifecycle_status": "active", "upc": "036000291452", "category": "Men/Tops"}
            for i in range(n)]


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def hub_side(url: str, n: int, repeat: int, profile: bool) -> dict[str, Any]:
    """repo.upsert of n fingerprint rows (fresh inserts, then the same rows again as updates) and ctx.stage."""
    from sqlalchemy import delete

    from catalog_sync.engine.run import RunContext
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import RecordFingerprint

    rows = fingerprint_rows(n, "bench")
    table = RecordFingerprint.__table__

    def clear() -> None:
        with session_scope(url) as s:
            s.execute(delete(RecordFingerprint))

    def insert_all() -> None:
        with session_scope(url) as s:
            repo.upsert(s, table, rows, key=["system", "entity", "record_key"])  # type: ignore[arg-type]

    times = []
    for _ in range(repeat):
        clear()
        t = time.perf_counter()
        insert_all()
        times.append(time.perf_counter() - t)
    insert_s = min(times)
    update_s = best(insert_all, repeat)  # every row conflicts: the DO UPDATE path
    prof = None
    if profile:
        clear()
        _, prof = profiled(f"hub_upsert_{url.split(':')[0]}", insert_all, True)
    ctx = RunContext.open("bench_hub_writes", hub_url=url)
    records = staged_records(n)
    stage_s = best(lambda: ctx.stage("bench", records), repeat)
    ctx.cleanup_staging()
    return {"upsert_insert_s": insert_s, "upsert_update_s": update_s, "stage_s": stage_s, "profile": prof}


def delta_rows(n: int, load_id: str) -> list[dict[str, Any]]:
    return [{"load_id": load_id, "system": "pim", "entity": "product", "record_key": f"MH{i:08d}",
             "field": f"f{i % 7}", "before": None, "after": {"value": f"Chaz Kangeroo Hoodie {i}"},
             "source_system": "erp"} for i in range(n)]


def small_batches(url: str, sizes: Sequence[int], repeat: int) -> dict[str, dict[str, float]]:
    """ms per ``repo.record_deltas`` of k rows (a flush of the delta log) through each PostgreSQL path: the batched
    INSERT ... ON CONFLICT and COPY into a temporary table, forced by ``repo.COPY_MIN_ROWS``. Where they cross is
    where ``COPY_MIN_ROWS`` belongs."""
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope

    threshold = repo.COPY_MIN_ROWS
    out: dict[str, dict[str, float]] = {}
    try:
        for path, forced in (("insert", 10**9), ("copy", 1)):
            repo.COPY_MIN_ROWS = forced
            for k in sizes:
                loads = iter(range(10**6))

                def flush(k: int = k, tag: str = f"bench-{path}-{k}", loads: Any = loads) -> None:
                    with session_scope(url) as s:
                        repo.record_deltas(s, delta_rows(k, f"{tag}-{next(loads)}"))

                flush()  # warm: the statement compiled, the connection open
                out.setdefault(str(k), {})[f"{path}_ms"] = round(best(flush, repeat) * 1000, 1)
    finally:
        repo.COPY_MIN_ROWS = threshold
    return out


def sqlite_raw(path: Path, n: int, repeat: int) -> dict[str, float]:
    """sqlite3 executemany into tables of the hub's shape, same pragmas as the hub engine."""
    # The dict -> driver-tuple conversion is inside the timing: both sides start from the same list of dicts.
    dicts = fingerprint_rows(n, "bench")
    records = staged_records(n)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE raw_fp (system VARCHAR(32), entity VARCHAR(32), record_key VARCHAR(255), "
                 "content_hash VARCHAR(64), load_id VARCHAR(64), updated_at DATETIME, "
                 "PRIMARY KEY (system, entity, record_key))")
    conn.execute("CREATE TABLE raw_staged (load_id VARCHAR(64), stage VARCHAR(64), record_key VARCHAR(255), "
                 "payload JSON, PRIMARY KEY (load_id, stage, record_key))")

    def fp() -> None:
        conn.execute("DELETE FROM raw_fp")
        conn.executemany("INSERT INTO raw_fp VALUES (?,?,?,?,?,?)",
                         [(r["system"], r["entity"], r["record_key"], r["content_hash"], r["load_id"],
                           r["updated_at"].isoformat()) for r in dicts])
        conn.commit()

    def st() -> None:
        conn.execute("DELETE FROM raw_staged")
        conn.executemany("INSERT INTO raw_staged VALUES (?,?,?,?)",
                         [("bench-load", "bench", r["sku"], json.dumps(r)) for r in records])
        conn.commit()

    out = {"fingerprint_s": best(fp, repeat), "staged_s": best(st, repeat)}
    conn.close()
    return out


def pg_raw(dsn: str, n: int, repeat: int, persistence: str = "") -> dict[str, float]:
    """psycopg 3 COPY (text format built in Python, inside the timing) into tables of the hub's shape and keys.

    ``persistence`` "" makes ordinary (WAL-logged) tables, like the hub's own; "TEMP" makes temporary tables,
    which skip the write-ahead log and so give a floor no durable table can reach.
    """
    import psycopg

    conn = psycopg.connect(dsn)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS raw_fp, raw_staged")
    cur.execute(f"CREATE {persistence} TABLE raw_fp (system varchar(32), entity varchar(32), "
                "record_key varchar(255), content_hash varchar(64), load_id varchar(64), updated_at timestamptz, "
                "PRIMARY KEY (system, entity, record_key))")
    cur.execute(f"CREATE {persistence} TABLE raw_staged (load_id varchar(64), stage varchar(64), "
                "record_key varchar(255), payload json, PRIMARY KEY (load_id, stage, record_key))")
    conn.commit()
    rows = fingerprint_rows(n, "bench")
    staged = staged_records(n)

    def copy(table: str, lines: Any) -> None:
        cur.execute(f"TRUNCATE {table}")
        buf = io.StringIO()
        for line in lines:
            buf.write(line)
        with cur.copy(f"COPY {table} FROM STDIN WITH (FORMAT text)") as cp:
            cp.write(buf.getvalue())
        conn.commit()

    def fp() -> None:
        copy("raw_fp", (f"{r['system']}\t{r['entity']}\t{r['record_key']}\t{r['content_hash']}\t{r['load_id']}\t"
                        f"{r['updated_at'].isoformat()}\n" for r in rows))

    def st() -> None:
        copy("raw_staged", (f"bench-load\tbench\t{r['sku']}\t"
                            + json.dumps(r).replace("\\", "\\\\") + "\n" for r in staged))

    out = {"fingerprint_s": best(fp, repeat), "staged_s": best(st, repeat)}
    cur.execute("DROP TABLE raw_fp, raw_staged")
    conn.commit()
    conn.close()
    return out


def main() -> None:
    parser = base_args(__doc__)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.rows or (10_000 if args.quick else 100_000)
    work = Path(tempfile.mkdtemp(prefix="cs_bench_hub_"))
    from catalog_sync.hub.db import migrate

    results = []
    # --- SQLite -------------------------------------------------------------------------------------------------
    hub_url = f"sqlite:///{work / 'hub.sqlite'}"
    migrate(hub_url)
    hub = hub_side(hub_url, n, args.repeat, args.profile)
    raw = sqlite_raw(work / "raw.sqlite", n, args.repeat)
    results.append(("sqlite", hub, raw, "sqlite3 executemany"))
    # --- PostgreSQL ---------------------------------------------------------------------------------------------
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from catalog_sync.config import normalise_hub_url

    schema = f"bench_{os.getpid()}"
    base_url = normalise_hub_url(PG_URL)  # the hub's driver, psycopg 3, on every connection here
    admin = create_engine(base_url)
    pg_note = None
    try:
        with admin.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
        pg_url = f"{base_url}?options=-csearch_path%3D{schema}"
        from catalog_sync.hub.models import Base

        eng = create_engine(pg_url)
        Base.metadata.create_all(eng)
        eng.dispose()
        hub = hub_side(pg_url, n, args.repeat, args.profile)
        hub["small_batches"] = small_batches(pg_url, (50, 100, 200, 500, 1000), max(args.repeat, 5))
        dsn = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
        raw = pg_raw(f"{dsn}?options=-csearch_path%3D{schema}", n, args.repeat)
        raw_temp = pg_raw(dsn, n, args.repeat, persistence="TEMP")
        hub["temp_floor"] = {"fingerprint_rows_per_s": round(n / raw_temp["fingerprint_s"]),
                             "staged_rows_per_s": round(n / raw_temp["staged_s"]),
                             "upsert_vs_temp": round(raw_temp["fingerprint_s"] / hub["upsert_insert_s"], 2),
                             "stage_vs_temp": round(raw_temp["staged_s"] / hub["stage_s"], 2)}
        results.append(("postgresql", hub, raw, "psycopg 3 COPY into an ordinary table"))
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        pg_note = f"PostgreSQL side not run: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
    for dialect, hub, raw, raw_name in results:
        figures = {
            "upsert_rows_per_s": round(n / hub["upsert_insert_s"]),
            "upsert_update_rows_per_s": round(n / hub["upsert_update_s"]),
            "raw_rows_per_s": round(n / raw["fingerprint_s"]),
            "upsert_vs_raw": round(raw["fingerprint_s"] / hub["upsert_insert_s"], 2),
            "stage_rows_per_s": round(n / hub["stage_s"]),
            "raw_staged_rows_per_s": round(n / raw["staged_s"]),
            "stage_vs_raw": round(raw["staged_s"] / hub["stage_s"], 2),
        }
        if "temp_floor" in hub:
            figures["temp_table_floor"] = hub["temp_floor"]
        if "small_batches" in hub:
            figures["delta_flush_ms_by_rows"] = hub["small_batches"]
        held = figures["upsert_vs_raw"] >= TARGET and figures["stage_vs_raw"] >= TARGET
        emit(Result(
            name=f"hub_writes_{dialect}", title=f"Hub bulk writes vs {raw_name} ({dialect})",
            scale={"rows": n},
            figures=figures, target=f"repo.upsert and ctx.stage >= {TARGET} x raw", held=held,
            notes=[f"best of {args.repeat}; upsert = fresh inserts into record_fingerprint (the DO UPDATE pass "
                   "over the same rows is reported too); stage = RunContext.stage of 7-field JSON payloads; "
                   f"raw = {raw_name} of the same rows into a table of the same shape and keys"]
            + (["PostgreSQL: the judged floor is COPY into an ordinary (WAL-logged) table, like the hub's; "
                "temp_table_floor is COPY into a TEMP table, which skips the write-ahead log, reported for "
                "comparison; delta_flush_ms_by_rows times one record_deltas of k rows through the batched INSERT "
                "and through COPY (best of 5), which sets repo.COPY_MIN_ROWS"] if dialect == "postgresql" else []),
            profile=hub["profile"]))
    if pg_note:
        emit(Result(name="hub_writes_postgresql", title="Hub bulk writes (postgresql)", scale={"rows": n},
                    target=f">= {TARGET} x raw", status=pg_note))


if __name__ == "__main__":
    main()
