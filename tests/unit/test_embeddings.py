"""POST /v1/embeddings: deterministic unit vectors, float and base64, dimensions, usage, errors."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from array import array

import pytest

from app.render.embeddings import EmbeddingsRenderer, EmbeddingsReply, float32_texts
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


@pytest.mark.parametrize(
    ("inputs", "encoding_format", "shorten_to", "model", "dimensions", "digest"),
    [
        (["The quick brown fox", [1, 2, 3]], "float", None, "text-embedding-3-small", 1536, "581cc544ee0c4382040b70d8"),
        (["naïve café 日本"], "float", 256, "text-embedding-3-large", 3072, "a8a4e4347be6252e3dffcbf5"),
        (["hello"], "base64", None, "text-embedding-ada-002", 1536, "8a86e1789f53b75705eabec5"),
    ],
)
def test_a_texts_vector_is_the_same_across_versions(inputs, encoding_format, shorten_to, model, dimensions, digest):
    """Users keep vectors (golden files, a vector store filled against the mock): the bodies are byte for byte
    those of the version that first wrote them (e4f139d), first made and then from the memo."""
    for _ in range(2):
        reply = EmbeddingsReply(model, inputs, dimensions, shorten_to, encoding_format, 3)
        assert hashlib.sha256(EmbeddingsRenderer().body(reply).encode()).hexdigest()[:24] == digest


def _float32_as_stated(value: float) -> str:
    """The rule, a value at a time: the fewest of 7, 8 or 9 significant digits that read back as the float32."""
    for digits in (7, 8, 9):
        text = f"{value:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == value:
            return text if ("." in text or "e" in text) else text + ".0"
    raise AssertionError(value)


def test_float32_texts_are_the_shortest_that_read_back():
    rng = random.Random(5)
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 1 / 3, 3e-5, 1e-45, 2.0**-149, 1.1754944e-38, 16777216.0, 3.4028235e38]
    values = array("f", edges)
    while len(values) < 50_000:  # values of every scale, and any float32's bits
        if len(values) % 2:
            value = struct.unpack("f", struct.pack("f", rng.uniform(-1, 1) * 10 ** rng.randint(-40, 38)))[0]
        else:
            value = struct.unpack("f", rng.randbytes(4))[0]
        if math.isfinite(value):
            values.append(value)
    assert float32_texts(values) == [_float32_as_stated(v) for v in values]
    assert float32_texts(array("f", [1.0, -0.0, 0.0023064255]))[:3] == ["1.0", "-0.0", "0.0023064255"]


def test_a_batch_of_inputs_is_each_inputs_own_vector(client):
    texts = [f"passage {i} about the weather" for i in range(300)]
    batch = vectors(embed(client, input=texts, dimensions=32, encoding_format="float").get_json())
    assert len(batch) == 300
    for index in (0, 1, 150, 299):
        assert batch[index] == vectors(embed(client, input=texts[index], dimensions=32).get_json())[0]
