"""`/v1/files`: hand the platform a file (streamed to storage), read it back, delete it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Response, request
from flask.views import MethodView
from sqlalchemy.orm import Session

from api.auth import SECURITY, require
from api.errors import abort
from api.idempotent import KeyKeeper, Outcome, run_once
from api.pagination import cursor_of, page
from api.runtime import runtime
from api.schemas import FileOut, FilePage, FileUpload, PageQuery
from api.strict_json import Blueprint
from jobs import files
from jobs.models import StoredFile
from jobs.storage import Readable, Reader, Watched

FILE_OUT = FileOut()
CHUNK = 256 * 1024
MAX_NAME_CHARS = 255
UPLOAD_BODY = {
    "description": "The file's bytes as the body (its Content-Type is kept), or a multipart form "
    "with the bytes in a `file` field.",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
CONTENT_RESPONSES = {
    "200": {"description": "The bytes", "content": {"application/octet-stream": {}}},
    "206": {"description": "The bytes of the requested range", "content": {"application/octet-stream": {}}},
    "304": {"description": "Not modified (If-None-Match named its ETag)"},
    "416": {"description": "The range is outside the file"},
}

blp = Blueprint("files", __name__, url_prefix="/v1/files", description="Hand files to the platform.")


@blp.route("")
class Files(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY)
    @blp.arguments(PageQuery(), location="query")
    @blp.response(200, FilePage)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List files, newest first, one page at a time."""
        before = cursor_of(query)
        with runtime().sessions() as session:
            found = files.list_files(session, query["limit"], before)
        return page([row.to_dict() for row in found], query["limit"], at="created_at")

    @require("jobs:write")
    @blp.doc(security=SECURITY, requestBody=UPLOAD_BODY)
    @blp.arguments(FileUpload(), location="query")
    @blp.response(201, FileOut)
    def post(self, query: dict[str, Any]) -> Response:
        """Upload a file, streamed to storage. Send `Idempotency-Key` to make retries safe: a
        retry with the key, name, type and length of the first is answered as the first was."""
        request.max_content_length = runtime().settings.max_upload_bytes
        upload = _body(query.get("name"))

        def store(session: Session) -> Outcome:
            stream = Watched(upload.stream, KeyKeeper())
            with files.upload(runtime().settings, stream, name=upload.name, content_type=upload.type) as row:
                session.add(row)
                session.flush()
            return FILE_OUT.dump(row.to_dict()), 201, {"Location": f"/v1/files/{row.id}"}

        return run_once(store, fingerprint=upload.fingerprint)


@dataclass(frozen=True)
class _Upload:
    stream: Readable
    name: str
    type: str | None
    size: int | None

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What names an upload for its idempotency key (its body is not read twice): a retry
        with the key, name, type and size of the first is answered as the first was."""
        return {"name": self.name, "type": self.type, "size": self.size}


def _body(name: str | None) -> _Upload:
    """The upload: a multipart form's `file` part (parsed, so its size is known), or the body."""
    if request.mimetype != "multipart/form-data":
        return _Upload(
            request.stream, name or "upload", _fits(request.mimetype, "content type"), request.content_length
        )
    part = request.files.get("file")
    if part is None:
        abort(422, "A multipart upload needs its bytes in a field named 'file'.")
    size = part.stream.seek(0, os.SEEK_END)
    part.stream.seek(0)
    sent_name = _fits(part.filename or "upload", "file name")
    return _Upload(part.stream, name or sent_name, _fits(part.mimetype, "content type"), size)


def _fits(text: str, what: str) -> str:
    if len(text) > MAX_NAME_CHARS:
        abort(422, f"The {what} is longer than {MAX_NAME_CHARS} characters.")
    return text


@blp.route("/<uuid:file_id>")
class FileById(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY)
    @blp.response(200, FileOut)
    def get(self, file_id: uuid.UUID) -> dict[str, Any]:
        """Read one file's metadata."""
        return _row(file_id).to_dict()

    @require("jobs:write")
    @blp.doc(security=SECURITY)
    @blp.response(204)
    def delete(self, file_id: uuid.UUID) -> None:
        """Delete the file and its bytes."""
        rt = runtime()
        with rt.sessions.begin() as session:
            files.delete(session, rt.settings, file_id)


@blp.route("/<uuid:file_id>/content")
class FileContent(MethodView):
    @require("jobs:read")
    @blp.doc(security=SECURITY, responses=CONTENT_RESPONSES)
    def get(self, file_id: uuid.UUID) -> Response:
        """The file's bytes, streamed; `Range` and `If-None-Match` are honoured."""
        row = _row(file_id)
        etag = f'"{row.sha256}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Disposition": _disposition(row.name)}
        if request.if_none_match.contains_weak(row.sha256):
            return Response(status=304, headers=headers)
        start, end, status = _range(row.size)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{row.size}"
        stream = files.open_content(runtime().settings, row, start, end if status == 206 else None)
        headers["Content-Length"] = str(end - start)
        return Response(_Chunks(stream), status=status, headers=headers, mimetype=row.content_type)


def _row(file_id: uuid.UUID) -> StoredFile:
    with runtime().sessions() as session:
        return files.get(session, file_id)


def _range(size: int) -> tuple[int, int, int]:
    """The byte range asked for, as (start, end exclusive, status); one range only."""
    asked = request.range
    if asked is None or asked.units != "bytes" or len(asked.ranges) != 1:
        return 0, size, 200
    bounds = asked.range_for_length(size)
    if bounds is None:
        abort(416, f"The range {request.headers.get('Range')!r} is outside the file's {size} bytes.")
    return bounds[0], bounds[1], 206


class _Chunks:
    """The body of a download: the server closes it when the response ends, even if it never
    read it (a HEAD, a client gone), which a generator's `finally` would not see."""

    def __init__(self, stream: Reader):
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.stream.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self.stream.close()


def _disposition(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"
