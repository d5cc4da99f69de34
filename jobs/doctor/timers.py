"""Settings that would break a guarantee, found before a process starts on them.

``problems`` are refused at worker start-up and by ``conveyor doctor``; ``warnings`` are only
printed. Both name the variables and say what would happen.
"""

from __future__ import annotations

from jobs.broker import is_rabbitmq
from jobs.settings import Settings

MIN_LEASE_S = 5
RABBITMQ_CONSUMER_TIMEOUT_S = 1800  # RabbitMQ's default consumer_timeout


def problems(settings: Settings) -> list[str]:
    found = []
    if settings.lease_s < MIN_LEASE_S:
        found.append(
            f"CONVEYOR_LEASE_S={settings.lease_s} is under {MIN_LEASE_S} s: renewed every quarter of it, the lease "
            "would lapse in a short database pause and another worker would take over a running job."
        )
    return found


def warnings(settings: Settings) -> list[str]:
    found = []
    if not is_rabbitmq(settings.broker_url) and settings.visibility_timeout_s < settings.lease_s:
        found.append(
            f"CONVEYOR_VISIBILITY_TIMEOUT_S={settings.visibility_timeout_s} is under CONVEYOR_LEASE_S="
            f"{settings.lease_s}: each running job's message comes back once per timeout (and is skipped)."
        )
    if is_rabbitmq(settings.broker_url) and settings.task_time_limit_s > RABBITMQ_CONSUMER_TIMEOUT_S:
        found.append(
            f"CONVEYOR_TASK_TIME_LIMIT_S={settings.task_time_limit_s} is above RabbitMQ's default consumer_timeout "
            f"({RABBITMQ_CONSUMER_TIMEOUT_S} s): a longer job makes RabbitMQ close its worker's channel and requeue "
            "what it holds. The job still runs once (its lease keeps the copies away), but set consumer_timeout "
            "in rabbitmq.conf above the time limit."
        )
    return found
