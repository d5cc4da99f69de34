"""The ``import`` handler: a file read as a stream, its rows checked against the profile, the
valid ones staged and merged into the target in one transaction, the bad ones written to a CSV
report. Too many bad rows and nothing is merged."""

from __future__ import annotations

import csv
import gzip
import hashlib
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from jobs import files
from jobs.imports import profiles
from jobs.imports.targets import check_table, connect, target_url
from jobs.storage.base import Readable, size_text
from tasks.context import JobContext
from tasks.errors import PermanentError, RetryableError
from tasks.imports.loading import Load, Merged
from tasks.imports.rows import BadRow, Column, read_rows

PROGRESS_EVERY_S = 1.0
REPORT_HEADER = ("line", "column", "value", "reason")


class Hashed:
    """The input as it is read, hashed on the way: the file's identity for the ledger."""

    def __init__(self, stream: Readable):
        self.stream, self.sha256 = stream, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        return data


class Report:
    """The bad rows, to a CSV file in the job's scratch folder, stored as a file at the end."""

    def __init__(self, folder: Path):
        self.path = folder / "bad-rows.csv"
        self.file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115  # closed by store
        self.writer = csv.writer(self.file)
        self.writer.writerow(REPORT_HEADER)
        self.count = 0

    def add(self, bad: BadRow) -> None:
        self.writer.writerow((bad.line, bad.column or "", bad.value, bad.reason))
        self.count += 1

    def store(self, ctx: JobContext) -> dict[str, str] | None:
        self.file.close()
        if not self.count:
            return None
        with (
            ctx.sessions.begin() as session,
            open(self.path, "rb") as stream,
            files.upload(
                ctx.settings, stream, name=f"import-{ctx.job_id}-bad-rows.csv", content_type="text/csv"
            ) as row,
        ):
            session.add(row)
        return {"file": str(row.id), "url": row.url}


def import_file(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    started = time.monotonic()
    with ctx.sessions() as session:
        profile = profiles.latest(session, payload["profile"], payload["version"])
    definition = profile.definition
    storage, key = ctx.resolve({"file": payload["file"]} if payload.get("file") else {"url": payload["url"]})
    size = storage.stat(key).size
    with tempfile.TemporaryDirectory(prefix="conveyor-import-") as folder, closing(storage.open(key)) as raw:
        report, hashed = Report(Path(folder)), Hashed(raw)
        counts = {"read": 0}
        rows = _checked(
            read_rows(
                hashed, _columns(definition), **_reading(payload, definition), on_bytes=_progress(ctx, size)
            ),
            report,
            counts,
        )
        try:
            merged, already = _run(payload, ctx, profile, rows, report, counts, hashed)
        finally:
            stored = report.store(ctx)
        _refuse_if_too_bad(payload, report.count, counts["read"], stored)
    return {
        "profile": profile.name,
        "profile_version": profile.version,
        "sha256": hashed.sha256.hexdigest(),
        "rows_read": counts["read"],
        "bad": report.count,
        **merged.__dict__,
        "bytes": size,
        "duration_s": round(time.monotonic() - started, 3),
        "report": stored,
        "dry_run": payload["dry_run"],
        "already_imported_by": already,
    }


def _run(
    payload: dict[str, Any],
    ctx: JobContext,
    profile: Any,
    rows: Iterator[tuple[int, list[Any]]],
    report: Report,
    counts: dict[str, int],
    hashed: Hashed,
) -> tuple[Merged, str | None]:
    if payload["dry_run"]:
        staged = sum(1 for _ in rows)
        return Merged(0, 0, staged), None
    definition = profile.definition
    check_table(ctx.settings, definition)
    try:
        with connect(target_url(ctx.settings, definition["target"]), definition["target"]) as connection:
            load = Load(connection, definition)
            load.stage(rows)
            already = load.imported_by(hashed.sha256.hexdigest(), profile.name, profile.version)
            if already is not None and definition["mode"] != "replace":
                connection.rollback()
                return Merged(0, 0, load.staged), already
            for line, key in load.conflicts():
                report.add(BadRow(line, None, key, "a row with this key is already in the table"))
            if _too_bad(payload, report.count, counts["read"]):
                connection.rollback()
                return Merged(0, 0, 0), None
            merged = load.merge()
            load.record(hashed.sha256.hexdigest(), profile.name, profile.version, str(ctx.job_id))
            return merged, None
    except psycopg.OperationalError as exc:
        raise RetryableError(f"The import target {definition['target']} failed: {str(exc).strip()}") from None
    except psycopg.Error as exc:
        raise PermanentError(
            f"The import target {definition['target']} refused the rows: {str(exc).strip()}"
        ) from None


def _checked(rows: Iterator[Any], report: Report, counts: dict[str, int]) -> Iterator[tuple[int, list[Any]]]:
    """The valid rows; the bad ones go to the report. A gzip stream that breaks off spoils the file."""
    try:
        for row in rows:
            counts["read"] += 1
            if isinstance(row, BadRow):
                report.add(row)
            else:
                yield row
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise PermanentError(f"The gzip input is corrupt or truncated: {exc}") from None


def _columns(definition: dict[str, Any]) -> list[Column]:
    return [
        Column(
            c["name"],
            c["type"],
            c["required"],
            c.get("max_length"),
            c.get("pattern"),
            tuple(c["allowed"]) if c.get("allowed") else None,
        )
        for c in definition["columns"]
    ]


def _reading(payload: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    options = payload["csv"]
    return {
        "format": payload["format"],
        "delimiter": options["delimiter"],
        "quote": options["quote"],
        "header": options["header"],
        "encoding": options["encoding"],
        "keys": definition["keys"],
    }


def _progress(ctx: JobContext, size: int) -> Any:
    """Bytes read against the object's size, at most once a second; a cancel raises here,
    between batches, and the transaction with the staged rows is rolled back."""
    last = [0.0]

    def seen(count: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            ctx.progress(
                min(99, count * 100 // max(size, 1)), f"{size_text(count)} of {size_text(size)} read"
            )

    return seen


def _too_bad(payload: dict[str, Any], bad: int, read: int) -> bool:
    rows, ratio = payload["max_bad_rows"], payload["max_bad_ratio"]
    if rows is None and ratio is None:
        rows = 0
    return (rows is not None and bad > rows) or (ratio is not None and read > 0 and bad / read > ratio)


def _refuse_if_too_bad(payload: dict[str, Any], bad: int, read: int, stored: dict[str, str] | None) -> None:
    """A dry run only reports; a real one with too many bad rows merged nothing and fails."""
    if not payload["dry_run"] and _too_bad(payload, bad, read):
        where = stored["url"] if stored else "(no report)"
        raise PermanentError(
            f"{bad} of {read} rows are bad, over the limit; nothing was merged. The report: {where} (file {stored['file'] if stored else '-'})."
        )
