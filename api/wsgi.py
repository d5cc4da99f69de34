"""The WSGI entry point: `gunicorn api.wsgi:app`."""

from api import create_app
from jobs.observability import start_process

app = create_app(start_process("api"))
