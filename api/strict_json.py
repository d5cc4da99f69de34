"""Request bodies as JSON that every database stores and every client reads back: no NaN or
Infinity (PostgreSQL refuses them, SQLite would store text no JSON reader accepts), and no
nesting deeper than ``MAX_DEPTH`` (deeper would exhaust recursion on the way to the database).

Both readers of a body use it: Flask's ``request.get_json`` and webargs, which flask-smorest's
``@blp.arguments`` parse with; every blueprint is this module's ``Blueprint``.
"""

from __future__ import annotations

import json
from typing import Any

import flask_smorest
from flask import Request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

MAX_DEPTH = 64
# webargs takes a JSONDecodeError with an empty document for an empty body; ours never is.
BODY = "<request body>"


def strict_loads(text: str | bytes) -> Any:
    """``json.loads``, refusing what the module docstring says with a ``JSONDecodeError``."""
    try:
        decoded = text.decode("utf-8") if isinstance(text, bytes) else text
        value = json.loads(decoded, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise json.JSONDecodeError(f"Not JSON: {exc}", BODY, 0) from None
    if _depth(value) > MAX_DEPTH:
        raise json.JSONDecodeError(f"JSON nested deeper than {MAX_DEPTH} levels", BODY, 0)
    return value


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


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


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s)


class StrictParser(FlaskParser):
    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return strict_loads(req.get_data(cache=True))


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()
