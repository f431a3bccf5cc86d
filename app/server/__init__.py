"""The server around the app: what gunicorn runs and how a connection is served.

Its face is ``gunicorn_conf.py``, the settings file that ``mock-openai`` (and a clone's top-level
``gunicorn.conf.py``) hands to gunicorn: it names ``worker.MockOpenAIWorker`` and the TLS hooks. The parts:

- ``worker``: gunicorn's gevent worker with the original's connection limits, quiet TLS refusals, quick stops;
- ``http1``: the worker's lean HTTP/1.1 loop, and the hand-over to gunicorn's own for anything unusual;
- ``memory``: a worker's memory back to its baseline after a large body;
- ``tls``: TLS settings checked at start-up, and the ``ssl_context`` tweaks;
- ``certs``: ``mock-openai certs``, test certificates;
- ``healthcheck``: ``python -m app.server.healthcheck``, the container's health check.

Nothing here is imported by the app itself (views, simulation, state): the app runs under any WSGI server, and
gunicorn's master imports this package before gevent has patched anything.
"""
