"""tesseract, from the operating system, one process per page: one pass writes the page's text,
its words with boxes and confidences (TSV), and its searchable PDF (tesseract's own renderer:
the image with an invisible text layer).

A process per page rather than a binding: it is the same tesseract the operator runs by hand, a
page's time limit is a kill, and a page's memory goes back when it ends. ``OMP_THREAD_LIMIT=1``:
tesseract's OpenMP threads fight the worker pool's processes for the cores (a dense page took
31 s with them on two cores, 3.2 s without).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from jobs.catalogue.ocr import TESSERACT
from tasks.errors import PermanentError, RetryableError

STDERR_SHOWN = 500
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Recognised:
    text: str
    tsv: str
    pdf: bytes
    words: int
    confidence: float | None
    """The mean confidence of the page's words, 0 to 100; None when it has none."""
    seconds: float


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


def recognise(
    image: Image.Image, folder: Path, *, languages: list[str], psm: int, dpi: int, timeout_s: float
) -> Recognised:
    """``folder`` is the page's own scratch folder; the image goes to tesseract uncompressed (PGM),
    which costs less than encoding a PNG for it to decode."""
    if shutil.which(TESSERACT) is None:
        raise PermanentError("tesseract is not installed on this worker (Debian's tesseract-ocr package).")
    source, base = folder / "page.pgm", folder / "page"
    image.save(source)
    started = time.monotonic()
    _run(source, base, languages, psm, dpi, timeout_s)
    seconds = time.monotonic() - started
    try:
        tsv = base.with_suffix(".tsv").read_text(encoding="utf-8")
        text = base.with_suffix(".txt").read_text(encoding="utf-8")
        pdf = base.with_suffix(".pdf").read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise RetryableError(f"tesseract ended without writing the page's outputs: {exc}") from None
    words, confidence = word_confidence(tsv)
    return Recognised(text, tsv, pdf, words, confidence, seconds)


def _run(source: Path, base: Path, languages: list[str], psm: int, dpi: int, timeout_s: float) -> None:
    command = [TESSERACT, str(source), str(base), "-l", "+".join(languages), "--psm", str(psm)]
    command += ["--dpi", str(dpi), "txt", "tsv", "pdf"]
    try:
        done = subprocess.run(
            command, capture_output=True, env=environment(), timeout=timeout_s, preexec_fn=_die_with_parent
        )
    except subprocess.TimeoutExpired:
        raise RetryableError(
            f"tesseract ran past the page time limit of {timeout_s:g} s (CONVEYOR_OCR_PAGE_TIMEOUT_S)."
        ) from None
    except OSError as exc:
        raise RetryableError(f"tesseract could not be started: {exc}") from None
    said = done.stderr.decode(errors="replace").strip()[-STDERR_SHOWN:]
    if done.returncode < 0:
        raise RetryableError(f"tesseract was killed by signal {-done.returncode} (out of memory?): {said}")
    if done.returncode != 0:
        raise PermanentError(f"tesseract failed on the page (exit {done.returncode}): {said}")


def _die_with_parent() -> None:
    """tesseract goes when its pool process does (killed at a hard time limit), not on for up to
    the page time limit with nobody to read its outputs."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


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
