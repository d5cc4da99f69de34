"""Throughput of Conveyor against plain Celery on RabbitMQ and Redis; see bench/README.md.

For each broker, against a fresh PostgreSQL database: (a) plain Celery apps publish no-op tasks
that a plain ``celery worker`` drains, like for like with Conveyor's broker setup and with
Celery's defaults; (b) HTTP clients submit ``echo`` jobs to the API, one a request and 100 a
``POST /v1/jobs/batch``, which the Conveyor worker runs; (c) the same worker drains jobs written
and published in-process, which separates the worker's cost from the API's. Each row runs
``--runs`` times; it prints medians, ratios to both baselines, where the CPU went, and whether
the issue's targets were met. It always exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (`python bench/throughput.py`), so the repository root is not importable yet.
sys.path.insert(0, str(ROOT))

from bench.harness import BROKER_URLS, bench_backend, load_average  # noqa: E402
from bench.report import API, BULK, DEFAULTS, DIRECT, RAW, BrokerResults, print_table, print_verdict  # noqa: E402
from bench.throughput_phases import conveyor_processes, run_api, run_direct, run_raw  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs (and raw tasks) per broker")
    parser.add_argument("--brokers", default="rabbitmq,redis", help="comma-separated: rabbitmq, redis")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker pool size (both sides)")
    parser.add_argument("--client-procs", type=int, default=4, help="HTTP client processes")
    parser.add_argument("--client-threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a phase to drain")
    parser.add_argument("--runs", type=int, default=3, help="runs of each row; the table shows medians")
    parser.add_argument("--batch", type=int, default=100, help="jobs a POST /v1/jobs/batch in the bulk row")
    parser.add_argument("--rabbitmq-url", default=BROKER_URLS["rabbitmq"], help="a dedicated vhost is safer")
    parser.add_argument("--redis-url", default=BROKER_URLS["redis"], help="a database only the bench uses")
    parser.add_argument(
        "--task-events",
        choices=("on-demand", "always", "off"),
        default="on-demand",
        help="CONVEYOR_TASK_EVENTS of Conveyor's worker (always: what Flower's users run)",
    )
    parser.add_argument(
        "--profile", type=Path, help="write py-spy raw profiles of API, worker and relay here"
    )
    args = parser.parse_args()
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    unknown = set(args.brokers) - set(BROKER_URLS)
    if unknown:
        parser.error(f"unknown brokers {', '.join(sorted(unknown))}; choose from {', '.join(BROKER_URLS)}")
    args.broker_urls = {"rabbitmq": args.rabbitmq_url, "redis": args.redis_url}
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    print(
        f"{args.jobs} jobs per row and run, {args.runs} runs; worker -c {args.concurrency}, task events {args.task_events}; {args.api_workers} API workers;"
    )
    print(
        f"clients: {args.client_procs} processes x {args.client_threads} threads (bulk: 2 x 2, {args.batch} a request); {os.cpu_count()} CPUs."
    )
    results: dict[str, BrokerResults] = {}
    for broker in args.brokers:
        results[broker] = run_broker(broker, args)
        print_table(broker, results[broker])
    print_verdict(results)
    return 0


def run_broker(broker: str, args: argparse.Namespace) -> BrokerResults:
    """Every run of the raw baselines first, then of Conveyor's rows: the two never share the
    machine, and run i of a row is paired with run i of its baseline."""
    results = BrokerResults()
    try:
        with bench_backend(broker, args.broker_urls[broker]) as backend:
            for run in range(1, args.runs + 1):
                for row, defaults in ((RAW, False), (DEFAULTS, True)):
                    phase(broker, f"{row}, run {run}")
                    results.runs[row].append(run_raw(backend, args, defaults=defaults))
            with conveyor_processes(backend, args) as conveyor:
                for run in range(1, args.runs + 1):
                    for row, batch in ((API, 1), (BULK, args.batch)):
                        phase(broker, f"{row}, run {run}")
                        results.runs[row].append(run_api(backend, args, conveyor, batch, row.split(", ")[-1]))
                    phase(broker, f"{DIRECT}, run {run}")
                    results.runs[DIRECT].append(run_direct(backend, args, conveyor))
    except Exception as exc:  # e.g. the broker restarted under us: keep what was measured, go on
        print(f"[{broker}] could not finish: {type(exc).__name__}: {exc}", flush=True)
    return results


def phase(broker: str, name: str) -> None:
    print(f"\n[{broker}] {name} (load average {load_average()})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
