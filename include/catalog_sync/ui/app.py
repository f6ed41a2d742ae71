"""The FastAPI app behind the Catalog Sync pages, mounted by the Airflow plugin at ``/catalog-sync``.

Every page is server-rendered HTML (Jinja2, autoescaped) and also available as JSON under ``/api/...``:

===================================  =========================================  ============================================
HTML                                 JSON                                       What
===================================  =========================================  ============================================
``/quality``                         ``/api/quality``                           KPIs over time, gates, failing expectations
``/runs``                            ``/api/runs``                              recent runs
``/runs/{load_id}``                  ``/api/runs/{load_id}``                    one run: what each gate saw and quarantined
``/run-lookup?dag_id&run_id``        ``/api/run-lookup?dag_id&run_id``          Airflow DAG run -> the hub run
``/runs/{load_id}/runbook``          ``/api/runs/{load_id}/runbook``            a seasonal republish's launch runbook per SKU
``/runs/{load_id}/data-docs/...``    –                                          that run's GX Data Docs (files, read-only)
``/dead-letters``                    ``/api/dead-letters``                      filterable list; ``/{id}`` shows the payload
``POST /dead-letters/action``        ``POST /api/dead-letters/{action}``        replay or discard selected letters
``POST /dead-letters/group-action``  ``POST /api/dead-letters/group/{action}``  replay or discard a group of letters
``/trace?sku=``                      ``/api/trace?sku=``                        why is this SKU not on the storefront?
``/trace/image?src=``                –                                          a trace thumbnail (DAM files via its connection)
``/drift``                           ``/api/drift``                             drift of the last weekly reconciliation
``POST /drift/reconcile``            –                                          trigger the weekly reconciliation now
===================================  =========================================  ============================================

Invariant: every route depends on :func:`catalog_sync.ui.auth.require_user` (the app-level dependency below).
Boundary: the only hub write is ``repo.resolve_dead_letters`` on discard; replay and the reconciliation trigger go
through Airflow's REST API as the caller.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, urlencode

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from catalog_sync import config, store
from catalog_sync.hub import repo
from catalog_sync.hub.db import session_scope
from catalog_sync.ui import auth, charts, queries
from catalog_sync.ui.replay import api_base_url, trigger_dag, trigger_replay

if TYPE_CHECKING:
    from catalog_sync.store import StorePath

TEMPLATES = Path(__file__).with_name("templates")
#: Most dead letters one replay or discard may name (a replay DAG run's conf stays small).
MAX_ACTION_IDS = 1000
#: Pages carry no script at all; the CSP says so, so an escaping slip still cannot run injected code. Images may
#: come from anywhere over HTTP(S): the trace shows thumbnails from the DAM and the storefront, wherever they live.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: http: https:; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)


def _pretty(value: Any) -> str:
    """Indented JSON for dicts and lists, plain text for scalars (escaped by the template afterwards)."""
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return "" if value is None else str(value)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined, trim_blocks=True
    )
    env.filters["pretty"] = _pretty
    env.filters["kpi"] = charts.format_kpi
    env.globals["line_chart"] = charts.line_chart
    env.globals["share"] = charts.share
    env.globals["urlencode"] = urlencode
    env.globals["repair_words"] = REPAIR_WORDS
    return env


def _rel_path(request: Request) -> str:
    """The request path inside this app (without the plugin's mount prefix)."""
    root = request.scope.get("root_path", "") or ""
    path = request.url.path
    return path[len(root) :] if root and path.startswith(root) else path


def _wants_json(request: Request) -> bool:
    return _rel_path(request).startswith("/api/")


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def get_session(request: Request) -> Iterator[Session]:
    """A hub session for one request (committed at its end), on the app's configured hub.

    The URL is resolved here rather than by ``get_engine(None)``, whose cache would pin the first one.
    """
    with session_scope(request.app.state.hub_url or config.hub_url()) as session:
        yield session


def letter_filter(
    source_system: str | None = None,
    target_system: str | None = None,
    gate_layer: Annotated[str | None, Query()] = None,
    expectation: str | None = None,
    reason_kind: str | None = None,
    status: str | None = "open",
    load_id: str | None = None,
    record_key: str | None = None,
) -> queries.DeadLetterFilter:
    """The dead-letter filters from the query string (``status`` defaults to open letters)."""
    layer: int | None = None
    if gate_layer not in (None, ""):
        try:
            layer = int(gate_layer)
        except ValueError:
            layer = -1  # matches nothing, rather than silently ignoring the filter
    return queries.DeadLetterFilter(
        source_system=source_system,
        target_system=target_system,
        gate_layer=layer,
        expectation=expectation,
        reason_kind=reason_kind,
        status=status,
        load_id=load_id,
        record_key=record_key,
    )


#: The query-string names :func:`letter_filter` reads (the forms repeat the page's filters under these names).
LETTER_FILTER_FIELDS: frozenset[str] = frozenset(
    ("source_system", "target_system", "gate_layer", "expectation", "reason_kind", "status", "load_id", "record_key"))

SessionDep = Annotated[Session, Depends(get_session)]
UserDep = Annotated[Any, Depends(auth.require_user)]
FilterDep = Annotated[queries.DeadLetterFilter, Depends(letter_filter)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


def create_app(
    *,
    hub_url: str | None = None,
    store_root: Callable[[], StorePath] | None = None,
    replay_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the Catalog Sync UI app.

    Args:
        hub_url: hub database; by default ``catalog_sync.config.hub_url()`` at each request.
        store_root: the shared state store holding ``data_docs/<run>/``; by default
            ``catalog_sync.store.store_root`` (read at each request, so the UI follows CATALOG_SYNC_STORE_URL).
        replay_transport: httpx transport for the call to Airflow's REST API (tests only).
    """
    env = _environment()
    get_store_root = store_root or store.store_root

    app = FastAPI(
        title="Catalog Sync",
        description="Data quality, dead letters, SKU trace and drift for Catalog Sync.",
        dependencies=[Depends(auth.require_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.hub_url = hub_url

    def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        user = getattr(request.state, "catalog_sync_user", None)
        html = env.get_template(template).render(
            base=request.scope.get("root_path", "") or "",
            path=_rel_path(request),
            user=auth.username(user) if user is not None else None,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def error(request: Request, status_code: int, title: str, message: str, **extra: Any) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": message, **extra}, status_code=status_code)
        return render(request, "error.html", status_code, title=title, message=message, **extra)

    def json_or_404(request: Request, found: Any, title: str, message: str) -> Response:
        """``found`` as JSON (dates as text), or a 404 saying what was not found."""
        if found is None:
            return error(request, 404, title, message)
        return JSONResponse(json.loads(json.dumps(found, default=str)))

    # --- errors and headers -------------------------------------------------------------------------------------

    @app.exception_handler(auth.NotAuthenticated)
    async def _unauthenticated(request: Request, exc: auth.NotAuthenticated) -> Response:
        headers = {"WWW-Authenticate": "Bearer"}
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=401, headers=headers)
        next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        html = env.get_template("unauthenticated.html").render(
            base=request.scope.get("root_path", "") or "", login=auth.login_url(next_url), detail=exc.detail
        )
        return HTMLResponse(html, status_code=401, headers=headers)

    @app.exception_handler(auth.Forbidden)
    async def _forbidden(request: Request, exc: auth.Forbidden) -> Response:
        return error(request, 403, "Not allowed", exc.detail)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        if (
            response.headers.get("content-type", "").startswith("text/html")
            and "/data-docs/" not in request.url.path
        ):
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response

    # --- data quality -------------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/quality", status_code=303)

    @app.get("/api/quality")
    def quality_json(session: SessionDep) -> dict[str, Any]:
        return queries.quality_overview(session)

    @app.get("/quality", response_class=HTMLResponse)
    def quality_page(request: Request, session: SessionDep) -> HTMLResponse:
        return render(request, "quality.html", **queries.quality_overview(session))

    # --- runs ---------------------------------------------------------------------------------------------------

    @app.get("/api/runs")
    def runs_json(
        session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[dict[str, Any]]:
        return queries.recent_runs(session, limit)

    @app.get("/runs", response_class=HTMLResponse)
    def runs_page(
        request: Request, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> HTMLResponse:
        return render(request, "runs.html", runs=queries.recent_runs(session, limit))

    @app.get("/api/run-lookup")
    def run_lookup_json(session: SessionDep, dag_id: str, run_id: str) -> Response:
        load_id = queries.load_id_for_airflow_run(session, dag_id, run_id)
        if load_id is None:
            return JSONResponse({"detail": "No Catalog Sync run recorded for this DAG run."}, status_code=404)
        return JSONResponse({"load_id": load_id})

    @app.get("/run-lookup", response_class=HTMLResponse)
    def run_lookup_page(request: Request, session: SessionDep, dag_id: str, run_id: str) -> Response:
        load_id = queries.load_id_for_airflow_run(session, dag_id, run_id)
        if load_id is None:
            return error(
                request,
                404,
                "No Catalog Sync run",
                f"DAG run {run_id} of {dag_id} recorded no Catalog Sync run in the hub "
                "(it may not have reached its first task, or it is not a Catalog Sync DAG).",
            )
        return RedirectResponse(
            f"{request.scope.get('root_path', '')}/runs/{_quote(load_id)}", status_code=303
        )

    def _run_context(session: Session, load_id: str) -> dict[str, Any] | None:
        report = queries.run_report(session, load_id)
        if report is None:
            return None
        docs_index = queries.resolve_data_docs_file(get_store_root(), load_id, "index.html")
        from catalog_sync.quality.docs import validation_counts

        report["data_docs"] = {
            "built": docs_index is not None,
            "path": f"/runs/{load_id}/data-docs/index.html",
            # a gate that checked a big delta in batches saved one validation result per batch: the docs show each
            "validations": validation_counts(load_id, get_store_root()) if queries.data_docs_root(
                get_store_root(), load_id) is not None else {},
        }
        return report

    @app.get("/api/runs/{load_id}")
    def run_json(request: Request, session: SessionDep, load_id: str) -> Response:
        return json_or_404(request, _run_context(session, load_id), "Run not found",
                           f"No run with load id {load_id!r}.")

    @app.get("/runs/{load_id}", response_class=HTMLResponse)
    def run_page(request: Request, session: SessionDep, load_id: str) -> Response:
        report = _run_context(session, load_id)
        if report is None:
            return error(request, 404, "Run not found", f"No run with load id {load_id!r}.")
        return render(request, "run.html", **report)

    @app.get("/api/runs/{load_id}/runbook")
    def runbook_json(request: Request, session: SessionDep, load_id: str) -> Response:
        return json_or_404(request, queries.launch_runbook(session, load_id), "Run not found",
                           f"No run with load id {load_id!r}.")

    @app.get("/runs/{load_id}/runbook", response_class=HTMLResponse)
    def runbook_page(request: Request, session: SessionDep, load_id: str) -> Response:
        book = queries.launch_runbook(session, load_id)
        if book is None:
            return error(request, 404, "Run not found", f"No run with load id {load_id!r}.")
        return render(request, "runbook.html", **book)

    @app.get("/runs/{load_id}/data-docs/{file_path:path}")
    def data_docs(request: Request, load_id: str, file_path: str) -> Response:
        shared = get_store_root()
        root = queries.data_docs_root(shared, load_id)
        if root is None:
            return error(request, 400, "Invalid run id", "This is not a load id.")
        target = queries.resolve_data_docs_file(shared, load_id, file_path)
        if target is None:
            if not root.is_dir():
                return error(
                    request, 404, "Data Docs not built yet", f"Data Docs for run {load_id} are not built yet."
                )
            return error(request, 404, "Not found", "No such file in this run's Data Docs.")
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        # Streamed from the store (a local folder or an object store alike), never copied to the api-server's disk.
        return StreamingResponse(store.iter_bytes(target), media_type=media_type)

    # --- dead letters -------------------------------------------------------------------------------------------

    @app.get("/api/dead-letters")
    def dead_letters_json(session: SessionDep, flt: FilterDep, limit: Limit = 200, offset: Offset = 0) -> Any:
        return json.loads(json.dumps(queries.list_dead_letters(session, flt, limit, offset), default=str))

    @app.get("/dead-letters", response_class=HTMLResponse)
    def dead_letters_page(
        request: Request,
        session: SessionDep,
        user: UserDep,
        flt: FilterDep,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> HTMLResponse:
        return render(
            request,
            "dead_letters.html",
            letters=queries.list_dead_letters(session, flt, limit, offset),
            groups=queries.dead_letter_groups(session, flt),
            facets=queries.dead_letter_facets(session),
            flt=flt.as_params(),
            can_act=auth.can_trigger_replay(user),
        )

    @app.get("/api/dead-letters/{letter_id}")
    def dead_letter_json(request: Request, session: SessionDep, letter_id: int) -> Response:
        return json_or_404(request, queries.get_dead_letter(session, letter_id), "Dead letter not found",
                           f"No dead letter {letter_id}.")

    @app.get("/dead-letters/{letter_id}", response_class=HTMLResponse)
    def dead_letter_page(request: Request, session: SessionDep, user: UserDep, letter_id: int) -> Response:
        letter = queries.get_dead_letter(session, letter_id)
        if letter is None:
            return error(request, 404, "Dead letter not found", f"No dead letter {letter_id}.")
        return render(request, "dead_letter.html", letter=letter, can_act=auth.can_trigger_replay(user))

    async def act(request: Request, user: Any, action: str, ids: list[int]) -> tuple[int, dict[str, Any]]:
        """Replay or discard ``ids`` for ``user``; returns (HTTP status, outcome)."""
        auth.require_trigger(user)
        if action not in ("replay", "discard"):
            return 404, {"ok": False, "message": f"Unknown action {action!r} (replay or discard)."}
        if not ids:
            return 400, {"ok": False, "message": "Select at least one dead letter."}
        if len(ids) > MAX_ACTION_IDS:
            return 400, {"ok": False, "message": f"At most {MAX_ACTION_IDS} dead letters at a time."}

        def _open_ids() -> list[int]:
            with session_scope(hub_url or config.hub_url()) as session:
                return queries.open_letter_ids(session, ids)

        open_ids = await run_in_threadpool(_open_ids)
        if not open_ids:
            return 409, {
                "ok": False,
                "message": "None of the selected dead letters is open any more.",
                "ids": [],
            }
        if action == "discard":

            def _discard() -> int:
                with session_scope(hub_url or config.hub_url()) as session:
                    return repo.resolve_dead_letters(session, open_ids, "discarded", by=auth.username(user))

            n = await run_in_threadpool(_discard)
            return 200, {"ok": True, "message": f"Discarded {n} dead letter(s).", "ids": open_ids, "count": n}
        token = auth.caller_token(request)
        if not token:  # authenticated, yet no token to forward: cannot act on the caller's behalf
            raise auth.NotAuthenticated("No token to forward to Airflow's REST API.")
        outcome = await trigger_replay(
            api_base_url(_origin(request)), token, open_ids, transport=replay_transport
        )
        return (200 if outcome.ok else outcome.status_code), {**outcome.as_dict(), "ids": open_ids}

    async def act_on_group(request: Request, user: Any, action: str, member_id: int,
                           flt: queries.DeadLetterFilter) -> tuple[int, dict[str, Any]]:
        """Replay or discard the open letters of the group of letter ``member_id`` (within ``flt``), at most
        :data:`MAX_ACTION_IDS` at a time, oldest first: repeating the action goes on with the rest."""
        auth.require_trigger(user)

        def _group() -> tuple[list[int], int] | None:
            with session_scope(hub_url or config.hub_url()) as session:
                member = queries.get_dead_letter(session, member_id)
                if member is None:
                    return None
                return queries.matching_letter_ids(session, queries.group_filter(flt, member), MAX_ACTION_IDS)

        found = await run_in_threadpool(_group)
        if found is None:
            return 404, {"ok": False, "message": f"No dead letter {member_id}: the group cannot be found."}
        ids, total = found
        if not ids:
            return 409, {"ok": False, "message": "No letter of this group is open any more.", "ids": []}
        status_code, outcome = await act(request, user, action, ids)
        if outcome.get("ok") and total > len(ids):
            outcome["message"] = (f"{outcome.get('message', '')} {total - len(ids)} more open letter(s) of this "
                                  f"group are left (at most {MAX_ACTION_IDS} at a time): repeat to go on.").strip()
        return status_code, {**outcome, "group_open": total}

    @app.post("/api/dead-letters/group/{action}")
    async def dead_letter_group_action_json(request: Request, user: UserDep, action: str) -> JSONResponse:
        if _media_type(request) != "application/json":
            return JSONResponse({"detail": 'Send a JSON body: {"member": 1, "filters": {...}}.'}, status_code=415)
        try:
            body = await request.json()
            member = int(body["member"])
            flt = letter_filter(**{k: str(v) for k, v in (body.get("filters") or {}).items()
                                   if k in LETTER_FILTER_FIELDS})
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"detail": 'Body must be {"member": <dead letter id>, "filters": {...}}.'},
                                status_code=422)
        status_code, outcome = await act_on_group(request, user, action, member, flt)
        return JSONResponse(outcome, status_code=status_code)

    async def posted_form(request: Request) -> dict[str, list[str]] | Response:
        """The page's form, parsed; or the error page for anything else (another content type or origin)."""
        if _media_type(request) != "application/x-www-form-urlencoded":
            return error(request, 415, "Unsupported form", "Submit the dead-letter form of this page.")
        auth.check_same_origin(request)
        return parse_qs((await request.body()).decode("utf-8", "replace"))

    def action_page(request: Request, form: dict[str, list[str]], status_code: int, outcome: dict[str, Any]) -> Response:
        back = (form.get("back") or [""])[0]
        return render(request, "action_result.html", status_code, action=(form.get("action") or [""])[0],
                      outcome=outcome, back=back if back.startswith("?") or back == "" else "")

    @app.post("/dead-letters/group-action", response_class=HTMLResponse)
    async def dead_letter_group_action_form(request: Request, user: UserDep) -> Response:
        form = await posted_form(request)
        if isinstance(form, Response):
            return form
        try:
            member = int((form.get("member") or [""])[0])
        except ValueError:
            return error(request, 422, "Invalid group", "The group is named by one of its dead letters' ids.")
        flt = letter_filter(**{k: v[0] for k, v in form.items() if k in LETTER_FILTER_FIELDS})
        status_code, outcome = await act_on_group(request, user, (form.get("action") or [""])[0], member, flt)
        return action_page(request, form, status_code, outcome)

    @app.post("/api/dead-letters/{action}")
    async def dead_letters_action_json(request: Request, user: UserDep, action: str) -> JSONResponse:
        if _media_type(request) != "application/json":
            return JSONResponse({"detail": 'Send a JSON body: {"ids": [1, 2]}.'}, status_code=415)
        try:
            body = await request.json()
            ids = [int(i) for i in body["ids"]]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": 'Body must be {"ids": [<dead letter id>, ...]}.'}, status_code=422)
        status_code, outcome = await act(request, user, action, ids)
        return JSONResponse(outcome, status_code=status_code)

    @app.post("/dead-letters/action", response_class=HTMLResponse)
    async def dead_letters_action_form(request: Request, user: UserDep) -> Response:
        form = await posted_form(request)
        if isinstance(form, Response):
            return form
        try:
            ids = [int(i) for i in form.get("ids", [])]
        except ValueError:
            return error(request, 422, "Invalid selection", "Dead-letter ids must be numbers.")
        status_code, outcome = await act(request, user, (form.get("action") or [""])[0], ids)
        return action_page(request, form, status_code, outcome)

    # --- SKU trace ----------------------------------------------------------------------------------------------

    async def explain(request: Request, sku: str) -> tuple[int, dict[str, Any]]:
        """Trace ``sku`` over the systems of this deployment's Airflow connections; (status, result or error)."""
        from catalog_sync.airflow.systems import explain_configured

        try:
            result = await run_in_threadpool(explain_configured, sku)
        except Exception as exc:  # one broken system must not take the page down; say what failed
            return 502, {"error": f"Tracing {sku!r} failed: {type(exc).__name__}: {exc}"}
        return 200, queries.redact(result)

    @app.get("/api/trace")
    async def trace_json(request: Request, sku: Annotated[str, Query(min_length=1, max_length=255)]) -> Any:
        status_code, result = await explain(request, sku.strip())
        if status_code != 200:
            return JSONResponse({"detail": result["error"]}, status_code=status_code)
        return JSONResponse(json.loads(json.dumps(result, default=str)))

    @app.get("/trace", response_class=HTMLResponse)
    async def trace_page(
        request: Request, sku: Annotated[str | None, Query(max_length=255)] = None
    ) -> HTMLResponse:
        sku = (sku or "").strip()
        if not sku:
            return render(request, "trace.html", sku="", result=None)
        status_code, result = await explain(request, sku)
        if status_code != 200:
            return render(
                request, "error.html", status_code, title="SKU trace unavailable", message=result["error"]
            )
        return render(request, "trace.html", sku=sku, result=_trace_view(result))

    @app.get("/trace/image")
    async def trace_image(src: Annotated[str, Query(min_length=1, max_length=2000)]) -> Response:
        """A thumbnail the trace shows. A DAM rendition (the DAM serves it only with its credentials) is fetched
        through the configured DAM connection; any other http(s) address (a storefront's public CDN) is where the
        browser is sent."""
        from catalog_sync.airflow.systems import dam_image

        try:
            found = await run_in_threadpool(dam_image, src)
        except Exception as exc:  # a DAM that is down or refuses: no thumbnail, the page still renders
            return Response(f"image unavailable: {type(exc).__name__}", status_code=502, media_type="text/plain")
        if found is not None:
            content, media = found
            return Response(content, media_type=media, headers={"Cache-Control": "private, max-age=300"})
        if src.startswith(("http://", "https://")):
            return RedirectResponse(src, status_code=303)
        return Response("not an image address", status_code=404, media_type="text/plain")

    # --- reconciliation drift -----------------------------------------------------------------------------------

    @app.get("/api/drift")
    def drift_json(session: SessionDep, attribute: str | None = None, kind: str | None = None) -> Any:
        return json.loads(json.dumps(queries.drift_report(session, attribute, kind), default=str))

    @app.get("/drift", response_class=HTMLResponse)
    def drift_page(
        request: Request, session: SessionDep, user: UserDep, attribute: str | None = None, kind: str | None = None
    ) -> HTMLResponse:
        report = queries.drift_report(session, attribute or None, kind or None)
        return render(request, "drift.html", attribute=attribute or "", kind=kind or "",
                      can_reconcile=auth.can_trigger(user, auth.RECONCILIATION_DAG_ID),
                      dag_id=auth.RECONCILIATION_DAG_ID, **report)

    @app.post("/drift/reconcile", response_class=HTMLResponse)
    async def drift_reconcile(request: Request, user: UserDep) -> Response:
        """Trigger the weekly reconciliation now, as the caller (Airflow checks the right and records who)."""
        if not auth.can_trigger(user, auth.RECONCILIATION_DAG_ID):
            raise auth.Forbidden(f"User {auth.username(user)!r} may not trigger {auth.RECONCILIATION_DAG_ID!r}.")
        form = await posted_form(request)
        if isinstance(form, Response):
            return form
        token = auth.caller_token(request)
        if not token:
            raise auth.NotAuthenticated("No token to forward to Airflow's REST API.")
        apply = (form.get("apply_deletions") or ["false"])[0] == "true"
        outcome = await trigger_dag(api_base_url(_origin(request)), token, auth.RECONCILIATION_DAG_ID,
                                    {"apply_deletions": apply},
                                    f"Triggered from the drift page by {auth.username(user)}",
                                    transport=replay_transport)
        return render(request, "action_result.html", 200 if outcome.ok else outcome.status_code,
                      action="reconcile", outcome=outcome.as_dict(), back="", back_to="drift")

    # --- reference data (read-only: approvals are Airflow's Required Actions) ----------------------------------

    @app.get("/api/reference-data")
    def reference_data_json(session: SessionDep) -> Any:
        from catalog_sync import refdata

        return json.loads(json.dumps(refdata.overview(session), default=str))

    @app.get("/reference-data", response_class=HTMLResponse)
    def reference_data_page(request: Request, session: SessionDep) -> HTMLResponse:
        from catalog_sync import refdata

        return render(request, "reference_data.html", **refdata.overview(session))

    # --- freeze windows (read-only: releases are approved in Airflow's Required Actions) -----------------------

    @app.get("/api/freeze")
    def freeze_json(session: SessionDep) -> Any:
        from catalog_sync.flows import freeze

        return json.loads(json.dumps(freeze.overview(session), default=str))

    @app.get("/freeze", response_class=HTMLResponse)
    def freeze_page(request: Request, session: SessionDep) -> HTMLResponse:
        from catalog_sync.flows import freeze

        return render(request, "freeze.html", **freeze.overview(session))

    return app


def _media_type(request: Request) -> str:
    """The request body's media type, without parameters (``application/json; charset=utf-8`` -> the first)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


#: The trace chain, in the order the lead's ``explain_sku`` walks it.
CHAIN_ORDER = (
    "erp_lifecycle",
    "dam_assets",
    "pim_vs_erp",
    "storefront_feed",
    "shopper_page",
    "supplier_writeback",
)


#: What each seasonal-republish repair (``catalog_sync.trace.REPAIRS``) does, in words, for the trace's diagnosis.
REPAIR_WORDS: dict[str, str] = {
    "activate_erp": "set the ERP lifecycle to active (the ERP owns it: only when its owners agreed)",
    "dam_dates": "move the image's valid-from date in the DAM to the launch",
    "dam_links": "link the image in the PIM, or unlink it, as the DAM's status, dates and rights say",
    "pim_state": "copy the ERP's lifecycle into the PIM and enable or disable the product to match",
    "storefront": "publish the product again, with the status, content and gallery the PIM and ERP say",
    "cache": "purge the cached product page and check the live page",
    "supplier_quarantine": "hold the supplier's contradicting submission for review (a dead letter for the supplier)",
}


def _trace_view(result: dict[str, Any]) -> dict[str, Any]:
    """Mark the first broken link of the chain (the one to fix first) for the template."""
    chain = list(result.get("chain") or [])
    first_broken = result.get("broken_link") or next((c.get("link") for c in chain if not c.get("ok")), None)
    return {**result, "chain": chain, "first_broken": first_broken}
