"""The Redis transport shares one client per channel, still acknowledges what it delivers, and
takes a higher-priority job first."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from kombu import Exchange, Producer, Queue

from jobs.broker.config import connection
from jobs.broker.queues import work_queues
from jobs.broker.redis import Channel
from jobs.settings import load_settings
from tests.services import REDIS_URL, require_services
from tests.support import Backend, submit_and_publish


def test_a_redis_channel_reuses_one_client_until_its_pool_is_replaced() -> None:
    require_services("redis")
    settings = load_settings({"CONVEYOR_BROKER_URL": REDIS_URL})
    name = f"conveyor-test-{uuid.uuid4().hex}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    with connection(settings) as conn:
        channel = conn.channel()
        assert isinstance(channel, Channel)
        bound = queue(channel)
        bound.declare()
        try:
            Producer(channel).publish({"n": 1}, exchange=queue.exchange, routing_key=name)
            message = bound.get(no_ack=False)
            assert message is not None and message.payload == {"n": 1}
            with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
                assert first is second
                assert first.hexists(channel.unacked_key, message.delivery_tag)
            message.ack()
            with channel.conn_or_acquire() as client:
                assert not client.hexists(channel.unacked_key, message.delivery_tag)
            channel._disconnect_pools()
            with channel.conn_or_acquire() as replaced:
                assert replaced is not first
                assert replaced.ping()
        finally:
            bound.delete()


def test_on_redis_a_higher_priority_job_is_taken_first(own_backend: Callable[..., Backend]) -> None:
    backend = own_backend("redis")
    low = submit_and_publish(backend, "echo", {}, no_relay=True, priority=0)
    high = submit_and_publish(backend, "echo", {}, no_relay=True, priority=9)

    default = next(queue for queue in work_queues(backend.settings) if queue.name == "default")
    with connection(backend.settings) as conn:
        bound = default.bind(conn.default_channel)
        taken = [bound.get(no_ack=True).headers["id"] for _ in range(2)]

    assert taken == [f"{high}.1", f"{low}.1"]
