"""The ocr handler on real tesseract: every input kind read, the outputs true to the page, and
every bad input a permanent error that names what is wrong."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from tasks.errors import PermanentError, RetryableError
from tasks.ocr import ranges, recognise_pages
from tasks.ocr.documents import kind_of
from tasks.ocr.engine import recognise, word_confidence
from tests.ocr_documents import (
    character_error_rate,
    encrypted,
    pages_with_text,
    render_page,
    save_pdf,
    save_tiff,
    truncated,
    with_giant_page,
)
from tests.ocr_helpers import Reports, context, run_ocr, stored_text, uploaded
from tests.support import Backend

# Clean rendered text at 40 px: tesseract gets it all but the odd character.
MAX_ERROR_RATE = 0.02


@pytest.fixture(scope="module")
def three_pages() -> tuple[list, list[str]]:
    return pages_with_text(3, seed=7)


def test_a_scanned_pdf_gives_its_text_word_boxes_and_a_searchable_pdf(
    embedded: Backend, tmp_path: Path, three_pages: tuple[list, list[str]]
) -> None:
    images, texts = three_pages
    reports = Reports()
    result = run_ocr(embedded, save_pdf(images, tmp_path / "scan.pdf"), reports)

    assert (result["kind"], result["pages"], result["pages_recognised"]) == ("PDF", 3, 3)
    text = stored_text(embedded, result).decode()
    assert text.count("\f") == 3
    assert character_error_rate(text, " ".join(texts)) < MAX_ERROR_RATE
    assert result["mean_confidence"] > 80 and result["words"] == 63
    assert result["characters"] >= sum(len(t) for t in texts) - 10
    tsv = stored_text(embedded, result, "tsv").decode().splitlines()
    assert tsv[0].startswith("level\tpage_num") and {row.split("\t")[1] for row in tsv[1:]} == {"1", "2", "3"}
    searchable = pdfium.PdfDocument(stored_text(embedded, result, "pdf"))
    layer = " ".join(searchable[index].get_textpage().get_text_range() for index in range(len(searchable)))
    assert len(searchable) == 3 and character_error_rate(layer, " ".join(texts)) < MAX_ERROR_RATE
    assert [message for _, message in reports][:3] == ["page 1 of 3", "page 2 of 3", "page 3 of 3"]


@pytest.mark.parametrize("suffix", ["png", "jpeg"])
def test_an_image_is_one_page(embedded: Backend, tmp_path: Path, suffix: str) -> None:
    images, texts = pages_with_text(1, seed=3)
    images[0].save(tmp_path / f"scan.{suffix}", dpi=(200, 200))
    result = run_ocr(embedded, tmp_path / f"scan.{suffix}")
    assert (result["kind"], result["pages"]) == (suffix.upper(), 1)
    assert character_error_rate(stored_text(embedded, result).decode(), texts[0]) < MAX_ERROR_RATE


def test_a_multi_page_tiff_is_read_frame_by_frame(
    embedded: Backend, tmp_path: Path, three_pages: tuple[list, list[str]]
) -> None:
    images, texts = three_pages
    result = run_ocr(embedded, save_tiff(images, tmp_path / "scan.tif"))
    assert (result["kind"], result["pages"]) == ("TIFF", 3)
    pages = stored_text(embedded, result).decode().split("\f")
    assert [
        character_error_rate(page, text) < MAX_ERROR_RATE for page, text in zip(pages, texts, strict=False)
    ] == [True] * 3


def test_a_pdf_page_with_a_text_layer_is_read_not_recognised_unless_forced(
    embedded: Backend, tmp_path: Path, three_pages: tuple[list, list[str]]
) -> None:
    images, texts = three_pages
    first = run_ocr(embedded, save_pdf(images, tmp_path / "scan.pdf"))
    searchable = tmp_path / "searchable.pdf"
    searchable.write_bytes(stored_text(embedded, first, "pdf"))

    again = run_ocr(embedded, searchable)
    assert (again["pages_with_text_layer"], again["pages_recognised"], again["seconds_per_page"]) == (
        3,
        0,
        None,
    )
    assert character_error_rate(stored_text(embedded, again).decode(), " ".join(texts)) < MAX_ERROR_RATE
    assert len(pdfium.PdfDocument(stored_text(embedded, again, "pdf"))) == 3

    forced = run_ocr(embedded, searchable, force_ocr=True)
    assert forced["pages_recognised"] == 3


def test_the_kind_is_told_by_the_content_not_the_name(embedded: Backend, tmp_path: Path) -> None:
    images, _ = pages_with_text(1, seed=5)
    images[0].save(tmp_path / "scan.pdf", "PNG")
    assert run_ocr(embedded, tmp_path / "scan.pdf")["kind"] == "PNG"
    assert kind_of(b"   %PDF-1.7") == "PDF"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda p, d: d.joinpath("notes.txt").write_bytes(b"just some text") and d / "notes.txt",
            "not a PNG, JPEG, TIFF or PDF",
        ),
        (lambda p, d: encrypted(p, d / "locked.pdf", "s3cret"), "encrypted: give its password"),
        (lambda p, d: truncated(p, d / "cut.pdf"), "not a readable PDF (corrupt or truncated)"),
        (lambda p, d: truncated(Path(str(p).replace(".pdf", ".png")), d / "cut.png", 0.3), "cannot be"),
    ],
    ids=["not-a-document", "encrypted", "truncated-pdf", "truncated-png"],
)
def test_a_bad_input_is_a_permanent_error_naming_why(
    embedded: Backend, tmp_path: Path, make, said: str
) -> None:
    images, _ = pages_with_text(2, seed=1)
    good = save_pdf(images, tmp_path / "good.pdf")
    images[0].save(tmp_path / "good.png")
    with pytest.raises(PermanentError, match=re.escape(said)):
        run_ocr(embedded, make(good, tmp_path))


def test_an_encrypted_pdf_opens_with_its_password(embedded: Backend, tmp_path: Path) -> None:
    images, texts = pages_with_text(1, seed=2)
    locked = encrypted(save_pdf(images, tmp_path / "open.pdf"), tmp_path / "locked.pdf", "s3cret")
    with pytest.raises(PermanentError, match="password given does not open it"):
        run_ocr(embedded, locked, password="wrong")
    result = run_ocr(embedded, locked, password="s3cret")
    assert character_error_rate(stored_text(embedded, result).decode(), texts[0]) < MAX_ERROR_RATE


def test_a_pdf_with_no_pages_is_refused(embedded: Backend, tmp_path: Path) -> None:
    empty = pdfium.PdfDocument.new()
    empty.save(str(tmp_path / "empty.pdf"))
    with pytest.raises(PermanentError, match="The PDF has no pages"):
        run_ocr(embedded, tmp_path / "empty.pdf")


def test_a_page_over_the_pixel_limit_is_refused_before_it_is_rendered(
    embedded: Backend, tmp_path: Path
) -> None:
    images, _ = pages_with_text(3, seed=4)
    with pytest.raises(
        PermanentError, match=r"Page 2 at 300 dpi would be 60000 x 60000 pixels, over the limit"
    ):
        run_ocr(embedded, with_giant_page(images, 2, tmp_path / "bomb.pdf"))


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(
    embedded: Backend, tmp_path: Path
) -> None:
    render_page(["tiny"], (400, 300)).save(tmp_path / "big.png")
    small = dataclasses.replace(embedded.settings, ocr_max_pixels=100_000)
    backend = dataclasses.replace(embedded, settings=small)
    with pytest.raises(PermanentError, match="400 x 300 pixels, over the limit of 100,000"):
        run_ocr(backend, tmp_path / "big.png")


def test_a_page_past_its_time_limit_is_a_passing_error(tmp_path: Path) -> None:
    images, _ = pages_with_text(1, seed=6)
    with pytest.raises(RetryableError, match=r"page time limit of 0\.01 s"):
        recognise(images[0], tmp_path, languages=["eng"], psm=3, dpi=200, timeout_s=0.01)


def test_a_range_retried_does_again_only_the_pages_not_yet_done(
    embedded: Backend, tmp_path: Path, three_pages: tuple[list, list[str]]
) -> None:
    images, _ = three_pages
    file_id = uploaded(embedded, save_pdf(images, tmp_path / "scan.pdf"))
    payload = {
        "file": file_id,
        "languages": ["eng"],
        "psm": 3,
        "dpi": 200,
        "force_ocr": False,
        "password": None,
    }
    parent = "7d1f0b52-0c1a-4ad5-9ad4-6c0f1c5e0b11"
    payload |= {"parent": parent, "first_page": 1, "last_page": 3}
    recognise_pages(payload, context(embedded))
    storage_root = embedded.settings.data_dir / "storage" / "ocr" / parent / "pages"
    (storage_root / "00002.json").unlink()

    reports = Reports()
    again = recognise_pages(payload, context(embedded, reports))
    assert [message for _, message in reports] == ["page 2 of 3"]
    assert [page["page"] for page in again["pages"]] == [1, 2, 3]


def test_pages_are_split_into_even_ranges() -> None:
    assert ranges(5, 4) == [(1, 2), (3, 5)]
    assert ranges(40, 4) == [(first, first + 3) for first in range(1, 41, 4)]
    assert ranges(9, 4) == [(1, 3), (4, 6), (7, 9)]
    assert ranges(4, 4) == [(1, 4)]


def test_word_confidence_is_the_mean_of_the_words_found() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t90\tone",
        "5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t70\ttwo",
        "4\t1\t1\t1\t1\t0\t0\t0\t1\t1\t-1\t",
    ]
    assert word_confidence("\n".join([header, *rows])) == (2, 80.0)
    assert word_confidence(header) == (0, None)
