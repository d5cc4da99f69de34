"""Running the s3-sync handler in this process, against real storage, with a recorded context."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import sessionmaker

from jobs.catalogue import validate_payload
from jobs.settings import Settings
from jobs.storage import open_object
from tasks.context import JobContext
from tasks.s3_sync import sync_prefix


@dataclass
class Reports:
    """What the handler reported, and whether to answer that the job was cancelled."""

    seen: list[tuple[int, str | None]] = field(default_factory=list)
    cancel_at: str | None = None

    def __call__(self, percent: int, message: str | None) -> bool:
        self.seen.append((percent, message))
        return self.cancel_at is not None and (message or "").startswith(self.cancel_at)


def context(settings: Settings, reports: Reports | None = None) -> JobContext:
    def resolve(ref: Any) -> Any:
        return open_object(ref["url"], settings)

    return JobContext(uuid.uuid4(), 1, 1, reports or Reports(), settings, resolve, sessionmaker())


def run_sync(settings: Settings, reports: Reports | None = None, **payload: Any) -> dict[str, Any]:
    return sync_prefix(validate_payload("s3-sync", payload, settings), context(settings, reports))
