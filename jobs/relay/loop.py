"""The one retry-and-log loop the relay's duties share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# After a failure, the next try waits this many of the duty's intervals, up to MAX_PAUSE_S.
PAUSE_INTERVALS = 10
MAX_PAUSE_S = 5.0


@dataclass(frozen=True)
class Duty:
    """``step`` does one pass and waits for the next itself; ``name`` and ``verbs`` word the log
    lines (``"Outbox relay"``, ``("publish", "publishing")``)."""

    name: str
    verbs: tuple[str, str]
    step: Callable[[], None]
    interval_s: float


def run_until(stop: threading.Event, duty: Duty) -> None:
    """Run ``duty`` until ``stop`` is set. A failing pass is retried after a pause, and an outage
    is logged once when it starts and once when it ends, not once per try."""
    failing = False
    while not stop.is_set():
        try:
            duty.step()
        except Exception as exc:
            if not failing:
                log.warning("%s cannot %s yet (%s); will keep trying.", duty.name, duty.verbs[0], exc)
            failing = True
            stop.wait(min(MAX_PAUSE_S, duty.interval_s * PAUSE_INTERVALS))
            continue
        if failing:
            log.info("%s is %s again.", duty.name, duty.verbs[1])
            failing = False
