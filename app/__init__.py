"""mock-openai: an OpenAI-compatible mock LLM API server."""

from __future__ import annotations

from app.config import Settings, load_settings
from app.flask_app import MockOpenAIFlask
from app.state import MockState
from app.version import __version__  # noqa: F401 (the package's face)


def create_app(config: Settings | dict | None = None) -> MockOpenAIFlask:
    """Build the app. ``config`` is a loaded :class:`Settings`, or a dict of overrides for
    :func:`load_settings` (``{"responses": {"inter_token_latency_ms": 0}}``), or None for the usual layers."""
    settings = config if isinstance(config, Settings) else load_settings(overrides=config)
    app = MockOpenAIFlask(__name__)
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.server["max_body_bytes"])
    app.json.sort_keys = False
    state = app.extensions["mock_openai"] = MockState.build(settings)

    from app import auth, errors, formats, headers, recording, ui
    from app.api import (
        admin,
        batches,
        completions,
        embeddings,
        files,
        journal,
        meta,
        models,
        responses,
        stored_completions,
    )

    errors.init_app(app)
    headers.init_app(app)
    app.register_blueprint(auth.bp)
    recording.init_app(app, settings)
    app.register_blueprint(meta.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(completions.bp)
    app.register_blueprint(embeddings.bp)
    app.register_blueprint(responses.bp)
    app.register_blueprint(stored_completions.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(journal.bp)
    app.register_blueprint(ui.bp)
    formats.init_app(app)
    if state.journal is not None:  # outermost: the capture sees every request as the client does
        app.wsgi_app = state.journal.wrap(app.wsgi_app)
    return app
