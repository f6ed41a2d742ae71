"""``catalog-sync reconcile``: the weekly reconciliation run by hand, outside Airflow.

It runs the same steps the ``weekly_reconciliation`` DAG runs, against the systems named by
``CATALOG_SYNC_SYSTEMS_URL`` (default: the local sandbox). Its alert goes where the DAG's goes: through the alert
connections (``catalog_sync_alert_smtp``, ``catalog_sync_alert_webhook``), with the limit of ``thresholds.yaml``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from catalog_sync.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from catalog_sync.flows.reconcile import MAX_DELETIONS

    cmd = subparsers.add_parser("reconcile", help="full reads of every system: drift, deletions, orphans")
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    cmd.add_argument("--no-apply", action="store_true",
                     help="report only: do not disable or archive deleted SKUs, do not repair showable drift")
    cmd.add_argument("--max-deletions", type=int, default=MAX_DELETIONS,
                     help=f"apply no deletion when more SKUs than this look deleted (default {MAX_DELETIONS})")
    cmd.set_defaults(func=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.notifiers import dispatch
    from catalog_sync.airflow.systems import configured_systems
    from catalog_sync.flows import reconcile

    if args.max_deletions < 0:
        raise UserError("--max-deletions must not be negative")
    systems = configured_systems(command_line=True)
    try:
        result = reconcile.run(systems, send=dispatch, apply=not args.no_apply, max_deletions=args.max_deletions,
                               repair=not args.no_apply)
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
    showable, repairs = result["showable"], result["repairs"]
    print(f"showable drift: {showable.get('skus', 0)} storefront product(s) "
          + ", ".join(f"{k} {n}" for k, n in (showable.get("by_problem") or {}).items())
          + (f"; repaired by {repairs['load_id']}: {repairs['repaired']}" if repairs.get("applied")
             else f" ({repairs.get('reason')})"))
    print(f"lifecycle divergence {alert['share']:.2%} (threshold {alert['threshold']:.2%})"
          + (" - alert sent" if alert["sent"] else " - a repeat, not sent again" if alert["suppressed"] else ""))
    counts = result["counts"]
    print(f"records: read {counts['read']}, delivered {counts['delivered']}, unchanged {counts['unchanged']}, "
          f"dead-lettered {counts['dead_lettered']}")
