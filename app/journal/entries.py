"""What a journal entry holds: a captured exchange turned into a stored row, and a row into the JSON an
admin client reads (bodies parsed back, a stream's events with their times, the text it assembled)."""

from __future__ import annotations

import json
import re
from array import array
from operator import itemgetter

from app.journal.preview import preview
from app.shared import process_id
from app.streaming import count_events, recipes

# Never stored as sent: credentials and cookies, in either direction.
SECRET_ENV = {"HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_COOKIE", "HTTP_API_KEY", "HTTP_X_API_KEY",
              "HTTP_X_GOOG_API_KEY"}  # fmt: skip
_KEY_PARAM = re.compile(r"(^|&)key=[^&]*")  # Gemini's ?key=: a credential in the query string
REDACTED = "[redacted]"


BATCH = "mock_openai.batch"  # environ key of the batch whose line a request is (app.batches.runner)


def asked_of(environ) -> tuple:
    """What a row takes from the request, taken as it arrives: ``(method, path, query, client, test id, header
    lines, batch)``. The request's values are in the CPU's cache then; a stream ends hundreds of milliseconds
    later under load, when they are not. Timed in a loaded worker, a stream's row took 9.6 µs as it ended;
    with this part, the header lines and the recipe's plan taken as they pass, it takes about 4, and those
    parts about 5 (a saving of 1 to 1.5 µs: code that runs once a request is slow wherever it runs)."""
    get = environ.get
    return (
        get("REQUEST_METHOD", ""),
        get("PATH_INFO", ""),
        _query(get("QUERY_STRING", "")),
        f"{get('REMOTE_ADDR', '')}:{get('REMOTE_PORT', '')}",
        get("HTTP_X_MOCK_TEST_ID"),
        _request_headers(environ),
        get(BATCH),
    )


def response_lines(headers: list) -> str:
    """The response's headers as ``name: value`` lines, made when they are sent (for a stream, at its start,
    for the reason :func:`asked_of` gives), a cookie set by the response redacted."""
    lines = "\n".join([f"{k}: {v}" for k, v in headers])
    if "Set-Cookie" in lines:
        lines = "\n".join(f"{k}: {REDACTED if k == 'Set-Cookie' else v}" for k, v in headers)
    return lines


def row_of(exchange, limit: int) -> tuple:
    """The stored row (:data:`app.shared.journal_store.COLUMNS` order) of a finished exchange, from what
    was taken of its request and response headers as they passed (:func:`asked_of`, :func:`response_lines`).
    Headers are kept as ``name: value`` lines, request headers under their WSGI names, turned into the usual
    names only when read: this runs for every request, reading runs rarely."""
    environ, note = exchange.environ, exchange.note
    method, path, query, client, test_id, request_headers, batch = exchange.asked
    request_body = environ.get("mock_openai.body")
    request_size = len(request_body) if request_body is not None else _content_length(environ)
    if request_body is None:
        request_body = _unread_body(environ, limit)
    model = note.get("model")
    if model is None and request_body[:1] == b"{" and path.startswith("/v1/"):
        model = _model_of(request_body)  # refused before a view named it (a 401, a 400)
    writes = None
    if exchange.writes is not None:  # t0, then (monotonic time, bytes sent by then) for each write
        writes = array("d", (exchange.t0,)).tobytes() + exchange.writes.tobytes()
    first_at = exchange.first_at
    # A stream of a table's events is kept as its recipe, its bytes made again when read; any other, as sent
    told = recipes.told(exchange.plan, exchange.writer, exchange.size) if exchange.plan else None
    if told is None:
        kept = b"".join(exchange.kept)
        response_body = kept[:limit]
    else:
        recipe, codec = told
        kept, response_body = None, ((*recipe, limit), codec)
    return (
        exchange.started,
        method,
        path,
        query,
        int(exchange.status[:3]),
        _ms(exchange.latency),
        _ms(first_at - exchange.t0) if first_at is not None else None,
        model,
        1 if exchange.stream else 0,
        note.get("prompt_tokens"),
        note.get("completion_tokens"),
        note.get("scenario"),
        note.get("fault"),
        client,
        exchange.client_cert,
        test_id,
        request_headers,
        request_body[:limit],
        request_size,
        exchange.response_lines,
        response_body,
        exchange.size,
        _events(exchange, kept, limit),
        exchange.ending,
        writes,
        process_id(),
        note.get("api", "openai"),
        batch,
    )


def _events(exchange, kept: bytes | None, limit: int) -> int | None:
    """The events of a stream cut at ``limit``: as its writer counted them, or those kept counted now and the
    rest as they passed (:class:`app.journal._Capturing`). Otherwise None: a stream kept whole is counted
    when its entry is read, from its body (a scan of every byte, which most entries never need)."""
    if not exchange.stream or exchange.size <= limit:
        return None
    if exchange.writer:
        return exchange.writer.events_sent()
    return exchange.events + count_events(kept)


def _query(query: str) -> str:
    return _KEY_PARAM.sub(rf"\1key={REDACTED}", query) if "key=" in query else query


def _ms(seconds: float) -> float:
    """Milliseconds to the microsecond: ``round(seconds * 1000, 3)``, four times faster (no decimal rounding)."""
    return round(seconds * 1e6) / 1000


# An environ's keys -> (its header keys, a getter of their values, which are secrets, lines made of values seen)
_HEADER_KEYS: dict[tuple, tuple] = {}


def _request_headers(environ) -> str:
    """``KEY: value`` lines of the request's headers. Which environ keys are headers is worked out once per
    shape of environ (a client sends the same headers in the same order on every request), and the lines
    once per set of values (a load test sends the same ones over and over): a repeat costs a lookup."""
    shape = tuple(environ)
    found = _HEADER_KEYS.get(shape)
    if found is None:
        if len(_HEADER_KEYS) > 512:
            _HEADER_KEYS.clear()
        keys = tuple(k for k in shape if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH"))
        secrets = tuple(i for i, k in enumerate(keys) if k in SECRET_ENV)
        found = _HEADER_KEYS[shape] = (keys, _values_of(keys), secrets, {})
    keys, values_of, secrets, made = found
    values = values_of(environ)
    lines = made.get(values)
    if lines is None:
        if len(made) > 256:
            made.clear()
        pairs = zip(keys, values, strict=True)
        shown = [f"{k}: {_redacted(k, v) if i in secrets else v}" for i, (k, v) in enumerate(pairs)]
        lines = made[values] = "\n".join(shown)
    return lines


def _values_of(keys: tuple):
    """A function that takes these keys' values from an environ, as a tuple, in one call."""
    if len(keys) > 1:
        return itemgetter(*keys)
    return lambda environ: tuple(environ[k] for k in keys)


def _redacted(key: str, value: str) -> str:
    if key.endswith("AUTHORIZATION") and " " in value:
        return value.split(" ", 1)[0] + " " + REDACTED  # the scheme stays visible: Bearer, Basic
    return REDACTED


def request_headers(lines: str) -> dict:
    """Stored request headers under their usual names (``HTTP_USER_AGENT`` is ``User-Agent``)."""
    headers = {}
    for line in lines.split("\n") if lines else ():
        key, _, value = line.partition(": ")
        name = key[5:] if key.startswith("HTTP_") else key
        headers["-".join(part.capitalize() for part in name.split("_"))] = value
    return headers


def response_headers(lines: str) -> dict:
    return dict(line.partition(": ")[::2] for line in lines.split("\n")) if lines else {}


def _unread_body(environ, limit: int) -> bytes:
    """A body no view read (a refused request): what the client sent, up to the limit."""
    length = _content_length(environ)
    stream = environ.get("wsgi.input")
    if not length or stream is None or length > limit:
        return b""
    try:
        return stream.read(length)
    except (OSError, ValueError):
        return b""


def _content_length(environ) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _model_of(body: bytes) -> str | None:
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError, RecursionError):
        return None
    return model if isinstance(model, str) else None


# --- reading --------------------------------------------------------------------------------------------


def entry_of(row: dict, events: bool = False) -> dict:
    """The JSON of a stored row; with ``events``, a stream's events each with its time after the request."""
    stream = bool(row["stream"])
    body = row["response_body"].decode("utf-8", "replace")
    response = {
        "status": row["status"],
        "headers": response_headers(row["response_headers"]),
        "body": None if stream else _parsed(body),
        "size": row["response_size"],
        "truncated": row["response_size"] > len(row["response_body"]),
    }
    if stream:
        parsed = stream_events(body, write_times(row["writes"]))
        response.update(
            events=row["events"] if row["events"] is not None else count_events(row["response_body"]),
            ending=row["ending"],
            text=assembled_text(parsed),
        )
        if events:
            response["stream_events"] = parsed
    else:
        response["ending"] = row["ending"]
    prompt, completion = row["prompt_tokens"], row["completion_tokens"]
    request_body = _parsed(row["request_body"].decode("utf-8", "replace"))
    return {
        "id": row["id"],
        "object": "mock.request",
        "time": row["time"],
        "method": row["method"],
        "path": row["path"],
        "query": row["query"],
        "status": row["status"],
        "latency_ms": row["latency_ms"],
        "ttft_ms": row["ttft_ms"],
        "model": row["model"],
        "api": row["api"],
        "batch": row["batch"],
        "stream": stream,
        "usage": None
        if prompt is None
        else {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + (completion or 0)},
        "scenario": row["scenario"],
        "fault": row["fault"],
        "client": row["client"],
        "client_cert": row["client_cert"],
        "test_id": row["test_id"],
        "request_id": _request_id(response["headers"]),
        "worker": row["worker"],
        "request": {
            "headers": request_headers(row["request_headers"]),
            "body": request_body,
            "size": row["request_size"],
            "truncated": (row["request_size"] or 0) > len(row["request_body"]),
        },
        "response": response,
        "preview": preview(request_body, response["body"], response.get("text")),
    }


def _request_id(headers: dict) -> str | None:
    """The id the response carried, under whichever name its wire format gives it."""
    return headers.get("x-request-id") or headers.get("request-id") or headers.get("apim-request-id")


def write_times(blob: bytes | None) -> list[tuple[float, int]]:
    """``(ms after the request, bytes sent by then)`` for each write of a stream."""
    if not blob:
        return []
    values = array("d")
    values.frombytes(blob)
    t0 = values[0]
    return [(round((values[i] - t0) * 1000, 3), int(values[i + 1])) for i in range(1, len(values) - 1, 2)]


def _parsed(text: str):
    """A JSON body as JSON; anything else (a cut body, plain text) as the text it is."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


_EVENT = re.compile(r"(.*?)(\r\n\r\n|\n\n|$)", re.S)


def stream_events(body: str, writes: list) -> list[dict]:
    """The stream's events: ``{"t_ms", "data"}`` with ``data`` as JSON where it parses, else the raw text
    (``[DONE]``, a cut chunk); comments (keep-alives) are left out."""
    events, position, w = [], 0, 0
    for match in _EVENT.finditer(body):  # events end with a blank line: LF LF, or CRLF CRLF (Gemini's)
        block, ending = match.group(1), match.group(2)
        position += len(block.encode()) + len(ending)
        while w < len(writes) - 1 and writes[w][1] < position - len(ending):
            w += 1
        lines = [line[5:].lstrip(" ") for line in block.splitlines() if line.startswith("data:")]
        if not lines:
            continue
        data = "\n".join(lines)
        t_ms = writes[w][0] if writes else None
        try:
            events.append({"t_ms": t_ms, "data": json.loads(data)})
        except ValueError:
            events.append({"t_ms": t_ms, "data": data})
    return events


def assembled_text(events: list[dict]) -> str:
    """What a client reading the stream put together: the content of choice 0 (chat), its text (legacy), the
    output text (the Responses API's ``response.output_text.delta`` events), the text deltas of Anthropic's
    stream, or the text parts of Gemini's first candidate."""
    parts = []
    for event in events:
        data = event["data"]
        if not isinstance(data, dict):
            continue
        if data.get("type") == "response.output_text.delta" and isinstance(data.get("delta"), str):
            parts.append(data["delta"])
            continue
        delta = data.get("delta")
        if data.get("type") == "content_block_delta" and isinstance(delta, dict):
            if isinstance(delta.get("text"), str):
                parts.append(delta["text"])
            continue
        for candidate in data.get("candidates") or ():
            if isinstance(candidate, dict) and candidate.get("index", 0) == 0:
                for part in (candidate.get("content") or {}).get("parts") or ():
                    if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                        parts.append(part["text"])
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(piece, str):
                parts.append(piece)
    return "".join(parts)
