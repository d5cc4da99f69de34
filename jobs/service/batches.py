"""Many jobs in one transaction (``POST /v1/jobs/batch``, ``conveyor submit --from-file``).

Every item is checked as ``POST /v1/jobs`` would check it. All or nothing by default; otherwise
the valid items go in and each refused one is named by its index. An item's
``idempotency_key`` means what ``Idempotency-Key`` means on ``POST /v1/jobs`` with that item as
the body: the two share keys, so a replay in either form returns the job the first one made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jobs import idempotency
from jobs.errors import InvalidInputError, InvalidJobError, KeyInFlightError
from jobs.models import utcnow, view_of
from jobs.service.schema import JobCreate, JobOut
from jobs.service.submission import Submission, job_row, submit_rows
from jobs.settings import Settings

IN_FLIGHT = "A request with this key is still in flight."
JOB_CREATE = JobCreate()
JOB_OUT = JobOut()
KEY_FIELD = "idempotency_key"


@dataclass
class Item:
    """One job of a batch, as its caller read it: a submission, or the errors that refused it."""

    submission: Submission | None
    errors: dict[str, Any] | None = None
    key: str | None = None
    fingerprint: str | None = None
    """The hash ``POST /v1/jobs`` would store for this item under its key."""


def read_item(raw: Any, correlation_id: str | None = None) -> Item:
    """An item as its caller wrote it (``POST /v1/jobs``'s body and an ``idempotency_key``),
    read; ``correlation_id`` is its default."""
    if not isinstance(raw, dict):
        return Item(None, {"_schema": ["Must be a JSON object."]})
    body = {name: value for name, value in raw.items() if name != KEY_FIELD}
    key = raw.get(KEY_FIELD)
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= 255 and key.isprintable()):
        return Item(None, {KEY_FIELD: ["Must be 1 to 255 printable characters."]})
    try:
        loaded = JOB_CREATE.load(body)
    except ValidationError as exc:
        return Item(None, exc.normalized_messages())
    loaded["correlation_id"] = loaded.get("correlation_id") or correlation_id
    fingerprint = idempotency.request_hash("POST", "/v1/jobs", body) if key is not None else None
    return Item(Submission(**loaded), key=key, fingerprint=fingerprint)


@dataclass
class Outcome:
    ids: list[uuid.UUID | None]
    replayed: list[int] = field(default_factory=list)
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)
    copies: dict[int, int] = field(default_factory=dict)
    """Items that repeat an earlier item's key and job: their index, and the earlier one's."""

    def accepted(self, index: int) -> bool:
        return index not in self.errors and index not in self.replayed


@dataclass(frozen=True)
class Keys:
    """Whose keys they are, and how long they live."""

    token_id: uuid.UUID
    ttl: timedelta


def submit_batch(
    session: Session, settings: Settings, items: list[Item], keys: Keys, *, atomic: bool
) -> Outcome:
    outcome = Outcome(ids=[None] * len(items))
    now = utcnow()
    rows: dict[int, dict[str, Any]] = {}
    for index, item in enumerate(items):
        try:
            rows[index] = _row(settings, item, now)
        except InvalidInputError as exc:
            outcome.errors[index] = exc.errors or {"_schema": [str(exc)]}
    _refuse_if(atomic, outcome)
    records = _match_keys(session, items, rows, keys, outcome)
    _refuse_if(atomic or len(outcome.errors) == len(items), outcome)
    try:
        submit_rows(session, [row for index, row in rows.items() if outcome.accepted(index)])
        # In key order: two batches storing the same keys then wait on each other, never deadlock.
        idempotency.record_many(
            session, keys.token_id, sorted(records.values(), key=lambda r: r[0]), keys.ttl
        )
        session.flush()
    except IntegrityError:
        raise KeyInFlightError(
            "Another request stored one of these idempotency keys meanwhile; retry."
        ) from None
    for index, row in rows.items():
        if outcome.accepted(index):
            outcome.ids[index] = row["id"]
    for index, first in outcome.copies.items():
        outcome.ids[index] = outcome.ids[first]
    return outcome


def _row(settings: Settings, item: Item, now: Any) -> dict[str, Any]:
    if item.errors is not None or item.submission is None:
        raise InvalidJobError(item.errors or {})
    return job_row(settings, item.submission, now)


def _refuse_if(atomic: bool, outcome: Outcome) -> None:
    """A 422 naming each refused item; a 409 when one only waits for another request to end."""
    if atomic and any(errors == {"idempotency_key": [IN_FLIGHT]} for errors in outcome.errors.values()):
        raise KeyInFlightError(
            "A request holding one of this batch's idempotency keys is still in flight; retry."
        )
    if atomic and outcome.errors:
        errors = {"jobs": {str(index): errors for index, errors in sorted(outcome.errors.items())}}
        raise InvalidJobError(
            errors, f"{len(outcome.errors)} of the batch's jobs are not valid; none was submitted."
        )


def _match_keys(
    session: Session, items: list[Item], rows: dict[int, dict[str, Any]], keys: Keys, outcome: Outcome
) -> dict[int, tuple[str, str, idempotency.StoredResponse]]:
    """Replays of earlier requests (or of earlier items) found, and the keys this batch stores."""
    keyed = {index: items[index] for index in rows if items[index].key}
    if not keyed:
        return {}
    stored = idempotency.stored_many(
        session, keys.token_id, {item.key for item in keyed.values() if item.key}
    )
    first: dict[str, int] = {}
    records: dict[int, tuple[str, str, idempotency.StoredResponse]] = {}
    for index, item in keyed.items():
        key, fingerprint = item.key or "", item.fingerprint or ""
        earlier = stored.get(key)
        if index in outcome.errors:
            continue
        if key in first:
            _replay_of_item(outcome, index, first[key], fingerprint == items[first[key]].fingerprint)
        elif earlier is not None:
            _replay_of_request(outcome, index, earlier, fingerprint)
        else:
            first[key] = index
            records[index] = (key, fingerprint, answer(rows[index]))
    return records


def _replay_of_item(outcome: Outcome, index: int, first: int, same: bool) -> None:
    if not same:
        outcome.errors[index] = {
            "idempotency_key": [f"Item {first} of this batch has this key with another job."]
        }
        return
    outcome.replayed.append(index)
    outcome.copies[index] = first


def _replay_of_request(outcome: Outcome, index: int, earlier: Any, fingerprint: str) -> None:
    if earlier.request_hash != fingerprint:
        outcome.errors[index] = {"idempotency_key": ["This key was already used with another request."]}
    elif earlier.response_status is None:
        outcome.errors[index] = {"idempotency_key": [IN_FLIGHT]}
    else:
        outcome.replayed.append(index)
        outcome.ids[index] = uuid.UUID(str(earlier.response_body["id"]))


def answer(row: dict[str, Any]) -> idempotency.StoredResponse:
    """What ``POST /v1/jobs`` with this item would have answered: what its key replays there."""
    return idempotency.StoredResponse(202, JOB_OUT.dump(view_of(row)), f"/v1/jobs/{row['id']}")
