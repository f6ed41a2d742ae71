"""``python -m bench [--quick] [--only gate cold_delta ...] [--profile]``: run the benchmarks, print a table.

Each benchmark runs in its own subprocess (``python -m bench.<module>``) and writes its own result file(s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.common import PY, ROOT, table

#: name -> module; order is the order they run in (cheap first).
BENCHMARKS = {
    "dag_parse": "bench.b7_dag_parse",
    "hub_writes": "bench.b6_hub_writes",
    "gate": "bench.b1_gate",
    "reconcile": "bench.b5_reconcile",
    "hot_path": "bench.b4_hot",
    "hot_path_airflow": "bench.b4_hot_airflow",
    "catalog_read": "bench.b9_catalog_read",
    "hot_during_nightly": "bench.b8_hot_during_nightly",
    "cold_delta": "bench.b2_cold",  # benchmarks 2 and 3 share one sandbox and one baseline run
    "pacing": "bench.b8_pacing",
    "task_memory": "bench.b11_task_memory",  # a first nightly with each task in its own process
    "distributed": "bench.b12_distributed",  # the nightly through Airflow, standalone beside two Celery workers
    "channels": "bench.b13_channels",  # storefront and Adobe Commerce publishes side by side, Adobe up and down
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small scales: a smoke run in a few minutes")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--profile", action="store_true", help="take pyinstrument profiles where a target is at risk")
    args = parser.parse_args()
    results: list[dict] = []
    for name, module in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        cmd = [PY, "-m", module, *(["--quick"] if args.quick else []), *(["--profile"] if args.profile else [])]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        got = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        for line in proc.stdout.splitlines():
            if not line.startswith("RESULT "):
                print("   " + line)
        if proc.returncode != 0 and not got:
            got = [{"name": name, "scale": {}, "held": None, "target": "",
                    "status": f"failed: exit {proc.returncode} (see output above)"}]
        results.extend(got)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print(table(results))
    return 0 if all(r.get("held") is not False and r.get("status", "ok") == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
