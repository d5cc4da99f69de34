"""Bearer-token authentication and scope checks for the resource blueprints."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from api.errors import abort
from api.runtime import runtime
from jobs import tokens
from jobs.catalogue import JOB_TYPES
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


def type_scope_problem(job_type: str | None) -> str | None:
    """Why this request's token may not submit or retry a job of this type, if it may not: the
    type's scope beyond the endpoint's own (the upkeep types `ops`, `restore-backup` `admin`)."""
    needed = JOB_TYPES[job_type].scope if job_type in JOB_TYPES else None
    if needed is None or tokens.has_scope(current_token(), needed):
        return None
    return f"This token lacks the {needed!r} scope {job_type} jobs need."


def check_type_scope(job_type: str | None) -> None:
    problem = type_scope_problem(job_type)
    if problem:
        abort(403, problem)


def check_requeue_scope(job_type: str | None) -> None:
    """A requeue runs the job again as a submission would: beyond `ops`, a type only `admin` may
    submit needs `admin`."""
    if job_type in JOB_TYPES and JOB_TYPES[job_type].scope == "admin":
        check_scope("admin")


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
