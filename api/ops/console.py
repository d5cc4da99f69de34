"""What every console page shares: its blueprint, the login, scope checks, CSRF and rendering.

The session is the pasted token itself, in an HTTP-only, SameSite=Strict cookie scoped to
`/ops`: each page authenticates it as the API does, so a revoked token is refused within the
token cache's seconds, and no server-side session store or signing key is needed. Each form
carries a CSRF value derived from that token by HMAC, which a page on another site cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, g, make_response, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError
from werkzeug import Response

from api.runtime import runtime
from jobs import tokens
from jobs.models import ApiToken

bp = Blueprint("ops", __name__, url_prefix="/ops", template_folder="templates", static_folder="static")
F = TypeVar("F", bound=Callable[..., Any])

COOKIE = "conveyor_ops"
NOTICE_COOKIE = "conveyor_ops_notice"
SESSION_S = 12 * 3600
READ_SCOPES = ("jobs:read", "ops")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})
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
            return redirect(url_for("ops.login", next=_return_to()))
        g.conveyor_token = token
        if not any(tokens.has_scope(token, scope) for scope in READ_SCOPES):
            raise Refused(403, "This token may not read the console: it needs jobs:read or ops.")
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


def _return_to() -> str | None:
    """The page to come back to once signed in: this one, or for a form the page it was on."""
    return request.full_path.rstrip("?") if request.method == "GET" else _back()


def same(sent: str, expected: str) -> bool:
    """A constant-time comparison that takes any text a client sends."""
    return hmac.compare_digest(sent.encode(), expected.encode())


def check_csrf() -> None:
    if not same(request.form.get("csrf", ""), csrf_value(request.cookies.get(COOKIE, ""))):
        raise Refused(403, "The form's CSRF value is missing or stale; reload the page and try again.")


def operator_cookie() -> dict[str, Any]:
    """How every console cookie is set: never sent by another site's page, never read by script,
    and only over HTTPS except on a loopback address (behind a TLS proxy, gunicorn sees plain
    HTTP, so the host decides)."""
    return {"path": "/ops", "httponly": True, "samesite": "Strict", "secure": not on_loopback()}


def on_loopback() -> bool:
    host = request.host
    name = host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]
    return name in LOOPBACK


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
    return (f"{parts.path}?{parts.query}" if parts.query else parts.path) if same_site else None


def error_page(status: int, message: str, errors: Any) -> Response:
    """Every other error under /ops (a domain error, a bad URL, a database outage) as a page:
    the app's error handlers decide the status and the message, as for the API."""
    return make_response(page("refused.html", status, message=message, errors=errors, back=_back()))
