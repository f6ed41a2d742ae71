"""Who is calling, and may they act: Airflow's own authentication and authorisation, reused.

FastAPI apps registered by an Airflow plugin are mounted on the api-server but are *not* covered by Airflow's
auth, so every route of :func:`catalog_sync.ui.app.create_app` depends on :func:`require_user`. The user is
resolved by :func:`airflow.api_fastapi.core_api.security.get_user` — the same code the REST API runs: an
``Authorization: Bearer`` token wins, else the UI's ``_token`` cookie, validated (signature, expiry,
revocation) by the configured auth manager.

Acting on dead letters (replay, discard) needs the right to trigger the replay DAG, checked with the auth
manager's ``is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN)``.

POSTs are protected against cross-site requests: a JSON body (which a cross-origin page cannot send without a
CORS preflight the api-server does not grant), or a form whose ``Origin`` (else ``Referer``) is this server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

#: The cookie Airflow's UI keeps its JWT in (``airflow...base_auth_manager.COOKIE_NAME_JWT_TOKEN``).
COOKIE_NAME = "_token"
#: The DAG that replays dead letters; the right to trigger it is the right to act on dead letters.
REPLAY_DAG_ID = "dead_letter_replay"
RECONCILIATION_DAG_ID = "weekly_reconciliation"


class NotAuthenticated(Exception):
    """No valid Airflow session or token came with the request."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(Exception):
    """The caller is authenticated but may not do this."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _bearer(request: Request) -> HTTPAuthorizationCredentials | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=credentials.strip())
    return None


async def require_user(request: Request) -> Any:
    """FastAPI dependency: the authenticated Airflow user, or :class:`NotAuthenticated` (rendered as 401).

    An expired, revoked or forged token is treated like no token: the person has to log in again.
    """
    from airflow.api_fastapi.core_api.security import get_user

    credentials = _bearer(request)
    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:
        raise NotAuthenticated(str(exc.detail)) from None
    except RuntimeError as exc:  # the auth manager was never initialised: not running inside the api-server
        raise NotAuthenticated(f"Airflow authentication is unavailable: {exc}") from None
    request.state.catalog_sync_user = user
    return user


def caller_token(request: Request) -> str | None:
    """The JWT the caller authenticated with (bearer header first, else the UI cookie), to act on their behalf."""
    credentials = _bearer(request)
    if credentials is not None:
        return credentials.credentials
    return request.cookies.get(COOKIE_NAME)


def username(user: Any) -> str:
    """The name Airflow knows the user by (recorded as ``resolved_by``)."""
    return str(user.get_name())


def can_trigger(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may trigger runs of ``dag_id``, as Airflow's auth manager decides."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method="POST",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id),
            user=user,
        )
    )


def can_trigger_replay(user: Any) -> bool:
    """Whether ``user`` may trigger the dead-letter replay DAG (the right needed to replay or discard)."""
    return can_trigger(user, REPLAY_DAG_ID)


def require_trigger(user: Any) -> None:
    """Raise :class:`Forbidden` unless ``user`` may trigger DAG runs of the replay DAG."""
    if not can_trigger_replay(user):
        raise Forbidden(
            f"User {username(user)!r} may not trigger the {REPLAY_DAG_ID!r} DAG, so may not replay or discard "
            "dead letters."
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def check_same_origin(request: Request) -> None:
    """Refuse a form POST whose ``Origin`` (or, failing that, ``Referer``) is not this server."""
    expected = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        origin = _origin(referer) if referer else None
    if not origin or origin.rstrip("/").lower() != expected:
        raise Forbidden("Cross-site form submission refused (the Origin header does not match this server).")


def login_url(next_url: str) -> str:
    """Airflow's login page, returning to ``next_url`` afterwards."""
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return str(get_auth_manager().get_url_login(next_url=next_url))
    except Exception:  # an auth manager that cannot build a login URL still leaves the generic one
        return "/auth/login"
