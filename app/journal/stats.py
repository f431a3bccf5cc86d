"""``GET /_mock/stats`` (and the dashboard): counts, rates, percentiles and tokens over the journal."""

from __future__ import annotations

import math
from collections import Counter
from time import time

RATE_WINDOW_S = 10  # "requests per second now" is the rate over the last ten seconds
TIMELINE_S = 60  # the dashboard's chart: requests in each of the last sixty seconds

_COLUMNS = ("time", "method", "path", "status", "model", "latency_ms", "ttft_ms", "stream", "prompt_tokens",
            "completion_tokens")  # fmt: skip


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least ``p`` percent of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def stats(store, since: float | None = None) -> dict:
    rows = store.columns(_COLUMNS, since)
    now = time()
    by_status, by_method, by_path, by_model = Counter(), Counter(), Counter(), Counter()
    latencies, ttfts, timeline = [], [], [0] * TIMELINE_S
    prompt = completion = successes = recent = streams = 0
    for at, method, path, status, model, latency_ms, ttft_ms, stream, prompt_tokens, completion_tokens in rows:
        by_status[str(status)] += 1
        by_method[method] += 1
        by_path[path] += 1
        if model is not None:
            by_model[model] += 1
        if status < 400:
            successes += 1
        latencies.append(latency_ms)
        if stream:
            streams += 1
            if ttft_ms is not None:
                ttfts.append(ttft_ms)
        prompt += prompt_tokens or 0
        completion += completion_tokens or 0
        age = now - at
        if age <= RATE_WINDOW_S:
            recent += 1
        if 0 <= age < TIMELINE_S:
            timeline[TIMELINE_S - 1 - int(age)] += 1
    latencies.sort()
    ttfts.sort()
    total = len(rows)
    return {
        "object": "mock.stats",
        "total_requests": total,
        "success_rate": round(successes / total, 4) if total else None,
        "requests_per_second": round(recent / RATE_WINDOW_S, 2),
        "active_streams": store.open_streams(),
        "streams": streams,
        "by_status": dict(sorted(by_status.items())),
        "by_method": dict(by_method.most_common()),
        "by_path": dict(by_path.most_common()),
        "by_model": dict(by_model.most_common()),
        "latency_ms": {f"p{p}": percentile(latencies, p) for p in (50, 95, 99)},
        "ttft_ms": {f"p{p}": percentile(ttfts, p) for p in (50, 95)},
        "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
        "timeline": {"seconds": TIMELINE_S, "requests": timeline},
        "since": rows[0][0] if rows else None,
    }
