"""OCR job types: ``ocr`` turns a scan or a PDF into text, word boxes and a searchable PDF;
``ocr-pages`` is one of its child jobs, a range of its pages, which only an ``ocr`` job submits.

The languages a payload names are checked against the packs tesseract has here: the API and
the workers run one image (``deploy/``), and the worker checks again before it starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from jobs.catalogue.base import JobType
from jobs.catalogue.inputs import FileOrUrl
from jobs.settings import Settings

# 0 is orientation detection only and 2 is not implemented by tesseract: neither gives text.
PAGE_SEGMENTATION_MODES = (1, *range(3, 14))
MAX_LANGUAGES = 8
LANGUAGES_CACHE_S = 60.0
TESSERACT = "tesseract"


class OcrPayload(FileOrUrl):
    languages = fields.List(
        fields.String(validate=validate.Regexp(r"^[A-Za-z_]{3,32}$")),
        load_default=lambda: ["eng"],
        validate=validate.Length(min=1, max=MAX_LANGUAGES),
        metadata={"description": "tesseract language packs, all used on every page", "example": ["eng"]},
    )
    psm = fields.Integer(
        load_default=3,
        validate=validate.OneOf(PAGE_SEGMENTATION_MODES),
        metadata={"description": "tesseract's page segmentation mode (3: fully automatic)"},
    )
    dpi = fields.Integer(load_default=300, validate=validate.Range(min=72, max=600))
    force_ocr = fields.Boolean(
        load_default=False, metadata={"description": "OCR pages that have a text layer"}
    )
    password = fields.String(
        load_default=None, validate=validate.Length(max=1024), metadata={"description": "An encrypted PDF's."}
    )


class OcrPagesPayload(OcrPayload):
    parent = fields.UUID(required=True, metadata={"description": "The ocr job this range belongs to."})
    first_page = fields.Integer(required=True, validate=validate.Range(min=1))
    last_page = fields.Integer(required=True, validate=validate.Range(min=1))

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("last_page", 0) < data.get("first_page", 0):
            raise ValidationError("Must not come before first_page.", "last_page")


class _Installed:
    languages: frozenset[str] = frozenset()
    folder = ""
    read_at = -LANGUAGES_CACHE_S


def installed_languages() -> frozenset[str] | None:
    """tesseract's language packs here (read again after a minute: a pack may be added); empty
    when tesseract is not installed, None when asking it failed (asked again next time)."""
    if time.monotonic() - _Installed.read_at > LANGUAGES_CACHE_S:
        listed = _list_languages()
        if listed is None:
            return None
        _Installed.folder, _Installed.languages = listed
        _Installed.read_at = time.monotonic()
    return _Installed.languages


def tessdata_folder() -> str:
    """Where the operating system's language packs are (the workers' engine reads them)."""
    installed_languages()
    return os.environ.get("TESSDATA_PREFIX") or _Installed.folder


def _list_languages() -> tuple[str, frozenset[str]] | None:
    """``tesseract --list-langs`` says: List of available languages in "<folder>" (N):, a line each."""
    if shutil.which(TESSERACT) is None:
        return "", frozenset()
    try:
        listed = subprocess.run([TESSERACT, "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if listed.returncode != 0:
        return None
    heading, *names = listed.stdout.splitlines()
    folder = heading.partition('"')[2].rpartition('"')[0]
    return folder, frozenset(name.strip() for name in names if name.strip()) - {"osd"}


def check_languages(payload: dict[str, Any], settings: Settings) -> None:
    """Unchecked when tesseract could not be asked: the page then fails, naming the pack."""
    installed = installed_languages()
    if installed is None:
        return
    missing = [name for name in payload["languages"] if name not in installed]
    if not installed:
        raise ValidationError({"languages": ["tesseract is not installed here, so no language can be read."]})
    if missing:
        raise ValidationError(
            {
                "languages": [
                    f"No language pack for {', '.join(missing)}; installed: {', '.join(sorted(installed))}."
                ]
            }
        )


JOB_TYPES = (
    JobType(
        name="ocr",
        task_name="conveyor.ocr.recognise_document",
        queue="ocr",
        schema=OcrPayload,
        description=(
            "Recognise the text of a PNG, JPEG, TIFF or PDF: plain text, word boxes (TSV) and a "
            "searchable PDF, written to storage as files. Long documents fan out into ocr-pages jobs."
        ),
        check=check_languages,
    ),
    JobType(
        name="ocr-pages",
        task_name="conveyor.ocr.recognise_pages",
        queue="ocr",
        schema=OcrPagesPayload,
        description="A range of an ocr job's pages; submitted by the ocr job, which joins them.",
        check=check_languages,
        internal=True,
    ),
)
