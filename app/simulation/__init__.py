"""What happens to a request, decided once before anything is sent: the :class:`Fate`.

Views call :meth:`Simulation.decide` and then only act on the Fate. In order, it settles:

1. the settings the request runs under (:mod:`.scenarios`: start-up, scenario, runtime layer);
2. a fault: the ``X-Mock-Error`` header, else a queued one-shot fault, else one drawn from the error mix
   (:mod:`.faults`); an error is raised here, as the real API would answer it;
3. the rate limits (:mod:`.limits`), which may refuse the request with the real 429;
4. the reply text, by mode (:mod:`app.replies`), and how much of the prompt the prompt cache serves
   (:mod:`.prompt_cache`);
5. a running sequence of the model, waiting in the queue if need be, and how load stretches the timing
   (:mod:`.latency`);
6. the timing and the mid-stream faults the writer acts on.

With every feature off this costs two reads of shared memory and a scan of the request's header names.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from flask import g, request
from gevent import sleep

from app.apikeys import request_key
from app.config import ERROR_KINDS, Settings
from app.context import this_request
from app.errors import OpenAIError
from app.headers import request_id
from app.journal import BATCH, NOTE, annotate
from app.replies import EMPTY, Answer, Ask, Choice, Replies, filtered
from app.replies.scripted import RuleError, RulesError
from app.simulation.faults import TEST_ID, StreamFault, draw, error_for, read_controls, stream_faults_of
from app.simulation.kv_cache import KvSequence
from app.simulation.latency import QueueFull, SequenceGate, Timing, plan
from app.simulation.limits import RateLimits, static_headers
from app.simulation.prefill import prefill_s
from app.simulation.prompt_cache import PromptCache
from app.simulation.scenarios import Layers

NOTHING = Answer([Choice(EMPTY)])  # what an embeddings request generates: no tokens, only the time to the first
# A batch's line (environ[BATCH]) is answered at once: the batch keeps its own clock, and neither the per-minute
# limits nor the running sequences of live traffic hold it (its faults by rate still apply).
INSTANT = Timing(0.0, 0.0, None)


@dataclass(slots=True)
class Fate:
    settings: Settings  # what this request runs under
    answer: Answer
    timing: Timing
    stream_faults: list[StreamFault] = field(default_factory=list)
    trickle_bytes_per_s: int = 0
    rate_limit_headers: list = field(default_factory=list)
    release: object = None  # called once the reply is over: gives back the running sequence
    cached_tokens: int = 0  # of the prompt, served by the prompt cache
    cache_written: dict | None = None  # explicit breakpoints: {retention_s: tokens written to the cache}
    kv: KvSequence | None = None  # its blocks of the model's KV cache ([latency] kv_cache_blocks), which grow

    @property
    def non_stream_wait_s(self) -> float:
        """A body is sent when its stream would have ended (``[latency] non_stream = "total"``)."""
        if self.settings.latency["non_stream"] == "ttft":
            return self.timing.ttft_s
        return self.timing.ttft_s + self.timing.generation_s(self.answer.count)


class Simulation:
    """A worker's simulation: built once, shared by its requests."""

    def __init__(self, settings: Settings, shared, replies: Replies):
        self.shared = shared
        self.layers = Layers(settings, shared)
        self.replies = replies
        self.gate = SequenceGate(shared)
        self.prompt_cache = PromptCache(shared)
        self.fallback_mode = bool(settings.replay["dir"] and settings.replay["fallback"])
        self.on_start = None  # told of each reply that starts generating (the metrics' running requests)
        self.on_preempt = None  # and of each preemption, and of its resumption
        self.on_resume = None
        self.kv_waiting: dict[str, int] = {}  # this worker's requests waiting for KV cache blocks, by model
        # and its sequences holding blocks, oldest first, and its running ones waiting for the blocks of one they
        # preempted (app.simulation.kv_cache)
        self.kv_running: dict[str, list] = {}
        self.kv_stalled: dict[str, int] = {}

    def settings(self) -> Settings:
        return self.layers.current()

    def decide(self, parsed, endpoint: str, model: str, max_output_tokens: int, prompt_tokens: int) -> Fate:
        """The fate of a parsed completion request (:class:`app.schemas.CompletionRequest`) for ``model``."""
        base = self.layers.base
        environ = this_request().environ
        controls = read_controls(environ) if base.faults["request_headers"] else None
        version, pending = self.shared.changes()  # one read of shared state for both
        settings = self.layers.current(controls.scenario if controls else None, version)
        responses = settings.responses
        if parsed.stream and not responses["streaming_enabled"]:
            raise OpenAIError(
                400,
                "Streaming is disabled on this server ([responses] streaming_enabled = false).",
                param="stream",
                code="unsupported_value",
            )
        faults = settings.faults
        ask = Ask(
            model=model,
            body=parsed.body,
            endpoint=endpoint,
            max_tokens=parsed.max_tokens,
            default_count=min(responses["max_tokens"], max_output_tokens),
            temperature=parsed.temperature if parsed.temperature is not None else responses["temperature"],
            fills_max_tokens=parsed.fills_max_tokens,
            reasoning_budget=parsed.reasoning_budget,
        )

        kind, after = (controls.error if controls else None), None
        if kind is None and pending:
            one_shot = self.shared.take_fault(model, environ.get(TEST_ID))
            if one_shot is not None:
                kind, after = one_shot["error"], one_shot.get("after")
        if kind is None and faults["error_rate_percent"]:
            kind = draw(faults)
        if kind is not None or controls is not None or responses["scenario"]:
            scenario = (controls.scenario if controls else None) or responses["scenario"] or None
            stream_kind = controls.stream_faults[0].kind if controls and controls.stream_faults else None
            annotate(fault=kind or stream_kind, scenario=scenario)
        if kind in ERROR_KINDS:
            error = error_for(kind, model, request_id(), faults, self._limits(settings, model))
            if kind == "timeout":
                sleep(faults["timeout_ms"] / 1000)
            raise error

        mode = (controls.mode if controls else None) or self.replay_fallback() or responses["mode"]
        try:
            answer = NOTHING if endpoint == "embeddings" else self.replies.compose(mode, ask, responses["rules_path"])
        except RuleError as exc:
            raise self._rule_error(exc.spec, model, settings) from None
        except RulesError as exc:
            raise OpenAIError(
                500, f"mock-openai scripted mode: {exc}", "server_error", code="invalid_rules_file"
            ) from None
        stream_faults = stream_faults_of(controls, kind, after, faults) if (controls or kind) else []
        if stream_faults and any(f.kind == "filtered" for f in stream_faults):
            # The content filter is a fate of the answer itself: it ends early, finishing "content_filter".
            answer = filtered(answer, next(f.after for f in stream_faults if f.kind == "filtered"))
            stream_faults = [f for f in stream_faults if f.kind != "filtered"]

        cached, written = 0, None
        if parsed.cache_breakpoints is not None:
            cached, written = self.prompt_cache.explicit(settings.prompt_cache, parsed.cache_breakpoints, model)
        elif endpoint == "chat" and prompt_tokens >= settings.prompt_cache["min_tokens"]:  # else nothing to cache
            cached = self.prompt_cache.cached_tokens(settings.prompt_cache, parsed.body, model, prompt_tokens)
        # What the journal and the metrics record of every request, whichever view or format it came through.
        note = environ.get(NOTE)
        if note is not None:
            note.update(
                model=model,
                prompt_tokens=prompt_tokens,
                cached_tokens=cached,
                completion_tokens=answer.completion_tokens,
                generated=endpoint != "embeddings",
            )
        reserved = prompt_tokens + (ask.max_tokens if ask.max_tokens is not None else answer.completion_tokens)
        if BATCH in environ:
            return Fate(settings, answer, INSTANT, stream_faults, 0, static_headers(reserved), None, cached, written)
        per_model = self.layers.per_model(settings, model)
        if per_model.rate_limited:
            headers = self._limits(settings, model).admit(reserved)
        else:
            headers = static_headers(reserved)

        if per_model.fixed_timing is not None and controls is None:  # no jitter, prefill or load: constant
            self._started(note, model, per_model.fixed_timing, answer, 0.0, ask.max_tokens)
            return Fate(
                settings,
                answer,
                per_model.fixed_timing,
                stream_faults,
                faults["trickle_bytes_per_s"],
                headers,
                None,
                cached,
                written,
            )
        latency = per_model.latency
        load_factor, release, queued_s, running = 1.0, None, 0.0, 0
        limit = latency["max_concurrent_sequences"]
        if limit:
            asked = time.monotonic()
            try:
                running = self.gate.enter(model, limit, latency["max_queued_sequences"])
            except QueueFull:
                limits = self._limits(settings, model)
                raise error_for(latency["queue_full_error"], model, request_id(), faults, limits) from None
            queued_s = time.monotonic() - asked
            load_factor += latency["load_slowdown"] * min(1.0, running / limit)
            release = _Release(self.gate, model)
        kv = None
        if latency["kv_cache_blocks"]:
            kv = KvSequence(self, model, latency, prompt_tokens - cached)  # a cached prefix's blocks are shared
            try:
                queued_s += kv.admit()
            except BaseException:
                if release is not None:
                    release()
                raise
            release = _Release(self.gate if limit else None, model, kv)
        prefill = None
        if latency["max_num_batched_tokens"] and (controls is None or controls.ttft_ms is None):
            # prefill in steps of the token budget, queued per model (an exact TTFT asked for has none)
            prefill = prefill_s(self.shared, model, prompt_tokens - cached, latency, running)

        timing = plan(
            latency,
            prompt_tokens - cached,  # a cached prefix is not prefilled again
            answer.count,
            load_factor,
            random,
            controls.ttft_ms if controls else None,
            controls.inter_token_latency_ms if controls else None,
            prefill,
        )
        trickle = (controls.trickle_bytes_per_s if controls else None) or faults["trickle_bytes_per_s"]
        self._started(note, model, timing, answer, queued_s, ask.max_tokens)
        return Fate(settings, answer, timing, stream_faults, trickle, headers, release, cached, written, kv)

    def _started(self, note, model: str, timing: Timing, answer: Answer, queued_s: float, max_tokens) -> None:
        """The reply has its sequence and starts: the metrics count it running until it ends, and read how
        long it waited and was planned to take."""
        if self.on_start is None:
            return
        if note is not None:
            note["started"] = (timing, answer, queued_s, max_tokens)
            self.on_start(model, note.get("adapter", False))

    def waiting(self) -> dict[str, int]:
        """This worker's requests waiting, by model: for a sequence, or for KV cache blocks."""
        waiting = self.gate.queued()
        for model, count in self.kv_waiting.items():
            waiting[model] = waiting.get(model, 0) + count
        return waiting

    def preempted(self, model: str) -> None:
        if self.on_preempt is not None:
            self.on_preempt(model)

    def resumed(self, model: str) -> None:
        if self.on_resume is not None:
            self.on_resume(model)

    def _limits(self, settings: Settings, model: str) -> RateLimits:
        """The rate limits of this request's key and model (made only when a limit or a 429 needs them)."""
        key = request_key(request.environ) or "anonymous"
        return RateLimits(self.shared, key, model, settings.for_model("rate_limits", model))

    def replay_fallback(self) -> str | None:
        """The mode replay asked for, for a request it has no fixture of (see app.recording)."""
        return self.fallback_mode and g.get("reply_mode")

    def _rule_error(self, spec, model, settings) -> OpenAIError:
        if isinstance(spec, str):
            return error_for(spec, model, request_id(), settings.faults, self._limits(settings, model))
        return OpenAIError(
            spec["status"],
            spec["message"],
            spec.get("type", "invalid_request_error"),
            spec.get("param"),
            spec.get("code"),
        )


class _Release:
    """Gives a running sequence (and its KV cache blocks) back, once, however the reply ends."""

    __slots__ = ("gate", "model", "kv")

    def __init__(self, gate, model, kv=None):
        self.gate, self.model, self.kv = gate, model, kv

    def __call__(self):
        gate, self.gate = self.gate, None
        kv, self.kv = self.kv, None
        if kv is not None:
            kv.release()
        if gate is not None and (kv is None or kv.sequence):  # a preempted one may be waiting for a sequence
            gate.leave(self.model)
