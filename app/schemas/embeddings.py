"""``POST /v1/embeddings``: CreateEmbeddingRequest."""

from __future__ import annotations

from app.schemas.fields import AnyOf, ApiField, ApiSchema, Arr, Int, Invalid, Str

TOKENS = Arr(Int(minimum=0), min_items=1, max_items=2048, nullable=False)
INPUT = AnyOf(
    Str(nullable=False),
    Arr(
        AnyOf(Str(), Int(minimum=0), TOKENS, expected="one of a string, integer or array of integers"),
        min_items=1,
        max_items=2048,
    ),
    expected="one of a string, array of strings, array of integers or array of arrays of integers",
    nullable=False,
)
MAX_TOTAL_TOKENS = 300_000  # summed over every input of a request


class EmbeddingsRequestSchema(ApiSchema):
    """``POST /v1/embeddings``."""

    model = ApiField(Str(nullable=False))
    input = ApiField(INPUT)
    encoding_format = ApiField(Str(choices=("float", "base64")))
    dimensions = ApiField(Int(minimum=1))
    user = ApiField(Str())


def inputs_of(value) -> list:
    """Every input of a request: a string, an array of strings, one token array or several."""
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(v, int) for v in value):
        return [value]
    return list(value)


def check_inputs(body: dict) -> None:
    """An empty string or a null (alone or in a list) is refused, as in the real API, with its terse wording."""
    for item in inputs_of(body["input"]):
        if item is None or item == "" or item == []:
            raise Invalid(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                None,
                None,
            )
