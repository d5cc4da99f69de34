"""Signing in by pasting a token, and signing out."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import redirect, request, url_for
from werkzeug import Response

from api.ops.console import COOKIE, SESSION_S, Refused, bp, check_csrf, operator_cookie, page, same
from api.runtime import runtime

LOGIN_COOKIE = "conveyor_ops_login"
"""A double-submit value for the login form, which has no token to derive a CSRF value from."""


@bp.get("/login")
def login() -> Response:
    nonce = secrets.token_urlsafe(24)
    html, status = page("login.html", nonce=nonce, next=_next())
    response = Response(html, status, mimetype="text/html")
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=600, **operator_cookie())
    return response


@bp.post("/login")
def sign_in() -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not same(nonce, request.form.get("csrf", "")):
        raise Refused(403, "The login form is stale or was sent from another site; reload it and try again.")
    token = request.form.get("token", "").strip()
    if not token or runtime().tokens.authenticate(token) is None:
        html, _ = page("login.html", 401, nonce=nonce, next=_next(), error="That token is not valid.")
        return Response(html, 401, mimetype="text/html")
    response = redirect(_next(), code=303)
    response.set_cookie(COOKIE, token, max_age=SESSION_S, **operator_cookie())
    response.delete_cookie(LOGIN_COOKIE, path="/ops")
    return response


@bp.post("/logout")
def sign_out() -> Response:
    check_csrf()
    response = redirect(url_for("ops.login"), code=303)
    response.delete_cookie(COOKIE, path="/ops")
    return response


def _next() -> str:
    """Where to go once signed in: a console page, never another site."""
    target = request.values.get("next", "")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ops/") or target.startswith("//"):
        return url_for("ops.dead_letters_page")
    return target
