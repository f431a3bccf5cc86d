"""The request cycle of app.flask_app.MockOpenAIFlask: Flask's own steps with each route's hooks gathered once,
signals sent only when heard, one null session. What Flask promises must hold: hooks in Flask's order,
signals to any receiver connected at any time, cookie sessions where a secret key is set."""

from flask import Blueprint, session
from flask.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)

from app.flask_app import MockOpenAIFlask


def _app_with_hooks(calls: list) -> MockOpenAIFlask:
    app = MockOpenAIFlask(__name__)
    outer, inner = Blueprint("outer", __name__, url_prefix="/outer"), Blueprint("inner", __name__, url_prefix="/in")

    for name, target in (("app", app), ("outer", outer), ("inner", inner)):
        for n in (1, 2):
            target.before_request(lambda name=name, n=n: calls.append(f"before {name} {n}"))
            target.after_request(lambda r, name=name, n=n: calls.append(f"after {name} {n}") or r)
            target.teardown_request(lambda exc, name=name, n=n: calls.append(f"teardown {name} {n}"))
        target.url_value_preprocessor(lambda endpoint, values, name=name: calls.append(f"url {name} {endpoint}"))

    @inner.get("/<x>")
    def view(x):
        calls.append(f"view {x}")
        return {"x": x}

    @app.get("/plain")
    def plain():
        calls.append("view plain")
        return {}

    outer.register_blueprint(inner)
    app.register_blueprint(outer)
    return app


def _flask_order(app_class, path: str) -> list:
    calls: list = []
    app = _app_with_hooks(calls)
    app.__class__ = app_class  # the same app and hooks, run by the class under test
    client = app.test_client()
    for _ in range(2):  # the second time from what was gathered the first
        calls.clear()
        client.get(path)
    return calls


def test_hooks_run_in_flasks_order_for_nested_blueprints_the_app_and_no_route():
    from flask import Flask

    class PlainFlask(MockOpenAIFlask):  # Flask's own cycle, everything else alike
        app_context = Flask.app_context
        full_dispatch_request = Flask.full_dispatch_request
        finalize_request = Flask.finalize_request
        preprocess_request = Flask.preprocess_request
        process_response = Flask.process_response
        do_teardown_request = Flask.do_teardown_request
        do_teardown_appcontext = Flask.do_teardown_appcontext

    for path in ("/outer/in/7", "/plain", "/nowhere"):
        ours = _flask_order(MockOpenAIFlask, path)
        assert ours == _flask_order(PlainFlask, path)
        assert ours  # (each path runs hooks)
    nested = _flask_order(MockOpenAIFlask, "/outer/in/7")
    assert nested[:4] == ["url app outer.inner.view", "url outer outer.inner.view", "url inner outer.inner.view",
                          "before app 1"]  # fmt: skip
    assert nested.index("view 7") < nested.index("after inner 2") < nested.index("after app 1")


def test_a_before_hook_answering_stops_the_request_and_after_hooks_still_run():
    app = MockOpenAIFlask(__name__)
    seen = []
    app.before_request(lambda: ({"stopped": True}, 418))
    app.after_request(lambda r: seen.append(r.status_code) or r)
    app.get("/x")(lambda: {"view": True})
    for _ in range(2):
        response = app.test_client().get("/x")
        assert (response.status_code, response.json) == (418, {"stopped": True})
    assert seen == [418, 418]


def test_every_signal_reaches_a_receiver_connected_after_requests_were_served():
    app = MockOpenAIFlask(__name__)
    app.get("/x")(lambda: {})
    client = app.test_client()
    client.get("/x")
    heard = []
    signals = (request_started, request_finished, request_tearing_down, appcontext_pushed, appcontext_popped,
               appcontext_tearing_down)  # fmt: skip
    receivers = [lambda sender, s=s, **_: heard.append(s.name) for s in signals]
    for signal, receiver in zip(signals, receivers, strict=True):
        signal.connect(receiver, app)
    try:
        client.get("/x")
    finally:
        for signal, receiver in zip(signals, receivers, strict=True):
            signal.disconnect(receiver, app)
    assert sorted(heard) == sorted(s.name for s in signals)
    heard.clear()
    client.get("/x")
    assert heard == []


def test_without_a_secret_key_the_session_refuses_writes_and_with_one_it_is_a_cookie_session():
    app = MockOpenAIFlask(__name__)

    @app.get("/write")
    def write():
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.get("/read")
    def read():
        return {"empty": not session}

    client = app.test_client()
    assert client.get("/write").status_code == 500  # Flask's NullSession: "the session is unavailable"
    assert client.get("/read").json == {"empty": True}  # nothing of the refused write stayed for the next request

    keyed = MockOpenAIFlask(__name__)
    keyed.secret_key = "test"
    keyed.view_functions.update(app.view_functions)
    keyed.url_map = app.url_map
    client = keyed.test_client()
    assert [client.get("/write").json["n"] for _ in range(3)] == [1, 2, 3]
