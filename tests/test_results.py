"""A handler's result is stored as JSON on every database, or the job fails for good saying why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.base import unstorable


@pytest.mark.parametrize(
    "result",
    [float("nan"), {"x": float("inf")}, datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4(), {1, 2}, b"bytes"],
    ids=["nan", "infinity", "datetime", "uuid", "set", "bytes"],
)
def test_a_result_json_cannot_hold_is_refused_with_a_reason(result: Any) -> None:
    assert "cannot be stored as JSON" in (unstorable(result) or "")


@pytest.mark.parametrize("result", [None, 1, "text", [1, "a"], {"nested": {"list": [1.5, None]}}])
def test_a_json_result_is_stored(result: Any) -> None:
    assert unstorable(result) is None
