"""The lease a claim holds, renewed while the handler runs, so that the job row (not a broker
timer) says who runs a job: a live lease keeps other deliveries away, a lapsed one lets the relay
send the job again. Renewal also notices a cancellation and a claim another delivery took over."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from jobs import service

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3  # so that two renewals in a row can fail before the lease lapses
STOP_WAIT_S = 5.0


class Heartbeat(threading.Thread):
    def __init__(self, sessions: sessionmaker[Session], job_id: uuid.UUID, token: str, lease: timedelta):
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.sessions, self.job_id, self.token, self.lease = sessions, job_id, token, lease
        self.stopped = threading.Event()
        self.lost = threading.Event()
        self.cancel_asked = threading.Event()

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stopped.set()
        self.join(STOP_WAIT_S)

    def should_stop(self) -> bool:
        """Whether the handler should stop: its job was cancelled, or its claim taken over."""
        return self.lost.is_set() or self.cancel_asked.is_set()

    def run(self) -> None:
        interval = self.lease.total_seconds() / RENEWALS_PER_LEASE
        while not self.stopped.wait(interval):
            try:
                with self.sessions.begin() as session:
                    renewed = service.renew_lease(session, self.job_id, self.token, self.lease)
            except Exception as exc:
                log.warning("Could not renew the lease of job %s (%s); trying again.", self.job_id, exc)
                continue
            if renewed is None:
                log.warning("Job %s lost its claim while running; its handler is asked to stop.", self.job_id)
                self.lost.set()
                return
            if renewed:
                self.cancel_asked.set()
