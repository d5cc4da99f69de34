"""Documents for the OCR tests and bench/ocr.py, made here: known text rendered with a Debian
font (fonts-dejavu-core) by Pillow, saved as PNG, JPEG, TIFF or an image-only PDF; and the
broken kinds (encrypted, truncated, a page too big)."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
A4_300_DPI = (2480, 3508)
WORDS = [
    "conveyor",
    "job",
    "worker",
    "queue",
    "page",
    "scan",
    "letter",
    "record",
    "archive",
    "backup",
    "restore",
    "signal",
    "river",
    "market",
    "window",
    "garden",
    "travel",
    "winter",
    "summer",
    "number",
    "office",
    "paper",
    "report",
    "morning",
    "evening",
    "station",
    "harbour",
    "silver",
    "yellow",
    "simple",
    "minute",
    "second",
    "history",
    "village",
    "engine",
    "circle",
    "motion",
]


def sentence_lines(count: int, seed: int, words_per_line: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words_per_line)) for _ in range(count)]


def render_page(lines: list[str], size: tuple[int, int] = (1700, 700), font_px: int = 40) -> Image.Image:
    """Black text on white, a line every 1.8 font sizes from a margin of 100 px."""
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), font_px)
    for index, line in enumerate(lines):
        draw.text((100, 100 + index * font_px * 9 // 5), line, font=font, fill=0)
    return page


def dense_a4_page(seed: int) -> tuple[Image.Image, str]:
    """A page as dense as a book's at 300 dpi: 60 lines of 11 words."""
    lines = sentence_lines(60, seed, words_per_line=11)
    return render_page(lines, A4_300_DPI, font_px=30), "\n".join(lines)


def pages_with_text(count: int, seed: int = 0) -> tuple[list[Image.Image], list[str]]:
    texts = ["\n".join(sentence_lines(3, seed * 1000 + number)) for number in range(count)]
    return [render_page(text.split("\n")) for text in texts], texts


def pdf_bytes(pages: list[Image.Image], dpi: int = 200) -> bytes:
    """An image-only PDF (no text layer): what a scanner makes."""
    first, *rest = (page.copy() for page in pages)  # saving leaves the plugin's settings on an image
    buffer = io.BytesIO()
    first.save(buffer, "PDF", save_all=True, append_images=rest, resolution=dpi)
    return buffer.getvalue()


def save_pdf(pages: list[Image.Image], path: Path, dpi: int = 200) -> Path:
    path.write_bytes(pdf_bytes(pages, dpi))
    return path


def save_tiff(pages: list[Image.Image], path: Path) -> Path:
    first, *rest = (page.copy() for page in pages)
    first.save(path, save_all=True, append_images=rest, compression="tiff_lzw", dpi=(200, 200))
    return path


def encrypted(pdf: Path, target: Path, password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(pdf))
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    writer.write(target)
    return target


def truncated(source: Path, target: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def with_giant_page(pages: list[Image.Image], at: int, path: Path) -> Path:
    """A PDF whose page ``at`` (1-based) is 200 x 200 inches: 3.6 billion pixels at 300 dpi."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    giant = writer.pages[at - 1]
    giant.mediabox.upper_right = (200 * 72, 200 * 72)
    writer.write(path)
    return path


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def character_error_rate(recognised: str, truth: str) -> float:
    """Levenshtein distance over the length of the truth, whitespace runs counted as one space."""
    got, want = normalised(recognised), normalised(truth)
    previous = list(range(len(got) + 1))
    for i, expected in enumerate(want, 1):
        current = [i]
        for j, seen in enumerate(got, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (expected != seen)))
        previous = current
    return previous[-1] / max(1, len(want))
