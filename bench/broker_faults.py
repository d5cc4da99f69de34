"""Broker outages a chaos run causes, each bounded in time and limited to the run's own vhost or
database where the broker allows it."""

from __future__ import annotations

import subprocess
import time

import redis

from bench.chaos_report import Run

BROKER_OUTAGE_S = 3.0


def restart_rabbitmq(run_log: Run) -> None:
    """Stop and start the shared RabbitMQ application: every connection drops for a few seconds."""
    run_log.note("rabbitmqctl stop_app")
    try:
        rabbitmqctl("stop_app")
        time.sleep(BROKER_OUTAGE_S)
    finally:
        run_log.note("rabbitmqctl start_app")
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")


def rabbitmqctl(command: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", command], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {command} failed: {done.stderr.strip()}")


def cut_redis_clients(broker_url: str, run_log: Run) -> None:
    """Kill every connection to our Redis database, again and again for a few seconds.

    Only connections that selected our database are killed, so other users of the shared Redis
    are left alone (CLIENT KILL TYPE normal and DEBUG SLEEP would hit them too).
    """
    db = broker_url.rsplit("/", 1)[1]
    admin = redis.Redis.from_url(broker_url.rsplit("/", 1)[0] + "/0")
    killed = 0
    deadline = time.monotonic() + BROKER_OUTAGE_S
    try:
        while time.monotonic() < deadline:
            for client in admin.client_list():
                if str(client.get("db")) == db:
                    killed += admin.client_kill_filter(_id=client["id"])
            time.sleep(0.1)
    finally:
        admin.close()
    run_log.note(f"killed {killed} Redis connections to db {db} over {BROKER_OUTAGE_S:.0f} s")
