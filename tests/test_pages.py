"""A page of a list stays a bounded size however large the jobs in it, and the pages together
still hold every job once."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient

from api.pagination import MAX_PAGE_BYTES
from tests.support import auth, submit

BIG = 900_000  # characters of payload per job, under the 1 MB body limit


def test_pages_of_large_jobs_stop_early_and_together_hold_every_job(client: FlaskClient, writer: str) -> None:
    kind = f"big-{uuid.uuid4().hex[:8]}"
    ids = {submit(client, writer, "echo", {"blob": "x" * BIG}, correlation_id=kind) for _ in range(6)}

    seen, pages, cursor = [], [], ""
    while True:
        response = client.get(f"/v1/jobs?type=echo&limit=50{cursor}", headers=auth(writer))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append(len(response.data))
        seen += [job["id"] for job in body["items"] if job["correlation_id"] == kind]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"

    assert sorted(seen) == sorted(ids)
    assert len(pages) >= 2
    assert max(pages) <= MAX_PAGE_BYTES + BIG * 2
