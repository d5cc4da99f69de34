"""The Celery app factory; ``celery -A workers.app worker`` finds the module-level ``app``."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from jobs.broker.config import celery_config
from jobs.broker.queues import dead_letter_queues
from jobs.catalogue import JOB_TYPES
from jobs.doctor import problems
from jobs.errors import SettingsError
from jobs.observability import start_process
from jobs.settings import Settings
from tasks import HANDLERS
from workers import events
from workers.base import JobTask
from workers.runtime import Runtime
from workers.startup import settle_at_start
from workers.termination import end_at_once_while_a_job_runs


def make_celery(settings: Settings) -> Celery:
    refused = problems(settings)
    if refused:
        raise SettingsError("Refusing to start a worker: " + " ".join(refused))
    app = Celery("conveyor", set_as_current=False)
    app.config_from_object(celery_config(settings, confirm_publish=False))
    app.conf.worker_consumer = "workers.consumer:DeadLetteringConsumer"
    runtime = Runtime(settings)
    for job_type in JOB_TYPES.values():
        attrs = {
            "name": job_type.task_name,
            "runtime": runtime,
            "handler": staticmethod(HANDLERS[job_type.name]),
            "job_type": job_type.name,
            "time_limit": settings.task_time_limit_s,
        }
        app.register_task(type(f"{job_type.name.title()}Task", (JobTask,), attrs)())
    _declare_dead_letter_queues_on_start(app, settings)
    signals.worker_process_init.connect(lambda **_: runtime.after_fork(), weak=False)
    end_at_once_while_a_job_runs()
    events.register()
    settle_at_start(app, settings)
    return app


def _declare_dead_letter_queues_on_start(app: Celery, settings: Settings) -> None:
    """The work queues hand poison messages to these; without them RabbitMQ would drop them."""

    def declare(sender: Any = None, **_: Any) -> None:
        with app.connection_for_write() as connection:
            for queue in dead_letter_queues(settings):
                queue.bind(connection.default_channel).declare()

    signals.worker_ready.connect(declare, weak=False)


app = make_celery(start_process("worker"))
