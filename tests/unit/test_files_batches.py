"""Files and the Batch API through the Flask test client, on both backends of the shared state: uploads and
their errors, and batches through every status they can end in, with the files they write."""

from __future__ import annotations

import io
import json
import time

import pytest

CHAT_LINE = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 4}


@pytest.fixture
def make_client(each_backend):
    from app import create_app

    return lambda overrides=None: create_app({**(overrides or {}), **each_backend}).test_client()


def upload(client, data: bytes, name: str = "in.jsonl", purpose: str = "batch", **form):
    return client.post("/v1/files", data={"purpose": purpose, "file": (io.BytesIO(data), name), **form})


def jsonl(*lines) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def chat_lines(count: int, **overrides) -> list[dict]:
    return [
        {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": {**CHAT_LINE, **overrides}}
        for n in range(count)
    ]


def run_batch(
    client, data: bytes, endpoint="/v1/chat/completions", until=("completed", "failed", "expired", "cancelled")
):
    file_id = upload(client, data).get_json()["id"]
    created = client.post(
        "/v1/batches", json={"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h"}
    )
    assert created.status_code == 200, created.get_json()
    return wait_for(client, created.get_json()["id"], until)


def wait_for(client, batch_id: str, statuses, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/v1/batches/{batch_id}").get_json()
        if batch["status"] in statuses or time.monotonic() > deadline:
            return batch
        time.sleep(0.02)


def lines_of(client, file_id: str) -> list[dict]:
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


# --- files ------------------------------------------------------------------------------------------------
def test_a_file_is_uploaded_listed_read_and_deleted(make_client):
    client = make_client()
    sent = upload(client, b'{"a": 1}\n', purpose="batch")
    assert sent.status_code == 200
    file = sent.get_json()
    assert file["id"].startswith("file-") and file["object"] == "file" and file["bytes"] == 9
    assert file["filename"] == "in.jsonl" and file["purpose"] == "batch" and file["status"] == "processed"
    assert file["expires_at"] == file["created_at"] + 30 * 24 * 3600  # a batch's input: 30 days
    other = upload(client, b"notes", name="notes.txt", purpose="user_data").get_json()
    assert "expires_at" not in other  # never: the spec has no null for it
    listed = client.get("/v1/files").get_json()
    assert [f["id"] for f in listed["data"]] == [other["id"], file["id"]]  # newest first
    assert client.get("/v1/files?purpose=batch").get_json()["data"] == [file]
    page = client.get("/v1/files?order=asc&limit=1").get_json()
    assert page["data"] == [file] and page["has_more"] is True
    assert client.get(f"/v1/files?order=asc&after={file['id']}").get_json()["data"][0]["id"] == other["id"]
    assert client.get(f"/v1/files/{file['id']}").get_json() == file
    content = client.get(f"/v1/files/{file['id']}/content")
    assert content.data == b'{"a": 1}\n' and content.mimetype == "application/octet-stream"
    assert client.delete(f"/v1/files/{file['id']}").get_json() == {"id": file["id"], "object": "file", "deleted": True}
    gone = client.get(f"/v1/files/{file['id']}")
    assert gone.status_code == 404
    assert gone.get_json()["error"] == {
        "message": f"No such File object: {file['id']}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    assert client.get(f"/v1/files/{file['id']}/content").status_code == 404


def test_uploads_are_refused_as_the_real_api_refuses_them(make_client):
    client = make_client()

    def refused(response, status=400):
        assert response.status_code == status, response.get_json()
        return response.get_json()["error"]

    assert (
        refused(upload(client, b"{}", name="in.csv"))["message"] == "Invalid file format for Batch API. Must be .jsonl"
    )
    error = refused(upload(client, b"x", name="x.txt", purpose="training"))
    assert error["param"] == "purpose" and "Supported values are: 'assistants', 'batch'" in error["message"]
    error = refused(client.post("/v1/files", data={"purpose": "batch"}, content_type="multipart/form-data"))
    assert error["message"] == "Missing required parameter: 'file'." and error["code"] == "missing_required_parameter"
    error = refused(client.post("/v1/files", json={"purpose": "batch"}))
    assert error["message"].startswith("Invalid Content-Type header (application/json), expected multipart/form-data")
    error = refused(upload(client, b"x", **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"}))
    assert error["param"] == "expires_after.seconds"
    kept = upload(client, b"x", name="a.txt", purpose="assistants",
                  **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}).get_json()  # fmt: skip
    assert kept["expires_at"] == kept["created_at"] + 3600
    error = refused(client.get(f"/v1/files/{kept['id']}/content"))
    assert error["message"] == "Not allowed to download files of purpose: assistants"


def test_a_file_past_its_expiry_is_gone(make_client):
    from app.api.files import KIND
    from app.state import current_state

    client = make_client()
    file = upload(client, b"x", name="x.txt", purpose="user_data").get_json()
    with client.application.app_context():
        current_state().shared.put_object(KIND, file["id"], {**file, "expires_at": int(time.time()) - 1})
    assert client.get(f"/v1/files/{file['id']}").status_code == 404
    assert client.get("/v1/files").get_json()["data"] == []


# --- batches ----------------------------------------------------------------------------------------------
def test_a_batch_runs_its_lines_through_the_simulation_and_writes_the_output_file(make_client):
    client = make_client({"batch": {"duration_s": 0.3}})
    batch = run_batch(client, jsonl(*chat_lines(5)))
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert batch["model"] == "gpt-4o-mini-2024-07-18" and batch["error_file_id"] is None
    created, started, finalizing, completed = (
        batch[k] for k in ("created_at", "in_progress_at", "finalizing_at", "completed_at")
    )
    assert created <= started <= finalizing <= completed and batch["expires_at"] == created + 86400
    output = lines_of(client, batch["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == [f"r{n}" for n in range(5)]
    first = output[0]
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"].startswith("req_")
    assert first["response"]["body"]["object"] == "chat.completion"
    usage = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in output)
    assert batch["usage"]["input_tokens"] == usage and batch["usage"]["total_tokens"] > usage
    file = client.get(f"/v1/files/{batch['output_file_id']}").get_json()
    assert file["purpose"] == "batch_output" and file["filename"] == f"batch_{batch['id']}_output.jsonl"
    # Its lines are in the journal, each with the batch it ran for.
    journal = client.get(f"/_mock/requests?batch={batch['id']}").get_json()
    assert journal["total"] == 5 and {e["batch"] for e in journal["data"]} == {batch["id"]}
    assert {e["path"] for e in journal["data"]} == {"/v1/chat/completions"}
    listed = client.get("/v1/batches").get_json()
    assert listed["object"] == "list" and listed["data"][0]["id"] == batch["id"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'mock_openai_batches_total{status="completed"} 1.0' in metrics
    assert 'mock_openai_batch_requests_total{endpoint="/v1/chat/completions",status="200"} 5.0' in metrics


def test_a_batch_claimed_by_a_reader_that_saw_it_running_just_before_it_ended_is_not_run_again(make_client):
    from app.batches import runner

    client = make_client({"batch": {"duration_s": 0.3}})
    batch = run_batch(client, jsonl(*chat_lines(3)))
    assert batch["status"] == "completed"
    app = client.application
    with app.app_context():
        shared = app.extensions["mock_openai"].shared
        # A reader read the batch while it ran, and its claim comes after the run let the lease go.
        assert runner.claim(shared, batch["id"])
        runner.Run(app, batch["id"]).through()
        assert runner.claim(shared, batch["id"])  # (the lease was let go again)
    assert client.get(f"/v1/batches/{batch['id']}").get_json() == batch
    assert client.get(f"/_mock/requests?batch={batch['id']}").get_json()["total"] == 3


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("{not json", "invalid_json_line"),
        ({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": CHAT_LINE}, "invalid_url"),
        ({"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": CHAT_LINE}, "invalid_method"),
        ({"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions", "body": CHAT_LINE},
         "duplicate_custom_id"),
        ({"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {**CHAT_LINE, "model": "nope"}},
         "model_not_found"),
        ({"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {**CHAT_LINE, "model": "gpt-4o"}},
         "mismatched_model"),
        ({"custom_id": "b", "url": "/v1/chat/completions", "body": CHAT_LINE}, "missing_required_parameter"),
    ],
)  # fmt: skip
def test_a_batch_whose_input_file_has_a_bad_line_fails_naming_it(make_client, line, code):
    client = make_client({"batch": {"duration_s": 0}})
    batch = run_batch(client, jsonl(*chat_lines(1), line))
    assert batch["status"] == "failed" and batch["failed_at"] is not None and batch["in_progress_at"] is None
    assert batch["errors"]["object"] == "list"
    [error] = batch["errors"]["data"]
    assert error["code"] == code and error["line"] == 2 and error["message"]


def test_lines_answered_with_an_error_go_to_the_error_file(make_client):
    client = make_client({"batch": {"duration_s": 0}, "faults": {"error_rate_percent": 100, "error_mix": {"429": 1}}})
    batch = run_batch(client, jsonl(*chat_lines(3)))
    assert batch["status"] == "completed" and batch["request_counts"] == {"total": 3, "completed": 0, "failed": 3}
    assert batch["output_file_id"] is None
    errors = lines_of(client, batch["error_file_id"])
    assert {line["response"]["status_code"] for line in errors} == {429}
    assert errors[0]["response"]["body"]["error"]["code"] == "rate_limit_exceeded" and errors[0]["error"] is None


def test_a_batch_is_cancelled_before_its_next_line(make_client):
    client = make_client({"batch": {"duration_s": 20}})
    file_id = upload(client, jsonl(*chat_lines(100))).get_json()["id"]
    batch = client.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    ).get_json()
    wait_for(client, batch["id"], ("in_progress",))
    cancelling = client.post(f"/v1/batches/{batch['id']}/cancel").get_json()
    assert cancelling["status"] == "cancelling" and cancelling["cancelling_at"] is not None
    batch = wait_for(client, batch["id"], ("cancelled",))
    assert batch["status"] == "cancelled" and batch["cancelled_at"] is not None
    counts = batch["request_counts"]
    assert counts["total"] == 100 and counts["completed"] < 100
    done = lines_of(client, batch["output_file_id"]) if counts["completed"] else []
    assert len(done) == counts["completed"]
    error = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert error.status_code == 200 and error.get_json()["status"] == "cancelled"


def test_a_batch_still_running_when_its_window_ends_expires(make_client):
    # It runs its lines from 1 s to 8 s and its window ends at 2 s: a second for the run to reach its lines on a busy
    # machine (half a second was not always enough: the window ended before they were read, and none was counted).
    client = make_client({"batch": {"duration_s": 10, "window_s": 2}})
    batch = run_batch(client, jsonl(*chat_lines(50)))
    assert batch["status"] == "expired" and batch["expired_at"] is not None
    counts = batch["request_counts"]
    assert counts["total"] == 50 and counts["completed"] + counts["failed"] == 50
    expired = lines_of(client, batch["error_file_id"])
    assert len(expired) == counts["failed"] > 0
    assert expired[-1]["response"] is None and expired[-1]["error"]["code"] == "batch_expired"


def test_creating_a_batch_is_refused_as_the_real_api_refuses_it(make_client):
    client = make_client()
    body = {"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    missing = client.post("/v1/batches", json=body)
    assert missing.status_code == 404 and missing.get_json()["error"]["param"] == "input_file_id"
    notes = upload(client, b"x", name="x.txt", purpose="user_data").get_json()
    wrong = client.post("/v1/batches", json={**body, "input_file_id": notes["id"]})
    assert wrong.status_code == 400 and "purpose 'batch'" in wrong.get_json()["error"]["message"]
    good = upload(client, jsonl(*chat_lines(1))).get_json()
    error = client.post("/v1/batches", json={**body, "input_file_id": good["id"], "endpoint": "/v1/nope"}).get_json()
    assert error["error"]["param"] == "endpoint" and error["error"]["code"] == "invalid_value"
    error = client.post("/v1/batches", json={**body, "input_file_id": good["id"], "completion_window": "1h"})
    assert error.get_json()["error"]["param"] == "completion_window"
    unknown = client.get("/v1/batches/batch_nope")
    assert unknown.status_code == 404 and unknown.get_json()["error"]["type"] == "invalid_request_error"
