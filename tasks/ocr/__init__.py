"""The ``ocr`` handlers. A document of up to ``CONVEYOR_OCR_FANOUT_PAGES`` pages is recognised by
its own job; a longer one fans out into ``ocr-pages`` child jobs of even page ranges, which any
worker takes, and the job, run again once they have all finished, joins their pages.

Pages are recognised one at a time: one page's image is in memory, however long the document.
"""

from __future__ import annotations

import math
import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from jobs.models import JobState
from tasks.context import Child, JobContext
from tasks.errors import JobCancelledError, PermanentError
from tasks.ocr.documents import Document, Page, open_document
from tasks.ocr.engine import recognise
from tasks.ocr.outputs import PageStore, join, store_outputs

COPY_CHUNK = 1024 * 1024


def recognise_document(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    children = ctx.children()
    if children:
        return _join_children(payload, ctx, children)
    limit = ctx.settings.ocr_fanout_pages
    with _opened(payload, ctx) as document:
        total = document.page_count
        if total > ctx.settings.ocr_max_pages:
            raise PermanentError(
                f"The {document.kind} has {total} pages, over the limit of "
                f"{ctx.settings.ocr_max_pages} (CONVEYOR_OCR_MAX_PAGES)."
            )
        if total > limit:
            ctx.progress(0, f"{total} pages: fanning out")
            ctx.fan_out(
                [
                    ("ocr-pages", {**payload, **_range(ctx, first, last)})
                    for first, last in ranges(total, limit)
                ]
            )
        pages = PageStore(ctx.settings, str(ctx.job_id))
        summaries = _recognise(document, payload, ctx, pages, 1, total)
    return _finish(ctx, pages, summaries, document.kind)


def recognise_pages(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    with _opened(payload, ctx) as document:
        pages = PageStore(ctx.settings, payload["parent"])
        summaries = _recognise(document, payload, ctx, pages, payload["first_page"], payload["last_page"])
    return {"kind": document.kind, "pages": summaries, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> dict[str, float]:
    """The peak resident memory of this pool process so far, tesseract's engine included."""
    return {"worker": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def ranges(total: int, limit: int) -> list[tuple[int, int]]:
    """``total`` pages in ranges of at most ``limit``, as even as can be (their sizes differ by
    at most one, so the parent's progress, the children's mean, is pages done / total)."""
    count = math.ceil(total / limit)
    bounds = [round(index * total / count) for index in range(count + 1)]
    return [(bounds[index] + 1, bounds[index + 1]) for index in range(count)]


def _range(ctx: JobContext, first: int, last: int) -> dict[str, Any]:
    return {"parent": str(ctx.job_id), "first_page": first, "last_page": last}


@contextmanager
def _opened(payload: dict[str, Any], ctx: JobContext) -> Iterator[Document]:
    """The input, fetched to a scratch file (pypdfium2 and TIFF frames need to seek)."""
    folder = Path(tempfile.mkdtemp(prefix="conveyor-ocr-"))
    try:
        path = folder / "input"
        storage, key = ctx.resolve(
            {"file": payload["file"]} if payload.get("file") else {"url": payload["url"]}
        )
        with closing(storage.open(key)) as source, open(path, "wb") as target:
            while chunk := source.read(COPY_CHUNK):
                target.write(chunk)
        document = open_document(
            path, password=payload.get("password"), max_pixels=ctx.settings.ocr_max_pixels
        )
        try:
            yield document
        finally:
            document.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _recognise(
    document: Document, payload: dict[str, Any], ctx: JobContext, pages: PageStore, first: int, last: int
) -> list[dict[str, Any]]:
    last = min(last, document.page_count)
    done = pages.done(first, last)
    count = last - first + 1
    for page in document.pages(
        first, last, dpi=payload["dpi"], force_ocr=payload["force_ocr"], skip=set(done)
    ):
        done[page.number] = _one_page(page, payload, ctx, pages)
        ctx.progress(len(done) * 100 // count, f"page {page.number} of {document.page_count}")
    return [done[number] for number in sorted(done)]


def _one_page(page: Page, payload: dict[str, Any], ctx: JobContext, pages: PageStore) -> dict[str, Any]:
    if page.image is None:
        text = page.text or ""
        summary = _summary(page.number, "text-layer", text, 0, None, 0.0)
        pages.put(summary, text, "", page.pdf or b"")
        return summary
    with tempfile.TemporaryDirectory(prefix="conveyor-page-") as folder:
        found = recognise(
            page.image,
            Path(folder),
            languages=payload["languages"],
            psm=payload["psm"],
            dpi=page.dpi or payload["dpi"],
            timeout_s=ctx.settings.ocr_page_timeout_s,
        )
    summary = _summary(page.number, "ocr", found.text, found.words, found.confidence, found.seconds)
    pages.put(summary, found.text, found.tsv, found.pdf)
    return summary


def _summary(
    number: int, source: str, text: str, words: int, confidence: float | None, seconds: float
) -> dict[str, Any]:
    return {
        "page": number,
        "source": source,
        "characters": len(text.strip()),
        "words": words,
        "confidence": None if confidence is None else round(confidence, 2),
        "seconds": round(seconds, 3),
    }


def _join_children(payload: dict[str, Any], ctx: JobContext, children: list[Child]) -> dict[str, Any]:
    if any(child.state not in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED) for child in children):
        ctx.fan_out([])  # run again by hand before they finished: wait for them again
    if any(child.state == JobState.CANCELLED for child in children):
        raise JobCancelledError(f"A page range of job {ctx.job_id} was cancelled.")
    pages = PageStore(ctx.settings, str(ctx.job_id))
    dead = [child for child in children if child.state == JobState.DEAD]
    if dead:
        raise PermanentError(_failed_ranges(dead, pages.url))
    summaries = sorted((s for child in children for s in child.result["pages"]), key=lambda s: s["page"])
    finished = _finish(ctx, pages, summaries, children[0].result["kind"])
    peaks = [child.result["peak_rss_mb"] for child in children] + [finished["peak_rss_mb"]]
    return {**finished, "peak_rss_mb": {name: max(peak[name] for peak in peaks) for name in peaks[0]}}


def _failed_ranges(dead: list[Child], kept: str) -> str:
    named = "; ".join(
        f"pages {child.payload['first_page']}-{child.payload['last_page']} (job {child.id}): {child.error}"
        for child in dead
    )
    return f"{len(dead)} page ranges failed: {named}. The other pages' outputs are kept under {kept}."


def _finish(ctx: JobContext, pages: PageStore, summaries: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    ctx.progress(99, "joining the pages")
    with tempfile.TemporaryDirectory(prefix="conveyor-join-") as folder:
        joined = join(pages, [summary["page"] for summary in summaries], Path(folder))
        outputs = store_outputs(ctx.settings, ctx.sessions, joined, f"ocr-{ctx.job_id}")
    return {
        "kind": kind,
        "outputs": outputs,
        "pages_url": pages.url,
        **totals(summaries),
        "peak_rss_mb": peak_rss_mb(),
    }


def totals(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    recognised = [summary for summary in summaries if summary["source"] == "ocr"]
    words = sum(summary["words"] for summary in recognised)
    weighted = sum(summary["words"] * (summary["confidence"] or 0) for summary in recognised)
    seconds = sum(summary["seconds"] for summary in recognised)
    return {
        "pages": len(summaries),
        "pages_recognised": len(recognised),
        "pages_with_text_layer": len(summaries) - len(recognised),
        "characters": sum(summary["characters"] for summary in summaries),
        "words": words,
        "mean_confidence": round(weighted / words, 2) if words else None,
        "seconds_per_page": round(seconds / len(recognised), 3) if recognised else None,
    }
