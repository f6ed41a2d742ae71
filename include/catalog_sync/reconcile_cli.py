"""``catalog-sync reconcile``: the weekly reconciliation run by hand, outside Airflow.

It runs the same steps the ``weekly_reconciliation`` DAG runs, against the systems named by
``CATALOG_SYNC_SYSTEMS_URL`` (default: the local sandbox). Alerts go to ``CATALOG_SYNC_ALERT_WEBHOOK_URL`` when it
is set (the DAG reads its targets from Airflow Variables instead).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from catalog_sync.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from catalog_sync.flows.reconcile import DEFAULT_DIVERGENCE_THRESHOLD, MAX_DELETIONS

    cmd = subparsers.add_parser("reconcile", help="full reads of every system: drift, deletions, orphans")
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    cmd.add_argument("--no-apply", action="store_true",
                     help="report deleted SKUs only; do not disable or archive them")
    cmd.add_argument("--max-deletions", type=int, default=MAX_DELETIONS,
                     help=f"apply no deletion when more SKUs than this look deleted (default {MAX_DELETIONS})")
    cmd.add_argument("--threshold", type=float, default=DEFAULT_DIVERGENCE_THRESHOLD,
                     help="alert above this share of SKUs whose PIM lifecycle differs from the ERP's")
    cmd.set_defaults(func=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.systems import configured_systems
    from catalog_sync.alerts import AlertTargets
    from catalog_sync.flows import reconcile

    if not 0.0 <= args.threshold <= 1.0:
        raise UserError("--threshold is a share between 0 and 1")
    if args.max_deletions < 0:
        raise UserError("--max-deletions must not be negative")
    systems = configured_systems(command_line=True)
    try:
        result = reconcile.run(systems, apply=not args.no_apply, max_deletions=args.max_deletions,
                               threshold=args.threshold,
                               targets=AlertTargets(webhook_url=os.environ.get("CATALOG_SYNC_ALERT_WEBHOOK_URL")))
    finally:
        systems.close()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_summary(result)
    return 0


def _print_summary(result: dict[str, Any]) -> None:
    deletions = result["deletions"]
    alert = result["alert"]
    print(f"run {result['load_id']}: {result['findings']} finding(s)")
    for kind, n in sorted(result["by_kind"].items()):
        print(f"  {kind:10} {n}")
    print(f"deleted SKUs: {deletions['planned']} planned, {deletions['disabled']} disabled in the PIM, "
          f"{deletions['archived']} archived on the storefront"
          + (f" ({deletions['reason']})" if deletions.get("reason") else ""))
    print(f"lifecycle divergence {alert['share']:.2%} (threshold {alert['threshold']:.2%})"
          + (" - alert sent" if alert["sent"] else ""))
    counts = result["counts"]
    print(f"records: read {counts['read']}, delivered {counts['delivered']}, unchanged {counts['unchanged']}, "
          f"dead-lettered {counts['dead_lettered']}")
