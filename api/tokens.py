"""`/v1/tokens`: who may call the API, and revoking a token (scope `admin`)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from api.auth import SECURITY, require
from api.runtime import runtime
from api.schemas import TokenOut
from api.strict_json import Blueprint
from jobs import tokens

blp = Blueprint("tokens", __name__, url_prefix="/v1/tokens", description="API tokens.")


@blp.route("")
class Tokens(MethodView):
    @require("admin")
    @blp.doc(security=SECURITY)
    @blp.response(200, TokenOut(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List every token, oldest first; a token's secret is never shown again."""
        with runtime().sessions() as session:
            return [token.to_dict() for token in tokens.list_tokens(session)]


@blp.route("/<uuid:token_id>")
class TokenById(MethodView):
    @require("admin")
    @blp.doc(security=SECURITY)
    @blp.response(200, TokenOut)
    def get(self, token_id: uuid.UUID) -> dict[str, Any]:
        """One token."""
        with runtime().sessions() as session:
            return tokens.get(session, token_id).to_dict()

    @require("admin")
    @blp.doc(security=SECURITY)
    @blp.response(200, TokenOut)
    def delete(self, token_id: uuid.UUID) -> dict[str, Any]:
        """Revoke a token: each API process refuses it within 10 s (409 if already revoked)."""
        with runtime().sessions.begin() as session:
            return tokens.revoke(session, token_id).to_dict()
