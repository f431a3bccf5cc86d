"""``GET /metrics``: Prometheus text format, summed over every worker of the server.

Where vLLM exports the same quantity, the name is vLLM's (``vllm:time_to_first_token_seconds``,
``vllm:inter_token_latency_seconds``, ``vllm:e2e_request_latency_seconds``, ``vllm:prompt_tokens_total``,
``vllm:generation_tokens_total``, label ``model_name``), so a dashboard built for a vLLM server works against
the mock. The rest are ours: ``mock_openai_requests_total`` (by endpoint, method, status and model),
``mock_openai_request_duration_seconds``, ``mock_openai_active_streams``, and for the Batch API
``mock_openai_batch_requests_total`` (its lines) and ``mock_openai_batches_total`` (batches ended, by status).

Under gunicorn every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (made by the master
in ``gunicorn.conf.py``) and a scrape sums them (``prometheus_client``'s multiprocess mode); under the Flask
test client or ``flask run`` the values live in the process. What a finished request adds (from what the
journal's capture saw) is gathered in the worker and added to the metrics twice a second, and before the
worker answers a scrape itself: another worker's latest half second may be missing from a scrape.
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import tempfile
from bisect import bisect_left, bisect_right
from collections import Counter
from math import fsum

from app.journal.entries import BATCH
from app.shared import under_gevent

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# vLLM's buckets for these three, so that its dashboards' quantiles read the same.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
               960.0, 1920.0, 7680.0)  # fmt: skip
# vLLM's buckets of its request-phase histograms (queue, prefill, decode, inference) and per-output-token time.
PHASE_BUCKETS = E2E_BUCKETS
TPOT_BUCKETS = ITL_BUCKETS
FLUSH_INTERVAL_S = 0.5
# Past this many values at once (a stream's gaps between tokens: 63 for 64 tokens), they are sorted and each
# bucket counted by one bisect, where a bisect and a dictionary update for each value cost 16.6 µs a stream of
# 64 tokens in a loop, sorted about 6, the list of gaps included.
MANY_VALUES = 8
MAX_LORAS = "1"  # vLLM's default max_loras, the label of vllm:lora_requests_info (adapters are not batched here)
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def one_two_five(ceiling: int) -> tuple[int, ...]:
    """vLLM's buckets for token counts: 1, 2, 5, 10, 20, 50, ... up to ``ceiling`` (its max_model_len; here the
    largest context window served)."""
    buckets, scale = [], 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > ceiling:
                return tuple(buckets)
            buckets.append(mantissa * scale)
        scale *= 10


TOKEN_BUCKETS = one_two_five(2_000_000)
# vLLM's finished_reason label: a reply that ended by itself, or at its limit; one cut short was aborted.
FINISHED_REASONS = {"stop": "stop", "tool_calls": "stop", "function_call": "stop", "content_filter": "stop",
                    "length": "length"}  # fmt: skip


def prepare_multiprocess_dir() -> str:
    """In gunicorn's master, before any worker starts: a new, empty folder for the workers' values (values
    left from an earlier run would be summed in), removed when the master exits."""
    folder = tempfile.mkdtemp(prefix="mock-openai-metrics-")
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
    os.environ[MULTIPROC_ENV] = folder
    return folder


def forget_process(pid: int) -> None:
    """A worker is gone: its live gauges (open streams) no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode the values are in files and a scrape reads them; in one process they are
        # read from this registry (one per app, so that apps built by tests do not collide).
        self.registry = None if self.multiprocess else CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "mock_openai_requests",
            "Requests answered, by endpoint, method, status, model and wire format (api).",
            ["endpoint", "method", "status", "model", "api"],
            registry=registry,
        )
        self.duration = Histogram(
            "mock_openai_request_duration_seconds",
            "Time from the request to the last byte of its response.",
            ["endpoint"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.active_streams = Gauge(
            "mock_openai_active_streams",
            "Streams being sent now.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        model = ["model_name"]
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "Time to first token.", model, buckets=TTFT_BUCKETS, registry=registry
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Time between one write of tokens and the next, in a stream.",
            model,
            buckets=ITL_BUCKETS,
            registry=registry,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end completion request latency.",
            model,
            buckets=E2E_BUCKETS,
            registry=registry,
        )
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prompt tokens processed.", model, registry=registry)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generation tokens processed.", model, registry=registry
        )
        # vLLM's scheduler gauges, this server's requests (each worker's, summed): generating, and waiting for
        # one of max_concurrent_sequences.
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", model,
                             multiprocess_mode="livesum", registry=registry)  # fmt: skip
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", model,
                             multiprocess_mode="livesum", registry=registry)  # fmt: skip
        self.cache_queries = Counter("vllm:prefix_cache_queries",
                                     "Prefix cache queries, in terms of number of queried tokens.", model,
                                     registry=registry)  # fmt: skip
        self.cache_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                                  model, registry=registry)  # fmt: skip
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", model,
                                   registry=registry)  # fmt: skip
        self.success = Counter("vllm:request_success", "Count of successfully processed requests.",
                               [*model, "finished_reason"], registry=registry)  # fmt: skip
        phases = {
            "queue": "Histogram of time spent in WAITING phase for request.",
            "prefill": "Histogram of time spent in PREFILL phase for request.",
            "decode": "Histogram of time spent in DECODE phase for request.",
            "inference": "Histogram of time spent in RUNNING phase for request.",
        }
        self.phases = {
            phase: Histogram(
                f"vllm:request_{phase}_time_seconds", text, model, buckets=PHASE_BUCKETS, registry=registry
            )  # fmt: skip
            for phase, text in phases.items()
        }
        self.tpot = Histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
                              model, buckets=TPOT_BUCKETS, registry=registry)  # fmt: skip
        self.request_prompt_tokens = Histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                                               model, buckets=TOKEN_BUCKETS, registry=registry)  # fmt: skip
        self.request_generation_tokens = Histogram("vllm:request_generation_tokens",
                                                   "Number of generation tokens processed.", model,
                                                   buckets=TOKEN_BUCKETS, registry=registry)  # fmt: skip
        self.max_tokens_param = Histogram("vllm:request_params_max_tokens",
                                          "Histogram of the max_tokens request parameter.", model,
                                          buckets=TOKEN_BUCKETS, registry=registry)  # fmt: skip
        self.n_param = Histogram("vllm:request_params_n", "Histogram of the n request parameter.", model,
                                 buckets=(1, 2, 5, 10, 20), registry=registry)  # fmt: skip
        # vLLM's LoRA gauge: which adapters have requests running and waiting, its value the time it was set
        self.lora = Gauge("vllm:lora_requests_info", "Running stats on lora requests.",
                          ["max_lora", "waiting_lora_adapters", "running_lora_adapters"],
                          multiprocess_mode="livemostrecent", registry=registry)  # fmt: skip
        self._adapters: set[str] = set()  # the LoRA adapters this worker has served
        self._running: dict[str, int] = {}  # this worker's running requests, by model
        self._finished: list[tuple] = []  # what each request that ran adds to vLLM's series, until the flush
        self.queued = dict  # () -> {model: waiting}: the simulation's waiting queues (see app.state)
        self.batch_requests = Counter(
            "mock_openai_batch_requests",
            "Lines of batches answered, by endpoint and status (each also counts in mock_openai_requests_total).",
            ["endpoint", "status"],
            registry=registry,
        )
        self.batches = Counter(
            "mock_openai_batches", "Batches ended, by status: completed, failed, expired, cancelled.", ["status"],
            registry=registry,
        )  # fmt: skip
        self._children: dict = {}
        # What requests add is gathered here and added to the metrics by a greenlet twice a second: an
        # update in multiprocess mode takes a lock and writes a mapped file, and a completion makes seven.
        self._counts: dict = {}  # (counter, labels) -> amount
        self._histograms: dict = {}  # (histogram, labels) -> [sum, {bucket index: count}]
        self._open_streams = 0
        self._flusher = None
        self.background = under_gevent()
        self._pid = os.getpid()
        atexit.register(lambda: os.getpid() == self._pid and self.flush())

    def _child(self, metric, labels):
        """``metric.labels(...)``, looked up once per label set (the lookup costs more than the update)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _add(self, counter, labels: tuple, amount: float = 1) -> None:
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0) + amount

    def _observe(self, histogram, labels: tuple, values, times: int = 1) -> None:
        """Each of ``values`` observed ``times`` times."""
        key = (histogram, labels)
        gathered = self._histograms.get(key)
        if gathered is None:
            gathered = self._histograms[key] = [0.0, {}]
        buckets, bounds = gathered[1], histogram._upper_bounds
        if len(values) > MANY_VALUES:
            _count_sorted(buckets, bounds, sorted(values), times)
            gathered[0] += fsum(values) * times
            return
        for value in values:
            i = bisect_left(bounds, value)  # observe() counts a value in the first bucket whose bound >= it
            buckets[i] = buckets.get(i, 0) + times
            gathered[0] += value * times

    def flush(self) -> None:
        """Add what was gathered to the metrics (and so, in multiprocess mode, to this worker's files). Uses
        a histogram's own buckets and sum, as ``observe`` does (prometheus_client is pinned)."""
        self._count_finished()
        counts, self._counts = self._counts, {}
        histograms, self._histograms = self._histograms, {}
        for (counter, labels), amount in counts.items():
            self._child(counter, labels).inc(amount)
        for (histogram, labels), (total, buckets) in histograms.items():
            child = self._child(histogram, labels)
            child._sum.inc(total)
            for i, n in buckets.items():
                child._buckets[i].inc(n)
        self.active_streams.set(self._open_streams)
        for model, count in self._running.items():
            self._child(self.running, (model,)).set(count)
        queued = self.queued()
        for model, count in queued.items():
            self._child(self.waiting, (model,)).set(count)
        if self._adapters:
            self._set_lora(queued)

    def _set_lora(self, queued: dict) -> None:
        running = ",".join(sorted(m for m in self._adapters if self._running.get(m)))
        waiting = ",".join(sorted(m for m in self._adapters if queued.get(m)))
        # As vLLM does: the series of the adapters now gets the time; earlier ones keep theirs, and a reader (the
        # Gateway API inference extension) takes the newest.
        self._child(self.lora, (MAX_LORAS, waiting, running)).set_to_current_time()

    def _flush_forever(self) -> None:
        from gevent import sleep

        while True:
            sleep(FLUSH_INTERVAL_S)
            self.flush()

    # --- observers of the capture --------------------------------------------------------------------------
    def stream_opened(self, exchange) -> None:
        self._open_streams += 1

    def preempted(self, model: str) -> None:
        """A running request gave back its KV cache blocks and waits to be run again."""
        self._running[model] -= 1
        self._add(self.preemptions, (model,))

    def resumed(self, model: str) -> None:
        self._running[model] += 1

    def generation_started(self, model: str, adapter: bool = False) -> None:
        self._running[model] = self._running.get(model, 0) + 1
        if adapter:
            self._adapters.add(model)

    def observe(self, exchange) -> None:
        if self._flusher is None and self.background:
            import gevent

            self._flusher = gevent.spawn(self._flush_forever)
        environ, note = exchange.environ, exchange.note
        path = environ.get("PATH_INFO", "")
        endpoint = path if path.startswith("/v1/") or path in ("/health", "/echo", "/hello", "/tokens") else "other"
        status = exchange.status[:3]
        model = note.get("model") or ""
        latency = exchange.latency
        api = note.get("api", "openai")
        self._add(self.requests, (endpoint, environ.get("REQUEST_METHOD", ""), status, model, api))
        self._observe(self.duration, (endpoint,), (latency,))
        if BATCH in environ:
            self._add(self.batch_requests, (endpoint, status))
        if exchange.stream:
            self._open_streams -= 1
        started = note.get("started")
        if started is not None:
            self._running[model] -= 1
        if not note.get("generated") or status != "200":  # a completion, in any wire format
            return
        labels = (model,)
        self._observe(self.e2e, labels, (latency,))
        times = exchange.writes[0::2] if exchange.writes is not None else ()  # (time, bytes) pairs, flat
        if exchange.first_at is not None:
            self._observe(self.ttft, labels, (exchange.first_at - exchange.t0,))
            if len(times) > 1:
                self._observe(self.itl, labels, [b - a for a, b in zip(times, times[1:], strict=False)])
        if started is None:
            if note.get("prompt_tokens") is not None:
                self._add(self.prompt_tokens, labels, note["prompt_tokens"])
                self._add(self.generation_tokens, labels, note.get("completion_tokens") or 0)
            return
        # vLLM's per-request series: the phases a reply went through, its sizes, and how it ended. A stream's
        # phases are measured (first and last write); a body's, which arrives whole, are the ones planned for it.
        timing, answer, queued_s, max_tokens = started
        count = answer.count
        if exchange.stream and exchange.first_at is not None and len(times) > 1:
            # Measured times are kept to the millisecond (vLLM's phase buckets start at 0.3 s, its per-token ones
            # at 10 ms), so that streams alike are counted together too.
            prefill = round(max(0.0, exchange.first_at - exchange.t0 - queued_s), 3)
            decode = round(times[-1] - exchange.first_at, 3)
            queued_s = round(queued_s, 3)
        else:
            prefill, decode = timing.ttft_s, timing.generation_s(count)
        ended = exchange.ending in ("done", "complete")  # not cut by a fault, a stop or the client
        reason = FINISHED_REASONS.get(answer.choices[0].finish_reason, "stop") if ended else "abort"
        # Counted at the next flush, identical requests (a load test's) together: a tuple here, not a dozen
        # updates of counters and histograms.
        self._finished.append((model, queued_s, prefill, decode, count, note.get("prompt_tokens") or 0,
                               note.get("cached_tokens") or 0, answer.completion_tokens, len(answer.choices),
                               max_tokens, reason))  # fmt: skip

    def _count_finished(self) -> None:
        finished, self._finished = self._finished, []
        if not finished:
            return
        observe, add, phases = self._observe, self._add, self.phases
        for request, times in Counter(finished).items():
            model, queued_s, prefill, decode, count, prompt, cached, generated, n, max_tokens, reason = request
            labels = (model,)
            for phase, value in (("queue", queued_s), ("prefill", prefill), ("decode", decode),
                                 ("inference", prefill + decode)):  # fmt: skip
                observe(phases[phase], labels, (value,), times)
            if count > 1:
                observe(self.tpot, labels, (decode / (count - 1),), times)
            observe(self.request_prompt_tokens, labels, (prompt,), times)
            observe(self.request_generation_tokens, labels, (generated,), times)
            observe(self.n_param, labels, (n,), times)
            if max_tokens:
                observe(self.max_tokens_param, labels, (max_tokens,), times)
            add(self.success, (model, reason), times)
            add(self.prompt_tokens, labels, prompt * times)
            add(self.generation_tokens, labels, generated * times)
            add(self.cache_queries, labels, prompt * times)
            add(self.cache_hits, labels, cached * times)

    def batch_ended(self, status: str) -> None:
        self._add(self.batches, (status,))

    def exposition(self, pins: list[dict] = (), default_model: str = "", kv_usage: dict | None = None):
        """The text a scrape gets, and its content type. ``kv_usage``: each model's share of its KV cache in use
        (read from the shared state by the scrape); gauges pinned by a test (:mod:`app.metric_pins`) show their
        pinned values, for ``default_model`` where no model is named and none has a series yet."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.flush()  # this worker's are current; the others' are at most FLUSH_INTERVAL_S behind
        if self.multiprocess:
            registry = CollectorRegistry()
            _multiprocess_collector()(registry)
        else:
            registry = self.registry
        if pins or kv_usage:
            pinned = CollectorRegistry()
            pinned.register(_Pinned(registry, pins, default_model, kv_usage or {}))
            registry = pinned
        return generate_latest(registry), CONTENT_TYPE_LATEST


@functools.cache
def _multiprocess_collector():
    """prometheus_client's multiprocess collector, passing over a values file that a worker is still making.
    prometheus_client opens a worker's first file of a kind empty and then sizes it: a scrape that read it in
    between failed (a 500, seen right after a start). Its values are all zeros then; a file sized is whole."""
    from prometheus_client.multiprocess import MultiProcessCollector

    class FilesMadeCollector(MultiProcessCollector):
        def collect(self):
            files = [path for path in glob.glob(os.path.join(self._path, "*.db")) if _made(path)]
            return self.merge(files, accumulate=True)

    return FilesMadeCollector


def _made(path: str) -> bool:
    try:
        return os.path.getsize(path) >= 8  # its length field and padding: sized, if nothing written yet
    except FileNotFoundError:  # a dead worker's live gauges, removed since the listing
        return False


class _Pinned:
    """A registry's metrics, with pinned gauges at their pinned values."""

    def __init__(self, registry, pins: list[dict], default_model: str, kv_usage: dict):
        self.registry, self.pins, self.default_model, self.kv_usage = registry, pins, default_model, kv_usage

    def collect(self):
        import time

        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.samples import Sample

        from app.metric_pins import HELP, KV_USAGE

        now = time.time()
        measured = None
        if self.kv_usage:
            measured = GaugeMetricFamily(KV_USAGE, HELP[KV_USAGE], labels=["model_name"])
            for model, usage in self.kv_usage.items():
                measured.add_metric([model], usage)
        by_metric: dict[str, list[dict]] = {}
        for pin in self.pins:
            by_metric.setdefault(pin["metric"], []).append(pin)
        for family in self.registry.collect():
            pins = by_metric.pop(family.name, None)
            if pins:
                family.samples = _pinned_samples(family.samples, family.name, pins, self.default_model, now, Sample)
            yield family
        if measured is not None:
            pins = by_metric.pop(KV_USAGE, None)
            if pins:
                measured.samples = _pinned_samples(measured.samples, KV_USAGE, pins, self.default_model, now, Sample)
            yield measured
        for name, pins in by_metric.items():  # a gauge no worker has set (the KV cache's): only its pins
            family = GaugeMetricFamily(name, HELP.get(name, name), labels=["model_name"])
            family.samples = _pinned_samples([], name, pins, self.default_model, now, Sample)
            yield family


def _pinned_samples(samples, name: str, pins: list[dict], default_model: str, now: float, sample_class) -> list:
    """``samples`` with each pinned model's value replaced, and a sample added for a pinned model without one.
    A pin without a model holds every model's series (the default model's, when there is none)."""
    from app.metric_pins import value_at

    values = {s.labels.get("model_name"): s for s in samples}
    for pin in sorted(pins, key=lambda p: p["model"] is not None):  # a model's own pin over the pin of all
        targets = [pin["model"]] if pin["model"] is not None else (list(values) or [default_model])
        for model in targets:
            values[model] = sample_class(name, {"model_name": model}, value_at(pin, now), None, None)
    return list(values.values())


def _count_sorted(buckets: dict, bounds: list, ordered: list, times: int) -> None:
    """Add the values of ``ordered`` (sorted) to ``buckets`` as ``observe`` would, each ``times`` times: a value
    in the first bucket whose bound is at least it."""
    below = 0
    for i, bound in enumerate(bounds):
        upto = bisect_right(ordered, bound, below)
        if upto > below:
            buckets[i] = buckets.get(i, 0) + (upto - below) * times
            below = upto
            if below == len(ordered):
                return
