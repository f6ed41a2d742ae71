"""Supplier portal connector: pending submissions and the hub's decision on each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from catalog_sync.connectors.base import Outcome, Page, Stream, WriteResult, nullable, split_records
from catalog_sync.connectors.credentials import ApiKeyCredentials, coerce
from catalog_sync.connectors.http import (
    ApiKeyAuth,
    ClientOptions,
    ConfigurationError,
    HttpClient,
    RecordError,
    path_segment,
    require_keys,
)
from catalog_sync.domain import System

SUBMISSIONS: Final = Stream(
    "submissions",
    "id",
    "submitted_at",
    {
        "required": ["id", "supplier", "sku", "changes", "status"],
        "properties": {
            "id": {"type": ["string", "integer"]},
            "supplier": {"type": "string"},
            "sku": {"type": "string"},
            "submitted_at": nullable("string"),
            "changes": {"type": "object"},
            "lifecycle_flag": nullable("string"),
            "status": {"type": "string"},
        },
    },
)
DECISIONS: Final = ("accepted", "quarantined", "rejected")


class SupplierClient(HttpClient):
    """The supplier portal (``X-Api-Key``). Build with ``SupplierClient("http://host:8765/supplier", "key")``."""

    system = System.SUPPLIER.value
    streams: Final = {SUBMISSIONS.name: SUBMISSIONS}

    def __init__(
        self, base_url: str, credentials: ApiKeyCredentials | str, options: ClientOptions | None = None, **kwargs: Any
    ) -> None:
        creds = coerce(ApiKeyCredentials, credentials)
        super().__init__(base_url, ApiKeyAuth(creds.api_key, "X-Api-Key"), options, **kwargs)

    def iter_submissions(self, status: str | None = "pending", page: int = 1) -> Iterator[Page]:
        offset = 0
        current: int | None = page
        while current is not None:
            params: dict[str, Any] = {"page": current}
            if self.options.page_size:
                params["per_page"] = self.options.page_size
            if status:
                params["status"] = status
            body = self.get_json("api/submissions", params, validate=require_keys("submissions"))
            good, bad = split_records(SUBMISSIONS, body["submissions"], self.system, offset,
                                      refetch=lambda p=params: self.get_json(  # type: ignore[misc]  # mypy: lambda default args
                                          "api/submissions", p, validate=require_keys("submissions"))["submissions"])
            offset += len(body["submissions"])
            current = body.get("next_page")
            yield Page(SUBMISSIONS.name, good, bad, current)

    def get_submission(self, submission_id: str | int) -> dict[str, Any] | None:
        result = self.request("GET", f"api/submissions/{path_segment(submission_id)}", expect=(200, 404))
        return None if result.status == 404 else dict(result.body)

    def decide(self, submission_id: str | int, status: str, reason: str = "") -> WriteResult:
        """Record the hub's decision on one submission (``accepted``, ``quarantined`` or ``rejected``).

        The portal refuses a second decision (409). When the submission already carries this same decision (a
        replayed run) that is ``unchanged``; a different earlier decision is a conflict to dead-letter.
        """
        if status not in DECISIONS:
            raise ConfigurationError(f"supplier: unknown decision {status!r}; expected one of {DECISIONS}")
        key = str(submission_id)
        payload = {"status": status, "reason": reason}
        try:
            result = self.request(
                "POST", f"api/submissions/{path_segment(submission_id)}/decision", json_body=payload, record_key=key
            )
        except RecordError as exc:
            if exc.status == 409:
                current = self.get_submission(submission_id)
                if current is not None and current.get("status") == status:
                    return WriteResult(key, Outcome.UNCHANGED, 409, f"already {status}", payload, response=current)
            return WriteResult.failure(key, exc, payload)
        return WriteResult(key, Outcome.OK, result.status, None, payload, response=result.body)
