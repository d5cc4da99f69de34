"""The ``import`` handler: a file read as a stream, its rows checked against the profile, the
valid ones staged and merged into the target in one transaction, the bad ones written to a CSV
report. Too many bad rows and nothing is merged; a dry run stages and checks the same way (so it
finds what the table would refuse too), then rolls back."""

from __future__ import annotations

import csv
import gzip
import hashlib
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from jobs import files
from jobs.imports import profiles
from jobs.imports.targets import UNAVAILABLE, check_table, connect, target_database
from jobs.models import ImportProfile
from jobs.storage.base import Readable, size_text
from tasks.context import JobContext
from tasks.errors import PermanentError, RetryableError
from tasks.imports.loading import Load, Merged
from tasks.imports.rows import BadRow, Column, Fast, Row, read_rows

PROGRESS_EVERY_S = 1.0
REPORT_HEADER = ("line", "column", "value", "reason")
BROKEN_GZIP = (EOFError, zlib.error, gzip.BadGzipFile)


class Hashed:
    """The input as it is read, hashed on the way: the file's identity for the ledger."""

    def __init__(self, stream: Readable):
        self.stream, self.sha256 = stream, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        return data


class Report:
    """The bad rows, to a CSV file in the job's scratch folder, stored as a file when asked."""

    def __init__(self, folder: Path):
        self.path = folder / "bad-rows.csv"
        self.file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115  # closed by close()
        self.writer = csv.writer(self.file)
        self.writer.writerow(REPORT_HEADER)
        self.count = 0

    def add(self, row: BadRow) -> None:
        self.writer.writerow((row.line, row.column or "", row.value, row.reason))
        self.count += 1

    def close(self) -> None:
        self.file.close()

    def store(self, ctx: JobContext) -> dict[str, str] | None:
        self.close()
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


class Counts:
    read = 0


def import_file(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    started = time.monotonic()
    profile = _profile(payload, ctx)
    storage, key = ctx.resolve({"file": payload["file"]} if payload.get("file") else {"url": payload["url"]})
    size = storage.stat(key).size
    with tempfile.TemporaryDirectory(prefix="conveyor-import-") as folder, closing(storage.open(key)) as raw:
        report, hashed, counts = Report(Path(folder)), Hashed(raw), Counts()
        try:
            rows = _checked(
                lambda: read_rows(
                    hashed, _columns(profile.definition), **_reading(payload), on_bytes=_progress(ctx, size)
                ),
                report,
                counts,
            )
            merged, already = _run(payload, ctx, profile, rows, report, hashed)
        except PermanentError as exc:  # the bad rows found before it still tell the user something
            raise PermanentError(f"{exc}{_named(report.store(ctx))}") from None
        finally:
            report.close()
        stored = report.store(ctx)
        _refuse_if_too_bad(payload, report.count, counts.read, stored)
    return {
        "profile": profile.name,
        "profile_version": profile.version,
        "sha256": hashed.sha256.hexdigest(),
        "rows_read": counts.read,
        "bad": report.count,
        **merged.__dict__,
        "bytes": size,
        "duration_s": round(time.monotonic() - started, 3),
        "report": stored,
        "dry_run": payload["dry_run"],
        "already_imported_by": already,
    }


def _profile(payload: dict[str, Any], ctx: JobContext) -> ImportProfile:
    with ctx.sessions() as session:
        found = profiles.find(session, payload["profile"], payload["version"])
    if found is None:
        version = f" at version {payload['version']}" if payload["version"] else ""
        raise PermanentError(f"No import profile is named {payload['profile']!r}{version}.")
    return found


def _run(
    payload: dict[str, Any],
    ctx: JobContext,
    profile: ImportProfile,
    rows: Iterator[Row | Fast],
    report: Report,
    hashed: Hashed,
) -> tuple[Merged, str | None]:
    target = profile.definition["target"]
    try:
        check_table(ctx.settings, profile.definition)
        with connect(target_database(ctx.settings, target), target) as connection:
            return _load(payload, ctx, profile, Load(connection, profile.definition), rows, report, hashed)
    except UNAVAILABLE as exc:
        raise RetryableError(f"The import target {target} failed: {str(exc).strip()}") from None
    except psycopg.Error as exc:
        raise PermanentError(f"The import target {target} refused the rows: {str(exc).strip()}") from None


def _load(
    payload: dict[str, Any],
    ctx: JobContext,
    profile: ImportProfile,
    load: Load,
    rows: Iterator[Row | Fast],
    report: Report,
    hashed: Hashed,
) -> tuple[Merged, str | None]:
    """Stage, claim the ledger, merge; when the merge meets rejected rows (or cannot tell
    them), take them out first. Too many bad rows, or a dry run, and it all rolls back."""
    load.stage(rows, report.add)
    if not payload["dry_run"]:
        already = load.claim(hashed.sha256.hexdigest(), profile.name, profile.version, str(ctx.job_id))
        if already is not None and profile.definition["mode"] != "replace":
            load.connection.rollback()
            return Merged(0, 0, load.staged), already
    merged = None if _stop_before_merge(payload, load, report) else load.try_merge()
    if merged is None:
        for row in load.rejected():
            report.add(row)
        if payload["dry_run"] or _too_bad(payload, report.count, report.count + load.staged):
            load.connection.rollback()
            return Merged(0, 0, load.staged if payload["dry_run"] else 0), None
        merged = load.merge()
    return merged, None


def _stop_before_merge(payload: dict[str, Any], load: Load, report: Report) -> bool:
    """Whether to look for rejected rows without trying the merge first."""
    stop = payload["dry_run"] or _too_bad(payload, report.count, report.count + load.staged)
    if not stop and load.definition["mode"] == "replace" and not load.staged:
        raise PermanentError(
            "The file has no valid rows: a replace would empty the table, so nothing was merged."
        )
    return stop or load.checks_first()


def _checked(make: Callable[[], Iterator[Any]], report: Report, counts: Counts) -> Iterator[Row | Fast]:
    """The valid rows; the bad ones go to the report. A gzip stream that breaks off spoils the file."""
    try:
        for row in make():
            if isinstance(row, Fast):
                counts.read += row.count
                yield row
                continue
            counts.read += 1
            if isinstance(row, BadRow):
                report.add(row)
            else:
                yield row
    except BROKEN_GZIP as exc:
        raise PermanentError(f"The gzip input is corrupt or truncated: {exc}") from None
    except LookupError as exc:
        raise PermanentError(f"Unknown encoding: {exc}") from None


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


def _reading(payload: dict[str, Any]) -> dict[str, Any]:
    """Keys are checked in SQL, on the staging table, not in the worker's memory."""
    options = payload["csv"]
    return {
        "format": payload["format"],
        "delimiter": options["delimiter"],
        "quote": options["quote"],
        "header": options["header"],
        "encoding": options["encoding"],
    }


def _progress(ctx: JobContext, size: int) -> Callable[[int], None]:
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
        raise PermanentError(
            f"{bad} of {read} rows are bad, over the limit; nothing was merged.{_named(stored)}"
        )


def _named(stored: dict[str, str] | None) -> str:
    return f" The report: {stored['url']} (file {stored['file']})." if stored else ""
