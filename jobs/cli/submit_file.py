"""``conveyor submit --from-file jobs.jsonl``: a JSON Lines file of jobs (each line a
``POST /v1/jobs`` body, with an optional ``idempotency_key``), streamed in batches of one
transaction each. A batch is all or nothing, so a run that stops has submitted exactly the
lines before the batch it names: ``--from-line`` takes up from there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO

import click

from jobs import tokens
from jobs.cli.support import Context, byte_bar, opened
from jobs.errors import ConveyorError, InvalidInputError
from jobs.service.batches import Item, Keys, read_item, submit_batch
from jobs.strict_json import strict_loads


@dataclass
class Run:
    ctx: Context
    batch_size: int
    skip_invalid: bool
    keys: Keys | None
    correlation_id: str
    submitted: int = 0
    skipped: int = 0


def submit_file(
    ctx: Context, path: str, batch_size: int, from_line: int, skip_invalid: bool, as_token: str | None
) -> None:
    run = Run(
        ctx,
        min(batch_size, ctx.settings.max_batch),
        skip_invalid,
        _keys(ctx, as_token),
        f"file:{uuid.uuid4().hex}",
    )
    with opened(path) as (stream, size), byte_bar(size, "submitting") as advance:
        for batch in _batches(stream, run.batch_size, from_line, advance):
            _submit(run, batch)
    click.echo(
        f"Submitted {run.submitted} jobs (correlation id {run.correlation_id}); skipped {run.skipped} invalid lines."
    )


def _batches(stream: BinaryIO, size: int, from_line: int, advance: Any) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for number, line in enumerate(stream, 1):
        advance(len(line))
        if number < from_line or not line.strip():
            continue
        batch.append((number, _parsed(line)))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parsed(line: bytes) -> Any:
    try:
        return strict_loads(line)
    except ValueError as exc:
        return _NotJson(str(exc))


@dataclass(frozen=True)
class _NotJson:
    reason: str


def _submit(run: Run, batch: list[tuple[int, Any]]) -> None:
    numbered = [(number, _item(run, raw)) for number, raw in batch]
    refused = {number: item.errors for number, item in numbered if item.errors}
    kept = [(number, item) for number, item in numbered if not item.errors]
    if kept and not (refused and not run.skip_invalid):
        refused |= _write(run, kept)
    if refused and not run.skip_invalid:
        number = min(refused)
        _stop(run, f"line {number} is not a job: {json.dumps(refused[number])}", batch[0][0])
    run.skipped += len(refused)
    for number, errors in sorted(refused.items()):
        click.echo(f"skipped line {number}: {json.dumps(errors)}", err=True)


def _write(run: Run, kept: list[tuple[int, Item]]) -> dict[int, Any]:
    """The batch in one transaction: the lines it refused, by number (none went in if any did,
    unless --skip-invalid)."""
    items = [item for _, item in kept]
    try:
        with run.ctx.sessions.begin() as session:
            outcome = submit_batch(
                session, run.ctx.settings, items, run.keys or _NO_KEYS, atomic=not run.skip_invalid
            )
    except InvalidInputError as exc:
        by_index = (exc.errors or {}).get("jobs", {})
        return {kept[int(index)][0]: errors for index, errors in by_index.items()}
    except ConveyorError as exc:
        _stop(run, str(exc), kept[0][0])
    run.submitted += sum(outcome.accepted(index) for index in range(len(items)))
    return {kept[index][0]: errors for index, errors in outcome.errors.items()}


def _item(run: Run, raw: Any) -> Item:
    if isinstance(raw, _NotJson):
        return Item(None, {"_schema": [f"Not JSON: {raw.reason}"]})
    item = read_item(raw, run.correlation_id)
    if item.key is not None and run.keys is None:
        return Item(None, {"idempotency_key": ["Keys belong to an API token: name it with --as."]})
    return item


def _stop(run: Run, why: str, first_line: int) -> None:
    done = f"Submitted {run.submitted} jobs (correlation id {run.correlation_id}), every line before line {first_line}"
    raise click.ClickException(f"{why}. {done}: fix it and rerun with --from-line {first_line}.")


def _keys(ctx: Context, name: str | None) -> Keys | None:
    if name is None:
        return None
    with ctx.sessions() as session:
        found = tokens.live_named(session, name)
    if len(found) != 1:
        many = "no live API token is" if not found else f"{len(found)} live API tokens are"
        raise click.BadParameter(f"{many} named {name!r}; name exactly one", param_hint="--as")
    return Keys(found[0], timedelta(hours=ctx.settings.idempotency_ttl_hours))


_NO_KEYS = Keys(uuid.UUID(int=0), timedelta(0))
"""Never used to store: without --as, a line with a key is refused before."""
