"""The web UI in a real browser: Playwright driving Debian's chromium against real gunicorn workers.

Set ``MOCK_OPENAI_SCREENSHOTS=DIR`` to keep screenshots of the pages (the README's comes from here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveServer, component

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.e2e, pytest.mark.browser]
# What this machine's closed network needs: no calls home, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
SCRIPT = "<script>window.__xss = 1</script><img src=x onerror='window.__xss = 2'>"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    component("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(["-w", "2", "--inter-token-latency", "1"], None, tmp_path_factory.mktemp("ui"))
    yield live
    live.stop()


@pytest.fixture
def page(browser):
    # bypass_csp: the test evaluates its own scripts; the escaping it checks must hold without the CSP too
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def chat(server, content="Hello", headers=None, **body):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": 5, **body}
    return requests.post(server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def screenshot(page, name: str) -> None:
    folder = os.environ.get("MOCK_OPENAI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def total(page) -> int:
    return int(page.text_content("#total").replace(",", ""))


def test_the_dashboard_counts_and_charts_change_without_a_reload(server, page):
    page.goto(server.base_url + "/ui/dashboard")
    page.wait_for_function("document.getElementById('total').textContent !== '–'")
    before = total(page)
    page.evaluate("window.__same_page = true")
    for n in range(6):
        chat(server, stream=n % 2 == 0)
    requests.get(server.base_url + "/v1/models", timeout=5)
    chat(server, model="no-such-model")
    page.wait_for_function(f"Number(document.getElementById('total').textContent.replace(/,/g, '')) >= {before + 8}")
    assert page.evaluate("window.__same_page") is True  # updated in place, not reloaded
    page.wait_for_function("document.querySelectorAll('#chart-status rect').length >= 2")
    methods = page.eval_on_selector_all("#chart-method rect", "bars => bars.map(b => b.dataset.label)")
    statuses = page.eval_on_selector_all("#chart-status rect", "bars => bars.map(b => b.dataset.label)")
    assert {"GET", "POST"} <= set(methods) and {"200", "404"} <= set(statuses)
    assert page.get_attribute("#chart-time polygon", "points").count(",") >= 60
    assert "gpt-4o-mini" in page.text_content("#by-model")
    assert page.text_content("#success").endswith("%")
    assert page.locator("#live.on").count() == 1
    screenshot(page, "ui-dashboard.png")


def test_the_list_filters_updates_live_and_opens_a_redacted_escaped_detail(server, page):
    chat(server, SCRIPT, headers={"Authorization": "Bearer sk-very-secret-0000"}, user="script-sender")
    page.goto(server.base_url + "/ui/requests")
    page.wait_for_selector("#requests tbody tr[data-id]")
    first_id = page.get_attribute("#requests tbody tr[data-id]", "data-id")
    chat(server, "arrives while the page is open")
    page.wait_for_function(
        f"document.querySelector('#requests tbody tr[data-id]').dataset.id !== '{first_id}'", timeout=10000
    )

    page.select_option("select[name=method]", "POST")
    page.fill("input[name=q]", "script-sender")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#requests tbody tr[data-id]').length === 1")
    assert "1 matching" in page.text_content("#page-info")
    page.click("#requests tbody tr[data-id]")
    page.wait_for_selector("#request-body")
    assert "/ui/requests/" in page.url

    assert page.text_content("#request-headers").count("Bearer [redacted]") == 1
    assert "sk-very-secret" not in page.content()
    assert SCRIPT in page.text_content("#request-body")  # shown as the text it is
    assert page.evaluate("window.__xss") is None and page.dialogs == []
    assert page.locator("#request-body script, #request-body img").count() == 0
    screenshot(page, "ui-request.png")


def test_a_request_sent_with_a_marker_is_readable_in_the_list_without_opening_it(server, page):
    reply = chat(server, "Tell me about zebra-7341 habitats " + "please " * 30).json()
    page.goto(server.base_url + "/ui/requests")
    row = page.locator("#requests tbody tr[data-id]").filter(has_text="zebra-7341")
    row.wait_for()
    asked, answered = row.locator("td.preview .asked").text_content(), row.locator(".answered").text_content()
    assert asked.startswith("Tell me about zebra-7341 habitats please") and asked.endswith("…")
    assert len(asked) <= 81
    assert answered == reply["choices"][0]["message"]["content"].strip()
    request_id = requests.get(server.base_url + "/_mock/requests", params={"q": "zebra-7341"}, timeout=5).json()
    assert row.locator("td.request-id").text_content() == request_id["data"][0]["request_id"]
    assert request_id["data"][0]["request_id"].startswith("req_")
    screenshot(page, "ui-requests.png")


def test_the_search_finds_a_stream_by_words_of_its_reply_and_the_detail_copies_as_curl(server, page):
    # 40 tokens: enough for three whole words whatever the reply (5 once gave "He" and punctuation)
    chat(server, "find my stream", stream=True, max_tokens=40, headers={"Authorization": "Bearer sk-curl-secret"})
    entry = requests.get(server.base_url + "/_mock/requests", params={"q": "find my stream"}, timeout=5).json()
    entry = entry["data"][0]
    # A streamed reply is stored as events, a token each: whole words are found, not "it:" split from its colon,
    # nor a word the vocabulary splits in two (two events): those of the reply's words that one event holds.
    events = requests.get(f"{server.base_url}/_mock/requests/{entry['id']}", timeout=5).json()["response"]
    deltas = [e["data"]["choices"][0]["delta"].get("content") or "" for e in events["stream_events"]
              if isinstance(e.get("data"), dict) and e["data"].get("choices")]  # fmt: skip
    words = [word for word in entry["response"]["text"].split() if word.isalpha() and any(word in d for d in deltas)]
    words = words[:3]
    assert len(words) == 3
    page.goto(server.base_url + "/ui/requests")
    page.uncheck("input[name=live]")
    page.fill("input[name=q]", " ".join([*words, "stream"]))
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        f"[...document.querySelectorAll('#requests tbody tr[data-id]')].some(r => r.dataset.id === '{entry['id']}')"
    )
    page.click(f"#requests tbody tr[data-id='{entry['id']}']")
    page.wait_for_selector("#curl")
    curl = page.text_content("#curl")
    assert curl.startswith(f"curl -N -X POST {server.base_url}/v1/chat/completions")
    assert '-H "Authorization: Bearer $OPENAI_API_KEY"' in curl and "sk-curl-secret" not in page.content()
    assert "find my stream" in curl
    component("curl")
    sent = subprocess.run(["bash", "-c", curl], env={"OPENAI_API_KEY": "sk-any", "PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert sent.returncode == 0 and sent.stdout.rstrip().endswith("data: [DONE]")


def test_a_streams_detail_shows_its_events_with_their_times(server, page):
    chat(server, "stream me", stream=True, user="streamer")
    entry = requests.get(server.base_url + "/_mock/requests", params={"q": "streamer"}, timeout=5).json()["data"][0]
    page.goto(f"{server.base_url}/ui/requests/{entry['id']}")
    rows = page.locator("#stream-events tbody tr, #stream-events tr:has(td)")
    assert rows.count() == entry["response"]["events"]
    assert page.text_content("#stream-text") == entry["response"]["text"]
    assert "ms" in rows.first.text_content() and "[DONE]" in rows.last.text_content()


def test_paging_through_older_requests(server, page):
    for n in range(55):
        chat(server, f"page filler {n}", user="filler")
    page.goto(server.base_url + "/ui/requests")
    page.uncheck("input[name=live]")
    page.fill("input[name=q]", "filler")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.getElementById('page-info').textContent.includes('55 matching')")
    assert page.locator("#requests tbody tr[data-id]").count() == 50
    page.click("#older")
    page.wait_for_function("document.getElementById('page-info').textContent.startsWith('page 2')")
    assert page.locator("#requests tbody tr[data-id]").count() == 5
    page.click("#newer")
    page.wait_for_function("document.getElementById('page-info').textContent.startsWith('page 1')")


def test_the_health_page_shows_the_server_and_its_config(server, page):
    page.goto(server.base_url + "/ui/health")
    facts = page.text_content("#health-facts")
    assert page.text_content("#health-status") == "healthy"
    assert "Workers2" in facts.replace(" ", "").replace("\n", "") or "2 (this page" in facts
    assert '"inter_token_latency_ms": 1' in page.text_content("#config")
    screenshot(page, "ui-health.png")


def test_with_a_token_the_ui_asks_once_and_keeps_an_httponly_strict_cookie(browser, tmp_path):
    secured = LiveServer(["-w", "1", "--token", "sk-ui-token"], None, tmp_path)
    try:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.goto(secured.base_url + "/ui/health")
        assert "/ui/login" in page.url
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        assert "not right" in page.text_content(".error")
        page.fill("input[name=token]", "sk-ui-token")
        page.click("button[type=submit]")
        page.wait_for_selector("#health-status")
        assert page.url.endswith("/ui/health")
        assert "sk-ui-token" not in page.content()  # the config shows the token as [redacted]
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert cookie["value"] != "sk-ui-token"
        assert page.evaluate("document.cookie") == ""  # not readable by scripts
        page.goto(secured.base_url + "/ui/dashboard")
        page.wait_for_function("document.getElementById('total').textContent !== '–'")
        context.close()

        stranger = browser.new_context()
        other = stranger.new_page()
        assert other.goto(secured.base_url + "/_mock/requests").status == 401
        assert other.goto(secured.base_url + "/ui/events").status == 401
        other.goto(secured.base_url + "/ui/requests")
        assert "/ui/login" in other.url and other.locator("#requests").count() == 0
        stranger.close()
    finally:
        secured.stop()


def test_the_list_shows_each_requests_wire_format_and_filters_by_it(server, page):
    requests.post(
        server.base_url + "/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 4, "messages": [{"role": "user", "content": "claude-4417"}]},
        headers={"anthropic-version": "2023-06-01"},
        timeout=10,
    )
    chat(server, "openai-4417")
    page.goto(server.base_url + "/ui/requests")
    row = page.locator("#requests tbody tr[data-id]").filter(has_text="claude-4417")
    row.wait_for()
    assert row.locator("td.api").text_content() == "anthropic"
    assert row.locator("td.preview .asked").text_content() == "claude-4417"
    page.select_option("select[name=api]", "anthropic")
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "[...document.querySelectorAll('#requests tbody td.api')].every(cell => cell.textContent === 'anthropic')"
    )
    assert "openai-4417" not in page.text_content("#requests")


def test_a_batchs_lines_are_marked_in_the_list_and_its_link_lists_only_them(server, page):
    import json
    import time

    def line(n):
        asked = [{"role": "user", "content": f"batchline-{n}"}]
        body = {"model": "gpt-4o-mini", "max_tokens": 3, "messages": asked}
        return {"custom_id": f"u{n}", "method": "POST", "url": "/v1/chat/completions", "body": body}

    lines = [line(n) for n in range(2)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file = requests.post(server.base_url + "/v1/files", data={"purpose": "batch"},
                         files={"file": ("lines.jsonl", data)}, timeout=10).json()  # fmt: skip
    body = {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    batch = requests.post(server.base_url + "/v1/batches", json=body, timeout=10).json()
    deadline = time.monotonic() + 20
    while batch["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
        batch = requests.get(server.base_url + f"/v1/batches/{batch['id']}", timeout=10).json()
    chat(server, "not-in-a-batch-5150")
    page.goto(server.base_url + "/ui/requests")
    row = page.locator("#requests tbody tr[data-id]").filter(has_text="batchline-0")
    row.wait_for()
    assert row.locator("td.api").text_content() == "openai · batch"
    row.click()
    page.click("text=a line of this batch >> xpath=.. >> a")
    page.wait_for_function("document.querySelectorAll('#requests tbody tr[data-id]').length === 2")
    assert page.input_value("input[name=batch]") == batch["id"]
    assert "not-in-a-batch-5150" not in page.text_content("#requests")
