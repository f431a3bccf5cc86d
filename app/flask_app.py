"""The Flask class this server runs: Flask, minus costs per request that an API of synchronous views
does not need (each measured under load with bench/).

- ``ensure_sync`` asks ``inspect`` whether every hook and view is a coroutine, on every request; no view
  here is ``async``.
- A request's URL adapter: werkzeug works the server name out of the Host header (validated, lowercased,
  IDNA-encoded) for every request, the same for every request with that header; it is worked out once per
  header here.
- Routing: werkzeug walks its state machine for every request (and leaves a reference cycle behind, its
  recursive matcher, for the collector to find); where a path leads is worked out once per path here. A
  request whose host was seen gets its route by one lookup (:class:`RoutedAdapter`), werkzeug's adapter made
  only for what is new or refused, or when something else is asked of it.
- Headers: werkzeug checks each value it is given for line breaks, with a regular expression (with its
  iteration, about half a microsecond a header). The ones this server writes on every response (rate
  limits, request id, version) are made without any, and join the list as they are (:func:`add_own_headers`).
- A response's WSGI headers are, in werkzeug, a validated copy of its headers made for every response, so
  that a relative ``Location`` can be fixed and some statuses can lose their length. A response with
  neither concern (every API answer) sends its own headers as they are.
- A response's body goes to the server, in werkzeug, through a generator that encodes each part and a
  wrapper that closes it. A whole body of bytes with nothing to close (every API answer) needs neither and
  goes as it is.
- The request cycle (:class:`MockOpenAIFlask`'s hook methods): Flask gathers each request's hooks by walking
  its blueprint chain in four dictionaries, sends six signals that nothing here receives (blinker works
  that out for each), and makes a new null session for every request when no secret key is set (an API has
  no cookie session). Here the hooks of each route are gathered once (Flask refuses new hooks once it has
  served a request), a signal is sent only when it has receivers, and the null session, which refuses
  every write, is one for all requests. Together about 12 µs of a bare route's 58 (the app alone, in a
  loop, journaled; bench/ figures in the docs' benchmark page).
- A view's response: werkzeug's constructor parses the default status, looks the mimetype's charset up and
  checks each header value it sets; a whole JSON body (every completion's) and a stream are made as that
  constructor would leave them (:meth:`ApiResponse.of_json`, :meth:`ApiResponse.of_stream`). A view that
  returns Flask's own ``Response`` has it turned into the app's class, as Flask's ``make_response`` does
  after asking whether it is a string, an iterator (a check of an abstract class), a dict or a list first.
  A request whose form was never parsed has no files to close.
"""

from __future__ import annotations

import functools
import sys

from flask import Flask
from flask.ctx import AppContext, _sentinel
from flask.globals import _cv_app, _cv_request
from flask.sessions import NullSession, SecureCookieSessionInterface
from flask.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)
from flask.wrappers import Request, Response
from werkzeug.datastructures import Headers
from werkzeug.routing import Map, MapAdapter
from werkzeug.routing.matcher import StateMachineMatcher
from werkzeug.utils import get_content_type

BOUND_HOSTS = 256  # Host headers whose binding is kept (clients choose them: the cache must stay bounded)
MATCHED_PATHS = 4096  # paths whose route is kept (clients choose them too: /v1/models/<any id>)

# Statuses whose headers werkzeug may change: no body (1xx, 204, 304), or a precondition that failed (412).
_ADJUSTED_STATUSES = frozenset((204, 304, 412))
_URL_HEADERS = frozenset(("location", "content-location"))


class ApiResponse(Response):
    @classmethod
    def of_json(cls, body: bytes) -> ApiResponse:
        """``cls(body, mimetype="application/json")``, made as werkzeug's constructor leaves it (status 200,
        ``Content-Type``, then ``Content-Length``), without its steps: 2.8 → 0.7 µs in a loop.
        tests/unit/test_api_response.py checks that the two agree, attribute for attribute."""
        return cls._made([("Content-Type", "application/json"), ("Content-Length", str(len(body)))], [body], False)

    @classmethod
    def of_stream(cls, events, mimetype: str) -> ApiResponse:
        """``cls(events, mimetype=mimetype, direct_passthrough=True)``, made as :meth:`of_json` is (a text
        type with werkzeug's ``charset=utf-8``)."""
        return cls._made([("Content-Type", _content_type(mimetype))], events, True)

    @classmethod
    def _made(cls, header_list: list, body, direct_passthrough: bool) -> ApiResponse:
        response = cls.__new__(cls)
        headers = response.headers = Headers()
        headers._list = header_list
        response._status, response._status_code = "200 OK", 200
        response.direct_passthrough, response._on_close, response.response = direct_passthrough, [], body
        return response

    def get_wsgi_headers(self, environ):
        status = self.status_code
        if status < 200 or status in _ADJUSTED_STATUSES:
            return super().get_wsgi_headers(environ)
        has_length = False
        for name, _ in self.headers:
            lower = name.lower()
            if lower in _URL_HEADERS:
                return super().get_wsgi_headers(environ)
            if lower == "content-length":
                has_length = True
        if not has_length and self.is_sequence:  # werkzeug would measure the body and set the length
            return super().get_wsgi_headers(environ)
        return self.headers

    def get_app_iter(self, environ):
        body = self.response
        if (
            type(body) is list
            and len(body) == 1
            and type(body[0]) is bytes
            and not self._on_close
            and environ["REQUEST_METHOD"] != "HEAD"
            and self.status_code >= 200
            and self.status_code not in _ADJUSTED_STATUSES
        ):
            return body  # (nothing to encode and nothing to close: werkzeug's wrappers would only pass it on)
        return super().get_app_iter(environ)


class ApiRequest(Request):
    def close(self) -> None:
        if "files" in self.__dict__:  # (werkzeug closes the files of a form it parsed; none were parsed)
            super().close()


@functools.lru_cache(maxsize=16)
def _content_type(mimetype: str) -> str:
    return get_content_type(mimetype, "utf-8")


def add_own_headers(response: Response, pairs) -> None:
    """``(name, value)`` strings that this server makes (numbers, ids, constants: no line break in either, by
    construction) added to ``response``'s headers without werkzeug's check of each value."""
    headers = response.headers
    own = getattr(headers, "_list", None)  # (werkzeug's Headers keep their pairs there)
    if type(own) is list:
        own.extend(pairs)
    else:  # pragma: no cover (a werkzeug that keeps them otherwise)
        headers.extend(pairs)


class RememberingMatcher(StateMachineMatcher):
    """werkzeug's matcher, keeping where each path it matched leads (a route and its converted values) until the
    rules change. What matches nothing (a 404, 405 or redirect) is worked out again each time."""

    def __init__(self, merge_slashes: bool) -> None:
        self._matched: dict[tuple, tuple] = {}
        self.routed: dict[tuple, tuple] = {}  # the same, by a request's host binding and path (RoutedAdapter)
        super().__init__(merge_slashes)

    @property
    def merge_slashes(self) -> bool:
        return self._merge_slashes

    @merge_slashes.setter
    def merge_slashes(self, value: bool) -> None:
        self._merge_slashes = value
        self._matched, self.routed = {}, {}

    def update(self) -> None:  # (the map calls it before matching again once rules were added)
        self._matched, self.routed = {}, {}
        super().update()

    def match(self, domain: str, path: str, method: str, websocket: bool):
        key = (domain, path, method, websocket)
        matched = self._matched.get(key)
        if matched is None:
            rule, values = super().match(domain, path, method, websocket)
            if len(self._matched) < MATCHED_PATHS:
                self._matched[key] = (rule, dict(values))
            return rule, values
        rule, values = matched
        return rule, dict(values)  # a copy: the view's keyword arguments, which hooks may change


class RoutedAdapter:
    """Stands for werkzeug's ``MapAdapter`` of a request whose host was bound before. Flask asks it for the
    request's route, which is looked up by the host's binding, the path and the method where a request matched
    them before; werkzeug's adapter (its constructor, three path decodings, its ``match``: about 2 µs) is made
    only for what is new, a route refused, or anything else asked of it (``url_for``, an automatic OPTIONS)."""

    __slots__ = ("_app", "_environ", "_bound", "_key", "_adapter")

    def __init__(self, app, environ, bound: tuple, binding: tuple) -> None:
        self._app, self._environ, self._bound, self._adapter = app, environ, bound, None
        self._key = (binding, environ.get("PATH_INFO"), environ["REQUEST_METHOD"])

    def match(self, path_info=None, method=None, return_rule=False, query_args=None, websocket=None):
        if path_info is not None or method is not None or not return_rule or query_args or websocket is not None:
            return self.adapter.match(path_info, method, return_rule, query_args, websocket)
        url_map = self._app.url_map
        url_map.update()  # (rules added since: what was kept is forgotten)
        routed = url_map._matcher.routed
        found = routed.get(self._key)
        if found is not None:
            return found[0], dict(found[1])  # a copy: the view's keyword arguments, which hooks may change
        rule, values = self.adapter.match(return_rule=True)  # (a refusal raises: it is worked out each time)
        if len(routed) < MATCHED_PATHS:
            routed[self._key] = (rule, dict(values))
        return rule, values

    @property
    def adapter(self) -> MapAdapter:
        if self._adapter is None:
            environ = self._environ
            server_name, subdomain, url_scheme = self._bound
            self._adapter = MapAdapter(
                self._app.url_map,
                server_name,
                _wsgi_text(environ.get("SCRIPT_NAME"), "/"),
                subdomain,
                url_scheme,
                _wsgi_text(environ.get("PATH_INFO"), "/"),
                environ["REQUEST_METHOD"],
                _wsgi_text(environ.get("QUERY_STRING"), None),
            )
        return self._adapter

    def __getattr__(self, name: str):
        return getattr(self.adapter, name)


class RoutesMap(Map):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        matcher = RememberingMatcher(self._matcher.merge_slashes)
        for rule in self._rules:  # (any given to the constructor)
            if not rule.build_only:
                matcher.add(rule)
        self._matcher = matcher


class Hooks:
    """The hooks that run for one route, in the order Flask runs them (the app's and its blueprints')."""

    __slots__ = ("url_values", "before", "after", "teardown")

    def __init__(self, app: Flask, blueprints: list[str]) -> None:
        outward = (None, *reversed(blueprints))  # the app's first, then each blueprint's, outermost first
        inward = (*blueprints, None)
        self.url_values = [f for name in outward for f in app.url_value_preprocessors.get(name, ())]
        self.before = [f for name in outward for f in app.before_request_funcs.get(name, ())]
        self.after = [f for name in inward for f in reversed(app.after_request_funcs.get(name, ()))]
        self.teardown = [f for name in inward for f in reversed(app.teardown_request_funcs.get(name, ()))]


class AppContextSignalledWhenHeard(AppContext):
    """Flask's app context, sending its two signals only when something receives them."""

    def push(self) -> None:
        self._cv_tokens.append(_cv_app.set(self))
        if appcontext_pushed.receivers:
            appcontext_pushed.send(self.app, _async_wrapper=self.app.ensure_sync)

    def pop(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        try:
            if len(self._cv_tokens) == 1:
                if exc is _sentinel:
                    exc = sys.exc_info()[1]
                self.app.do_teardown_appcontext(exc)
        finally:
            ctx = _cv_app.get()
            _cv_app.reset(self._cv_tokens.pop())
        if ctx is not self:
            raise AssertionError(f"Popped wrong app context. ({ctx!r} instead of {self!r})")
        if appcontext_popped.receivers:
            appcontext_popped.send(self.app, _async_wrapper=self.app.ensure_sync)


class SessionsWhenKeyed(SecureCookieSessionInterface):
    """Flask's cookie sessions where a secret key is set; otherwise one null session for every request (it
    refuses every write, so no request can leave anything in it for another)."""

    null = NullSession()

    def open_session(self, app, request):
        return super().open_session(app, request) if app.secret_key else None

    def make_null_session(self, app):
        return self.null


class MockOpenAIFlask(Flask):
    request_class = ApiRequest
    response_class = ApiResponse
    url_map_class = RoutesMap
    session_interface = SessionsWhenKeyed()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._bound_hosts: dict[tuple, tuple] = {}
        self._hooks: dict = {}  # a route's endpoint (None: none matched) -> its Hooks

    def ensure_sync(self, func):
        return func

    # --- the request cycle: Flask's own steps, with the hooks gathered once per route ----------------------
    def app_context(self) -> AppContext:
        return AppContextSignalledWhenHeard(self)

    def hooks_of(self, request) -> Hooks:
        endpoint = request.endpoint  # (its blueprints are in its name)
        hooks = self._hooks.get(endpoint)
        if hooks is None:
            hooks = Hooks(self, request.blueprints)
            if self._got_first_request:  # (before it, hooks may still be added: a test's own request context)
                self._hooks[endpoint] = hooks
        return hooks

    def full_dispatch_request(self) -> Response:
        self._got_first_request = True
        try:
            if request_started.receivers:
                request_started.send(self, _async_wrapper=self.ensure_sync)
            rv = self.preprocess_request()
            if rv is None:
                rv = self.dispatch_request()
        except Exception as e:
            rv = self.handle_user_exception(e)
        return self.finalize_request(rv)

    def make_response(self, rv) -> Response:
        if type(rv) is Response:  # Flask's own, as most views return: what force_type would make of it
            rv.__class__ = self.response_class
            return rv
        return super().make_response(rv)

    def finalize_request(self, rv, from_error_handler: bool = False) -> Response:
        response = self.make_response(rv)
        try:
            response = self.process_response(response)
            if request_finished.receivers:
                request_finished.send(self, _async_wrapper=self.ensure_sync, response=response)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed with an error while handling an error")
        return response

    def preprocess_request(self):
        request = _cv_request.get().request
        hooks = self.hooks_of(request)
        for url_values in hooks.url_values:
            url_values(request.endpoint, request.view_args)
        for before in hooks.before:
            rv = before()
            if rv is not None:
                return rv
        return None

    def process_response(self, response: Response) -> Response:
        ctx = _cv_request.get()
        for after in ctx._after_request_functions:
            response = after(response)
        for after in self.hooks_of(ctx.request).after:
            response = after(response)
        session = ctx._session
        if session is not SessionsWhenKeyed.null and not self.session_interface.is_null_session(session):
            self.session_interface.save_session(self, session, response)
        return response

    def do_teardown_request(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if exc is _sentinel:
            exc = sys.exc_info()[1]
        for teardown in self.hooks_of(_cv_request.get().request).teardown:
            teardown(exc)
        if request_tearing_down.receivers:
            request_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    def do_teardown_appcontext(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if exc is _sentinel:
            exc = sys.exc_info()[1]
        for teardown in reversed(self.teardown_appcontext_funcs):
            teardown(exc)
        if appcontext_tearing_down.receivers:
            appcontext_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    # --- routing ---------------------------------------------------------------------------------------------
    def create_url_adapter(self, request):
        if request is None and self.config["SERVER_NAME"] is None:
            return None  # (Flask's answer outside a request, without a server name: every app context asks)
        if (
            request is None
            or self.config["SERVER_NAME"] is not None
            or self.config["TRUSTED_HOSTS"] is not None
            or self.url_map.host_matching
            or self.subdomain_matching
        ):
            return super().create_url_adapter(request)
        environ = request.environ
        # What werkzeug's binding reads besides the path: the host (or the server's address), the scheme, and
        # a WebSocket upgrade (which changes the scheme).
        key = (
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            environ["wsgi.url_scheme"],
            environ.get("HTTP_CONNECTION"),
            environ.get("HTTP_UPGRADE"),
        )
        bound = self._bound_hosts.get(key)
        if bound is None:
            adapter = super().create_url_adapter(request)  # may refuse the host (the request's routing error)
            if len(self._bound_hosts) < BOUND_HOSTS:
                self._bound_hosts[key] = (adapter.server_name, adapter.subdomain, adapter.url_scheme)
            return adapter
        return RoutedAdapter(self, environ, bound, key)


def _wsgi_text(value: str | None, default: str | None) -> str | None:
    """A WSGI string (bytes as latin-1) as the text it is in UTF-8, as werkzeug decodes it for routing."""
    return value.encode("latin-1").decode(errors="replace") if value is not None else default
