"""Request fields that refuse, with a 422 naming the field, what a database would refuse later
with a 500: NUL characters, unpaired surrogates, times outside the storable range. The OpenAPI
document says so (a pattern, a description), so a client can know before it asks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

NO_NUL = "^[^\\u0000]*$"


def storable(text: str) -> bool:
    """PostgreSQL stores neither NUL nor an unpaired surrogate (which UTF-8 cannot encode)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """A string with no NUL character and no unpaired surrogate."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.metadata = {"pattern": NO_NUL, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if not storable(text):
            raise ValidationError("Must not contain NUL characters or unpaired surrogates.")
        return text


class Timestamp(fields.AwareDateTime):
    """An ISO 8601 time with its offset, that is still a time once moved to UTC."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.metadata = {
            "description": "ISO 8601 with an offset, between years 1 and 9999 in UTC",
            **self.metadata,
        }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Is outside the range of times that can be stored.") from None


class Flag(fields.Boolean):
    """``true`` or ``false`` only: 0, 1, "yes" and the like are refused, as the schema says."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value
