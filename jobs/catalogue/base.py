"""What the catalogue says of each job type; the families' modules each declare a tuple of these."""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import Schema


@dataclass(frozen=True)
class JobType:
    name: str
    task_name: str
    queue: str
    schema: type[Schema]
    description: str
