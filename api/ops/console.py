"""What every console page shares: its blueprint, the login, scope checks, CSRF and rendering.

The session is the pasted token itself, in an HTTP-only, SameSite=Strict cookie scoped to
`/ops`: each page authenticates it as the API does, so a revoked token is refused within the
token cache's seconds, and no server-side session store or signing key is needed. Each form
carries a CSRF value derived from that token by HMAC, which a page on another site cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, g, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError
from werkzeug import Response
from werkzeug.exceptions import HTTPException

from api.errors import status_of
from api.runtime import runtime
from jobs import tokens
from jobs.errors import ConveyorError
from jobs.models import ApiToken

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__, url_prefix="/ops", template_folder="templates", static_folder="static")
F = TypeVar("F", bound=Callable[..., Any])

COOKIE = "conveyor_ops"
NOTICE_COOKIE = "conveyor_ops_notice"
SESSION_S = 12 * 3600
READ_SCOPES = ("jobs:read", "ops")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A page's answer when it cannot do what was asked: shown as a page with this status."""

    def __init__(self, status: int, message: str, errors: Any = None):
        super().__init__(message)
        self.status, self.errors = status, errors


def csrf_value(token: str) -> str:
    return hmac.new(token.encode(), b"conveyor-ops-csrf", hashlib.sha256).hexdigest()


def viewer(view: F) -> F:
    """A page any console token may read; without a valid cookie, the login page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _signed_in()
        if token is None:
            return redirect(url_for("ops.login", next=request.full_path.rstrip("?")))
        if not any(tokens.has_scope(token, scope) for scope in READ_SCOPES):
            raise Refused(403, "This token may not read the console: it needs jobs:read or ops.")
        g.conveyor_token = token
        return view(*args, **kwargs)

    return cast(F, wrapper)


def operator(view: F) -> F:
    """A form's action: needs the `ops` scope and the form's CSRF value."""

    @viewer
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_csrf()
        if not can_act():
            raise Refused(403, "This token is read-only here: the console's actions need the ops scope.")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not hmac.compare_digest(sent, csrf_value(request.cookies.get(COOKIE, ""))):
        raise Refused(403, "The form's CSRF value is missing or stale; reload the page and try again.")


def operator_cookie() -> dict[str, Any]:
    """How every console cookie is set: never sent by another site's page, never read by script."""
    return {"path": "/ops", "httponly": True, "samesite": "Strict", "secure": request.is_secure}


def can_act() -> bool:
    token: ApiToken | None = g.get("conveyor_token")
    return token is not None and tokens.has_scope(token, "ops")


def _signed_in() -> ApiToken | None:
    value = request.cookies.get(COOKIE, "")
    return runtime().tokens.authenticate(value) if value else None


def form(schema: Schema, values: Any) -> dict[str, Any]:
    """Fields a page's form or query sent, checked by the API's own schema (empty ones left out)."""
    given = {key: value for key, value in values.items() if value.strip()}
    try:
        loaded: dict[str, Any] = schema.load(given, unknown=EXCLUDE)
    except ValidationError as exc:
        raise Refused(422, "Some fields are not valid.", exc.messages) from exc
    return loaded


def page(template: str, status: int = 200, **values: Any) -> tuple[str, int]:
    notice = request.cookies.get(NOTICE_COOKIE)
    csrf = csrf_value(request.cookies.get(COOKIE, ""))
    html = render_template(f"ops/{template}", notice=notice, csrf=csrf, can_act=can_act(), **values)
    return html, status


def done(notice: str, endpoint: str, **values: Any) -> Response:
    """After an action, back to a page that says what happened (once)."""
    response = redirect(url_for(endpoint, **values), code=303)
    response.set_cookie(NOTICE_COOKIE, notice, max_age=60, **operator_cookie())
    return response


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(HEADERS)
    if request.method == "GET" and NOTICE_COOKIE in request.cookies and response.status_code != 303:
        response.delete_cookie(NOTICE_COOKIE, path="/ops")
    return response


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> tuple[str, int]:
    return page("refused.html", exc.status, message=str(exc), errors=exc.errors, back=_back())


def _back() -> str | None:
    """The console page the refused form was on, if the browser said."""
    parts = urlsplit(request.referrer or "")
    same_site = parts.netloc == request.host and parts.path.startswith("/ops/")
    return f"{parts.path}?{parts.query}" if same_site else None


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    data = getattr(exc, "data", {}) or {}
    message = data.get("message") or exc.description or "The request was refused."
    return page("refused.html", exc.code or 500, message=message, back=_back())


@bp.errorhandler(ConveyorError)
def _domain_error(exc: ConveyorError) -> tuple[str, int]:
    status = status_of(exc)
    if status is None:
        log.error("Unexpected error serving %s %s.", request.method, request.path, exc_info=exc)
        return page("refused.html", 500, message="The server failed to handle this; it has been logged.")
    return page("refused.html", status, message=str(exc), errors=getattr(exc, "errors", None), back=_back())
