"""gunicorn settings for ``gunicorn -c gunicorn.conf.py wsgi:app`` (and the Procfile): the package's own
``app/server/gunicorn_conf.py``, which the ``mock-openai`` command runs too.

It is run as a file, not imported, so that a reload (SIGHUP) reads the settings again as gunicorn expects.
"""

import importlib.util
import runpy

globals().update(runpy.run_path(importlib.util.find_spec("app.server.gunicorn_conf").origin))
