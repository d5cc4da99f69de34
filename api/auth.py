"""Bearer-token authentication and scope checks for the resource blueprints."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from api.errors import abort
from api.runtime import runtime
from jobs import tokens
from jobs.models import ApiToken

F = TypeVar("F", bound=Callable[..., Any])
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def current_token() -> ApiToken:
    token: ApiToken = g.conveyor_token
    return token


def actor() -> str:
    """Who the audit log names for this request."""
    token = current_token()
    return f"token:{token.name}:{token.id}"


def check_scope(scope: str) -> None:
    """Refuse (403) a request whose token lacks `scope`, beyond the one its endpoint needs."""
    if not tokens.has_scope(current_token(), scope):
        abort(403, f"This token lacks the {scope!r} scope.")


def require(scope: str) -> Callable[[F], F]:
    """Reject the request with 401 without a valid token, 403 without `scope`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.conveyor_token = _authenticate()
            check_scope(scope)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _authenticate() -> ApiToken:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        abort(401, "Send 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"})
    found = runtime().tokens.authenticate(value.strip())
    if found is None:
        abort(401, "The bearer token is not valid.", headers={"WWW-Authenticate": "Bearer"})
    return found
