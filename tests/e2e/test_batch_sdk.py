"""The official SDK's Files and Batch pipeline against real gunicorn gevent workers, bodies strictly validated:
upload a JSONL file, create a batch, poll it to the end, read its output and error files, list, cancel and
delete; on two workers of one host, and on two instances sharing one Redis (each call may land on another
worker or instance than the last)."""

from __future__ import annotations

import json
import time
import uuid

import openai
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["one host", "two instances on Redis"])
def servers(request, start_server, tmp_path):
    env = {"MOCK_OPENAI_BATCH_DURATION_S": "3"}
    if request.param == "one host":
        return [start_server("-w", "2", env=env)]
    env |= {"MOCK_OPENAI_SHARED_REDIS_URL": request.getfixturevalue("redis_url"),
            "MOCK_OPENAI_SHARED_REDIS_PREFIX": uuid.uuid4().hex}  # fmt: skip
    return [start_server("-w", "2", env=env, cwd=tmp_path / name) for name in ("a", "b") if _mkdir(tmp_path / name)]


def _mkdir(path) -> bool:
    path.mkdir()
    return True


def clients(servers) -> list[openai.OpenAI]:
    return [
        openai.OpenAI(base_url=s.base_url + "/v1", api_key="sk-batch", max_retries=0, _strict_response_validation=True)
        for s in servers
    ]


def wait(client: openai.OpenAI, batch_id: str, statuses=("completed", "failed", "expired", "cancelled")):
    deadline = time.monotonic() + 20
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses or time.monotonic() > deadline:
            return batch
        time.sleep(0.1)


def embeddings_batch(client: openai.OpenAI, count: int):
    """A batch of ``count`` embeddings, made."""
    lines = [
        {"custom_id": f"q{n}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "text-embedding-3-small", "input": f"text {n}"}}
        for n in range(count)
    ]  # fmt: skip
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("embed.jsonl", data), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")


def test_the_whole_pipeline_with_the_official_sdk(servers):
    first, last = clients(servers)[0], clients(servers)[-1]
    lines = [
        {"custom_id": f"q{n}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Question {n}"}], "max_tokens": 8}}
        for n in range(6)
    ]  # fmt: skip
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = first.files.create(file=("questions.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data)
    assert last.files.retrieve(uploaded.id).filename == "questions.jsonl"

    batch = first.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "nightly"}
    )
    assert batch.status == "validating" and batch.metadata == {"run": "nightly"}
    seen = {batch.status}
    deadline = time.monotonic() + 20
    while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
        batch = last.batches.retrieve(batch.id)
        seen.add(batch.status)
        time.sleep(0.05)
    assert batch.status == "completed" and {"validating", "in_progress", "completed"} <= seen, seen
    assert batch.request_counts.total == 6 and batch.request_counts.completed == 6
    assert batch.usage.input_tokens > 0 and batch.usage.output_tokens == 48

    output = [json.loads(line) for line in last.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == [f"q{n}" for n in range(6)]
    completion = openai.types.chat.ChatCompletion.model_validate(output[0]["response"]["body"])
    assert completion.usage.completion_tokens == 8
    assert batch.id in [b.id for b in first.batches.list(limit=10)]
    assert {f.id for f in last.files.list(purpose="batch_output")} == {batch.output_file_id}

    deleted = first.files.delete(uploaded.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        last.files.retrieve(uploaded.id)


def test_a_cancelled_batch_and_a_failed_one_as_the_sdk_sees_them(servers):
    client = clients(servers)[0]
    batch = embeddings_batch(client, 400)
    wait(client, batch.id, ("in_progress",))
    assert clients(servers)[-1].batches.cancel(batch.id).status == "cancelling"
    batch = wait(client, batch.id)
    assert batch.status == "cancelled" and batch.request_counts.completed < 400

    bad = client.files.create(file=("bad.jsonl", b'{"custom_id": "x"\n'), purpose="batch")
    failed = wait(client, client.batches.create(input_file_id=bad.id, endpoint="/v1/embeddings",
                                                completion_window="24h").id)  # fmt: skip
    assert failed.status == "failed" and failed.errors.data[0].code == "invalid_json_line"
    assert failed.errors.data[0].line == 1
    with pytest.raises(openai.BadRequestError, match="Must be .jsonl"):
        client.files.create(file=("bad.csv", b"a,b"), purpose="batch")


def test_a_batch_behind_its_pace_still_lets_its_worker_answer(start_server):
    """1,000 embeddings in a window of 1 s: each line takes longer than its share of the window, so the run never
    waits for its pace. It must still let its worker's other requests through: a client polling the batch sees
    it in progress, its count climbing (the run used to hold its worker until the batch had ended)."""
    server = start_server("-w", "1", env={"MOCK_OPENAI_BATCH_DURATION_S": "1"})
    client = clients([server])[0]
    batch = embeddings_batch(client, 1000)
    counts = []
    deadline = time.monotonic() + 30
    while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
        batch = client.batches.retrieve(batch.id)
        if batch.status == "in_progress":
            counts.append(batch.request_counts.completed)
        time.sleep(0.02)
    assert batch.status == "completed" and batch.request_counts.completed == 1000
    assert any(0 < count < 1000 for count in counts), counts
