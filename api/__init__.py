"""The HTTP API: an app factory; the module-level app lives only in `api.wsgi`."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from api import (
    backups,
    batches,
    correlation,
    dead_letters,
    docs,
    errors,
    files,
    health,
    import_profiles,
    job_types,
    jobs,
    limits,
    metrics,
    ops,
    schedules,
    tokens,
)
from api.runtime import ApiRuntime
from api.strict_json import StrictJSONProvider
from jobs.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask("conveyor")
    app.json = StrictJSONProvider(app)
    app.config.update(
        API_TITLE="Conveyor",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.extensions["conveyor"] = ApiRuntime(settings)
    docs.configure(app)
    api = Api(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    correlation.register(app)
    errors.register(app)
    resources = (
        jobs,
        batches,
        files,
        dead_letters,
        schedules,
        backups,
        import_profiles,
        job_types,
        tokens,
        health,
    )
    for blueprint in (resource.blp for resource in resources):
        api.register_blueprint(blueprint)
    job_types.describe_submission(api.spec, settings.max_batch)
    ops.register(app)
    metrics.register(app, settings)
    limits.register(app, settings)
    return app
