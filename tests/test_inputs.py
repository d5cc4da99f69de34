"""A payload's input, an uploaded file or a storage URL, found by one function."""

from __future__ import annotations

import dataclasses
import io
import uuid
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from jobs import files
from jobs.catalogue.inputs import InputRef
from jobs.errors import InvalidInputError
from jobs.storage import ObjectMissingError, open_storage
from jobs.storage.inputs import resolve_input
from tests.s3_server import S3Server
from tests.storage_helpers import put, read_all
from tests.support import Backend


class WithInput(Schema):
    input = InputRef(required=True)


@pytest.mark.parametrize(
    "ref",
    [
        {"file": "not-a-uuid"},
        {"url": "s3://bucket"},
        {"url": "s3://ab/key"},
        {"url": "ftp://host/key"},
        {"file": str(uuid.uuid4()), "url": "s3://bucket/key"},
        {},
        {"path": "/etc/passwd"},
    ],
)
def test_an_input_that_is_not_one_file_or_one_object_is_refused(ref: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WithInput().load({"input": ref})


def test_an_uploaded_file_is_found_by_its_id(embedded: Backend) -> None:
    with embedded.sessions.begin() as session:
        with files.upload(embedded.settings, io.BytesIO(b"scanned"), name="a.png", content_type=None) as row:
            session.add(row)
        file_id = str(row.id)
    ref = WithInput().load({"input": {"file": file_id}})["input"]
    with embedded.sessions() as session:
        storage, key = resolve_input(ref, embedded.settings, session)
    assert read_all(storage, key) == b"scanned"


def test_an_object_is_found_by_its_url(embedded: Backend, s3_server: S3Server) -> None:
    settings = dataclasses.replace(embedded.settings, s3_endpoint_url=s3_server.endpoint)
    prefix = s3_server.fresh_prefix()
    put(open_storage(prefix, settings), "in/doc.pdf", b"%PDF")
    with embedded.sessions() as session:
        storage, key = resolve_input({"url": f"{prefix}/in/doc.pdf"}, settings, session)
    assert read_all(storage, key) == b"%PDF"


def test_a_file_id_that_names_nothing_is_a_permanent_error(embedded: Backend) -> None:
    with embedded.sessions() as session, pytest.raises(ObjectMissingError) as raised:
        resolve_input({"file": str(uuid.uuid4())}, embedded.settings, session)
    assert not raised.value.retriable


def test_a_folder_outside_the_allowed_roots_is_refused(embedded: Backend) -> None:
    with embedded.sessions() as session, pytest.raises(InvalidInputError, match="CONVEYOR_FILE_ROOTS"):
        resolve_input({"url": "file:///etc/passwd"}, embedded.settings, session)
