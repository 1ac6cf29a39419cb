"""Prometheus metrics of the web tier, and the engine figures it exports for the workers.

Two kinds of figures:

- What the web process itself sees (requests, websockets, cache lookups, admission and
  safety decisions, watchdog actions): ordinary prometheus_client metrics. With several
  daphne processes behind one proxy, set PROMETHEUS_MULTIPROC_DIR (an empty folder per
  machine, wiped at start) and every process writes its figures there; any process then
  answers a scrape for all of them (docs/deploy.md, "Metrics").
- What the engines do (tokens, time to first token, time per output token, errors, load,
  GPU memory and utilisation): workers put them in their Redis heartbeat
  (inference/liveness.py) and `EngineCollector` turns the heartbeats into metrics at
  scrape time, labelled by worker. So workers open no port and need no Prometheus.

Other apps record through the small functions at the bottom; e.g. the safety pipeline
calls `safety_decision(kind="prompt", verdict="blocked")`.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "glimpse_http_requests_total",
    "HTTP responses by route pattern, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "glimpse_http_request_duration_seconds",
    "Time to produce an HTTP response, by route pattern and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKETS_OPEN = Gauge(
    "glimpse_websocket_connections",
    "Chat websockets open now.",
    multiprocess_mode="livesum",
)
WEBSOCKETS_OPENED = Counter(
    "glimpse_websocket_connections_opened_total", "Chat websockets accepted."
)
CACHE_LOOKUPS = Counter(
    "glimpse_answer_cache_lookups_total", "Answer cache lookups by result (hit, miss).", ["result"]
)
SAFETY_DECISIONS = Counter(
    "glimpse_safety_decisions_total",
    "Safety pipeline decisions by kind (prompt, image, output, ...) and verdict.",
    ["kind", "verdict"],
)
ADMISSIONS = Counter(
    "glimpse_admission_decisions_total",
    "New answers admitted, sent to the fallback, or refused (overloaded, unreachable).",
    ["decision"],
)
WATCHDOG_FAILED = Counter(
    "glimpse_watchdog_failed_answers_total",
    "Answers the watchdog ended as failed, by reason (worker_lost, pending_timeout, too_long).",
    ["reason"],
)


# --- recording, for the rest of the platform -------------------------------------------


def safety_decision(kind: str, verdict: str) -> None:
    """Count one safety decision, e.g. ("prompt", "allowed") or ("output", "redacted")."""
    SAFETY_DECISIONS.labels(kind=str(kind)[:40], verdict=str(verdict)[:40]).inc()


def cache_lookup(hit: bool) -> None:
    CACHE_LOOKUPS.labels(result="hit" if hit else "miss").inc()


def admission(decision: str) -> None:
    ADMISSIONS.labels(decision=decision).inc()


def watchdog_failed(reason: str) -> None:
    WATCHDOG_FAILED.labels(reason=reason).inc()


def websocket_opened() -> None:
    WEBSOCKETS_OPENED.inc()
    WEBSOCKETS_OPEN.inc()


def websocket_closed() -> None:
    WEBSOCKETS_OPEN.dec()


def http_response(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_LATENCY.labels(route=route, method=method).observe(seconds)


# --- the engines, from their heartbeats ---------------------------------------------------


def _histogram(name, doc, labels, values, snapshots):
    family = HistogramMetricFamily(name, doc, labels=labels)
    for label_values, snap in zip(values, snapshots, strict=True):
        cumulative = 0
        buckets = []
        for bound, count in zip([*snap["buckets"], float("inf")], snap["counts"], strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        family.add_metric(label_values, buckets, snap["sum"])
    return family


class EngineCollector:
    """Engine metrics at scrape time: every worker heartbeat (celery) or the in-process
    engine (embedded). Read from Redis, so every web process reports the same figures."""

    def describe(self):
        return []  # figures vary with the workers alive: skip the registration-time call

    def collect(self):
        beats = _engine_beats()
        now = time.time()
        up = GaugeMetricFamily(
            "glimpse_engine_up",
            "1 when the engine answered its last heartbeat healthy.",
            labels=["node", "engine", "model"],
        )
        age = GaugeMetricFamily(
            "glimpse_engine_heartbeat_age_seconds",
            "Seconds since the last heartbeat.",
            labels=["node"],
        )
        load = GaugeMetricFamily("glimpse_engine_load", "Answers in flight.", labels=["node"])
        capacity = GaugeMetricFamily(
            "glimpse_engine_capacity", "Answers the engine runs at once.", labels=["node"]
        )
        gpu_used = GaugeMetricFamily(
            "glimpse_gpu_memory_used_bytes", "GPU memory in use on the worker.", labels=["node"]
        )
        gpu_total = GaugeMetricFamily(
            "glimpse_gpu_memory_total_bytes", "GPU memory of the worker's device.", labels=["node"]
        )
        gpu_util = GaugeMetricFamily(
            "glimpse_gpu_utilization_ratio", "GPU utilisation, 0 to 1 (NVML).", labels=["node"]
        )
        tokens = CounterMetricFamily(
            "glimpse_tokens_generated", "Output tokens generated.", labels=["node"]
        )
        answers = CounterMetricFamily(
            "glimpse_answers", "Answers ended, by outcome.", labels=["node", "outcome"]
        )
        errors = CounterMetricFamily(
            "glimpse_engine_errors",
            "Answers that ended in an engine error, by code.",
            labels=["node", "code"],
        )
        nodes = []
        ttft, tpot = [], []
        for beat in beats:
            node = str(beat.get("node", "?"))
            nodes.append([node])
            up.add_metric(
                [node, str(beat.get("engine", "")), str(beat.get("model", ""))],
                1.0 if beat.get("ok") else 0.0,
            )
            age.add_metric([node], max(0.0, now - float(beat.get("ts", now))))
            load.add_metric([node], float(beat.get("load") or 0))
            if beat.get("capacity"):
                capacity.add_metric([node], float(beat["capacity"]))
            gpu = beat.get("gpu") or {}
            if "memory_used_bytes" in gpu:
                gpu_used.add_metric([node], float(gpu["memory_used_bytes"]))
                gpu_total.add_metric([node], float(gpu["memory_total_bytes"]))
            if gpu.get("utilization") is not None:
                gpu_util.add_metric([node], float(gpu["utilization"]) / 100.0)
            stats = beat.get("stats") or {}
            tokens.add_metric([node], float(stats.get("tokens_generated", 0)))
            for outcome, count in (stats.get("answers") or {}).items():
                answers.add_metric([node, outcome], float(count))
            for code, count in (stats.get("engine_errors") or {}).items():
                errors.add_metric([node, code], float(count))
            ttft.append(stats.get("ttft"))
            tpot.append(stats.get("tpot"))
        yield from (up, age, load, capacity, gpu_used, gpu_total, gpu_util, tokens, answers, errors)
        with_ttft = [(n, s) for n, s in zip(nodes, ttft, strict=True) if s]
        with_tpot = [(n, s) for n, s in zip(nodes, tpot, strict=True) if s]
        yield _histogram(
            "glimpse_time_to_first_token_seconds",
            "From the engine being asked to its first token.",
            ["node"],
            [n for n, _ in with_ttft],
            [s for _, s in with_ttft],
        )
        yield _histogram(
            "glimpse_time_per_output_token_seconds",
            "Mean time between output tokens of one answer.",
            ["node"],
            [n for n, _ in with_tpot],
            [s for _, s in with_tpot],
        )
        depth = GaugeMetricFamily("glimpse_inference_queue_depth", "Answers waiting for an engine.")
        try:
            from inference.client import queue_depth

            depth.add_metric([], float(queue_depth()))
            yield depth
        except Exception:
            logger.warning("could not read the inference queue depth", exc_info=True)


def _engine_beats() -> list[dict]:
    from django.conf import settings

    if settings.INFERENCE_MODE == "celery":
        from inference.liveness import heartbeats

        try:
            return heartbeats()
        except Exception:
            logger.warning("could not read engine heartbeats", exc_info=True)
            return []
    # Embedded: the engine is in this process; describe it like a heartbeat would.
    import socket

    from inference.stats import engine_stats
    from inference.worker import loaded_engine

    engine = loaded_engine()
    if engine is None:
        return []
    health = engine.health()
    return [
        {
            "node": f"embedded@{socket.gethostname()}:{os.getpid()}",
            "engine": engine.name,
            "model": health.get("model") or settings.MODEL_ID,
            "ok": bool(health.get("ok", True)),
            "load": engine_stats.in_flight(),
            "capacity": settings.EMBEDDED_CONCURRENCY,
            "ts": time.time(),
            "gpu": {},
            "stats": engine_stats.snapshot(),
        }
    ]


def render() -> tuple[bytes, str]:
    """The exposition text for a scrape, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    engines = CollectorRegistry()
    engines.register(EngineCollector())
    return body + generate_latest(engines), CONTENT_TYPE_LATEST
