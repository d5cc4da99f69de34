"""Log lines as full sentences, with the process and logger that wrote them."""

from __future__ import annotations

import logging

from jobs.settings import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
