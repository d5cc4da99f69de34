"""The phases of bench/ocr.py: the document, the tesseract CLI anchor, and the ``ocr`` job on a
real worker of the embedded backend (which runs tesseract in its pool processes, tesserocr)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from bench.ocr_measure import (
    MB,
    CpuShare,
    PeakSampler,
    document_cer,
    machine_busy_s,
    reaped_cpu_s,
    status_kb,
    tree_cpu_s,
    wall,
)
from jobs import files
from jobs.models import Job, JobState
from jobs.service.families import children_of
from tests.ocr_documents import dense_a4_page, save_pdf
from tests.support import Backend, child_pids, stop_process, submit_and_publish, wait_until

DPI = 300
WARM_UP_SEED = 10_000
CLI_MODES = {"txt tsv pdf": "txt tsv pdf", "txt": "txt"}
FINISHED = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


class BenchBroken(RuntimeError):
    """A phase could not give a figure (a tool failed, a job did not succeed)."""


@dataclass
class Document:
    pdf: Path
    pngs: Path
    warm_up_pdf: Path
    truth: str
    pages: int


@dataclass
class Measure:
    """One row of the table."""

    name: str
    processes: int
    seconds: float
    pages: int
    cer: float
    cpu: CpuShare
    pool_mb: float | None = None
    tesseract_mb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds


def make_document(folder: Path, pages: int) -> Document:
    """Seeds 1..pages, one page each: kept as truths, PNGs (their dpi set, so the CLI reads the
    same 300 dpi the job is told) and one image-only PDF at 300 dpi, as a scanner makes."""
    pngs = folder / "pages"
    pngs.mkdir(parents=True)
    images, truths = [], []
    for seed in range(1, pages + 1):
        image, text = dense_a4_page(seed)
        image.save(pngs / f"page-{seed:03d}.png", dpi=(DPI, DPI))
        images.append(image)
        truths.append(text)
    save_pdf(images, folder / "document.pdf", dpi=DPI)
    warm_up, _ = dense_a4_page(WARM_UP_SEED)
    save_pdf([warm_up], folder / "warm-up.pdf", dpi=DPI)
    return Document(folder / "document.pdf", pngs, folder / "warm-up.pdf", "\n".join(truths), pages)


def cli_anchor(document: Document, mode: str, processes: int, out: Path) -> Measure:
    """``ls *.png | xargs -P N tesseract ...`` timed from fork to exit, OMP_THREAD_LIMIT=1
    (tesseract's OpenMP threads make it ~10x slower on two cores, as the job's engine notes)."""
    out.mkdir(parents=True)
    command = (
        f"ls *.png | xargs -P {processes} -I{{}} tesseract {{}} {out}/{{}} -l eng --psm 3 {CLI_MODES[mode]}"
    )
    env = {"PATH": "/usr/bin:/bin", "OMP_THREAD_LIMIT": "1", "LANG": "C.UTF-8"}
    busy, own, started = machine_busy_s(), reaped_cpu_s(), time.monotonic()
    shell = subprocess.Popen(
        ["sh", "-c", command], cwd=document.pngs, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    with PeakSampler(shell.pid) as sampler:
        _, stderr = shell.communicate()
    seconds = wall(started)
    cpu = CpuShare(machine_busy_s() - busy, reaped_cpu_s() - own)
    if shell.returncode != 0:
        raise BenchBroken(f"tesseract CLI ({mode}) exited {shell.returncode}: {stderr.decode()[-500:]}")
    texts = [(out / f"{png.name}.txt").read_text() for png in sorted(document.pngs.glob("*.png"))]
    cer = document_cer("\n".join(texts), document.truth)
    name = f"tesseract CLI, xargs -P {processes}, {mode}"
    return Measure(name, processes, seconds, document.pages, cer, cpu, tesseract_mb=sampler.tesseract_peak_mb)


def versions() -> str:
    """The CLI's tesseract and the job's (tesserocr's wheel may carry a tesseract of its own):
    a difference in speed or text may be the version's, not the platform's."""
    cli = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    try:
        import tesserocr

        job = tesserocr.tesseract_version().split("\n")[0]
    except ImportError:
        job = "no tesserocr"
    return f"CLI {cli}; job (tesserocr) {job}"


def upload(backend: Backend, path: Path) -> str:
    with backend.sessions.begin() as session:
        with (
            open(path, "rb") as stream,
            files.upload(backend.settings, stream, name=path.name, content_type=None) as row,
        ):
            session.add(row)
        return str(row.id)


def job_text(backend: Backend, job_id: uuid.UUID) -> str:
    job = backend.job(job_id)
    assert job.result is not None
    with backend.sessions() as session:
        row = files.get(session, uuid.UUID(job.result["outputs"]["text"]["file"]))
    with closing(files.open_content(backend.settings, row)) as stream:
        return stream.read().decode()


def children_per_process(backend: Backend, job_id: uuid.UUID) -> Counter[str]:
    """Which pool process (the claim's ``worker``, host/pid) ran each ``ocr-pages`` child."""
    with backend.sessions() as session:
        return Counter((child.worker or "?").rsplit("/", 1)[-1] for child in children_of(session, job_id))


@dataclass
class Platform:
    """A worker with ``processes`` pool processes and a relay, both started for one phase (the
    relay polls every 50 ms: it would take CPU from the CLI's phases if it ran through them)."""

    backend: Backend
    processes: int
    timeout: float
    worker: subprocess.Popen[bytes] = field(init=False)
    relay: subprocess.Popen[bytes] = field(init=False)

    def __enter__(self) -> Platform:
        self.relay = self.backend.start_relay()
        self.worker = self.backend.start_worker(self.processes)
        wait_until(lambda: len(self.pool()) >= self.processes, 120, f"{self.processes} pool processes")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.worker)
        stop_process(self.relay)

    def pool(self) -> list[int]:
        return child_pids(self.worker.pid)

    def own_cpu_s(self) -> float:
        return tree_cpu_s(self.worker.pid, self.relay.pid) + reaped_cpu_s()

    def ocr(self, file_id: str) -> str:
        return submit_and_publish(self.backend, "ocr", {"file": file_id, "dpi": DPI})

    def succeeded(self, job_id: str) -> Job:
        job = self.backend.wait_for_job(job_id, *FINISHED, timeout=self.timeout)
        if job.state != JobState.SUCCEEDED:
            raise BenchBroken(f"ocr job {job_id} ended {job.state}: {job.error_type}: {job.error_message}")
        return job

    def warm_up(self, file_id: str) -> float:
        """One 1-page job per pool process at once (not in the table): imports, the first
        tesseract start, the database and storage connections. The pool may give both to one."""
        started = time.monotonic()
        for job_id in [self.ocr(file_id) for _ in range(self.processes)]:
            self.succeeded(job_id)
        return wall(started)

    def timed(self, file_id: str) -> tuple[Job, float, CpuShare]:
        """Submit to the parent's ``succeeded``: the relay's hand-offs, the fan-out, every child
        and the join all count."""
        busy, own, started = machine_busy_s(), self.own_cpu_s(), time.monotonic()
        job = self.succeeded(self.ocr(file_id))
        seconds = wall(started)
        return job, seconds, CpuShare(machine_busy_s() - busy, self.own_cpu_s() - own)


def job_phase(backend: Backend, document: Document, processes: int, timeout: float) -> Measure:
    """A fresh worker, warmed up, then the whole document. The pool processes' VmHWM is sampled
    until just before the worker stops."""
    with Platform(backend, processes, timeout) as platform, PeakSampler(platform.worker.pid) as sampler:
        warm_s = platform.warm_up(upload(backend, document.warm_up_pdf))
        baseline = [status_kb(pid, "VmRSS") or 0 for pid in platform.pool()]
        job, seconds, cpu = platform.timed(upload(backend, document.pdf))
    result = job.result or {}
    if result.get("pages") != document.pages:
        raise BenchBroken(f"ocr job {job.id} gave {result.get('pages')} pages of {document.pages}")
    cer = document_cer(job_text(backend, job.id), document.truth)
    spread = children_per_process(backend, job.id)
    notes = [
        f"warm-up {warm_s:.1f} s; pool RSS after it {', '.join(f'{kb * 1024 / MB:.0f}' for kb in baseline)} MB",
        f"{sum(spread.values())} ocr-pages children by pool pid: {dict(spread)}",
        f"job's mean_confidence {result.get('mean_confidence')}, seconds_per_page {result.get('seconds_per_page')},"
        f" peak_rss_mb {result.get('peak_rss_mb')} (its own ru_maxrss, the most of any range and the join)",
    ]
    name = f"ocr job, worker -c {processes}"
    # tesseract is a library in the pool processes: a tesseract process under the worker is only
    # the language check's ``tesseract --list-langs``, so none is tabled for the job.
    return Measure(name, processes, seconds, document.pages, cer, cpu, sampler.pool_peak_mb, None, notes)
