"""A batch from ``validating`` to its end, on the server's clock (``[batch] duration_s``, ``window_s``).

The first tenth of the duration it validates; its lines then run one by one, spread over the next seven
tenths, each as a request to the server's own route (the same validation, simulation and faults by rate as
a live request, answered at once: the batch has its own clock, and neither the per-minute limits nor the
running sequences of live traffic hold it); the last fifth it is ``finalizing``, and it ends ``completed``
with an output file of the lines answered 2xx and an error file of the others. A cancel stops it at the
next line (``cancelling``, then ``cancelled``, with the files of what was done); a batch still running when
its window has passed ends ``expired``, its unrun lines in the error file as ``batch_expired``.

A batch is run by one worker at a time, which holds a lease on it (a bucket of the shared state, renewed as
it goes). If that worker is gone, the next read of the batch from any worker takes the lease and runs it
again from the start.
"""

from __future__ import annotations

import json
import os
import threading
import time

from app.api.files import store_file
from app.api.models import find_model
from app.batches.validation import Line, read_lines
from app.journal.entries import BATCH
from app.state import current_state

KIND = "batch"  # stored: {"batch": the Batch object, "created": its creation time, to the fraction}
CANCELS = "batch_cancel"  # stored by a cancel, {"at": when}: only the run writes the batch while it runs
LEASE_S = 3.0  # renewed at least every second while it runs
SAVE_EVERY_S = 0.2  # progress (request_counts) written at most this often
# A line late for its time still lets the worker's connections go first: a timer is due only after the worker
# has polled its sockets (sleep(0) is not: gevent runs many of those before it polls).
TURN_S = 0.0005
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


class Stopped(Exception):
    """A cancel was asked for, or the window passed: ``status`` is what the batch becomes."""

    def __init__(self, status: str):
        self.status = status


def claim(shared, batch_id: str) -> bool:
    """Take the batch's lease if nobody holds it (atomically, across workers and instances)."""

    def take(values):
        if values[0] is not None:  # held, and not yet run out
            return None, False
        return [time.time() + LEASE_S], True

    return shared.update_buckets([_lease(batch_id)], take)


def start(app, batch_id: str) -> None:
    """Run the batch in the background (a greenlet in a gevent worker, a thread elsewhere)."""
    threading.Thread(target=_run, args=(app, batch_id), name=f"batch {batch_id}", daemon=True).start()


def _lease(batch_id: str) -> str:
    return f"batch-lease:{batch_id}"


def _run(app, batch_id: str) -> None:
    with app.app_context():
        try:
            Run(app, batch_id).through()
        except Exception:  # noqa: BLE001 (a batch must not take its worker down; the next read restarts it)
            app.logger.exception("batch %s stopped on an error; it will be run again when next read", batch_id)


class Run:
    def __init__(self, app, batch_id: str):
        state = current_state()
        self.app, self.shared, self.id = app, state.shared, batch_id
        self.token = state.settings.auth["token"]
        record = self.shared.get_object(KIND, batch_id)
        self.batch, self.created = record["batch"], record["created"]
        clock = state.settings.batch
        self.duration, self.window_ends = clock["duration_s"], self.created + clock["window_s"]
        self.saved_at = 0.0
        self.outputs, self.errors = [], []
        self.usage = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}

    # --- the statuses ---------------------------------------------------------------------------------------
    def through(self) -> None:
        batch = self.batch
        if batch["status"] not in ACTIVE:
            # Ended since the reader that claimed it saw it running: the run before released the lease between
            # that read and the claim (it writes the batch, then lets the lease go). Nothing is run twice.
            self.shared.update_buckets([_lease(self.id)], lambda values: ([0.0], None))
            return
        lines: list[Line] = []
        try:
            self._until(self.created + 0.1 * self.duration)
            data = self.shared.get_content(batch["input_file_id"]) or b""
            lines, errors = read_lines(data, batch["endpoint"], lambda name: find_model(name) is not None)
            if errors:
                self._set(status="failed", failed_at=_now(), errors={"object": "list", "data": errors})
                self._ended()
                self._save(force=True, final=True)
                return
            model = find_model(lines[0].body["model"])
            self._set(status="in_progress", in_progress_at=_now(), model=model.answers_as if model else None)
            batch["request_counts"] = {"total": len(lines), "completed": 0, "failed": 0}
            self._save(force=True)
            began, span = time.time(), 0.7 * self.duration
            for done, line in enumerate(lines):
                self._until(began + span * done / len(lines))
                self._answer(line)
                self._save()
            self._set(status="finalizing", finalizing_at=_now())
            self._save(force=True)
            self._write_files()
            self._until(self.created + self.duration)
            self._set(status="completed", completed_at=_now())
        except Stopped as stop:
            unrun = lines[len(self.outputs) + len(self.errors) :]
            if stop.status == "expired" and unrun:
                self.errors += [_output_line(line, None, dict(EXPIRED)) for line in unrun]
                batch["request_counts"]["failed"] += len(unrun)
            self._write_files()
            self._set(status=stop.status, **{f"{stop.status}_at": _now()})
        self._ended()  # counted before it shows as ended: a test that sees it end finds it counted
        self._save(force=True, final=True)

    def _ended(self) -> None:
        metrics = current_state().metrics
        if metrics is not None:
            metrics.batch_ended(self.batch["status"])

    def _until(self, when: float) -> None:
        """Wait for the clock, a second at most at a time (the lease renewed), stopping for a cancel or at
        the end of the window."""
        while True:
            now = time.time()
            if now >= self.window_ends:
                raise Stopped("expired")
            self._save()  # a cancel is seen here
            if now >= when:
                # Behind its pace (lines that take longer than their share of the window) the run would
                # otherwise never wait, and its worker would answer nobody else until the batch ended.
                time.sleep(TURN_S)
                return
            time.sleep(min(1.0, when - now, max(0.0, self.window_ends - now)))

    # --- a line ---------------------------------------------------------------------------------------------
    def _answer(self, line: Line) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with self.app.test_client() as client:
            response = client.post(
                self.batch["endpoint"],
                json=line.body,
                headers=headers,
                environ_overrides={BATCH: self.id, "REMOTE_ADDR": "batch"},
            )
            text = response.get_data(as_text=True)
            status, request_id = response.status_code, response.headers.get("x-request-id")
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        output = _output_line(line, {"status_code": status, "request_id": request_id, "body": body}, None)
        counts = self.batch["request_counts"]
        if 200 <= status < 300:
            self.outputs.append(output)
            counts["completed"] += 1
            self._count_usage(body.get("usage") if isinstance(body, dict) else None)
        else:
            self.errors.append(output)
            counts["failed"] += 1

    def _count_usage(self, usage: dict | None) -> None:
        if not usage:
            return
        self.usage["input"] += usage.get("input_tokens", usage.get("prompt_tokens", 0)) or 0
        self.usage["output"] += usage.get("output_tokens", usage.get("completion_tokens", 0)) or 0
        cached = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
        reasoning = usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
        self.usage["cached"] += cached.get("cached_tokens", 0) or 0
        self.usage["reasoning"] += reasoning.get("reasoning_tokens", 0) or 0

    def _write_files(self) -> None:
        expires = self.batch.get("output_expires_after")
        expires_at = int(time.time()) + expires["seconds"] if expires else None
        for lines, field, name in ((self.outputs, "output_file_id", "output"), (self.errors, "error_file_id", "error")):
            if lines and not self.batch.get(field):  # once: a window may end while it finalizes
                data = "".join(lines).encode()
                file = store_file(data, f"batch_{self.id}_{name}.jsonl", "batch_output", expires_at)
                self.batch[field] = file["id"]

    # --- the stored batch -----------------------------------------------------------------------------------
    def _set(self, **fields) -> None:
        self.batch.update(fields)

    def _save(self, force: bool = False, final: bool = False) -> None:
        """Write the batch (at most every ``SAVE_EVERY_S`` unless forced) and renew the lease; a cancel asked
        for since the last write stops the run (raises :class:`Stopped`), unless this is the last write."""
        now = time.time()
        if not force and now - self.saved_at < SAVE_EVERY_S:
            return
        asked = self.shared.get_object(CANCELS, self.id)
        cancelling = asked is not None and self.batch["status"] in ACTIVE
        if cancelling:
            self.batch.update(status="cancelling", cancelling_at=asked["at"])
        u = self.usage
        self.batch["usage"] = {
            "input_tokens": u["input"],
            "input_tokens_details": {"cached_tokens": u["cached"]},
            "output_tokens": u["output"],
            "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
            "total_tokens": u["input"] + u["output"],
        }
        self.shared.put_object(KIND, self.id, {"batch": self.batch, "created": self.created})
        self.saved_at = now
        lease = [time.time() + LEASE_S] if not final else [0.0]
        self.shared.update_buckets([_lease(self.id)], lambda values: (lease, None))
        if cancelling and not final:
            raise Stopped("cancelled")


def _output_line(line: Line, response: dict | None, error: dict | None) -> str:
    """A line of the output or error file, written as its request is answered. Kept as objects and written at
    the end, 50,000 lines held the worker for about a second as it finalized, and their objects made each
    full collection walk them."""
    line_id = "batch_req_" + os.urandom(16).hex()
    return json.dumps({"id": line_id, "custom_id": line.custom_id, "response": response, "error": error}) + "\n"


def _now() -> int:
    return int(time.time())
