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
