"""Service endpoints: /health, /hello, /tokens, /echo."""


def test_health(client):
    assert client.get("/health").get_json() == {"status": "healthy", "service": "mock-openai"}


def test_hello(client):
    assert client.get("/hello").get_data(as_text=True) == "Hello world!"


def test_tokens_reports_the_default_reply_length(make_client):
    assert make_client({"responses": {"max_tokens": 321}}).get("/tokens").get_data(as_text=True) == "Max tokens: 321"


def test_echo_returns_the_json_it_was_sent(client):
    assert client.post("/echo", json={"a": [1, 2, {"b": None}]}).get_json() == {"a": [1, 2, {"b": None}]}


def test_echo_rejects_invalid_json(client):
    assert client.post("/echo", data="nope").status_code == 400


def test_a_host_header_that_cannot_be_routed_is_refused_every_time_while_others_are_served(client):
    """The routing of a Host header is worked out once and kept (app.flask_app); one it cannot encode (an
    empty label) is refused each time it comes, and does not change how the others are answered."""
    for host in ("api.example.com", "a..b", "a..b", "api.example.com", "other.test:8080"):
        response = client.get("/health", headers={"Host": host})
        assert response.status_code == (400 if host == "a..b" else 200), host
        if host == "a..b":
            assert response.json["error"]["message"].startswith("We could not parse the")
