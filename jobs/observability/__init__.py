"""Logging and error reporting, and the one start-up sequence every long-running process runs."""

from __future__ import annotations

from jobs.observability.logs import configure_logging
from jobs.observability.sentry import init_sentry
from jobs.settings import Settings, ensure_data_dir, load_settings

__all__ = ["configure_logging", "init_sentry", "start_process"]


def start_process(component: str, settings: Settings | None = None) -> Settings:
    """Read the settings (unless given), then set up logging and Sentry for ``component``."""
    settings = settings or load_settings()
    ensure_data_dir(settings)
    configure_logging(settings)
    init_sentry(settings, component)
    return settings
