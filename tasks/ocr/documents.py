"""The pages of an input file, one at a time: a PDF's rendered with pypdfium2 (or its text
layer read), an image's or a TIFF frame's decoded by Pillow. The kind is told by the file's first
bytes, never its name, and every page's pixel count is checked before it is decoded."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pypdfium2 as pdfium
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader

from tasks.errors import PermanentError

PDF_SIGNATURE_WITHIN = 1024
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
POINTS_PER_INCH = 72
# Pillow refuses an image of over twice its own limit on opening, before our check sees it.
UNREADABLE_IMAGE = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
)


def kind_of(head: bytes) -> str:
    for signature, kind in SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if b"%PDF-" in head[:PDF_SIGNATURE_WITHIN]:
        return "PDF"
    raise PermanentError("The file is not a PNG, JPEG, TIFF or PDF (told by its first bytes).")


@dataclass
class Page:
    number: int
    text: str | None
    """A PDF page's own text layer, when it has one."""
    image: Image.Image | None
    """The page to recognise; None when its text layer is used instead."""
    pdf: bytes | None
    """The page as a one-page PDF, for a page whose text layer is kept."""
    dpi: int | None = None
    """An image's own resolution, when it says."""


class Document(Protocol):
    kind: str
    page_count: int

    def pages(
        self, first: int, last: int, *, dpi: int, force_ocr: bool, skip: set[int]
    ) -> Iterator[Page]: ...

    def close(self) -> None: ...


def open_document(path: Path, *, password: str | None, max_pixels: int) -> Document:
    with open(path, "rb") as file:
        kind = kind_of(file.read(PDF_SIGNATURE_WITHIN))
    document: Document = (
        PdfDocument(path, password, max_pixels) if kind == "PDF" else ImageDocument(path, kind, max_pixels)
    )
    if document.page_count == 0:
        document.close()
        raise PermanentError(f"The {kind} has no pages.")
    return document


def check_pixels(width: float, height: float, max_pixels: int, where: str) -> None:
    pixels = int(width) * int(height)
    if pixels > max_pixels:
        raise PermanentError(
            f"{where} would be {int(width)} x {int(height)} pixels, over the limit of {max_pixels:,} "
            "(CONVEYOR_OCR_MAX_PIXELS): refused as a possible decompression bomb."
        )


class PdfDocument:
    kind = "PDF"

    def __init__(self, path: Path, password: str | None, max_pixels: int):
        try:
            self.pdf = pdfium.PdfDocument(path, password=password)
        except pdfium.PdfiumError as exc:
            raise PermanentError(_why_unreadable(path, exc, password)) from None
        self.page_count = len(self.pdf)
        self.max_pixels = max_pixels

    def pages(self, first: int, last: int, *, dpi: int, force_ocr: bool, skip: set[int]) -> Iterator[Page]:
        for number in range(first, min(last, self.page_count) + 1):
            if number not in skip:
                yield self._page(number, dpi, force_ocr)

    def _page(self, number: int, dpi: int, force_ocr: bool) -> Page:
        try:
            page = self.pdf[number - 1]
        except pdfium.PdfiumError as exc:
            raise PermanentError(f"Page {number} of the PDF cannot be read: {exc}") from None
        try:
            text = None if force_ocr else _text_layer(page)
            if text:
                return Page(number, text, None, self._alone(number))
            width, height = (side * dpi / POINTS_PER_INCH for side in page.get_size())
            check_pixels(width, height, self.max_pixels, f"Page {number} at {dpi} dpi")
            image = page.render(scale=dpi / POINTS_PER_INCH, grayscale=True).to_pil()
            return Page(number, None, image, None)
        except pdfium.PdfiumError as exc:
            raise PermanentError(f"Page {number} of the PDF cannot be read: {exc}") from None
        finally:
            page.close()

    def _alone(self, number: int) -> bytes:
        single = pdfium.PdfDocument.new()
        try:
            single.import_pages(self.pdf, [number - 1])
            buffer = io.BytesIO()
            single.save(buffer)
            return buffer.getvalue()
        finally:
            single.close()

    def close(self) -> None:
        self.pdf.close()


def _text_layer(page: Any) -> str | None:
    textpage = page.get_textpage()
    try:
        text: str = textpage.get_text_range()
    finally:
        textpage.close()
    return text if text.strip() else None


def _why_unreadable(path: Path, exc: pdfium.PdfiumError, password: str | None) -> str:
    """PDFium refuses a PDF with no pages, and its error code is then a previous load's; pypdf,
    which reads the structure without rendering, says which of the three it is."""
    try:
        reader = PdfReader(path)
        locked = reader.is_encrypted
        pages = None if locked else len(reader.pages)
    except Exception:  # pypdf on a broken file raises whatever its parser tripped on
        return f"The file is not a readable PDF (corrupt or truncated): {exc}"
    if locked and password is None:
        return "The PDF is encrypted: give its password in the payload's password."
    if locked:
        return "The PDF is encrypted and the password given does not open it."
    if pages == 0:
        return "The PDF has no pages."
    return f"The file is not a readable PDF (corrupt or truncated): {exc}"


class ImageDocument:
    def __init__(self, path: Path, kind: str, max_pixels: int):
        self.kind, self.max_pixels = kind, max_pixels
        try:
            self.image = Image.open(path)
            self.page_count = getattr(self.image, "n_frames", 1)
        except UNREADABLE_IMAGE as exc:
            raise PermanentError(f"The {kind} cannot be read (corrupt or truncated): {exc}") from None

    def pages(self, first: int, last: int, *, dpi: int, force_ocr: bool, skip: set[int]) -> Iterator[Page]:
        for number in range(first, min(last, self.page_count) + 1):
            if number not in skip:
                frame = self._frame(number)
                yield Page(number, None, self._decoded(frame, number), None, _resolution(frame))

    def _frame(self, number: int) -> Image.Image:
        try:
            self.image.seek(number - 1)
        except UNREADABLE_IMAGE as exc:
            raise PermanentError(f"Page {number} of the {self.kind} cannot be read: {exc}") from None
        return self.image

    def _decoded(self, frame: Image.Image, number: int) -> Image.Image:
        check_pixels(*frame.size, self.max_pixels, f"Page {number} of the {self.kind}")
        try:
            return frame.convert("L")
        except UNREADABLE_IMAGE as exc:
            raise PermanentError(
                f"Page {number} of the {self.kind} cannot be decoded (corrupt or truncated): {exc}"
            ) from None

    def close(self) -> None:
        self.image.close()


def _resolution(frame: Image.Image) -> int | None:
    found = frame.info.get("dpi")
    try:
        dpi = round(float(found[0])) if found else None
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if dpi and 70 <= dpi <= 2400 else None
