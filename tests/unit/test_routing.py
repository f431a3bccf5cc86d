"""Routing remembers where each path it matched leads (app.flask_app.RememberingMatcher), and a request whose
host was seen before gets its route by a lookup, werkzeug's adapter made only when something else is asked
of it (app.flask_app.RoutedAdapter): what they keep must answer exactly as werkzeug's own matching would."""

import gc

from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder

from app import flask_app
from app.flask_app import RoutesMap


def test_each_path_keeps_its_own_values_however_often_it_comes(client):
    for model in ("gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"):
        response = client.get(f"/v1/models/{model}")
        assert response.status_code == 200
        assert response.json["id"] == model


def test_a_path_matched_for_one_method_is_still_refused_for_another(client):
    completion = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}
    for _ in range(2):
        assert client.post("/v1/completions", json=completion).status_code == 200
        assert client.get("/v1/completions").status_code == 405
    for _ in range(2):
        assert client.get("/v1/no-such-thing").status_code == 404


def test_past_the_bound_paths_are_matched_afresh_and_still_right(client, monkeypatch):
    monkeypatch.setattr(flask_app, "MATCHED_PATHS", 2)
    matcher = client.application.url_map._matcher
    matcher.update()  # (forget what earlier requests of this app left)
    models = [model["id"] for model in client.get("/v1/models").json["data"][:5]]
    assert len(models) == 5
    for model in models + models:
        assert client.get(f"/v1/models/{model}").json["id"] == model
    assert len(matcher._matched) == 2


def test_url_for_an_automatic_options_answer_and_refusals_as_werkzeug_gives_them(app):
    import flask

    app.add_url_rule("/probe/<int:n>", "probe", lambda n: {"n": n, "url": flask.url_for("probe", n=n + 1)})
    client = app.test_client()
    for _ in range(3):  # the first request binds the host; the next ones find the route kept
        assert client.get("/probe/7").json == {"n": 7, "url": "/probe/8"}
        assert client.get("/probe/7", base_url="http://Other.example:8080").json == {"n": 7, "url": "/probe/8"}
        options = client.options("/v1/chat/completions")
        assert options.status_code == 200 and set(options.headers["Allow"].split(", ")) >= {"POST", "OPTIONS"}
        assert client.get("/v1//models").status_code == 308  # werkzeug's redirect for a merged slash
        assert client.post("/v1/models").status_code == 405
        assert client.get("/probe/seven").status_code == 404
    routed = app.url_map._matcher.routed
    assert {key[1:] for key in routed} >= {("/probe/7", "GET"), ("/v1/chat/completions", "OPTIONS")}
    assert not any(key[1] in ("/v1//models", "/probe/seven") for key in routed)  # refusals are not kept

    app.url_map.add(Rule("/probe/7", endpoint="seven"))  # a static rule wins over the variable one
    app.view_functions["seven"] = lambda: {"seven": True}
    assert client.get("/probe/7").json == {"seven": True}
    assert client.get("/probe/8").json == {"n": 8, "url": "/probe/9"}


def test_what_is_handed_out_is_a_copy_and_a_new_rule_is_seen():
    routes = RoutesMap([Rule("/things/<name>", endpoint="thing")])
    adapter = routes.bind("example.com")
    rule, values = adapter.match("/things/special", return_rule=True)
    assert (rule.endpoint, values) == ("thing", {"name": "special"})
    for _ in range(3):  # the first answer, then kept ones: each the caller's own to change
        endpoint, values = adapter.match("/things/special")
        assert (endpoint, values) == ("thing", {"name": "special"})
        values["name"] = "changed by a hook"

    routes.add(Rule("/things/special", endpoint="special"))  # a static rule wins over the variable one
    assert routes.bind("example.com").match("/things/special") == ("special", {})


def test_a_completion_leaves_no_reference_cycle_for_the_collector(app):
    """The worker collects young objects rarely (app/server/worker.py) because requests like these leave
    nothing only the collector could free; werkzeug's own matcher left a cycle per request. Called as a
    server calls the app: the test client keeps each request's objects in a cycle of its own."""
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}

    def serve(body) -> str:
        statuses = []
        response = app(EnvironBuilder(path="/v1/chat/completions", method="POST", json=body).get_environ(),
                       lambda status, headers, exc_info=None: statuses.append(status))  # fmt: skip
        try:
            b"".join(response)
        finally:
            response.close()
        return statuses[0]

    for body in (chat, {**chat, "stream": True}):
        serve(body)  # (what is made once, made)
        gc.collect()
        gc.disable()
        try:
            assert [serve(body) for _ in range(20)] == ["200 OK"] * 20
            assert gc.collect() == 0
        finally:
            gc.enable()
