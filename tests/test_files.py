"""``/v1/files``: uploads streamed to storage (a folder or a real S3), read back by range."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from jobs.files import files_storage
from jobs.settings import Settings
from jobs.storage import ObjectMissingError
from tests.s3_server import S3Server
from tests.support import Backend, auth

DATA = os.urandom(300_000)


@dataclasses.dataclass
class Served:
    client: FlaskClient
    token: str
    settings: Settings

    def upload(self, data: bytes = DATA, **headers: str) -> dict[str, Any]:
        response = self.post(data, **headers)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def post(self, data: bytes, path: str = "/v1/files?name=scan.pdf", **headers: str) -> Any:
        headers.setdefault("Content-Type", "application/pdf")
        return self.client.post(path, data=data, headers=auth(self.token, **headers))

    def stored_keys(self) -> list[str]:
        try:
            return [info.key for info in files_storage(self.settings).list()]
        except ObjectMissingError:
            return []  # the folder is made by the first upload


@pytest.fixture(params=["file", "s3"])
def served(request: pytest.FixtureRequest, embedded: Backend, s3_server: S3Server) -> Iterator[Served]:
    settings = dataclasses.replace(embedded.settings, max_upload_bytes=len(DATA) * 2)
    if request.param == "s3":
        settings = dataclasses.replace(
            settings, storage_url=s3_server.fresh_prefix(), s3_endpoint_url=s3_server.endpoint
        )
    app = create_app(settings)
    yield Served(app.test_client(), embedded.token("jobs:write", "jobs:read"), settings)


def test_an_upload_is_stored_with_its_size_and_sha256_and_read_back(served: Served) -> None:
    created = served.upload()
    assert (created["name"], created["size"], created["content_type"]) == (
        "scan.pdf",
        len(DATA),
        "application/pdf",
    )
    assert created["sha256"] == hashlib.sha256(DATA).hexdigest()

    meta = served.client.get(f"/v1/files/{created['id']}", headers=auth(served.token))
    assert meta.get_json() == created
    content = served.client.get(f"/v1/files/{created['id']}/content", headers=auth(served.token))
    assert (content.status_code, content.data, content.mimetype) == (200, DATA, "application/pdf")
    assert content.headers["ETag"] == f'"{created["sha256"]}"'


def test_a_range_is_served_as_206_and_a_known_etag_as_304(served: Served) -> None:
    created = served.upload()
    path = f"/v1/files/{created['id']}/content"
    ranged = served.client.get(path, headers=auth(served.token, Range="bytes=100-199"))
    assert (ranged.status_code, ranged.data) == (206, DATA[100:200])
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(DATA)}"
    outside = served.client.get(path, headers=auth(served.token, Range=f"bytes={len(DATA) + 5}-"))
    assert outside.status_code == 416
    cached = served.client.get(
        path, headers=auth(served.token, **{"If-None-Match": f'"{created["sha256"]}"'})
    )
    assert (cached.status_code, cached.data) == (304, b"")


def test_a_multipart_upload_keeps_the_parts_name_and_type(served: Served) -> None:
    form = {"file": (io.BytesIO(b"a,b\n1,2\n"), "rows.csv", "text/csv")}
    response = served.client.post("/v1/files", data=form, headers=auth(served.token))
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["name"], response.get_json()["content_type"]) == ("rows.csv", "text/csv")


def test_an_upload_over_the_limit_is_413_and_nothing_is_kept(served: Served) -> None:
    too_big = DATA * 3
    assert served.post(too_big).status_code == 413
    chunked = served.client.post(
        "/v1/files",
        input_stream=io.BytesIO(too_big),
        headers=auth(served.token, **{"Content-Type": "application/octet-stream"}),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413, chunked.get_json()
    assert chunked.get_json()["code"] == 413
    assert served.stored_keys() == []
    listed = served.client.get("/v1/files", headers=auth(served.token)).get_json()
    assert listed["items"] == []


def test_a_retried_upload_with_its_idempotency_key_is_stored_once(served: Served) -> None:
    first = served.upload(DATA, **{"Idempotency-Key": "upload-1"})
    again = served.post(DATA, **{"Idempotency-Key": "upload-1"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first["id"]
    assert len(served.stored_keys()) == 1


def test_a_deleted_file_is_gone_with_its_bytes(served: Served) -> None:
    created = served.upload()
    assert served.client.delete(f"/v1/files/{created['id']}", headers=auth(served.token)).status_code == 204
    assert served.client.get(f"/v1/files/{created['id']}", headers=auth(served.token)).status_code == 404
    assert (
        served.client.get(f"/v1/files/{created['id']}/content", headers=auth(served.token)).status_code == 404
    )
    assert served.stored_keys() == []


def test_files_are_listed_newest_first_a_page_at_a_time(served: Served) -> None:
    ids = [served.upload(f"file {n}".encode())["id"] for n in range(3)]
    first = served.client.get("/v1/files?limit=2", headers=auth(served.token)).get_json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    rest = served.client.get(f"/v1/files?limit=2&cursor={first['next_cursor']}", headers=auth(served.token))
    assert [item["id"] for item in rest.get_json()["items"]] == ids[:1]


def test_a_reader_cannot_upload(served: Served, embedded: Backend) -> None:
    reader = embedded.token("jobs:read")
    response = served.client.post("/v1/files", data=b"x", headers=auth(reader))
    assert response.status_code == 403


def test_a_retried_multipart_upload_with_a_new_boundary_is_replayed(served: Served) -> None:
    def send() -> Any:
        form = {"file": (io.BytesIO(b"a,b\n"), "rows.csv", "text/csv")}
        return served.client.post(
            "/v1/files", data=form, headers=auth(served.token, **{"Idempotency-Key": "form-1"})
        )

    first, again = send(), send()
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_file_name_or_type_too_long_to_store_is_a_422(served: Served) -> None:
    form = {"file": (io.BytesIO(b"x"), "n" * 300 + ".csv", "text/csv")}
    assert served.client.post("/v1/files", data=form, headers=auth(served.token)).status_code == 422
    assert served.post(b"x", **{"Content-Type": "application/" + "x" * 300}).status_code == 422
    assert served.stored_keys() == []


def test_a_head_of_the_content_closes_what_it_opened(served: Served) -> None:
    created = served.upload()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        response = served.client.head(f"/v1/files/{created['id']}/content", headers=auth(served.token))
        response.close()
        gc.collect()
    assert (response.status_code, response.headers["Content-Length"]) == (200, str(len(DATA)))
