"""app/context.py reads the objects behind Flask's proxies without them: the same objects, and none outside."""

from __future__ import annotations

import flask
import pytest

from app.context import this_app, this_g, this_request


def test_the_request_app_and_g_are_the_ones_flasks_proxies_give(app):
    with app.test_request_context("/v1/models", headers={"X-Seen": "yes"}):
        assert this_request() is flask.request._get_current_object()
        assert this_request().headers["X-Seen"] == "yes"
        assert this_app() is flask.current_app._get_current_object() is app
        this_g().marker = 1
        assert flask.g.marker == 1
    with app.app_context():
        assert this_app() is app and this_g() is flask.g._get_current_object()
        with pytest.raises(LookupError):
            this_request()  # an app context, no request


def test_outside_any_context_they_fail_rather_than_answer_for_another_request():
    for read in (this_request, this_app, this_g):
        with pytest.raises(LookupError):
            read()
