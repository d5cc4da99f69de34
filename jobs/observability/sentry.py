"""Error reporting to Sentry, only when ``CONVEYOR_SENTRY_DSN`` is set."""

from __future__ import annotations

from jobs.settings import Settings


def init_sentry(settings: Settings, component: str) -> None:
    if not settings.sentry_dsn:
        return
    import sentry_sdk

    sentry_sdk.init(dsn=settings.sentry_dsn, server_name=component, send_default_pii=False)
