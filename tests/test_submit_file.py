"""``conveyor submit --from-file``: a JSON Lines file in batches of one transaction each; a bad
line stops the run naming it and the line to take up from, or is skipped when asked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select

from jobs.models import Job
from tests.support import Backend, conveyor


def write_lines(path: Path, lines: Sequence[object]) -> str:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def payloads(backend: Backend) -> list[int]:
    with backend.sessions() as session:
        return sorted(job.payload["n"] for job in session.scalars(select(Job).where(Job.type == "echo")))


def test_a_file_is_submitted_in_batches_and_a_bad_line_stops_it_where_it_can_resume(
    embedded: Backend, tmp_path: Path
) -> None:
    lines: list[object] = [{"type": "echo", "payload": {"n": n}} for n in range(7)]
    lines[5] = '{"type": "echo", "payload": {"n": 5}'  # cut short
    path = write_lines(tmp_path / "jobs.jsonl", [*lines[:3], "", *lines[3:]])

    stopped = conveyor(embedded, "submit", "--from-file", path, "--batch-size", "2")

    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert "line 7 is not a job" in stopped.stderr and "--from-line 6" in stopped.stderr, stopped.stderr
    assert payloads(embedded) == [0, 1, 2, 3]  # the batch of lines 6 and 7 went in whole or not at all
    (tmp_path / "fixed.jsonl").write_text(Path(path).read_text().replace('{"n": 5}', '{"n": 5}}'))
    resumed = conveyor(embedded, "submit", "--from-file", str(tmp_path / "fixed.jsonl"), "--from-line", "6")
    assert resumed.returncode == 0, resumed.stderr
    assert payloads(embedded) == list(range(7)) and "Submitted 3 jobs" in resumed.stdout


def test_invalid_lines_can_be_skipped_and_keys_need_a_token(embedded: Backend, tmp_path: Path) -> None:
    lines = [{"type": "echo", "payload": {"n": 1}}, {"type": "nope"}, {"type": "echo", "payload": {"n": 2}}]
    path = write_lines(
        tmp_path / "jobs.jsonl", [*lines, {"type": "echo", "payload": {"n": 3}, "idempotency_key": "k"}]
    )

    done = conveyor(embedded, "submit", "--from-file", path, "--skip-invalid")

    assert done.returncode == 0 and "skipped line 2" in done.stderr and "skipped line 4" in done.stderr
    assert "--as" in done.stderr and payloads(embedded) == [1, 2]
    missing = conveyor(embedded, "submit", "--from-file", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_with_a_tokens_keys_a_rerun_submits_nothing_twice(embedded: Backend, tmp_path: Path) -> None:
    embedded.token("jobs:write")  # named "test"
    keyed = [{"type": "echo", "payload": {"n": n}, "idempotency_key": f"line-{n}"} for n in range(3)]
    path = write_lines(tmp_path / "jobs.jsonl", keyed)

    first = conveyor(embedded, "submit", "--from-file", path, "--as", "test")
    again = conveyor(embedded, "submit", "--from-file", path, "--as", "test")

    assert first.returncode == again.returncode == 0, again.stderr
    assert "Submitted 3 jobs" in first.stdout and "Submitted 0 jobs" in again.stdout
    with embedded.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 3
    unknown = conveyor(embedded, "submit", "--from-file", path, "--as", "nobody")
    assert unknown.returncode == 2 and "nobody" in unknown.stderr
