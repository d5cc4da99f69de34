"""Every expression of the Grafana dashboard and of the alert rules names only metrics the code
exports, and the dashboard is provisioned on the stack's Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "conveyor.json"
EXPORTERS = [
    ROOT / "api" / "metrics.py",
    ROOT / "jobs" / "observability" / "metrics.py",
    ROOT / "jobs" / "observability" / "gauges.py",
]
NAME = re.compile(r"\b((?:celery|conveyor)_[a-z_]+)\b")


def exported() -> set[str]:
    """The names the code registers, with the series names Prometheus makes of them."""
    found: set[str] = set()
    for path in EXPORTERS:
        text = path.read_text()
        for kind, name in re.findall(
            r'(Counter|counter|Histogram|gauge|GaugeMetricFamily)\(\s*"([a-z_]+)"', text
        ):
            found.add(name)
            if kind.lower() == "counter":
                found.add(f"{name}_total")
            if kind == "Histogram":
                found.update(f"{name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return found


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return panels + [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_expression_names_a_metric_the_code_exports() -> None:
    names = exported()
    assert {
        "celery_task_succeeded_total",
        "celery_task_runtime_seconds_bucket",
        "celery_queue_length",
    } <= names
    for expression in expressions():
        unknown = set(NAME.findall(expression)) - names
        assert not unknown, f"{expression!r} names {unknown}, which nothing exports"


def test_the_dashboard_covers_what_the_issue_asks_and_is_provisioned() -> None:
    titles = " ".join(panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for subject in ("per second", "latency", "queue length", "waiting", "dead letters", "schedule", "backup"):
        assert subject in titles, subject
    provider = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "conveyor.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
