"""Running the OCR handlers in the test process, on the embedded backend's storage and database."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

from jobs import files
from jobs.catalogue import validate_payload
from tasks import ocr
from tasks.context import JobContext
from tests.support import Backend


class Reports(list[tuple[int, str | None]]):
    def __call__(self, percent: int, message: str | None) -> bool:
        self.append((percent, message))
        return False


def uploaded(backend: Backend, path: Path) -> str:
    with (
        backend.sessions.begin() as session,
        open(path, "rb") as stream,
        files.upload(backend.settings, io.BytesIO(stream.read()), name=path.name, content_type=None) as row,
    ):
        session.add(row)
    return str(row.id)


def context(backend: Backend, reports: Reports | None = None, job_id: uuid.UUID | None = None) -> JobContext:
    def resolve(ref: Any) -> Any:
        with backend.sessions() as session:
            from jobs.storage.inputs import resolve_input

            return resolve_input(ref, backend.settings, session)

    return JobContext(
        job_id or uuid.uuid4(),
        1,
        1,
        reports if reports is not None else Reports(),
        backend.settings,
        resolve,
        backend.sessions,
    )


def run_ocr(backend: Backend, path: Path, reports: Reports | None = None, **payload: Any) -> dict[str, Any]:
    loaded = validate_payload("ocr", {"file": uploaded(backend, path), **payload}, backend.settings)
    return ocr.recognise_document(loaded, context(backend, reports))


def stored_text(backend: Backend, result: dict[str, Any], kind: str = "text") -> bytes:
    with backend.sessions() as session:
        row = files.get(session, uuid.UUID(result["outputs"][kind]["file"]))
    stream = files.open_content(backend.settings, row)
    try:
        return stream.read()
    finally:
        stream.close()
