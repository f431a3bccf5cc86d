"""A batch's input file, read as the real API reads it while the batch is ``validating``: every problem with
its line number, in the batch's ``errors.data``; a batch with any fails without running a line."""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_REQUESTS = 50000


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, as the errors count lines
    custom_id: str
    body: dict


def batch_error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def read_lines(data: bytes, endpoint: str, model_exists) -> tuple[list[Line], list[dict]]:
    """``(lines, errors)`` of an input file for ``endpoint``; ``model_exists(name)`` says whether a model can
    answer. A batch runs one model: a line naming another is an error of its own."""
    lines, errors, seen, model = [], [], set(), None
    text = data.decode("utf-8", "replace")
    rows = [(n, row) for n, row in enumerate(text.splitlines(), 1) if row.strip()]
    if not rows:
        return [], [batch_error("empty_file", "The batch input file is empty.")]
    if len(rows) > MAX_REQUESTS:
        message = f"The batch input file has {len(rows)} requests; a batch can have at most {MAX_REQUESTS}."
        return [], [batch_error("too_many_tasks", message)]
    for number, row in rows:
        try:
            request = json.loads(row)
        except ValueError:
            errors.append(batch_error("invalid_json_line", "This line is not parseable as valid JSON.", number))
            continue
        if not isinstance(request, dict):
            errors.append(batch_error("invalid_json_line", "This line is not a JSON object.", number))
            continue
        missing = [name for name in ("custom_id", "method", "url", "body") if name not in request]
        if missing:
            message = f"Missing required parameter: '{missing[0]}'."
            errors.append(batch_error("missing_required_parameter", message, number, missing[0]))
            continue
        custom_id, body = request["custom_id"], request["body"]
        if not isinstance(custom_id, str) or not custom_id:
            message = "The custom_id must be a non-empty string."
            errors.append(batch_error("invalid_custom_id", message, number, "custom_id"))
            continue
        if request["method"] != "POST":
            message = f"The method '{request['method']}' is not supported; batch requests must use 'POST'."
            errors.append(batch_error("invalid_method", message, number, "method"))
            continue
        if request["url"] != endpoint:
            message = f"The URL provided for this request does not match the batch endpoint ({endpoint})."
            errors.append(batch_error("invalid_url", message, number, "url"))
            continue
        if custom_id in seen:
            message = (
                "The custom_id for this request is a duplicate of another request. The custom_id parameter must "
                "be unique for each request in a batch."
            )
            errors.append(batch_error("duplicate_custom_id", message, number, "custom_id"))
            continue
        seen.add(custom_id)
        if not isinstance(body, dict):
            errors.append(batch_error("invalid_request", "The request body must be a JSON object.", number, "body"))
            continue
        name = body.get("model")
        if not isinstance(name, str) or not model_exists(name):
            message = f"The provided model '{name}' does not exist or you do not have access to it."
            errors.append(batch_error("model_not_found", message, number, "body.model"))
            continue
        if model is None:
            model = name
        elif name != model:
            message = (
                f"The provided model '{name}' is not the same as the batch's other requests ('{model}'). "
                "A batch can only use one model."
            )
            errors.append(batch_error("mismatched_model", message, number, "body.model"))
            continue
        lines.append(Line(number, custom_id, body))
    return lines, errors
