"""The WSGI entry point: ``gunicorn api.wsgi:app``."""

from api import create_app
from jobs.observability import configure_logging, init_sentry
from jobs.settings import load_settings

settings = load_settings()
configure_logging(settings)
init_sentry(settings, component="api")
app = create_app(settings)
