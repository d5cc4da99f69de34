"""`X-Request-ID`: the caller's, or one made for the request; sent back, put on every log line
of the request and its Sentry events, and a submitted job's `correlation_id` when the body names none (its children
inherit it)."""

from __future__ import annotations

import re
import uuid

import sentry_sdk
from flask import Flask, Response, g, request

from jobs.observability.logs import log_context

HEADER = "X-Request-ID"
_USABLE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}")


def register(app: Flask) -> None:
    app.before_request(_take)
    app.after_request(_send_back)
    app.teardown_request(_forget)


def request_id() -> str:
    return str(g.conveyor_request_id)


def _take() -> None:
    given = request.headers.get(HEADER, "")
    g.conveyor_request_id = given if _USABLE.fullmatch(given) else uuid.uuid4().hex
    g.conveyor_log = log_context(request_id=g.conveyor_request_id)
    g.conveyor_log.__enter__()
    if sentry_sdk.is_initialized():  # the Flask integration gives each request its own scope
        sentry_sdk.set_tag("request_id", g.conveyor_request_id)


def _send_back(response: Response) -> Response:
    if "conveyor_request_id" in g:
        response.headers[HEADER] = g.conveyor_request_id
    return response


def _forget(_: BaseException | None) -> None:
    if "conveyor_log" in g:
        g.conveyor_log.__exit__(None, None, None)
