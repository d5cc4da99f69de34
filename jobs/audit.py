"""The audit log: who did what, when and why, to a dead letter, a schedule or a backup."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from jobs.models import AuditEntry, utcnow


def audit(
    session: Session,
    dead_letter_id: uuid.UUID | None,
    actor: str,
    action: str,
    reason: str | None,
    details: dict[str, Any] | None,
) -> None:
    """``dead_letter_id`` is None for an entry about anything else; ``details`` then names it."""
    entry = AuditEntry(at=utcnow(), actor=actor, action=action, reason=reason, details=details)
    entry.dead_letter_id = dead_letter_id
    session.add(entry)
