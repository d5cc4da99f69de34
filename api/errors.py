"""One error shape for every failure: `{code, status, message, errors?}`, never HTML."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NoReturn

import psycopg
from flask import Flask, Response, current_app, jsonify, request
from flask_smorest import abort as smorest_abort
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from jobs.db import is_outage
from jobs.errors import (
    ConflictError,
    ConveyorError,
    InvalidInputError,
    NotFoundError,
    TargetUnavailableError,
    TooLargeError,
)
from jobs.storage import StorageError, StorageUnavailableError

log = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# gunicorn is told to take any request line (`conveyor api`), so this JSON 414 is the limit.
MAX_URL_CHARS = 8190
# The one place a domain error becomes an HTTP status; the most specific kind comes first.
STATUS_OF_ERROR: tuple[tuple[type[ConveyorError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 422),
    (TooLargeError, 413),
    (StorageUnavailableError, 503),
    (TargetUnavailableError, 503),
    (StorageError, 502),
)
# Bodies that are not JSON: uploads, streamed as they come.
RAW_BODY_PATHS = frozenset({"/v1/files"})
# The ops console's pages post HTML forms, and show errors as pages.
FORM_PATHS = "/ops/"
ERROR_PAGE = "conveyor_error_page"
"""Where `app.extensions` holds how a path under FORM_PATHS shows an error instead of JSON."""


def abort(status: int, message: str, **kwargs: Any) -> NoReturn:
    smorest_abort(status, message=message, **kwargs)
    raise AssertionError("unreachable")


def error_response(status: int, message: str, errors: Any = None) -> Response:
    show_page = current_app.extensions.get(ERROR_PAGE)
    if show_page is not None and request.path.startswith(FORM_PATHS):
        page: Response = show_page(status, message, errors)
        return page
    body: dict[str, Any] = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    app.before_request(_require_json_body)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ConveyorError, _domain_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(psycopg.Error, _database_error)  # a submission's insert runs on psycopg itself
    app.register_error_handler(Exception, _unexpected_error)


def _require_json_body() -> None:
    if len(request.full_path) > MAX_URL_CHARS:
        abort(414, f"The URL is longer than {MAX_URL_CHARS} characters.")
    raw = request.path in RAW_BODY_PATHS or request.path.startswith(FORM_PATHS)
    if request.method in BODY_METHODS and request.content_length and not request.is_json and not raw:
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'no content type'}."
        )


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", {}) or {}
    errors = data.get("errors") or data.get("messages")
    message = data.get("message") or _describe(status, errors) or exc.description or ""
    response = error_response(status, message, errors)
    if "Allow" in (allowed := dict(exc.get_headers())):
        response.headers["Allow"] = allowed["Allow"]
    for name, value in (data.get("headers") or {}).items():
        response.headers[name] = value
    return response


def _describe(status: int, errors: Any) -> str | None:
    """A plainer message than werkzeug's for webargs' parse errors."""
    if status == 400 and isinstance(errors, dict) and "json" in errors:
        return "The request body is not valid JSON."
    if status == 422 and errors:
        return "The request is not valid; see errors for each field."
    if status == 404 and not errors:
        return f"Nothing is at {request.path}; check the path (ids are UUIDs)."
    return None


def status_of(exc: ConveyorError) -> int | None:
    return next((code for kind, code in STATUS_OF_ERROR if isinstance(exc, kind)), None)


def _domain_error(exc: ConveyorError) -> Response:
    status = status_of(exc)
    if status is None:
        return _unexpected_error(exc)
    errors = getattr(exc, "errors", None)
    return error_response(status, str(exc), {"json": errors} if errors else None)


def _database_error(exc: DBAPIError | psycopg.Error) -> Response:
    """A database that cannot be reached is the client's cue to retry, not a server bug."""
    if not is_outage(exc):
        return _unexpected_error(exc)
    log.warning(
        "Database unavailable serving %s %s: %s", request.method, request.path, getattr(exc, "orig", exc)
    )
    response = error_response(503, "The database is unavailable; retry shortly.")
    response.headers["Retry-After"] = "5"
    return response


def _unexpected_error(exc: Exception) -> Response:
    log.error("Unexpected error serving %s %s.", request.method, request.path, exc_info=exc)
    return error_response(500, "The server failed to handle this request; it has been logged.")
