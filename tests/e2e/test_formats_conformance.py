"""The other wire formats as popular clients call them, against real gunicorn gevent workers: LiteLLM's
``anthropic/``, ``azure/`` and ``gemini/`` routes (plain, streamed, with tools) and LangChain's
``ChatAnthropic`` (invoke, stream, bound tools)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its price list

import litellm  # noqa: E402
from langchain_anthropic import ChatAnthropic  # noqa: E402

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ROUTES = {  # LiteLLM's model name and how it is pointed at us
    "anthropic": ("anthropic/claude-sonnet-4-6", {}),
    "azure": ("azure/gpt-4o", {"api_version": "2024-10-21"}),
    "gemini": ("gemini/gemini-2.5-flash", {"suffix": "/v1beta"}),
}


def _call(server, route, **kwargs):
    model, options = ROUTES[route]
    options = dict(options)
    api_base = server.base_url + options.pop("suffix", "")
    return litellm.completion(model=model, api_base=api_base, api_key="key", **options, **kwargs)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_litellm_routes(live_server, route):
    reply = _call(live_server, route, messages=HI, max_tokens=8)
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 8
    streamed = "".join(
        c.choices[0].delta.content or "" for c in _call(live_server, route, messages=HI, max_tokens=8, stream=True)
    )
    assert streamed.strip()
    asked = [{"role": "user", "content": "What's the weather in Paris?"}]
    (call,) = _call(live_server, route, messages=asked, tools=[WEATHER], max_tokens=200).choices[0].message.tool_calls
    assert call.function.name == "get_weather" and '"city"' in call.function.arguments


def test_langchain_chat_anthropic(live_server):
    llm = ChatAnthropic(model="claude-sonnet-4-6", base_url=live_server.base_url, api_key="key", max_tokens=16)
    message = llm.invoke("Hello")
    assert message.content and message.usage_metadata["output_tokens"] == 16
    assert "".join(chunk.content if isinstance(chunk.content, str) else "" for chunk in llm.stream("Hello"))
    (call,) = llm.bind_tools([WEATHER]).invoke("What's the weather in Oslo?").tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
