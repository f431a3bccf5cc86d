"""``POST /v1/completions`` (legacy): CreateCompletionRequest."""

from __future__ import annotations

from app.schemas.fields import AnyOf, ApiField, Arr, Bool, Int, Invalid, RequestSchema, Str

PROMPT = AnyOf(
    Str(),
    Arr(AnyOf(Str(), Int(), Arr(Int()), expected="one of a string, integer or array of integers")),
    expected="one of a string, array of strings, array of integers or array of arrays of integers",
)


class CompletionRequestSchema(RequestSchema):
    """``POST /v1/completions`` (legacy): CreateCompletionRequest."""

    prompt = ApiField(PROMPT)
    max_tokens = ApiField(Int(minimum=0))
    best_of = ApiField(Int(minimum=0, maximum=20))
    echo = ApiField(Bool())
    logprobs = ApiField(Int(minimum=0, maximum=5))
    suffix = ApiField(Str())


def check_prompt(body: dict) -> None:
    """``best_of`` must be at least ``n``, and a stream cannot pick the best of several."""
    n, best_of = body.get("n") or 1, body.get("best_of")
    if best_of is not None and best_of < n:
        raise Invalid("best_of must be greater than or equal to n.", "best_of", None)
    if best_of is not None and best_of > 1 and body.get("stream"):
        raise Invalid("Cannot stream results with best_of greater than 1.", "best_of", None)
