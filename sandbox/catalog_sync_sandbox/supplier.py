"""The supplier portal: content edits suppliers submit, waiting for Catalog Sync to accept, quarantine or reject.

A submission carries the supplier's own lifecycle flag, which lags the ERP: a supplier may still call a product
``inactive`` long after the ERP made it active (or the reverse). The flag is information, never authority.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from catalog_sync_sandbox import db
from catalog_sync_sandbox.common import State, api_key_auth, error, iso
from catalog_sync_sandbox.state import SandboxState

router = APIRouter(prefix="/supplier/api", tags=["supplier"], dependencies=[Depends(api_key_auth("supplier"))])
Status = Literal["pending", "accepted", "quarantined", "rejected"]


class Submission(BaseModel):
    id: str
    supplier: str
    sku: str
    submitted_at: str
    changes: dict[str, Any] = Field(description="attribute -> proposed value")
    lifecycle_flag: Literal["active", "inactive"]
    status: Status
    reason: str | None = None
    decided_at: str | None = None


class SubmissionPage(BaseModel):
    submissions: list[Submission]
    next_page: int | None


class SubmissionIn(BaseModel):
    supplier: str
    sku: str
    changes: dict[str, Any]
    lifecycle_flag: Literal["active", "inactive"] = "active"


class Decision(BaseModel):
    status: Literal["accepted", "quarantined", "rejected"]
    reason: str | None = None


def submission_doc(r: Any) -> dict[str, Any]:
    return {"id": r.id, "supplier": r.supplier, "sku": r.sku, "submitted_at": iso(r.submitted_at),
            "changes": r.changes, "lifecycle_flag": r.lifecycle_flag, "status": r.status, "reason": r.reason,
            "decided_at": iso(r.decided_at)}


def add_submission(state: SandboxState, supplier: str, sku: str, changes: dict[str, Any], flag: str) -> dict[str, Any]:
    t = db.supplier_submission
    with state.write_lock, state.engine.begin() as conn:
        # ids continue after the seeded SUB-nnnnnn ones, whatever was loaded
        n = db.next_ids(conn, "supplier_submission", start=900_001)[0]
        row = {"id": f"SUB-{n:06d}", "supplier": supplier, "sku": sku, "submitted_at": datetime.now(UTC),
               "changes": changes, "lifecycle_flag": flag, "status": "pending", "reason": None, "decided_at": None}
        conn.execute(t.insert().values(**row))
        return submission_doc(conn.execute(select(t).where(t.c.id == row["id"])).one())


@router.get("/submissions", response_model=SubmissionPage, summary="Submissions by id, 100 per page")
def list_submissions(
    state: State,
    status: Status | None = None,
    sku: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    t = db.supplier_submission
    clauses = [c for c in (t.c.status == status if status else None, t.c.sku == sku if sku else None)
               if c is not None]
    with state.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(*clauses)).scalar() or 0
        rows = conn.execute(select(t).where(*clauses).order_by(t.c.id).offset((page - 1) * per_page)
                            .limit(per_page)).all()
    return {"submissions": [submission_doc(r) for r in rows],
            "next_page": page + 1 if page * per_page < total else None}


@router.post("/submissions", status_code=201, response_model=Submission, summary="A supplier submits an edit")
def create_submission(body: SubmissionIn, state: State) -> dict[str, Any]:
    return add_submission(state, body.supplier, body.sku, body.changes, body.lifecycle_flag)


@router.get("/submissions/{submission_id:path}", response_model=Submission)
def get_submission(submission_id: str, state: State) -> dict[str, Any]:
    with state.engine.connect() as conn:
        r = conn.execute(select(db.supplier_submission).where(db.supplier_submission.c.id == submission_id)).first()
    if r is None:
        raise error(404, f"Submission {submission_id} does not exist.")
    return submission_doc(r)


@router.post("/submissions/{submission_id:path}/decision", response_model=Submission,
             responses={409: {"description": "already decided"}})
def decide(submission_id: str, body: Decision, state: State) -> dict[str, Any]:
    t = db.supplier_submission
    with state.write_lock, state.engine.begin() as conn:
        r = conn.execute(select(t).where(t.c.id == submission_id)).first()
        if r is None:
            raise error(404, f"Submission {submission_id} does not exist.")
        if r.status != "pending":
            if r.status == body.status:  # a replayed decision is not an error: the caller retried
                return submission_doc(r)
            raise error(409, f"Submission {submission_id} was already {r.status}.")
        conn.execute(t.update().where(t.c.id == submission_id).values(
            status=body.status, reason=body.reason, decided_at=datetime.now(UTC)))
        return submission_doc(conn.execute(select(t).where(t.c.id == submission_id)).one())
