"""Tests that run gevent code: each in a thread of its own, and so on a gevent hub of its own (the main thread's hub
may hold what earlier tests in this process left behind)."""

from __future__ import annotations

import functools
import threading


def own_hub(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        failure = []

        def body():
            try:
                test(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread)
                failure.append(exc)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "the test did not finish"
        if failure:
            raise failure[0]

    return run
