"""Checks of the settings alone: timers that contradict each other, Flower's login, and
credentials that ship as defaults somewhere (RabbitMQ's guest, a postgres/postgres, MinIO's)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from jobs.doctor.report import FAIL, OK, SKIP, WARN, Check
from jobs.doctor.timers import problems, warnings
from jobs.settings import Settings

DEFAULT_PASSWORDS = frozenset(
    {"guest", "postgres", "password", "conveyor", "admin", "changeme", "secret", "root", "minioadmin", "test"}
)
MIN_FLOWER_PASSWORD = 12
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def settings_checks(settings: Settings) -> list[Check]:
    """Each finding names the settings and what to change."""
    found = [Check("settings", FAIL, text) for text in problems(settings)]
    found += [Check("settings", WARN, text) for text in warnings(settings)]
    return found or [Check("settings", OK, "No setting contradicts another.")]


def flower_auth(settings: Settings) -> list[Check]:
    user, colon, password = settings.flower_basic_auth.partition(":")
    fix = "set CONVEYOR_FLOWER_BASIC_AUTH=user:<password> (`openssl rand -base64 24` makes one)"
    if not settings.flower_basic_auth:  # compose gives it to Flower's container alone
        why = "CONVEYOR_FLOWER_BASIC_AUTH is not set here; run the doctor where Flower runs to check it."
        return [Check("flower-auth", SKIP, why)]
    if not (user and colon and password):
        return [Check("flower-auth", FAIL, "CONVEYOR_FLOWER_BASIC_AUTH is not user:password.", fix)]
    if password.lower() in DEFAULT_PASSWORDS or len(password) < MIN_FLOWER_PASSWORD:
        weak = f"Flower's password is a default or under {MIN_FLOWER_PASSWORD} characters"
        return [Check("flower-auth", FAIL, f"{weak}: anyone who guesses it can stop workers.", fix)]
    return [Check("flower-auth", OK, f"Flower asks for a login (user {user!r}).")]


def default_credentials(settings: Settings) -> list[Check]:
    found = [_url_check(name, url) for name, url in _urls(settings)]
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if secret.lower() in DEFAULT_PASSWORDS:
        found.append(
            Check("credentials", FAIL, "AWS_SECRET_ACCESS_KEY is a well-known default.", _rotate("S3"))
        )
    bad = [check for check in found if check is not None]
    return bad or [Check("credentials", OK, "No well-known default credential is in use.")]


def _urls(settings: Settings) -> list[tuple[str, str]]:
    named = [("CONVEYOR_DATABASE_URL", settings.database_url), ("CONVEYOR_BROKER_URL", settings.broker_url)]
    named += [("CONVEYOR_RATE_LIMIT_STORAGE_URL", settings.rate_limit_storage_url)]
    named += [("CONVEYOR_RESTORE_DRILL_URL", settings.restore_drill_url)]
    named += [(f"CONVEYOR_BACKUP_TARGETS ({name})", url) for name, url in settings.backup_targets.items()]
    named += [(f"CONVEYOR_IMPORT_TARGETS ({name})", url) for name, url in settings.import_targets.items()]
    return [(name, url) for name, url in named if url]


def _url_check(name: str, url: str) -> Check | None:
    parts = urlsplit(url)
    if (parts.password or "").lower() not in DEFAULT_PASSWORDS:
        return None
    # RabbitMQ lets guest in from loopback only: there it is a development machine's broker.
    status = WARN if parts.hostname in LOOPBACK else FAIL
    message = f"{name} logs in as {parts.username!r} with a well-known default password."
    return Check("credentials", status, message, _rotate(name))


def _rotate(what: str) -> str:
    return f"give {what} its own generated password (`openssl rand -base64 24`), as .env.example shows"
