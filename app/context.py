"""The current request, app and ``g``, read from the context variables behind Flask's proxies.

``flask.request``, ``flask.current_app`` and ``flask.g`` are werkzeug ``LocalProxy`` objects: each attribute
read through one costs about 0.8 us (a descriptor, a closure, the context variable, then the attribute), and
a completion read through them a dozen times. The code that every request runs (its hooks, the state, the
journal's notes, the simulation) reads the same objects here, in about 40 ns; elsewhere the proxies are the
plainer way, and stay. Outside a request (or an app context, for the app and ``g``) these raise LookupError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask, Request
    from flask.ctx import _AppCtxGlobals

try:  # Flask 2.2 and later keep each context in a context variable, which the proxies read
    from flask.globals import _cv_app, _cv_request
except ImportError:  # pragma: no cover (a Flask that keeps them elsewhere: the proxies, slower, the same objects)
    from flask import current_app, g, request

    def this_request() -> Request:
        return request._get_current_object()

    def this_app() -> Flask:
        return current_app._get_current_object()

    def this_g() -> _AppCtxGlobals:
        return g._get_current_object()

else:

    def this_request() -> Request:
        return _cv_request.get().request

    def this_app() -> Flask:
        return _cv_app.get().app

    def this_g() -> _AppCtxGlobals:
        return _cv_app.get().g
