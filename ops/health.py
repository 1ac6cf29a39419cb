"""Readiness checks shared by /readyz and `manage.py check_health`.

Ready means this process can take a question and see it answered: the database answers,
Redis answers (when configured), and at least one engine is loaded and healthy: the
in-process one (embedded) or a worker whose heartbeat is recent (celery).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True}
    except Exception as exc:
        # A failed connection stays broken in this thread; drop it so the next try
        # reconnects.
        connection.close_if_unusable_or_obsolete()
        return {"ok": False, "error": f"database unreachable ({type(exc).__name__})"}


def check_redis() -> dict | None:
    if not settings.REDIS_URL:
        return None
    from inference.liveness import redis_client

    try:
        redis_client().ping()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"redis unreachable ({type(exc).__name__})"}


def check_engine() -> dict:
    if settings.INFERENCE_MODE != "celery":
        from inference.embedded import host

        health = host().health()
        ok = bool(health.get("ok"))
        detail = {"ok": ok, "mode": "embedded", "engine": health.get("engine")}
        if not ok:
            detail["error"] = health.get("error") or "the engine is not healthy"
        return detail
    from inference.liveness import heartbeats

    try:
        beats = heartbeats()
    except Exception as exc:
        return {
            "ok": False,
            "mode": "celery",
            "error": f"heartbeats unreadable ({type(exc).__name__})",
        }
    now = time.time()
    fresh = [
        b
        for b in beats
        if b.get("ok") and now - float(b.get("ts", 0)) <= settings.HEARTBEAT_MAX_AGE
    ]
    detail = {
        "ok": bool(fresh),
        "mode": "celery",
        "workers": len(fresh),
        "engines": sorted({str(b.get("engine")) for b in fresh}),
    }
    if not fresh:
        detail["error"] = "no engine worker sent a heartbeat recently"
    return detail


def readiness() -> dict:
    checks = {"database": check_database()}
    redis = check_redis()
    if redis is not None:
        checks["redis"] = redis
    checks["engine"] = check_engine()
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
