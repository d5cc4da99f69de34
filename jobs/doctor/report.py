"""A check's outcome, and the report of them all as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
COLOURS = {OK: "green", WARN: "yellow", FAIL: "red", SKIP: "bright_black"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str
    next: str | None = None
    """The command (or step) to run next, for a warn or a fail."""


def guarded(name: str, check: Callable[..., list[Check]], *args: Any) -> list[Check]:
    """The check's findings, or one fail naming what broke it: a doctor never stops half-way."""
    try:
        return check(*args)
    except Exception as exc:
        return [Check(name, FAIL, f"The check itself failed: {type(exc).__name__}: {exc}")]


def failed(checks: list[Check]) -> bool:
    return any(check.status == FAIL for check in checks)


def as_json(checks: list[Check]) -> str:
    return json.dumps({"ok": not failed(checks), "checks": [asdict(check) for check in checks]}, indent=2)


def as_lines(checks: list[Check], style: Callable[..., str]) -> Iterator[str]:
    """One line a check (``style`` is click.style), the next step indented under it, then a tally."""
    width = max(len(check.name) for check in checks)
    for check in checks:
        status = style(f"{check.status:<4}", fg=COLOURS[check.status], bold=check.status == FAIL)
        yield f"{status}  {check.name:<{width}}  {check.message}"
        if check.next and check.status in (WARN, FAIL):
            yield f"      {'':<{width}}  next: {check.next}"
    counts = {status: sum(check.status == status for check in checks) for status in COLOURS}
    yield ", ".join(f"{count} {status}" for status, count in counts.items() if count)
