"""Rate limits per token on job submission and the bulk endpoints (`limits`, the engine of
flask-limiter, used directly: the limit depends on the token, known only once `require` has
authenticated it, and a refusal must be the API's own 429).

`CONVEYOR_RATE_LIMITS` names the limits, most particular first: `token:<name>` for one token,
a scope (`jobs:write`, `ops`) for the tokens that have it, `default` for the rest; none set,
nothing is limited. Each token counts apart, per endpoint, in a fixed window. Counts are kept in
Redis/Valkey when the broker is one (or `CONVEYOR_RATE_LIMIT_STORAGE_URL` names one), so every
API process and host shares them; otherwise in memory, per API process. A refused request is a
429 in the one error shape, with `Retry-After` and the IETF `RateLimit` and
`RateLimit-Policy` headers (draft-ietf-httpapi-ratelimit-headers); an allowed one gets both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from api.auth import current_token
from api.errors import abort
from jobs.broker import is_redis
from jobs.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "conveyor_limits"


def register(app: Flask, settings: Settings) -> None:
    if settings.rate_limits:
        app.extensions[EXTENSION] = (
            settings.rate_limits,
            FixedWindowRateLimiter(storage_from_string(storage_url(settings))),
        )
        app.after_request(_headers)


def storage_url(settings: Settings) -> str:
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    return settings.broker_url if is_redis(settings.broker_url) else "memory://"


def limited(scope: str) -> Callable[[F], F]:
    """Count the request against its token's limit; put it under `@require`, which knows the token."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if EXTENSION in current_app.extensions:
                _count(scope)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def chosen(limits: dict[str, str], scope: str) -> tuple[str, str] | None:
    """The policy that applies to this request's token: its own, its endpoint's scope, default."""
    for policy in (f"token:{current_token().name}", scope, "default"):
        if policy in limits:
            return policy, limits[policy]
    return None


def _count(scope: str) -> None:
    limits, limiter = current_app.extensions[EXTENSION]
    found = chosen(limits, scope)
    if found is None:
        return
    policy, value = found
    item, key = parse(value), (str(current_token().id), request.endpoint or "")
    allowed = limiter.hit(item, *key)
    reset, remaining = limiter.get_window_stats(item, *key)
    g.conveyor_rate = (policy, item.amount, item.get_expiry(), remaining, max(0, int(reset - time.time())))
    if not allowed:
        abort(
            429,
            f"Too many requests: this token may send {value} here (policy {policy}); wait for Retry-After.",
        )


def _headers(response: Response) -> Response:
    rate = g.get("conveyor_rate")
    if rate is None:
        return response
    policy, amount, window, remaining, reset = rate
    response.headers["RateLimit-Policy"] = f'"{policy}";q={amount};w={window}'
    response.headers["RateLimit"] = f'"{policy}";r={remaining};t={reset}'
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(1, reset))
    return response
