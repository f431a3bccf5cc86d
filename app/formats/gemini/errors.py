"""Google's error shape: ``{"error": {"code", "message", "status", "details"}}``, indented by two spaces, with
the canonical status names (``INVALID_ARGUMENT``, ``UNAUTHENTICATED``, ``PERMISSION_DENIED``, ``NOT_FOUND``,
``RESOURCE_EXHAUSTED``, ``INTERNAL``, ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``). An injected fault is worded as
Google words it: a rate limit is ``RESOURCE_EXHAUSTED`` with its ``RetryInfo``, an overloaded model
``UNAVAILABLE``; a prompt the content filter blocks is not an error at all but a 200 whose ``promptFeedback``
names the block, as Gemini answers it. Google sends no rate-limit headers."""

from __future__ import annotations

import math

from flask import Response, request

from app.errors import OpenAIError
from app.formats.wire import WireFormat
from app.pretty_json import pretty

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: "
    "https://ai.dev/usage?tab=rate-limit."
)
FAULTS = {
    "insufficient_quota": (429, QUOTA),
    "500": (
        500,
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "502": (
        500,
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "503": (503, "The model is overloaded. Please try again later."),
    "timeout": (504, "Deadline expired before operation could complete."),
    "http_404": (404, "Requested entity was not found."),
    "http_405": (404, "Requested entity was not found."),
}
MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
    "other form of API consumer identity to call this API."
)
BLOCKED_PROMPT = {
    "promptFeedback": {
        "blockReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
        ],
    }
}


def google_error(error: OpenAIError) -> dict:
    """The neutral error as Google's ``{"error": {...}}``."""
    status, message = FAULTS.get(error.kind, (error.status, error.message))
    if status == 429 and error.kind != "insufficient_quota":
        message = QUOTA
    body = {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}
    details = []
    if error.type == "INVALID_ARGUMENT" and error.param:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": error.param, "description": message}],
            }
        )
    if error.code == "API_KEY_INVALID":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if status == 429:
        retry = error.headers.get("retry-after")
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    }
                ],
            }
        )
        if retry:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{math.ceil(float(retry))}s"}
            )
    if details:
        body["details"] = details
    return {"error": body}


class GeminiFormat(WireFormat):
    name = "gemini"

    def error_response(self, error: OpenAIError) -> Response:
        if error.kind == "content_filter":  # Gemini blocks a prompt with a 200 that has no candidates
            from app.formats.gemini.render import usage_of_blocked  # here: render.py words errors with this one

            blocked = pretty(BLOCKED_PROMPT | usage_of_blocked(), ensure_ascii=True)
            return Response(blocked, 200, mimetype="application/json")
        body = google_error(error)
        status = body["error"]["code"]
        return Response(pretty(body) + "\n", status, mimetype="application/json")

    def presented_key(self) -> str:
        return request.headers.get("x-goog-api-key") or request.args.get("key", "")

    def auth_error(self, problem: str, key: str) -> OpenAIError:
        if problem == "missing":
            return OpenAIError(403, MISSING_KEY, "PERMISSION_DENIED")
        return OpenAIError(
            400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", code="API_KEY_INVALID"
        )

    def add_headers(self, response: Response) -> None:
        headers = response.headers
        for name in [n for n in headers.keys() if n.startswith("x-ratelimit-") or n.startswith("retry-after")]:
            del headers[name]
        headers.add("vary", "Origin, X-Origin, Referer")
        headers.add("x-xss-protection", "0")
        headers.add("x-frame-options", "SAMEORIGIN")
        headers.add("x-content-type-options", "nosniff")
