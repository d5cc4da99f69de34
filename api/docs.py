"""Swagger UI at `/docs`, served from the `swagger-ui-bundle` package: no CDN at run time."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Flask, Response, send_from_directory

ASSETS_URL = "/docs/assets/"

SWAGGER_UI_CONFIG = {
    "deepLinking": True,
    "displayRequestDuration": True,
    "tryItOutEnabled": True,
}


def configure(app: Flask) -> None:
    """Set before `Api(app)` reads its configuration."""
    app.config.update(
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=ASSETS_URL,
        OPENAPI_SWAGGER_UI_CONFIG=SWAGGER_UI_CONFIG,
    )
    app.add_url_rule(ASSETS_URL + "<path:name>", "docs_assets", asset)


def asset(name: str) -> Response:
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, name, max_age=86400)
