"""API tokens: shown once at creation, stored only as a SHA-256 hash, each with scopes, and
revocable; one may be made to expire."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from jobs.errors import ConflictError, InvalidInputError, InvalidScopeError, TokenNotFoundError
from jobs.models import ApiToken, utcnow

SCOPES = ("jobs:write", "jobs:read", "ops", "admin")
TOKEN_PREFIX = "cvr_"
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


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


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h`` or ``30d``."""
    match = re.fullmatch(r"(\d{1,6})([mhd])", text.strip())
    if match is None or int(match[1]) == 0:
        raise InvalidInputError(f"{text!r} is not a duration: write a number and m, h or d (90m, 12h, 30d).")
    return timedelta(**{DURATION_UNITS[match[2]]: int(match[1])})


def create_token(session: Session, name: str, scopes: list[str], expires_in: timedelta | None = None) -> str:
    """Store a new token and return its plain text, which is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + expires_in if expires_in else None
    row = ApiToken(name=name, token_hash=hash_token(token), scopes=",".join(scopes), expires_at=expires_at)
    session.add(row)
    return token


def authenticate(session: Session, token: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token), _live()))


def live_named(session: Session, name: str) -> list[uuid.UUID]:
    """The ids of the tokens of this name that still authenticate (names need not be unique)."""
    return list(session.scalars(select(ApiToken.id).where(ApiToken.name == name, _live())))


def _live() -> ColumnElement[bool]:
    """Neither revoked nor expired: what authenticates."""
    now = utcnow()
    return ApiToken.revoked_at.is_(None) & (ApiToken.expires_at.is_(None) | (ApiToken.expires_at > now))


def has_scope(token: ApiToken, scope: str) -> bool:
    granted = token.scopes.split(",")
    return scope in granted or "admin" in granted


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def get(session: Session, token_id: uuid.UUID) -> ApiToken:
    found = session.get(ApiToken, token_id)
    if found is None:
        raise TokenNotFoundError(f"No token with id {token_id}.")
    return found


def revoke(session: Session, token_id: uuid.UUID) -> ApiToken:
    """Refuse the token from now on (each API process may accept it for its cache's few seconds)."""
    token = get(session, token_id)
    if token.revoked_at is not None:
        raise ConflictError(
            f"Token {token_id} was already revoked at {token.revoked_at:%Y-%m-%d %H:%M:%S} UTC."
        )
    token.revoked_at = utcnow()
    return token
