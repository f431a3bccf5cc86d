"""POST /v1/embeddings: deterministic unit vectors, float and base64, dimensions, usage, errors."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from tests.openapi import assert_valid


def embed(client, **body):
    body.setdefault("model", "text-embedding-3-small")
    return client.post("/v1/embeddings", json=body)


def vectors(body) -> list[list[float]]:
    out = []
    for item in body["data"]:
        value = item["embedding"]
        if isinstance(value, str):
            raw = base64.b64decode(value)
            value = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        out.append(value)
    return out


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("model", "length"),
    [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)],
)
def test_vectors_have_the_models_dimension_and_unit_length(client, model, length):
    response = embed(client, model=model, input="The quick brown fox")
    body = response.get_json()
    assert response.status_code == 200
    assert_valid("CreateEmbeddingResponse", body)
    (vector,) = vectors(body)
    assert len(vector) == length and math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-5)
    assert body["model"] == model and body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert response.get_data(as_text=True).startswith('{\n  "object": "list",\n  "data": [\n    {\n')


def test_vectors_are_deterministic_and_texts_sharing_words_are_closer(client):
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew strongly"]
    first = vectors(embed(client, input=texts).get_json())
    again = vectors(embed(client, input=texts).get_json())
    assert first == again
    assert cosine(first[0], first[1]) > cosine(first[0], first[2]) + 0.2


def test_base64_is_the_same_float32_vector(client):
    as_floats = vectors(embed(client, input="hello").get_json())[0]
    as_base64 = vectors(embed(client, input="hello", encoding_format="base64").get_json())[0]
    # the decimal form reads back as the very float32 the base64 form carries
    assert list(struct.unpack(f"<{len(as_floats)}f", struct.pack(f"<{len(as_floats)}f", *as_floats))) == as_base64


def test_dimensions_shortens_and_renormalises(client):
    short = vectors(embed(client, input="hello", dimensions=256).get_json())[0]
    full = vectors(embed(client, input="hello").get_json())[0]
    assert len(short) == 256 and math.isclose(sum(v * v for v in short), 1.0, rel_tol=1e-5)
    norm = math.sqrt(sum(v * v for v in full[:256]))
    assert all(math.isclose(s, f / norm, rel_tol=1e-4, abs_tol=1e-6) for s, f in zip(short, full[:256], strict=True))


def test_token_arrays_and_lists(client):
    body = embed(client, input=[[1, 2, 3], [4, 5]]).get_json()
    assert [d["index"] for d in body["data"]] == [0, 1] and body["usage"]["prompt_tokens"] == 5
    assert len(embed(client, input=[1, 2, 3]).get_json()["data"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, None),
        ({"input": []}, 400, "input"),
        ({"input": [None]}, 400, None),  # found by tests/e2e/test_fuzz.py: it was a 500
        ({"input": ["a", None]}, 400, None),
        ({"input": 5}, 400, "input"),
        ({"input": "x", "model": "text-embedding-ada-002", "dimensions": 10}, 400, "dimensions"),
        ({"input": "x", "dimensions": 5000}, 400, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": "x", "model": "gpt-4o"}, 404, "model"),
        ({"input": "x", "model": "nope"}, 404, None),
        ({"model": "text-embedding-3-small"}, 400, "input"),
        ({"input": "word " * 9000}, 400, None),
    ],
)
def test_bad_requests_get_openai_errors(client, body, status, param):
    response = embed(client, **body)
    assert response.status_code == status
    assert response.get_json()["error"]["param"] == param
