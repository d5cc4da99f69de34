"""``conveyor relay``: the outbox relay and the dead-letter indexer, side by side until a signal."""

from __future__ import annotations

import signal
import threading

from sqlalchemy.orm import Session, sessionmaker

from jobs.observability.metrics import serve_metrics
from jobs.relay.indexer import run_indexer
from jobs.relay.outbox import run_relay
from jobs.settings import Settings


def run(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Run both until SIGINT or SIGTERM; each finishes its pass before the process exits."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve_metrics(settings, sessions)
    indexer = threading.Thread(target=run_indexer, args=(settings, sessions, stop), name="indexer")
    indexer.start()
    run_relay(settings, sessions, stop)
    indexer.join()
