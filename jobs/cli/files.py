"""``conveyor files``: hand files to the platform and read them back, with a progress bar on a
terminal."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path
from typing import Any, BinaryIO

import click

from jobs import files
from jobs.cli.support import Context, byte_bar, opened, parse_uuid, pass_context, to_json
from jobs.storage import Watched

CHUNK = 1024 * 1024


@click.group("files")
def files_group() -> None:
    """Upload, download, list and remove files."""


@files_group.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--name", help="the file's name (default: the path's)")
@click.option("--content-type", help="default: guessed from the name")
@click.option("--json", "as_json", is_flag=True, help="print the whole record")
@pass_context
def upload(ctx: Context, path: str, name: str | None, content_type: str | None, as_json: bool) -> None:
    """Upload PATH, or standard input for -; prints the file's id."""
    name = name or ("stdin" if path == "-" else Path(path).name)
    content_type = content_type or mimetypes.guess_type(name)[0]
    with opened(path) as (stream, size), byte_bar(size, f"uploading {name}") as advance:
        tracked = Watched(stream, advance)
        with ctx.sessions.begin() as session:
            with files.upload(ctx.settings, tracked, name=name, content_type=content_type) as row:
                session.add(row)
                session.flush()
            record = row.to_dict()
    click.echo(to_json(record) if as_json else str(record["id"]))


@files_group.command("download")
@click.argument("file_id")
@click.option("-o", "--output", help="where to write it; - for standard output (default: its name, here)")
@click.option("--force", is_flag=True, help="replace an existing file")
@pass_context
def download(ctx: Context, file_id: str, output: str | None, force: bool) -> None:
    """Download a file; its SHA-256 is checked before it is kept."""
    with ctx.sessions() as session:
        row = files.get(session, parse_uuid(file_id, "file"))
    target = output or Path(row.name).name or str(row.id)
    if target != "-" and os.path.exists(target) and not force:
        raise click.ClickException(f"{target} exists; pass --force to replace it, or -o another path.")
    with (
        closing(files.open_content(ctx.settings, row)) as stream,
        byte_bar(row.size, f"downloading {row.name}") as advance,
    ):
        try:
            _copy_out(stream, target, advance, row.sha256)
        except OSError as exc:
            raise click.ClickException(f"Cannot write {target}: {exc.strerror or exc}.") from None


@files_group.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_files(ctx: Context, limit: int, as_json: bool) -> None:
    """List files, newest first."""
    with ctx.sessions() as session:
        found = [row.to_dict() for row in files.list_files(session, limit)]
    if as_json:
        click.echo(to_json(found))
        return
    click.echo(f"{'ID':36}  {'SIZE':>12}  {'CREATED':16}  NAME")
    for item in found:
        click.echo(
            f"{item['id']!s:36}  {item['size']:>12}  {item['created_at']:%Y-%m-%d %H:%M}  {item['name']}"
        )


@files_group.command("rm")
@click.argument("file_id")
@pass_context
def remove(ctx: Context, file_id: str) -> None:
    """Delete a file and its bytes."""
    with ctx.sessions.begin() as session:
        files.delete(session, ctx.settings, parse_uuid(file_id, "file"))
    click.echo(f"Deleted file {file_id}.", err=True)


def _copy_out(stream: Any, target: str, advance: Callable[[int], None], sha256: str) -> None:
    """Write the stream to ``target`` through a temporary file, kept only if its SHA-256 is
    the one recorded at upload."""
    digest = hashlib.sha256()
    if target == "-":
        _pump(stream, sys.stdout.buffer, digest, advance)
        _check(digest.hexdigest(), sha256)
        return
    folder = os.path.dirname(os.path.abspath(target))
    descriptor, partial = tempfile.mkstemp(prefix=".conveyor-download-", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as out:
            _pump(stream, out, digest, advance)
        _check(digest.hexdigest(), sha256)
        os.replace(partial, target)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(partial)


def _check(got: str, wanted: str) -> None:
    if got != wanted:
        raise click.ClickException(f"The download's SHA-256 is {got}, not the {wanted} recorded at upload.")


def _pump(stream: Any, out: BinaryIO, digest: Any, advance: Callable[[int], None]) -> None:
    while chunk := stream.read(CHUNK):
        out.write(chunk)
        digest.update(chunk)
        advance(len(chunk))
