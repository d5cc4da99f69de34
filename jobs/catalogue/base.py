"""What the catalogue says of each job type; the families' modules each declare a tuple of these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from jobs.settings import Settings


@dataclass(frozen=True)
class JobType:
    name: str
    task_name: str
    queue: str
    schema: type[Schema]
    description: str
    check: Callable[[dict[str, Any], Settings], None] | None = None
    """What only the deployment's settings can tell of a loaded payload; raises ValidationError."""
    internal: bool = False
    """Submitted only by a job that fans out (``ocr-pages``, by ``ocr``), never by a caller."""
    scope: str = "jobs:write"
    """The scope a token needs to submit or retry a job of this type through ``/v1/jobs``: the
    platform's upkeep is for operators, a restore for admins, whichever endpoint is used."""
