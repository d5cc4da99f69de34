"""Passwords kept apart from their URLs: what the compose stack builds its URLs with."""

from __future__ import annotations

import pytest
from kombu.utils.url import url_to_parts
from sqlalchemy.engine import make_url

from jobs.errors import SettingsError
from jobs.settings import load_settings

SECRET = "p@ss/w:rd %"


def test_a_password_apart_goes_into_its_url_escaped() -> None:
    settings = load_settings(
        {
            "CONVEYOR_DATABASE_URL": "postgresql://conveyor@postgres:5432/conveyor",
            "CONVEYOR_DATABASE_PASSWORD": SECRET,
            "CONVEYOR_BROKER_URL": "valkey://valkey:6379/0",
            "CONVEYOR_BROKER_PASSWORD": SECRET,
        }
    )
    database = make_url(settings.database_url)
    assert (database.username, database.password, database.host) == ("conveyor", SECRET, "postgres")
    broker = url_to_parts(settings.broker_url)
    assert (broker.password, broker.hostname, broker.port) == (SECRET, "valkey", 6379)


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        (
            {"CONVEYOR_BROKER_URL": "amqp://u:p@rabbitmq//", "CONVEYOR_BROKER_PASSWORD": "x"},
            "CONVEYOR_BROKER_PASSWORD is set and its URL holds a password too",
        ),
        ({"CONVEYOR_DATABASE_PASSWORD": "x"}, "sqlite:// takes no password"),
    ],
)
def test_a_password_with_nowhere_to_go_is_refused(environ: dict[str, str], said: str) -> None:
    with pytest.raises(SettingsError, match=said):
        load_settings(environ)
