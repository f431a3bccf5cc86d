"""Azure OpenAI's errors and headers.

Azure passes its model's own errors through in OpenAI's shape (a bad parameter reads as OpenAI words it).
What its gateway answers itself is ``{"error": {"code", "message"}}``: a missing key (401), a deployment that
does not exist (404 ``DeploymentNotFound``), an unknown route or no ``api-version`` (404), an unsupported
``api-version`` (400), its rate limit (429 with ``retry-after``), and the content filter (400
``content_filter`` with its ``innererror``). Responses carry ``apim-request-id``, ``x-ms-region`` and Azure's
``x-ratelimit-remaining-*``.
"""

from __future__ import annotations

import json
import math
from random import getrandbits
from uuid import UUID

from flask import Response, request

from app.context import this_request
from app.errors import OpenAIError
from app.flask_app import add_own_headers
from app.formats.azure.render import PROMPT_FILTERED
from app.formats.wire import WireFormat, key_in, with_headers
from app.state import current_state

DEPLOYMENT = "mock_openai.deployment"  # environ key: the deployment a request named
_RAI_INVOKED = (("x-ms-rai-invoked", "true"),)
INVALID_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
    "active subscription and use a correct regional API endpoint for your resource."
)
MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when making requests to "
    "an API."
)
RATE_LIMITED = (
    "Requests to the {operation} Operation under Azure OpenAI API version {version} have exceeded {unit} rate limit "
    "of your current AIServices S0 pricing tier. Please retry after {seconds} second{s}. Please go here: "
    "https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit. For Free "
    "Account customers, upgrade to Pay as you Go here: https://aka.ms/429TrialUpgrade."
)
CONTENT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please "
    "modify your prompt and retry. To learn more about our content filtering policies please read our "
    "documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
OPERATIONS = {
    "chat/completions": "ChatCompletions_Create",
    "completions": "Completions_Create",
    "embeddings": "Embeddings_Create",
}
_KEPT = ("retry-after", "retry-after-ms", "connection")


def deployment_not_found() -> OpenAIError:
    return OpenAIError(
        404,
        "The API deployment for this resource does not exist. If you created the deployment within the last 5 "
        "minutes, please wait a moment and try again.",
        code="DeploymentNotFound",
    )


def _gateway(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def azure_body(error: OpenAIError) -> dict:
    """The body Azure sends for this neutral error."""
    if error.kind == "content_filter":
        return {
            "error": {
                "message": CONTENT_FILTERED,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": PROMPT_FILTERED},
            }
        }
    if error.status == 429 and error.kind != "insufficient_quota":
        seconds = math.ceil(float(error.headers.get("retry-after", "1")))
        path = request.path.rsplit("/", 2)
        operation = OPERATIONS.get("/".join(path[-2:])) or OPERATIONS.get(path[-1], "ChatCompletions_Create")
        unit = "token" if error.type == "tokens" else "call"
        version = request.args.get("api-version", "v1")
        message = RATE_LIMITED.format(
            operation=operation, version=version, unit=unit, seconds=seconds, s="" if seconds == 1 else "s"
        )
        return _gateway("429", message)
    if error.kind == "503":
        return _gateway(
            "ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later."
        )
    if error.kind == "timeout":
        return _gateway("Timeout", "The operation was timeout.")
    if error.kind in ("http_404", "http_405"):
        return _gateway("404", "Resource not found")
    if error.code in ("DeploymentNotFound", "BadRequest", "404", "401"):
        return _gateway(error.code, error.message)
    return error.body()  # the model's own error, as OpenAI words it


class AzureFormat(WireFormat):
    name = "azure"

    def error_response(self, error: OpenAIError) -> Response:
        body = azure_body(error)
        status = 404 if error.kind == "http_405" else error.status
        return with_headers(Response(json.dumps(body), status, mimetype="application/json"), error, _KEPT)

    def presented_key(self) -> str:
        return key_in("api-key")

    def auth_error(self, problem: str, key: str) -> OpenAIError:
        return OpenAIError(401, MISSING_KEY if problem == "missing" else INVALID_KEY, code="401")

    def add_headers(self, response: Response) -> None:
        headers = response.headers
        environ = this_request().environ
        pairs = getattr(headers, "_list", None)  # (werkzeug's Headers keep their pairs there)
        if type(pairs) is list:  # Azure sends no x-ratelimit-reset-*: dropped in one pass
            pairs[:] = [pair for pair in pairs if not pair[0].startswith("x-ratelimit-reset-")]
        else:  # pragma: no cover (a werkzeug that keeps them otherwise)
            for name in [n for n in headers.keys() if n.startswith("x-ratelimit-reset-")]:
                del headers[name]
        request_id = str(UUID(int=getrandbits(128), version=4))  # (random, not os.urandom: an id, no secret)
        add_own_headers(response, [("apim-request-id", request_id), ("x-request-id", request_id)])
        headers.add("x-ms-region", current_state().settings.azure["region"])  # (configured: checked)
        add_own_headers(response, _RAI_INVOKED)
        client_request_id = environ.get("HTTP_X_MS_CLIENT_REQUEST_ID")
        if client_request_id:  # the client's and the URL's values, checked as werkzeug checks any value
            headers.add("x-ms-client-request-id", client_request_id)
        deployment = environ.get(DEPLOYMENT)
        if deployment:
            headers.add("x-ms-deployment-name", deployment)
