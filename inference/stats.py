"""Counters the runner keeps about the answers this process generated.

Plain Python, no Prometheus: a GPU worker ships a snapshot in its heartbeat
(inference/liveness.py) and the web process exports it (ops/metrics.py), so one scrape
of the web tier sees every worker and workers need no open port. In the embedded mode
the web process reads this object directly.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def snapshot(self) -> dict:
        return {"buckets": list(self.buckets), "counts": list(self.counts), "sum": self.sum}


class EngineStats:
    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self.tokens_generated = 0
        self.answers: dict[str, int] = {}  # by outcome: done, aborted, failed
        self.engine_errors: dict[str, int] = {}  # by error code
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(
        self,
        *,
        outcome: str,
        tokens: int = 0,
        first_token_seconds: float | None = None,
        per_token_seconds: float | None = None,
        error_code: str | None = None,
    ) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self.answers[outcome] = self.answers.get(outcome, 0) + 1
            self.tokens_generated += tokens
            if first_token_seconds is not None:
                self.ttft.observe(first_token_seconds)
            if per_token_seconds is not None:
                self.tpot.observe(per_token_seconds)
            if error_code:
                self.engine_errors[error_code] = self.engine_errors.get(error_code, 0) + 1

    def in_flight(self) -> int:
        return self._in_flight

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "in_flight": self._in_flight,
                "tokens_generated": self.tokens_generated,
                "answers": dict(self.answers),
                "engine_errors": dict(self.engine_errors),
                "ttft": self.ttft.snapshot(),
                "tpot": self.tpot.snapshot(),
            }


engine_stats = EngineStats()
