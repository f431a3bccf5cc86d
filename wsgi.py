"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` or ``flask --app wsgi run``."""

import sys

from app import create_app
from app.config import ConfigError
from app.textgen import CorpusError

try:
    app = create_app()
except (ConfigError, CorpusError) as exc:
    sys.exit(f"mock-openai: {exc}")
