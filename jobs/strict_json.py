"""JSON that every database stores and every client reads back, read from a request body or a
file of jobs: no NaN or Infinity (PostgreSQL refuses them, SQLite would store text no JSON reader
accepts), no number too large to be finite, and no nesting deeper than ``MAX_DEPTH`` (deeper would
exhaust recursion on the way to the database)."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
# webargs takes a JSONDecodeError with an empty document for an empty body; ours never is.
BODY = "<request body>"


def strict_loads(text: str | bytes) -> Any:
    """``json.loads``, refusing what the module docstring says with a ``JSONDecodeError``."""
    try:
        decoded = text.decode("utf-8") if isinstance(text, bytes) else text
        value = json.loads(decoded, parse_constant=_refuse_constant, parse_float=_finite)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # bad UTF-8, an integer of thousands of digits
        raise json.JSONDecodeError(f"Not JSON: {exc}", BODY, 0) from None
    if _depth(value) > MAX_DEPTH:
        raise json.JSONDecodeError(f"JSON nested deeper than {MAX_DEPTH} levels", BODY, 0)
    return value


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise json.JSONDecodeError(f"{text} is too large for a number", text, 0)
    return number


def _depth(value: Any) -> int:
    """How deep containers nest in ``value``, without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
