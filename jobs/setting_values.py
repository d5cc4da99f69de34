"""How each setting's value is read from its variable: each raises ValueError saying what is
wanted, which load_settings turns into a SettingsError naming the variable."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from jobs.errors import InvalidInputError


def positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than zero")
    return number


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be greater than zero")
    return number


def text(value: str) -> str:
    return value


def broker_url_for_kombu(url: str) -> str:
    """kombu has no ``valkey://`` transport (kombu#2245); Valkey speaks the Redis protocol."""
    scheme, sep, rest = url.partition("://")
    mapped = {"valkey": "redis", "valkeys": "rediss"}.get(scheme.lower())
    return f"{mapped}{sep}{rest}" if mapped else url


def address(value: str) -> str:
    """``host:port``, or ``off``."""
    host, _, port = value.rpartition(":")
    if value != "off" and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("must be host:port (a port from 1 to 65535), or off")
    return value


def broker_url(value: str) -> str:
    scheme = urlsplit(value).scheme.lower()
    if scheme not in {"amqp", "pyamqp", "redis", "rediss", "valkey", "valkeys", "filesystem"}:
        raise ValueError("scheme must be amqp, redis, rediss, valkey, valkeys or filesystem")
    return broker_url_for_kombu(value)


def database_url(value: str) -> str:
    scheme = urlsplit(value).scheme.lower()
    if not (scheme.startswith("postgresql") or scheme.startswith("sqlite")):
        raise ValueError("must be a postgresql:// or sqlite:/// URL")
    from sqlalchemy.engine import make_url

    try:
        url = make_url(value)
        url.get_dialect()
        url.port  # noqa: B018 - a port that is not a number fails here, not at the first connection
    except Exception as exc:
        raise ValueError(f"is not a database URL SQLAlchemy can use: {exc}") from None
    return value


def sentry_dsn(value: str) -> str:
    """Checked here: sentry-sdk would stop every process at start with a traceback."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(value)
    except BadDsn as exc:
        raise ValueError(f"is not a Sentry DSN: {exc}") from None
    return value


def storage_url(value: str) -> str:
    from jobs.storage.urls import parse_url

    try:
        return parse_url(value.rstrip("/")).url
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from None


def endpoint_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def folders(value: str) -> tuple[str, ...]:
    folders = tuple(part.rstrip("/") or "/" for part in value.split(":") if part)
    if not all(folder.startswith("/") for folder in folders):
        raise ValueError("must be absolute folders separated by ':'")
    return folders


def time_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as UTC or Europe/Paris") from None
    return value


def database_targets(value: str) -> dict[str, str]:
    """``name=postgresql://...`` pairs separated by ``;`` or white space."""
    targets = {}
    for pair in value.replace(";", " ").split():
        name, equals, url = pair.partition("=")
        if not equals or not name.isidentifier() or not urlsplit(url).scheme.startswith("postgresql"):
            raise ValueError(f"{pair!r} is not name=postgresql://...")
        targets[name] = url
    return targets


def per_queue(value: str) -> dict[str, int]:
    """`500` for every queue, or `ocr=1024,imports=2048` for some; 0 turns the limit off."""
    from jobs.broker.queues import QUEUES

    if _is_count(value):
        return {"*": int(value)}
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        queue, _, number = (side.strip() for side in part.partition("="))
        if queue not in QUEUES or not _is_count(number):
            raise ValueError(f"write N, or queue=N pairs for queues {', '.join(QUEUES)}, not {part!r}")
        limits[queue] = int(number)
    return limits


def _is_count(text: str) -> bool:
    return text.strip().isascii() and text.strip().isdigit()


def one_of(*choices: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return value

    return read


addressing_style = one_of("auto", "path", "virtual")
log_format = one_of("text", "json")
task_events = one_of("always", "on-demand", "off")


def rate_limits(value: str) -> dict[str, str]:
    """``default=600/minute;ops=10/minute;token:etl=50/second``: a policy's name, its limit."""
    from limits import parse

    found = {}
    for entry in filter(None, (part.strip() for part in value.split(";"))):
        name, _, limit = entry.partition("=")
        if not name.strip() or not limit.strip():
            raise ValueError(f"{entry!r} is not name=limit (e.g. default=600/minute)")
        parse(limit.strip())  # raises ValueError naming what it cannot read
        found[name.strip()] = limit.strip()
    return found
