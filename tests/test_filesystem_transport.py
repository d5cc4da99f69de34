"""The embedded broker never shows a consumer a message file that is still being written."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

from kombu import Exchange, Queue

from jobs.broker.config import connection, ensure_broker_dirs, transport_options
from jobs.broker.filesystem import prune_abandoned_queues
from jobs.settings import load_settings


def test_a_reader_racing_the_writer_only_ever_sees_whole_messages(tmp_path: Path) -> None:
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)})
    ensure_broker_dirs(settings)
    folder = Path(transport_options(settings)["data_folder_in"])
    big = {"blob": "x" * 2_000_000}
    torn: list[str] = []
    seen: set[str] = set()
    done = threading.Event()

    def read_every_file_seen() -> None:
        while not done.is_set():
            for path in folder.glob("*.msg"):
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                seen.add(path.name)
                try:
                    json.loads(text)
                except ValueError:
                    torn.append(path.name)

    reader = threading.Thread(target=read_every_file_seen)
    reader.start()
    with connection(settings) as conn:
        channel = conn.channel()
        for _ in range(20):
            channel._put("default", big)
    done.set()
    reader.join(timeout=30)

    assert seen, "the reader never saw a message file"
    assert torn == []


def test_event_queues_nobody_consumes_are_pruned_and_work_queues_are_kept(tmp_path: Path) -> None:
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)})
    ensure_broker_dirs(settings)
    options = transport_options(settings)
    messages, control = Path(options["data_folder_in"]), Path(options["control_folder"])
    with connection(settings) as conn:
        channel = conn.channel()
        for queue, exchange in (("celeryev.gone", Exchange("celeryev", type="topic")), ("default", None)):
            Queue(queue, exchange or Exchange("default", type="direct"), routing_key="#").bind(
                channel
            ).declare()
            channel._put(queue, {"body": queue})
    an_hour_ago = time.time() - 3600
    for path in messages.glob("*.msg"):
        os.utime(path, (an_hour_ago, an_hour_ago))

    assert prune_abandoned_queues(messages, control) == 1

    assert [p.name.split(".", 1)[1] for p in messages.glob("*.msg")] == ["default.msg"]
    assert "celeryev.gone" not in (control / "celeryev.exchange").read_text()
    assert "default" in (control / "default.exchange").read_text()


def bind_reply_queues(data_dir: str, exchange: str, names: list[str]) -> None:
    settings = load_settings({"CONVEYOR_DATA_DIR": data_dir})
    with connection(settings) as conn:
        channel = conn.channel()
        for name in names:
            Queue(name, Exchange(exchange, type="direct"), routing_key=name).bind(channel).declare()


def test_processes_binding_to_a_new_exchange_at_once_leave_every_binding_readable(tmp_path: Path) -> None:
    """Flower's parallel inspect calls bind their reply queues to one new exchange together."""
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)})
    ensure_broker_dirs(settings)
    control = Path(transport_options(settings)["control_folder"])
    ctx = multiprocessing.get_context("fork")
    for round_ in range(40):
        exchange = f"reply-{round_}"
        names = [[f"q{round_}-{p}-{n}" for n in range(3)] for p in range(6)]
        processes = [ctx.Process(target=bind_reply_queues, args=(str(tmp_path), exchange, n)) for n in names]
        for process in processes:
            process.start()
        for process in processes:
            process.join(30)
        table = json.loads((control / f"{exchange}.exchange").read_text())
        assert sorted(entry[2] for entry in table) == sorted(q for group in names for q in group)
