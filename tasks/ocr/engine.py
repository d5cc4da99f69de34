"""tesseract in the pool process (tesserocr: one engine kept per process, released GIL): one pass
over a page writes its text, its words with boxes and confidences (TSV) and its searchable PDF
(tesseract's own renderer: the image under an invisible text layer).

Chosen over the ``tesseract`` command (or pytesseract, which runs it) by measurement on a dense
A4 page at 300 dpi: the same text, byte for byte, for about a quarter less CPU a page, the
command's cost being mostly its start and the model's load, on every page. The language packs are
the operating system's (``tesseract-ocr-<code>``). ``OMP_THREAD_LIMIT=1`` all the same: a tesseract
built with OpenMP runs its threads against the pool's processes (on two cores a dense page took
31 s with them, 3.2 s without).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from jobs.catalogue.ocr import tessdata_folder
from tasks.errors import PermanentError, RetryableError

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
RENDERERS = ("tessedit_create_txt", "tessedit_create_pdf")
# tesseract's own TSV renderer writes this line first; its API's TSV comes without it.
TSV_HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"


@dataclass(frozen=True)
class Recognised:
    text: str
    tsv: str
    pdf: bytes
    words: int
    confidence: float | None
    """The mean confidence of the page's words, 0 to 100; None when it has none."""
    seconds: float


class _Engine:
    """The process's one engine, kept while jobs ask for the same languages and mode (loading a
    model costs more than recognising a small page); another pair replaces it."""

    api: Any = None
    key: tuple[str, int] | None = None


def engine(languages: list[str], psm: int) -> Any:
    import tesserocr  # here, after OMP_THREAD_LIMIT is set: OpenMP reads it as the library loads

    key = ("+".join(languages), psm)
    if _Engine.key != key:
        if _Engine.api is not None:
            _Engine.api.End()
        _Engine.api, _Engine.key = None, None
        try:
            api = tesserocr.PyTessBaseAPI(path=tessdata_folder(), lang=key[0], psm=psm)
        except RuntimeError as exc:
            raise PermanentError(f"tesseract could not load the languages {key[0]}: {exc}") from None
        for name in RENDERERS:
            api.SetVariable(name, "1")
        _Engine.api, _Engine.key = api, key
    return _Engine.api


def recognise(
    image: Image.Image, folder: Path, *, languages: list[str], psm: int, dpi: int, timeout_s: float
) -> Recognised:
    """``folder`` is the page's own scratch folder; the image goes to tesseract uncompressed (PGM),
    which costs less than encoding a PNG for it to decode."""
    api = engine(languages, psm)
    source, base = folder / "page.pgm", folder / "page"
    image.save(source)
    api.SetVariable("user_defined_dpi", str(dpi))
    started = time.monotonic()
    finished = api.ProcessPages(str(base), str(source), timeout=int(timeout_s * 1000))
    seconds = time.monotonic() - started
    if not finished:
        if seconds >= timeout_s:
            raise RetryableError(
                f"tesseract ran past the page time limit of {timeout_s:g} s (CONVEYOR_OCR_PAGE_TIMEOUT_S)."
            )
        raise PermanentError("tesseract could not read the page's image.")
    return _outputs(api, base, seconds)


def _outputs(api: Any, base: Path, seconds: float) -> Recognised:
    """The text and the PDF from the renderers; the word boxes from the same recognition, which
    the engine keeps until the next page."""
    tsv = f"{TSV_HEADER}\n{api.GetTSVText(0)}"
    try:
        text = base.with_suffix(".txt").read_text(encoding="utf-8")
        pdf = base.with_suffix(".pdf").read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise RetryableError(f"tesseract ended without writing the page's outputs: {exc}") from None
    words, confidence = word_confidence(tsv)
    return Recognised(text, tsv, pdf, words, confidence, seconds)


def word_confidence(tsv: str) -> tuple[int, float | None]:
    """The words tesseract found and their mean confidence, from its TSV (level 5 rows are words)."""
    confidences = []
    for line in tsv.splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) == 12 and cells[0] == "5" and cells[11].strip():
            confidences.append(float(cells[10]))
    if not confidences:
        return 0, None
    return len(confidences), sum(confidences) / len(confidences)
