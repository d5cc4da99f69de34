"""Request bodies as `jobs.strict_json` reads them (only JSON every database stores and every
client reads back). Both readers of a body use it: Flask's `request.get_json` and webargs, which flask-smorest's
`@blp.arguments` parse with; every blueprint is this module's `Blueprint`.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from jobs.strict_json import strict_loads


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s)


class StrictParser(FlaskParser):
    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return strict_loads(req.get_data(cache=True))


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()
