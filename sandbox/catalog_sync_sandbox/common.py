"""Helpers every sandbox router shares: state access, API-key auth, timestamps, JSON errors."""


import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from catalog_sync_sandbox.state import SandboxState


def get_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; everything the sandbox stores is UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_ts(value: str, name: str) -> datetime:
    """ISO 8601 (``Z`` or offset; a naive value is UTC) or Akeneo's ``YYYY-MM-DD HH:MM:SS``; 400 otherwise."""
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, {"code": 400, "message": f"{name}: not an ISO 8601 timestamp: {value!r}"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def api_key_auth(system: str, header: str = "X-Api-Key") -> Callable[..., None]:
    """A dependency checking one system's API key, declared in OpenAPI as an ``apiKey`` security scheme."""
    scheme = APIKeyHeader(name=header, auto_error=False, scheme_name=f"{system}ApiKey")

    def check(key: Annotated[str | None, Depends(scheme)], state: Annotated[SandboxState, Depends(get_state)]) -> None:
        expected = state.credentials[system].get("api_key") or state.credentials[system].get("access_token", "")
        if not key or not hmac.compare_digest(key.encode(), expected.encode()):
            raise HTTPException(401, {"code": 401, "message": f"Missing or invalid {header}."})

    return check


def error(status: int, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, {"code": status, "message": message, **extra})


#: The sandbox state as a FastAPI dependency (``state: State`` in a route's signature).
State = Annotated[SandboxState, Depends(get_state)]
