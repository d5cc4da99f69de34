"""Where an OCR job's outputs go: each page's under ``ocr/<job>/pages/`` in the platform's storage
(a retry finds the pages already done there and skips them), and, once every page is done, the
whole text, the word boxes and the searchable PDF joined from them, each stored as a file that
``GET /v1/files/{id}/content`` serves."""

from __future__ import annotations

import io
import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from sqlalchemy.orm import Session, sessionmaker

from jobs import files
from jobs.settings import Settings
from jobs.storage import ObjectMissingError, Storage
from tasks.errors import PermanentError
from tasks.ocr.engine import TSV_HEADER

PAGE_FORMAT = "{:05d}"
OUTPUTS = {
    "text": ("txt", "text/plain; charset=utf-8"),
    "tsv": ("tsv", "text/tab-separated-values"),
    "pdf": ("pdf", "application/pdf"),
}


class PageStore:
    """One document's page outputs; ``root`` is the id of the ``ocr`` job they belong to."""

    def __init__(self, settings: Settings, root: str):
        self.storage: Storage = files.files_storage(settings)
        self.prefix = f"ocr/{root}/pages/"

    @property
    def url(self) -> str:
        return self.storage.url_of(self.prefix)

    def key(self, number: int, suffix: str) -> str:
        return f"{self.prefix}{PAGE_FORMAT.format(number)}.{suffix}"

    def done(self, first: int, last: int) -> dict[int, dict[str, Any]]:
        """The summaries of the pages from ``first`` to ``last`` already stored, by number."""
        found: dict[int, dict[str, Any]] = {}
        try:
            keys = [info.key for info in self.storage.list(self.prefix) if info.key.endswith(".json")]
        except ObjectMissingError:
            return found  # a storage folder not made yet
        for key in keys:
            if not first <= _number_of(key) <= last:
                continue
            with closing(self.storage.open(key)) as stream:
                summary = json.loads(stream.read())
            found[summary["page"]] = summary
        return found

    def put(self, summary: dict[str, Any], text: str, tsv: str, pdf: bytes) -> None:
        """The summary goes last: a page is done once it is there."""
        number = summary["page"]
        for suffix, data in (("txt", text.encode()), ("tsv", tsv.encode()), ("pdf", pdf)):
            self.storage.write(self.key(number, suffix), io.BytesIO(data))
        self.storage.write(self.key(number, "json"), io.BytesIO(json.dumps(summary).encode()))

    def read(self, number: int, suffix: str) -> bytes:
        with closing(self.storage.open(self.key(number, suffix))) as stream:
            return stream.read()


def _number_of(key: str) -> int:
    stem = key.rsplit("/", 1)[-1].partition(".")[0]
    return int(stem) if stem.isdigit() else 0


def join(pages: PageStore, numbers: list[int], folder: Path) -> dict[str, Path]:
    """The whole text (pages apart by form feeds, as tesseract does), the words of every page in
    one TSV, and one searchable PDF; written to ``folder``, a page in memory at a time."""
    joined = {name: folder / f"document.{suffix}" for name, (suffix, _) in OUTPUTS.items()}
    with open(joined["text"], "wb") as text, open(joined["tsv"], "wb") as tsv:
        tsv.write(TSV_HEADER.encode() + b"\n")
        for number in numbers:
            text.write(pages.read(number, "txt").rstrip(b"\f") + b"\f")
            tsv.write(_renumbered(pages.read(number, "tsv"), number))
    _join_pdf(pages, numbers, joined["pdf"])
    return joined


def _renumbered(tsv: bytes, number: int) -> bytes:
    """A page's TSV rows, under the document's page number (tesseract numbers each page 1)."""
    rows = [line.split("\t", 2) for line in tsv.decode().splitlines()[1:] if line]
    out = ["\t".join([level, str(number), rest]) for level, _, rest in (row for row in rows if len(row) == 3)]
    return ("\n".join(out) + "\n").encode() if out else b""


def _join_pdf(pages: PageStore, numbers: list[int], target: Path) -> None:
    document = pdfium.PdfDocument.new()
    try:
        for number in numbers:
            page = pdfium.PdfDocument(pages.read(number, "pdf"))
            document.import_pages(page)
            page.close()
        document.save(str(target))
    finally:
        document.close()


def store_outputs(
    settings: Settings, sessions: sessionmaker[Session], joined: dict[str, Path], name: str
) -> dict[str, dict[str, str]]:
    """Each joined output as a file of its own; the result names them by id and URL."""
    stored = {}
    with sessions.begin() as session:
        for kind, path in joined.items():
            suffix, content_type = OUTPUTS[kind]
            if path.stat().st_size > settings.max_upload_bytes:
                raise PermanentError(f"The joined {kind} output is over CONVEYOR_MAX_UPLOAD_BYTES.")
            with (
                open(path, "rb") as stream,
                files.upload(settings, stream, name=f"{name}.{suffix}", content_type=content_type) as row,
            ):
                session.add(row)
            stored[kind] = {"file": str(row.id), "url": row.url}
    return stored
