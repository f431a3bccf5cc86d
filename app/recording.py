"""Record and replay: exchanges with a real upstream, written to fixtures and answered from them.

- Record (``--record-from URL``, ``[record] upstream``): every API request (``/v1/*``, and the other wire
  formats' ``/v1beta/*`` and ``/openai/*``) is proxied to the upstream as it came (its key passed through in
  whichever header or ``?key=`` carried it, never stored) and the answer streams back to the client
  as it arrives. Each exchange is written to ``[record] dir`` as one JSON file named by a stable hash of the
  request (method, path and query, and the JSON body with its keys sorted): status, headers, and the body
  as the chunks it arrived in, each with its time after the request started.
- Replay (``--replay DIR``): a ``/v1/*`` request whose hash has a fixture gets that exchange back, its chunks
  at the recorded pace divided by ``--replay-speed`` (0: all at once). An unseen request gets a 404
  ``fixture_not_found``, or, with ``--replay-fallback MODE``, the usual answer in that mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from time import monotonic

from flask import Flask, Response, g, request
from gevent import sleep

from app.errors import OpenAIError
from app.journal import request_body

# Not replayed: they describe one connection or one moment, and the server sets its own.
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "date",
    "server",
    "set-cookie",
    "alt-svc",
    "cf-ray",
    "cf-cache-status",
    "strict-transport-security",
    "proxy-connection",
    "upgrade",
}
FORWARDED_HEADERS = (
    "authorization",
    "x-api-key",  # Anthropic's key
    "api-key",  # Azure's
    "x-goog-api-key",  # Gemini's
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "accept",
    "user-agent",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "x-stainless-retry-count",
)


def exchange_key(method: str, path: str, query: str, body: bytes) -> str:
    """A stable hash of a request: the same call gives the same key whatever its JSON key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")) if body else ""
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    text = "\n".join([method.upper(), path, query, canonical])
    return hashlib.sha256(text.encode()).hexdigest()


def fixture_name(method: str, path: str, key: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"
    return f"{method.lower()}-{slug}-{key[:16]}.json"


def init_app(app: Flask, settings) -> None:
    """Register the record or replay hook, when one is configured (else nothing runs per request)."""
    if settings.replay["dir"]:
        app.before_request(Replayer(settings.replay).handle)
    elif settings.record["upstream"]:
        app.before_request(Recorder(settings.record).handle)


# The API paths of every wire format: OpenAI's and Anthropic's (/v1/), Gemini's (/v1beta/), Azure's (/openai/).
SCOPE = ("/v1/", "/v1beta/", "/openai/")
_KEY_PARAM = re.compile(r"(^|&)key=[^&]*&?")


def _in_scope() -> bool:
    return request.path.startswith(SCOPE)


def _query() -> str:
    """The query string without a credential (Gemini's ``?key=``): never stored, and not part of the key."""
    query = request.query_string.decode()
    return _KEY_PARAM.sub(lambda m: m.group(1) if m.group(0).endswith("&") else "", query).strip("&")


class Recorder:
    def __init__(self, record: dict):
        self.upstream = record["upstream"].rstrip("/")
        if self.upstream.endswith("/v1"):
            self.upstream = self.upstream[:-3]
        self.folder = Path(record["dir"])

    def handle(self):
        if not _in_scope():
            return None
        import requests  # here, not at import: gunicorn's master must not import ssl before gevent patches it

        body = request_body()
        query, sent = _query(), request.query_string.decode()  # the upstream gets the key; the fixture does not
        url = self.upstream + request.path + (f"?{sent}" if sent else "")
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        headers["accept-encoding"] = "identity"  # chunks recorded as the client reads them
        started = monotonic()
        try:
            upstream = requests.request(request.method, url, data=body, headers=headers, stream=True, timeout=600)
        except requests.RequestException as exc:
            raise OpenAIError(
                502,
                f"mock-openai record mode: the upstream {self.upstream} failed: {exc.__class__.__name__}",
                "server_error",
                code="upstream_unreachable",
            ) from None
        kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS]
        fixture = {
            "request": {"method": request.method, "path": request.path, "query": query, "body": _decoded(body)},
            "response": {"status": upstream.status_code, "headers": kept, "chunks": []},
        }
        key = exchange_key(request.method, request.path, query, body)
        path = self.folder / fixture_name(request.method, request.path, key)

        def relay():
            chunks = fixture["response"]["chunks"]
            try:
                for piece in upstream.iter_content(chunk_size=None):
                    chunks.append(
                        {
                            "after_ms": round((monotonic() - started) * 1000, 1),
                            "data": piece.decode("utf-8", "surrogateescape"),
                        }
                    )
                    yield piece
            finally:
                upstream.close()
            _write_json(path, fixture)  # only a whole exchange becomes a fixture

        return _exchange(relay(), upstream.status_code, kept)


class Replayer:
    def __init__(self, replay: dict):
        self.folder = Path(replay["dir"])
        self.speed = replay["speed"]
        self.fallback = replay["fallback"]
        self.index: dict[str, Path] = {}
        self.stamp = None

    def handle(self):
        if not _in_scope():
            return None
        body = request_body()
        key = exchange_key(request.method, request.path, _query(), body)
        path = self._find(key)
        if path is None:
            if self.fallback:
                g.reply_mode = self.fallback  # the usual view answers, in this mode
                return None
            raise OpenAIError(
                404,
                f"No recorded fixture for {request.method} {request.path} with this body (key {key[:16]}) in "
                f"{self.folder}. Record it with --record-from URL, or answer unseen requests with "
                "--replay-fallback MODE.",
                code="fixture_not_found",
            )
        fixture = json.loads(path.read_text(encoding="utf-8"))["response"]
        response = _exchange(self._paced(fixture["chunks"]), fixture["status"], fixture["headers"])
        if len(fixture["chunks"]) <= 1:  # a body recorded whole keeps its length
            response.headers["Content-Length"] = str(sum(len(_encoded(c["data"])) for c in fixture["chunks"]))
        return response

    def _paced(self, chunks):
        started = monotonic()
        for chunk in chunks:
            if self.speed:
                wait = started + chunk["after_ms"] / 1000 / self.speed - monotonic()
                if wait > 0:
                    sleep(wait)
            yield _encoded(chunk["data"])

    def _find(self, key: str) -> Path | None:
        """The fixture for ``key``; the folder is read again when it changes (new recordings)."""
        try:
            stamp = os.stat(self.folder).st_mtime_ns
        except OSError:
            return None
        if stamp != self.stamp:
            self.stamp = stamp
            self.index = {p.name.rsplit("-", 1)[-1][:-5]: p for p in self.folder.glob("*.json")}
        return self.index.get(key[:16])


def _exchange(chunks, status: int, headers) -> Response:
    """A response of an upstream's exchange: its status and headers, not ours."""
    response = Response(chunks, status=status, direct_passthrough=True)
    response.headers.clear()
    response.headers.extend((k, v) for k, v in headers if k.lower() not in HOP_HEADERS)
    response.own_headers = True
    return response


def _decoded(body: bytes):
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _write_json(path: Path, data: dict) -> None:
    """Whole or not at all: written beside, then renamed over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, ensure_ascii=False)
    os.replace(temporary, path)
