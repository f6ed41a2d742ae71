"""Operator commands: ``catalog-sync dlq ...``, ``catalog-sync rollback ...``, ``catalog-sync backfill CHANNEL``,
``catalog-sync retention``, ``catalog-sync demo first-run``.

``dlq replay``, ``rollback`` and ``backfill`` run the same flow code the Airflow DAGs run, against the systems named by
``CATALOG_SYNC_SYSTEMS_URL`` (default: the local sandbox), so an operator can act without the UI.
"""

from __future__ import annotations

import argparse
import getpass
import json
import subprocess
import time
from typing import Any

from catalog_sync.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    dlq = subparsers.add_parser("dlq", help="the dead-letter queue")
    sub = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = sub.add_parser("list", help="list dead letters")
    ls.add_argument("--status", default="open", choices=["open", "replayed", "discarded", "all"])
    ls.add_argument("--system", help="source or target system")
    ls.add_argument("--reason-kind", choices=["gate", "ownership", "api", "transform", "duplicate", "channel"])
    ls.add_argument("--expectation")
    ls.add_argument("--run", help="load id")
    ls.add_argument("--sku", help="record key")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_dlq_list)
    show = sub.add_parser("show", help="one dead letter with its payload")
    show.add_argument("id", type=int)
    show.set_defaults(func=_dlq_show)
    rp = sub.add_parser("replay", help="re-read the records fresh and send them through their hop again")
    rp.add_argument("ids", type=int, nargs="+")
    rp.set_defaults(func=_dlq_replay)
    dc = sub.add_parser("discard", help="close dead letters without replaying them")
    dc.add_argument("ids", type=int, nargs="+")
    dc.set_defaults(func=_dlq_discard)

    rb = subparsers.add_parser("rollback", help="restore the values a run replaced, in every system it touched")
    rb.add_argument("load_id")
    rb.add_argument("--plan", action="store_true", help="only show what would be restored")
    rb.set_defaults(func=_rollback)

    bf = subparsers.add_parser("backfill", help="bring a declared sales channel level with the PIM for every family "
                               "it sells (as the channel_backfill DAG)")
    bf.add_argument("channel", help="a channel of governance/channels.yaml")
    bf.add_argument("--resend", action="store_true",
                    help="forget what the channel was last sent and send every family it sells again")
    bf.set_defaults(func=_backfill)

    ret = subparsers.add_parser("retention", help="prune old hot-batch runs, audit rows and validation folders "
                                "(keeps what rollback and reports need)")
    ret.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    ret.add_argument("--hot-runs-days", type=float, default=14, help="hot-batch runs older than this go (14)")
    ret.add_argument("--audit-days", type=float, default=90, help="audit rows older than this go (90)")
    ret.add_argument("--validations-days", type=float, default=30, help="validation folders older than this go (30)")
    ret.add_argument("--rollback-days", type=float, default=30,
                     help="runs with deltas younger than this stay whole, they can still be rolled back (30)")
    ret.set_defaults(func=_retention)

    demo = subparsers.add_parser("demo", help="demo helpers used by `make run`")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    first = demo_sub.add_parser("first-run", help="trigger the nightly DAG in the running Airflow and wait for it")
    first.add_argument("--timeout", type=int, default=900)
    first.set_defaults(func=_first_run)
    again = demo_sub.add_parser("nightly", help="trigger one more nightly run in the running Airflow and wait")
    again.add_argument("--timeout", type=int, default=900)
    again.add_argument("--run-id", help="the run's id (default: manual__demo_<time>)")
    again.set_defaults(func=_nightly)


def _letter_dict(letter: Any, payload: bool = False) -> dict[str, Any]:
    from catalog_sync.engine.run import json_safe
    from catalog_sync.hub.models import DeadLetter

    row = {c.name: getattr(letter, c.name) for c in DeadLetter.__table__.columns}
    if not payload:
        row.pop("payload")
    return json_safe(row)


def _dlq_list(args: argparse.Namespace) -> int:
    from sqlalchemy import or_, select

    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import DeadLetter

    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(args.limit)
    if args.status != "all":
        query = query.where(DeadLetter.status == args.status)
    if args.system:
        query = query.where(or_(DeadLetter.source_system == args.system, DeadLetter.target_system == args.system))
    if args.reason_kind:
        query = query.where(DeadLetter.reason_kind == args.reason_kind)
    if args.expectation:
        query = query.where(DeadLetter.expectation == args.expectation)
    if args.run:
        query = query.where(DeadLetter.load_id == args.run)
    if args.sku:
        query = query.where(DeadLetter.record_key == args.sku)
    with session_scope() as s:
        letters = [_letter_dict(x) for x in s.scalars(query).all()]
    if args.json:
        print(json.dumps(letters, indent=2))
        return 0
    if not letters:
        print("no dead letters match")
        return 0
    print(f"{'id':>6}  {'status':9} {'record':24} {'hop':18} {'kind':10} {'tries':>5}  reason")
    for x in letters:
        hop = f"{x['source_system']}->{x['target_system']}"
        print(f"{x['id']:>6}  {x['status']:9} {x['record_key'][:24]:24} {hop:18} {x['reason_kind']:10} "
              f"{x['attempts']:>5}  {x['reason'][:80]}")
    return 0


def _dlq_show(args: argparse.Namespace) -> int:
    from catalog_sync.hub.db import session_scope
    from catalog_sync.hub.models import DeadLetter

    with session_scope() as s:
        letter = s.get(DeadLetter, args.id)
        if letter is None:
            raise UserError(f"no dead letter {args.id}")
        print(json.dumps(_letter_dict(letter, payload=True), indent=2))
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.systems import configured_systems
    from catalog_sync.flows.replay import ReplayError, replay

    systems = configured_systems(command_line=True)
    try:
        result = replay(args.ids, systems, by=getpass.getuser())
    except ReplayError as exc:
        raise UserError(str(exc)) from None
    finally:
        systems.close()
    print(f"replay run {result['load_id']}: replayed {result['replayed'] or 'none'}, "
          f"still open {result['still_open'] or 'none'}")
    return 0 if not result["still_open"] else 1


def _dlq_discard(args: argparse.Namespace) -> int:
    from catalog_sync.hub import repo
    from catalog_sync.hub.db import session_scope

    with session_scope() as s:
        n = repo.resolve_dead_letters(s, args.ids, "discarded", by=getpass.getuser())
    print(f"discarded {n} of {len(args.ids)} (the others were not open)")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.systems import configured_systems
    from catalog_sync.flows import rollback

    try:
        if args.plan:
            plan = rollback.plan(args.load_id)
            print(json.dumps(plan, indent=2, default=str))
            return 0
        systems = configured_systems(command_line=True)
        try:
            result = rollback.rollback(args.load_id, systems, by=getpass.getuser())
        finally:
            systems.close()
    except rollback.RollbackRefused as exc:
        raise UserError(str(exc)) from None
    print(f"rollback run {result['load_id']}: restored {result['restored']} of {result['records']} records, "
          f"{len(result['conflicts'])} conflicting fields left alone")
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from catalog_sync.airflow.systems import configured_systems
    from catalog_sync.flows import channels
    from catalog_sync.governance.channels import ChannelsError, load_channels

    try:
        channel = load_channels().channel(args.channel)
    except ChannelsError as exc:
        raise UserError(str(exc)) from None
    systems = configured_systems(command_line=True)
    try:
        client = systems.channels.get(channel.name)
        if client is None:
            raise UserError(f"no client for {channel.name}: its connection {channel.connection_id} is not configured")
        try:
            result = channels.backfill(channel.name, systems, client, resend=args.resend)
        except ValueError as exc:  # a disabled channel
            raise UserError(str(exc)) from None
    finally:
        systems.close()
    products, images = result["products"], result["images"]
    print(f"backfill run {result['load_id']}: {result['families']['sold']} of {result['families']['in_pim']} PIM "
          f"families sold on {channel.name}; products delivered {products.get('delivered', 0)}, unchanged "
          f"{products.get('unchanged', 0)}, dead-lettered {products.get('dead_lettered', 0)}; galleries delivered "
          f"{images.get('delivered', 0)}" + (f"; {channel.name} was down: {products['down']}" if products.get("down")
                                            else ""))
    return 0


def _retention(args: argparse.Namespace) -> int:
    from catalog_sync.retention import RetentionPolicy, prune

    try:
        policy = RetentionPolicy(hot_runs_days=args.hot_runs_days, audit_days=args.audit_days,
                                 validations_days=args.validations_days, rollback_days=args.rollback_days)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(prune(policy, dry_run=args.dry_run), indent=2))
    return 0


def _airflow(*argv: str) -> str:
    done = subprocess.run(["airflow", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"airflow {' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _json_out(text: str) -> Any:
    """The JSON document in an Airflow CLI answer (Airflow may print warnings on stdout before it)."""
    for line in text.splitlines():
        if line.startswith(("[", "{")):
            return json.loads(line)
    raise UserError(f"no JSON in the Airflow CLI answer: {text[-300:]!r}")


#: Unpaused by make run besides the nightly: the manual ones (so their forms work), the event-driven ones and the
#: image-window sweep (images come down and go up on time without anyone).
MANUAL_AND_EVENT_DAGS = ("hot_data_sync", "seasonal_republish", "dead_letter_replay", "sync_rollback",
                         "freeze_release", "channel_backfill", "image_windows", "erp_item_files")


def _wait_for(dag_id: str, run_id: str, deadline: float) -> None:
    """Wait until run ``run_id`` of ``dag_id`` ends; a UserError unless it succeeded."""
    print(f"waiting for {dag_id} run {run_id} (up to {max(0, int(deadline - time.monotonic()))} s)")
    state = "queued"
    while time.monotonic() < deadline:
        runs = _json_out(_airflow("dags", "list-runs", dag_id, "-o", "json"))
        state = next((r["state"] for r in runs if r["run_id"] == run_id), "queued")
        if state in ("success", "failed"):
            break
        time.sleep(5)
    print(f"{dag_id} run {run_id}: {state}")
    if state != "success":
        raise UserError(f"the nightly run {run_id} ended as {state!r}: see the Airflow UI and .state/logs")


def run_nightly(run_id: str, timeout: float) -> None:
    """Trigger one ``cold_data_nightly`` run named ``run_id`` in the running Airflow (the DAG is unpaused by
    ``first-run``) and wait for it; a UserError unless it succeeds."""
    _airflow("dags", "trigger", "cold_data_nightly", "-r", run_id)
    _wait_for("cold_data_nightly", run_id, time.monotonic() + timeout)


def _nightly(args: argparse.Namespace) -> int:
    """Trigger one more ``cold_data_nightly`` run and wait for it."""
    run_nightly(args.run_id or f"manual__demo_{time.strftime('%Y%m%dT%H%M%S')}", args.timeout)
    return 0


def _first_run(args: argparse.Namespace) -> int:
    """Unpause ``cold_data_nightly`` and wait for its first run (the one the scheduler creates on unpause, or one
    triggered here if none appears), so `make run` ends with real runs and reports to look at."""
    dag_id = "cold_data_nightly"
    _airflow("dags", "unpause", dag_id)
    deadline = time.monotonic() + args.timeout
    waited_for_scheduler = time.monotonic() + 30
    run_id = None
    while run_id is None and time.monotonic() < deadline:
        runs = _json_out(_airflow("dags", "list-runs", dag_id, "-o", "json"))
        if runs:
            run_id = min(runs, key=lambda r: r["run_after"])["run_id"]
        elif time.monotonic() > waited_for_scheduler:
            run_id = f"manual__first_run_{time.strftime('%Y%m%dT%H%M%S')}"
            _airflow("dags", "trigger", dag_id, "-r", run_id)
        else:
            time.sleep(5)
    if run_id is None:
        raise UserError(f"no {dag_id} run appeared within {args.timeout} s: see the Airflow UI and .state/logs")
    _wait_for(dag_id, run_id, deadline)
    # The event-driven hot path and the manual DAGs (a paused DAG would leave the UI's Replay button's run
    # queued); the weekly reconciliation stays paused, so the demo does not start a full comparison unasked.
    for other in MANUAL_AND_EVENT_DAGS:
        _airflow("dags", "unpause", other)
    print(f"unpaused {', '.join(MANUAL_AND_EVENT_DAGS)}; weekly_reconciliation and hub_retention stay paused")
    return 0
