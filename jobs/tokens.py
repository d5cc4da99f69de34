"""API tokens: shown once at creation, stored only as a SHA-256 hash, each with scopes."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.errors import InvalidScopeError
from jobs.models import ApiToken

SCOPES = ("jobs:write", "jobs:read", "ops", "admin")
TOKEN_PREFIX = "cvr_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidScopeError(
            f"Unknown or missing scopes {', '.join(unknown) or '(none)'}; choose from {', '.join(SCOPES)}."
        )
    return scopes


def create_token(session: Session, name: str, scopes: list[str]) -> str:
    """Store a new token and return its plain text, which is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), scopes=",".join(scopes)))
    return token


def authenticate(session: Session, token: str) -> ApiToken | None:
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if found is None or found.revoked_at is not None:
        return None
    return found


def has_scope(token: ApiToken, scope: str) -> bool:
    granted = token.scopes.split(",")
    return scope in granted or "admin" in granted
