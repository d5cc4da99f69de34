"""The lease a claim holds, renewed while the handler runs, so that the job row (not a broker
timer) says who runs a job: a live lease keeps other deliveries away, a lapsed one lets the relay
send the job again. Renewal also notices a cancellation and a claim another delivery took over.

Each pool process keeps one renewing thread, started with its first job; a job only tells it
what it holds, so a short job costs no thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs import service

log = logging.getLogger(__name__)

# A job's first renewal comes within two of these intervals; one failed renewal still leaves time.
RENEWALS_PER_LEASE = 4


@dataclass
class Held:
    """One job's claim, as the renewing thread sees it."""

    job_id: uuid.UUID
    token: str
    lost: threading.Event = field(default_factory=threading.Event)
    cancel_asked: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        """Whether the handler should stop: its job was cancelled, or its claim taken over."""
        return self.lost.is_set() or self.cancel_asked.is_set()


class Heartbeat:
    def __init__(self, sessions: sessionmaker[Session], lease: timedelta):
        self.sessions, self.lease = sessions, lease
        self.held: Held | None = None
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @contextmanager
    def hold(self, job_id: uuid.UUID, token: str) -> Iterator[Held]:
        """Renew the claim's lease for as long as the block runs."""
        held = Held(job_id, token)
        with self.lock:
            self.held = held
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._renew_forever, name="lease", daemon=True)
                self.thread.start()
        try:
            yield held
        finally:
            with self.lock:
                self.held = None

    def _renew_forever(self) -> None:
        interval = self.lease.total_seconds() / RENEWALS_PER_LEASE
        waited: Held | None = None
        while True:
            time.sleep(interval)
            with self.lock:
                held = self.held
            # Only a job held for a whole interval is renewed: its claim's lease was set when it began.
            if held is not None and held is waited:
                self._renew(held)
            waited = held

    def _renew(self, held: Held) -> None:
        try:
            with self.sessions.begin() as session:
                renewed = service.renew_lease(session, held.job_id, held.token, self.lease)
        except Exception as exc:
            log.warning("Could not renew the lease of job %s (%s); trying again.", held.job_id, exc)
            return
        if renewed is None:
            log.warning("Job %s lost its claim while running; its handler is asked to stop.", held.job_id)
            held.lost.set()
        elif renewed:
            held.cancel_asked.set()
