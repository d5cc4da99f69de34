"""The API explorer at /docs: Swagger UI from the installed package, and a document it renders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api import create_app
from jobs.settings import load_settings

RST_MARKUP = re.compile(r"``|:(?:class|func|meth|attr|ref):`|^\.\. ", re.MULTILINE)


@pytest.fixture(scope="module")
def docs_client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    data_dir: Path = tmp_path_factory.mktemp("docs")
    return create_app(load_settings({"CONVEYOR_DATA_DIR": str(data_dir)})).test_client()


def test_docs_is_swagger_ui_whose_every_script_and_style_this_server_serves(docs_client: FlaskClient) -> None:
    page = docs_client.get("/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert "SwaggerUIBundle" in page and len(assets) >= 3
    assert all(url.startswith("/docs/assets/") for url in assets), assets
    assert all(docs_client.get(url).status_code == 200 for url in assets)
    assert docs_client.get("/docs/assets/../../pyproject.toml").status_code == 404


def test_the_documents_descriptions_are_markdown_not_restructuredtext(docs_client: FlaskClient) -> None:
    document = json.dumps(docs_client.get("/openapi.json").get_json())

    assert not RST_MARKUP.findall(document.replace("\\n", "\n"))


def test_every_v1_operation_takes_the_bearer_token_the_authorize_button_sets(
    docs_client: FlaskClient,
) -> None:
    document = docs_client.get("/openapi.json").get_json()
    operations = [
        operation
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if method != "parameters"
    ]

    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert operations and all(op.get("security") == [{"bearer": []}] for op in operations)
