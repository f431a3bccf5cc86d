"""The Gemini models this format answers as, with their limits, and ``models.list`` / ``models.get``.

Which models exist follows the Gemini API's model list (the google-genai SDK's own samples name the same);
an unknown name is Google's 404, unless unknown models are allowed (``--any-model``).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import ModelSpec
from app.errors import OpenAIError

GENERATE = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")
EMBED = ("embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent")


@dataclass(frozen=True, slots=True)
class Gemini:
    id: str
    display_name: str
    input_limit: int
    output_limit: int
    methods: tuple = GENERATE
    thinking: bool = True
    dimensions: int = 0  # an embedding model's vector length

    def spec(self) -> ModelSpec:
        endpoint = "embeddings" if self.dimensions else "chat"
        return ModelSpec(
            id=self.id,
            max_output_tokens=self.output_limit,
            context_window=self.input_limit,
            endpoint=endpoint,
            dimensions=self.dimensions or 1536,
        )

    def info(self) -> dict:
        info = {
            "name": f"models/{self.id}",
            "version": "001" if "preview" not in self.id else self.id.rsplit("-", 1)[-1],
            "displayName": self.display_name,
            "description": f"{self.display_name}",
            "inputTokenLimit": self.input_limit,
            "outputTokenLimit": self.output_limit,
            "supportedGenerationMethods": list(self.methods),
        }
        if not self.dimensions:
            info |= {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": self.thinking}
        return info


M = 1_048_576
GEMINI = (
    Gemini("gemini-3.5-flash", "Gemini 3.5 Flash", M, 65536),
    Gemini("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview", M, 65536),
    Gemini("gemini-3-pro-preview", "Gemini 3 Pro Preview", M, 65536),
    Gemini("gemini-3-flash-preview", "Gemini 3 Flash Preview", M, 65536),
    Gemini("gemini-3.1-flash-lite", "Gemini 3.1 Flash-Lite", M, 65536),
    Gemini("gemini-2.5-pro", "Gemini 2.5 Pro", M, 65536),
    Gemini("gemini-2.5-flash", "Gemini 2.5 Flash", M, 65536),
    Gemini("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", M, 65536),
    Gemini("gemini-2.0-flash", "Gemini 2.0 Flash", M, 8192, thinking=False),
    Gemini("gemini-embedding-001", "Gemini Embedding 001", 2048, 1, EMBED, False, 3072),
    Gemini("text-embedding-004", "Text Embedding 004", 2048, 1, EMBED, False, 768),
)
BY_ID = {m.id: m for m in GEMINI}


def find(name: str) -> Gemini | None:
    return BY_ID.get(name.removeprefix("models/"))


def resolve(name: str, method: str, allow_unknown: bool) -> Gemini:
    model = find(name)
    if model is None and allow_unknown:
        embeds = method in ("embedContent", "batchEmbedContents")
        return Gemini(
            name.removeprefix("models/"), name, M, 65536, EMBED if embeds else GENERATE, dimensions=768 if embeds else 0
        )
    # The listed methods imply their companions: streaming with generateContent, batches with embedContent.
    implied = {"streamGenerateContent": "generateContent", "batchEmbedContents": "embedContent"}
    if model is None or implied.get(method, method) not in model.methods:
        raise OpenAIError(
            404,
            f"models/{name.removeprefix('models/')} is not found for API version {api_version()}, or is not "
            f"supported for {method}. Call ListModels to see the list of available models and their supported "
            "methods.",
            "NOT_FOUND",
        )
    return model


def api_version() -> str:
    from flask import request

    return "v1" if request.path.startswith("/v1/") else "v1beta"


def page(size: int, token: str | None) -> dict:
    start = int(token) if token and token.isdigit() else 0
    chosen = GEMINI[start : start + size]
    listed = {"models": [m.info() for m in chosen]}
    if start + size < len(GEMINI):
        listed["nextPageToken"] = str(start + size)
    return listed
