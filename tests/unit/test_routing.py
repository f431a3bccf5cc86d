"""Routing remembers where each path it matched leads (app.flask_app.RememberingMatcher): what it keeps must
answer exactly as werkzeug's own matching would."""

from werkzeug.routing import Rule

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
