"""Rate limits per token on job submission and the bulk endpoints (flask-limiter).

``CONVEYOR_RATE_LIMITS`` names the limits, most particular first: ``token:<name>`` for one token,
a scope (``jobs:write``, ``ops``) for the tokens that have it, ``default`` for the rest; none set,
nothing is limited. Each token counts apart, per endpoint. Counts are kept in Redis/Valkey when
the broker is one (or ``CONVEYOR_RATE_LIMIT_STORAGE_URL`` names one), so every API process and
host shares them; otherwise in memory, per API process. A refused request is a 429 in the one error
shape, with ``Retry-After`` and the IETF ``RateLimit`` and ``RateLimit-Policy`` headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, g
from flask_limiter import Limiter

from api.auth import authenticated
from jobs.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
LIMITER = Limiter(key_func=lambda: str(authenticated().id), strategy="fixed-window", headers_enabled=False)


def register(app: Flask, settings: Settings) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = storage_url(settings)
    app.config["RATELIMIT_ENABLED"] = bool(settings.rate_limits)
    app.config["CONVEYOR_RATE_LIMITS"] = settings.rate_limits
    LIMITER.init_app(app)
    app.after_request(_headers)


def storage_url(settings: Settings) -> str:
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    return settings.broker_url if settings.broker_url.startswith(("redis", "rediss")) else "memory://"


def limited(scope: str) -> Callable[[F], F]:
    """Limit a view whose token ``require`` has checked (put it under ``@require``)."""

    def decide() -> str:
        policy, value = chosen(scope)
        g.conveyor_rate_policy = policy
        return value

    def refusal() -> str:
        policy, value = chosen(scope)
        return f"Too many requests: this token may send {value} here (policy {policy}); wait for Retry-After."

    return LIMITER.limit(decide, error_message=refusal)  # type: ignore[return-value]


def chosen(scope: str) -> tuple[str, str]:
    """The policy that applies to this request's token: its own, its endpoint's scope, default."""
    limits, token = _limits(), authenticated()
    for policy in (f"token:{token.name}", scope, "default"):
        if policy in limits:
            return policy, limits[policy]
    return "none", "1000000/second"


def _limits() -> dict[str, str]:
    from flask import current_app

    limits: dict[str, str] = current_app.config["CONVEYOR_RATE_LIMITS"]
    return limits


def _headers(response: Response) -> Response:
    """IETF RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers), and
    Retry-After on a 429."""
    current = LIMITER.current_limit
    policy = g.get("conveyor_rate_policy")
    if current is None or policy is None:
        return response
    window = current.limit.get_expiry()
    reset = max(0, int(current.reset_at - time.time()))
    response.headers["RateLimit-Policy"] = f'"{policy}";q={current.limit.amount};w={window}'
    response.headers["RateLimit"] = f'"{policy}";r={current.remaining};t={reset}'
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(1, reset))
    return response
