"""The request list's preview: the first words of what was asked and of what came back, per body family."""

from __future__ import annotations

from app.journal.preview import WIDTH, preview


def test_chat_previews_the_last_user_message_and_the_reply():
    parts = [{"type": "text", "text": "second"}, {"type": "image_url"}]
    asked = {"messages": [{"role": "user", "content": "first"}, {"role": "user", "content": parts}]}
    answered = {"choices": [{"message": {"role": "assistant", "content": "the  reply\n here"}}]}
    assert preview(asked, answered, None) == {"asked": "second", "answered": "the reply here"}


def test_a_tool_call_previews_as_the_call():
    answered = {"choices": [{"message": {"content": None, "tool_calls": [
        {"function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}}]}  # fmt: skip
    assert preview(None, answered, None)["answered"] == 'get_weather({"city":"Oslo"})'


def test_legacy_responses_embeddings_and_errors():
    assert preview({"prompt": ["one", "two"]}, {"choices": [{"text": "done"}]}, None) == {
        "asked": "one",
        "answered": "done",
    }
    responses = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "hi there"}]}]}
    assert preview({"input": "question"}, responses, None) == {"asked": "question", "answered": "hi there"}
    items = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "in parts"}]}]}
    assert preview(items, None, None)["asked"] == "in parts"
    embeddings = {"object": "list", "data": [{"object": "embedding"}, {"object": "embedding"}]}
    assert preview({"input": "vectorise"}, embeddings, None) == {"asked": "vectorise", "answered": "2 embeddings"}
    error = {"error": {"message": "The model `x` does not exist"}}
    assert preview({"model": "x"}, error, None) == {"asked": None, "answered": "The model `x` does not exist"}


def test_a_streams_assembled_text_is_its_answer_and_long_text_is_cut_at_a_word():
    long = "word " * 40
    cut = preview({"messages": [{"role": "user", "content": long}]}, None, "streamed text")
    assert cut["answered"] == "streamed text"
    assert cut["asked"].endswith("word…") and len(cut["asked"]) <= WIDTH + 1
    assert preview("not json", None, None) == {"asked": None, "answered": None}
