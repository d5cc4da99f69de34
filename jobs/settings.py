"""One settings object, parsed once from ``CONVEYOR_*`` environment variables.

Every variable is listed in README.md. Bad values fail fast with a message naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from jobs import setting_values as read
from jobs.errors import SettingsError


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    default_max_attempts: int = 5
    retry_backoff_ms: int = 1000
    retry_backoff_max_ms: int = 300_000
    idempotency_ttl_hours: float = 24.0
    max_body_bytes: int = 1_048_576
    max_batch: int = 1000
    relay_interval_ms: int = 200
    visibility_timeout_s: int = 60
    lease_s: int = 30
    delivery_limit: int = 5
    task_time_limit_s: int = 3600
    dead_letter_retention_days: int = 30
    republish_after_s: int = 1800
    worker_concurrency: int = 2
    worker_prefetch: int = 4
    worker_max_tasks_per_child: dict[str, int] = field(default_factory=dict)
    """Overrides of the per-queue defaults (workers/recycling.py); "*" is every queue; 0: none."""
    worker_max_memory_mb: dict[str, int] = field(default_factory=dict)
    task_events: str = "on-demand"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_port: int | None = None
    relay_metrics_address: str = "127.0.0.1:9808"
    rate_limits: dict[str, str] = field(default_factory=dict)
    rate_limit_storage_url: str = ""
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_basic_auth: str = ""
    log_level: str = "INFO"
    log_format: str = "text"
    sentry_dsn: str = ""
    sentry_environment: str = "production"
    sentry_release: str = ""
    """Empty: ``conveyor@<installed version>``."""
    storage_url: str = ""
    file_roots: tuple[str, ...] = ()
    max_upload_bytes: int = 1024**3
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_addressing_style: str = "auto"
    offsite_sync_url: str = ""
    beat_timezone: str = "UTC"
    beat_lock_interval_s: float = 5.0
    schedules: Mapping[str, str] = field(default_factory=dict)
    """Each ``CONVEYOR_SCHEDULE_<NAME>``: a cron line, ``@every <n>s|m|h`` or ``off``."""
    backup_url: str = ""
    backup_targets: Mapping[str, str] = field(default_factory=dict)
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
    backup_keep_monthly: int = 6
    restore_drill_url: str = ""
    pg_bin_dir: str = ""
    ocr_fanout_pages: int = 4
    ocr_page_timeout_s: int = 300
    ocr_max_pixels: int = 100_000_000
    ocr_max_pages: int = 5000
    import_targets: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def has_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")


def ensure_data_dir(settings: Settings) -> Path:
    """Make the data folder if it is missing, readable by this user only: it holds the embedded
    database, the broker's messages and the dev credentials."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return settings.data_dir


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file only this user can read, from the moment it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "data_dir": ("CONVEYOR_DATA_DIR", Path),
    "database_url": ("CONVEYOR_DATABASE_URL", read.database_url),
    "broker_url": ("CONVEYOR_BROKER_URL", read.broker_url),
    "default_max_attempts": ("CONVEYOR_DEFAULT_MAX_ATTEMPTS", read.positive_int),
    "retry_backoff_ms": ("CONVEYOR_RETRY_BACKOFF_MS", read.positive_int),
    "retry_backoff_max_ms": ("CONVEYOR_RETRY_BACKOFF_MAX_MS", read.positive_int),
    "idempotency_ttl_hours": ("CONVEYOR_IDEMPOTENCY_TTL_HOURS", read.positive_float),
    "max_body_bytes": ("CONVEYOR_MAX_BODY_BYTES", read.positive_int),
    "max_batch": ("CONVEYOR_MAX_BATCH", read.positive_int),
    "relay_interval_ms": ("CONVEYOR_RELAY_INTERVAL_MS", read.positive_int),
    "visibility_timeout_s": ("CONVEYOR_VISIBILITY_TIMEOUT_S", read.positive_int),
    "lease_s": ("CONVEYOR_LEASE_S", read.positive_int),
    "delivery_limit": ("CONVEYOR_DELIVERY_LIMIT", read.positive_int),
    "task_time_limit_s": ("CONVEYOR_TASK_TIME_LIMIT_S", read.positive_int),
    "dead_letter_retention_days": ("CONVEYOR_DEAD_LETTER_RETENTION_DAYS", read.positive_int),
    "republish_after_s": ("CONVEYOR_REPUBLISH_AFTER_S", read.positive_int),
    "worker_concurrency": ("CONVEYOR_WORKER_CONCURRENCY", read.positive_int),
    "worker_prefetch": ("CONVEYOR_WORKER_PREFETCH", read.positive_int),
    "worker_max_tasks_per_child": ("CONVEYOR_WORKER_MAX_TASKS_PER_CHILD", read.per_queue),
    "worker_max_memory_mb": ("CONVEYOR_WORKER_MAX_MEMORY_MB", read.per_queue),
    "task_events": ("CONVEYOR_TASK_EVENTS", read.task_events),
    "api_host": ("CONVEYOR_API_HOST", read.text),
    "api_port": ("CONVEYOR_API_PORT", read.positive_int),
    "metrics_port": ("CONVEYOR_METRICS_PORT", read.positive_int),
    "relay_metrics_address": ("CONVEYOR_RELAY_METRICS_ADDRESS", read.address),
    "rate_limits": ("CONVEYOR_RATE_LIMITS", read.rate_limits),
    "rate_limit_storage_url": ("CONVEYOR_RATE_LIMIT_STORAGE_URL", read.text),
    "flower_host": ("CONVEYOR_FLOWER_HOST", read.text),
    "flower_port": ("CONVEYOR_FLOWER_PORT", read.positive_int),
    "flower_basic_auth": ("CONVEYOR_FLOWER_BASIC_AUTH", read.text),
    "log_level": ("CONVEYOR_LOG_LEVEL", str.upper),
    "log_format": ("CONVEYOR_LOG_FORMAT", read.log_format),
    "sentry_dsn": ("CONVEYOR_SENTRY_DSN", read.sentry_dsn),
    "sentry_environment": ("CONVEYOR_SENTRY_ENVIRONMENT", read.text),
    "sentry_release": ("CONVEYOR_SENTRY_RELEASE", read.text),
    "storage_url": ("CONVEYOR_STORAGE_URL", read.storage_url),
    "file_roots": ("CONVEYOR_FILE_ROOTS", read.folders),
    "max_upload_bytes": ("CONVEYOR_MAX_UPLOAD_BYTES", read.positive_int),
    "s3_endpoint_url": ("CONVEYOR_S3_ENDPOINT_URL", read.endpoint_url),
    "s3_region": ("CONVEYOR_S3_REGION", read.text),
    "s3_addressing_style": ("CONVEYOR_S3_ADDRESSING_STYLE", read.addressing_style),
    "offsite_sync_url": ("CONVEYOR_OFFSITE_SYNC_URL", read.storage_url),
    "beat_timezone": ("CONVEYOR_BEAT_TIMEZONE", read.time_zone),
    "beat_lock_interval_s": ("CONVEYOR_BEAT_LOCK_INTERVAL_S", read.positive_float),
    "backup_url": ("CONVEYOR_BACKUP_URL", read.storage_url),
    "backup_targets": ("CONVEYOR_BACKUP_TARGETS", read.database_targets),
    "backup_keep_daily": ("CONVEYOR_BACKUP_KEEP_DAILY", read.positive_int),
    "backup_keep_weekly": ("CONVEYOR_BACKUP_KEEP_WEEKLY", read.positive_int),
    "backup_keep_monthly": ("CONVEYOR_BACKUP_KEEP_MONTHLY", read.positive_int),
    "restore_drill_url": ("CONVEYOR_RESTORE_DRILL_URL", read.database_url),
    "pg_bin_dir": ("CONVEYOR_PG_BIN_DIR", read.text),
    "ocr_fanout_pages": ("CONVEYOR_OCR_FANOUT_PAGES", read.positive_int),
    "ocr_page_timeout_s": ("CONVEYOR_OCR_PAGE_TIMEOUT_S", read.positive_int),
    "ocr_max_pixels": ("CONVEYOR_OCR_MAX_PIXELS", read.positive_int),
    "ocr_max_pages": ("CONVEYOR_OCR_MAX_PAGES", read.positive_int),
    "import_targets": ("CONVEYOR_IMPORT_TARGETS", read.database_targets),
}
SCHEDULE_PREFIX = "CONVEYOR_SCHEDULE_"
URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
"""``user:password@`` in any URL: the password is group 1's end to the ``@``."""
# Passwords kept apart from their URLs: a secret needs no URL escaping, and a compose file builds
# the URL without it (compose v1 cannot nest one variable in another's default).
_PASSWORDS = {"database_url": "CONVEYOR_DATABASE_PASSWORD", "broker_url": "CONVEYOR_BROKER_PASSWORD"}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in fields(Settings):
        if setting.name not in _ENV:
            continue
        name, parse = _ENV[setting.name]
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            values[setting.name] = parse(raw)
        except ValueError as exc:
            shown = URL_PASSWORD.sub(r"\1***@", raw)  # a URL's password stays off the screen
            raise SettingsError(f"{name}={shown!r} is not valid: {exc}") from None
    data_dir = Path(values.get("data_dir", Settings.data_dir)).resolve()
    values["data_dir"] = data_dir
    values.setdefault("database_url", f"sqlite:///{data_dir / 'conveyor.db'}")
    values.setdefault("broker_url", "filesystem://")
    for url, name in _PASSWORDS.items():
        if password := environ.get(name, ""):
            values[url] = _with_password(values[url], password, name)
    values.setdefault("storage_url", f"file://{data_dir / 'storage'}")
    values.setdefault("file_roots", (str(data_dir / "storage"),))
    values.setdefault("backup_url", values["storage_url"] + "/backups")
    values["schedules"] = _schedules(environ)
    return Settings(**values)


def _with_password(url: str, password: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("sqlite", "filesystem"):
        raise SettingsError(f"{name} is set, but {parts.scheme}:// takes no password.")
    if parts.password is not None:
        raise SettingsError(f"{name} is set and its URL holds a password too: keep it in one of them.")
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def _schedules(environ: Mapping[str, str]) -> dict[str, str]:
    """``CONVEYOR_SCHEDULE_OFFSITE_SYNC=off`` -> ``{"offsite-sync": "off"}``; checked against
    the schedule's entries and the cron grammar by ``jobs.scheduler``, which owns both."""
    from jobs.scheduler.entries import check_overrides

    found = {
        name.removeprefix(SCHEDULE_PREFIX).lower().replace("_", "-"): value.strip()
        for name, value in environ.items()
        if name.startswith(SCHEDULE_PREFIX) and value.strip()
    }
    check_overrides(found)
    return found
