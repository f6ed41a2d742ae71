"""``catalog-sync sandbox ...`` (or ``catalog-sync-sandbox ...``): serve the sandbox systems, load a catalog, run scenarios, switch faults.

``serve`` runs the service; the other commands talk to a running one through ``--url`` (default
``http://127.0.0.1:8765``), except ``load --db URL`` which writes straight into a sandbox database (for big loads
before serving) and ``scenarios`` which needs no server.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from catalog_sync import config
from catalog_sync_sandbox.state import STOREFRONT_PLANS

DEFAULT_URL = "http://127.0.0.1:8765"


def register(subparsers: argparse._SubParsersAction) -> None:
    sandbox = subparsers.add_parser("sandbox", help="the sandbox ERP, PIM, DAM, storefront and supplier portal")
    sub = sandbox.add_subparsers(dest="sandbox_command", required=True)

    serve = sub.add_parser("serve", help="run the sandbox HTTP service")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--db", help="SQLAlchemy URL (default: CATALOG_SYNC_SANDBOX_DB_URL or the SQLite file)")
    serve.add_argument("--storefront-plan", choices=sorted(STOREFRONT_PLANS), default="standard",
                       help="Shopify plan whose GraphQL bucket to mimic: standard (1,000 points, 100/s), advanced "
                            "(2,000, 200/s), plus (10,000, 1,000/s) or enterprise (20,000, 2,000/s)")
    serve.set_defaults(func=_serve)

    load = sub.add_parser("load", help="load a Magento 2 catalog export into the systems (replaces their data)")
    load.add_argument("--catalog", required=True, help="export folder or product CSV")
    load.add_argument("--scale", type=int, help="multiply the catalog to N SKUs")
    target = load.add_mutually_exclusive_group()
    target.add_argument("--url", help=f"a running sandbox (default {DEFAULT_URL})")
    target.add_argument("--db", help="write straight into this sandbox database instead of a running service")
    load.set_defaults(func=_load)

    run = sub.add_parser("scenario", help="put the systems into a known failure state")
    run.add_argument("name")
    run.add_argument("--sku", action="append", dest="skus", help="SKU to use (repeatable); default: picked")
    run.add_argument("--url", default=DEFAULT_URL)
    run.set_defaults(func=_scenario)

    story = sub.add_parser("story", help="the demo story: break a few SKUs the ways catalogs break (--save), then "
                                        "say where to look (--guide)")
    story.add_argument("--url", default=DEFAULT_URL)
    what = story.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", metavar="FILE", help="run the story's scenarios and keep what they did in FILE")
    what.add_argument("--guide", metavar="FILE", help="print the guide for the story kept in FILE")
    story.add_argument("--ui", default="http://127.0.0.1:8080", help="the Airflow UI the guide links to")
    story.set_defaults(func=_story)

    hist = sub.add_parser("history", help="a few nights of history for the demo: each day's changes, then the "
                                          "nightly in the running Airflow (after `catalog-sync demo first-run`)")
    hist.add_argument("--url", default=DEFAULT_URL)
    hist.add_argument("--nights", type=int, default=None, help="how many of the history's nights (default: all)")
    hist.add_argument("--timeout", type=int, default=900, help="seconds to wait for each nightly")
    hist.set_defaults(func=_history)

    listing = sub.add_parser("scenarios", help="list the scenarios with the symptom each produces")
    listing.set_defaults(func=_scenarios)

    fault = sub.add_parser("fault", help="switch faults on or off for one system")
    fault.add_argument("system", choices=["erp", "pim", "dam", "storefront", "supplier"])
    fault.add_argument("--error-rate", type=float, help="share of requests answered 5xx")
    fault.add_argument("--error-status", type=int, action="append", dest="error_statuses",
                       help="a server error to answer with (repeatable; default 500, 502 and 503 drawn evenly)")
    fault.add_argument("--rate-limit-every", type=int, help="every Nth request gets 429")
    fault.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of the 429s (seconds)")
    fault.add_argument("--latency-ms", type=int)
    fault.add_argument("--timeout-rate", type=float)
    fault.add_argument("--timeout-s", type=float)
    fault.add_argument("--malformed-rate", type=float)
    fault.add_argument("--drop-mid-page-rate", type=float)
    fault.add_argument("--seed", type=int, default=0)
    fault.add_argument("--clear", action="store_true", help="switch this system's faults off")
    fault.add_argument("--url", default=DEFAULT_URL)
    fault.set_defaults(func=_fault)


def _user_error(message: str) -> Exception:
    from catalog_sync.cli import UserError

    return UserError(message)


def _control(url: str, method: str, path: str, body: Any = None) -> Any:
    from catalog_sync_sandbox.server import control

    try:
        return control(url, method, path, body)
    except (RuntimeError, OSError) as exc:
        raise _user_error(f"{exc} (is `catalog-sync sandbox serve` running at {url}?)") from None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from catalog_sync_sandbox.app import create_app
    from catalog_sync_sandbox.state import SandboxSettings

    url = args.db or config.sandbox_db_url()
    settings = SandboxSettings()
    settings.update(STOREFRONT_PLANS[args.storefront_plan])
    print(f"sandbox on http://{args.host}:{args.port} (database {config.redact_url(url)}, storefront plan "
          f"{args.storefront_plan}: {settings.storefront_points_max} points, "
          f"{settings.storefront_points_restore_per_s:g}/s)")
    uvicorn.run(create_app(url, settings=settings), host=args.host, port=args.port, log_level="warning")
    return 0


def _load(args: argparse.Namespace) -> int:
    if args.db:
        from catalog_sync.catalog import CatalogError
        from catalog_sync_sandbox import db
        from catalog_sync_sandbox.seed import load_catalog

        engine = db.make_engine(args.db)
        db.create_schema(engine)
        db.truncate_all(engine)
        try:
            summary = load_catalog(engine, args.catalog, args.scale).as_dict()
        except CatalogError as exc:
            raise _user_error(str(exc)) from None
        finally:
            engine.dispose()
    else:
        from pathlib import Path

        summary = _control(args.url or DEFAULT_URL, "POST", "load",
                           {"catalog": str(Path(args.catalog).resolve()), "scale": args.scale})
    print(json.dumps(summary, indent=2))
    return 0


def _scenario(args: argparse.Namespace) -> int:
    result = _control(args.url, "POST", f"scenarios/{args.name}", {"skus": args.skus})
    print(json.dumps(result, indent=2))
    return 0


def _story(args: argparse.Namespace) -> int:
    from pathlib import Path

    from catalog_sync_sandbox import story

    if args.save:
        told = story.inject(lambda name: _control(args.url, "POST", f"scenarios/{name}", {"skus": None}))
        story.save(told, Path(args.save))
        for part in told:
            print(f"{part['scenario']}: {', '.join(part['skus'])}")
        return 0
    print(story.guide(story.load(Path(args.guide)), args.ui.rstrip("/")))
    return 0


def _history(args: argparse.Namespace) -> int:
    import time

    from catalog_sync.ops_cli import run_nightly
    from catalog_sync_sandbox import story

    nights = len(story.HISTORY) if args.nights is None else args.nights
    story.history(lambda name: _control(args.url, "POST", f"scenarios/{name}", {"skus": None}),
                  lambda run_id: run_nightly(run_id, args.timeout), nights, tag=time.strftime("_%Y%m%dT%H%M%S"))
    return 0


def _scenarios(_args: argparse.Namespace) -> int:
    from catalog_sync_sandbox.scenarios import catalogue

    for entry in catalogue():
        print(f"{entry['name']}\n    {entry['symptom']}\n")
    return 0


def _fault(args: argparse.Namespace) -> int:
    if args.clear:
        _control(args.url, "DELETE", f"faults/{args.system}")
        print(f"faults cleared on {args.system}")
        return 0
    body: dict[str, Any] = {"seed": args.seed}
    for name in ("error_rate", "error_statuses", "latency_ms", "timeout_rate", "timeout_s", "malformed_rate", "drop_mid_page_rate"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.rate_limit_every:
        body["rate_limit_storm"] = {"every": args.rate_limit_every, "retry_after": args.retry_after}
    if len(body) == 1:
        raise _user_error("name at least one fault (--error-rate, --rate-limit-every, ...) or --clear")
    print(json.dumps(_control(args.url, "PUT", f"faults/{args.system}", body), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``catalog-sync-sandbox ...``: the same commands as ``catalog-sync sandbox ...``."""
    import sys

    from catalog_sync.cli import main as catalog_sync_main

    return catalog_sync_main(["sandbox", *(sys.argv[1:] if argv is None else argv)])
