"""The baseline: a minimal Flask app on the same gunicorn gevent workers, with no pacing and no validation.

It answers the benchmark's two requests with bodies of the same shape and size as mock-openai's, doing the
least work a Flask app can: a constant JSON body, and a stream that yields one pre-built chunk per token.
"""

import json

from flask import Flask, Response, request

app = Flask(__name__)

CHUNK = (
    b'data: {"id":"chatcmpl-baseline","object":"chat.completion.chunk","created":0,"model":"gpt-4o-mini",'
    b'"service_tier":"default","system_fingerprint":"fp_baseline","choices":[{"index":0,"delta":'
    b'{"content":" word"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"abcdef"}\n\n'
)
ROLE = CHUNK.replace(b'{"content":" word"}', b'{"role":"assistant","content":"","refusal":null}')
FINISH = CHUNK.replace(b'{"content":" word"}', b"{}").replace(b'"finish_reason":null', b'"finish_reason":"length"')
USAGE = b'data: {"id":"chatcmpl-baseline","object":"chat.completion.chunk","choices":[],"usage":{}}\n\n'
BODY = json.dumps(
    {
        "id": "chatcmpl-baseline",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " word" * 16, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 16, "total_tokens": 25},
    },
    indent=2,
)


@app.post("/v1/chat/completions")
def chat():
    body = request.get_json(force=True)
    if not body.get("stream"):
        return Response(BODY, mimetype="application/json")
    count = body["max_tokens"]

    def events():
        yield ROLE
        for _ in range(count):
            yield CHUNK
        yield FINISH
        yield USAGE
        yield b"data: [DONE]\n\n"

    return Response(events(), mimetype="text/event-stream")
