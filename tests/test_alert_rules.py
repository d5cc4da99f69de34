"""The alert rules, checked and unit-tested by promtool (Debian's prometheus package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


@pytest.mark.parametrize("argv", [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]])
def test_promtool_passes_the_alert_rules(argv: list[str]) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `bash .ci/services.sh` installs Debian's prometheus package")
    done = subprocess.run(
        ["promtool", *argv], cwd=RULES, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_test() -> None:
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    tested = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    assert names == tested, names ^ tested
