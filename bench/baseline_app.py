"""The floor: a minimal Flask app on the same gunicorn gevent worker, with no pacing and no validation.

It answers the benchmark's requests with bodies of the same shape and about the same size as mock-openai's,
doing the least work a Flask app can: a constant JSON body per ``max_tokens``, and a stream that yields one
pre-built chunk per token with ``gevent.sleep(0)`` between them (so that many streams share the worker).
"""

import functools
import json

import gevent
from flask import Flask, Response, request

app = Flask(__name__)

CHUNK = (
    b'data: {"id":"chatcmpl-baseline","object":"chat.completion.chunk","created":0,"model":"gpt-4o-mini",'
    b'"service_tier":"default","system_fingerprint":"fp_baseline","choices":[{"index":0,"delta":'
    b'{"content":" word"},"logprobs":null,"finish_reason":null}],"obfuscation":"abcdef"}\n\n'
)
ROLE = CHUNK.replace(b'{"content":" word"}', b'{"role":"assistant","content":"","refusal":null}')
FINISH = CHUNK.replace(b'{"content":" word"}', b"{}").replace(b'"finish_reason":null', b'"finish_reason":"length"')
USAGE = (
    b'data: {"id":"chatcmpl-baseline","object":"chat.completion.chunk","choices":[],"usage":'
    b'{"prompt_tokens":9,"completion_tokens":16,"total_tokens":25}}\n\n'
)


@functools.lru_cache(maxsize=64)
def body_of(tokens: int) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-baseline",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " word" * tokens, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": 9 + tokens},
        },
        indent=2,
    )


@app.post("/v1/chat/completions")
def chat():
    body = request.get_json(force=True)
    count = int(body.get("max_tokens") or 16)
    if not body.get("stream"):
        return Response(body_of(count), mimetype="application/json")

    def events():
        yield ROLE
        for _ in range(count):
            yield CHUNK
            gevent.sleep(0)
        yield FINISH
        yield USAGE
        yield b"data: [DONE]\n\n"

    return Response(events(), mimetype="text/event-stream")
