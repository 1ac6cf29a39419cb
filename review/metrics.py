"""The figures on the operations dashboard, computed from the database on request.

Requests are questions (user messages, from the chat page and the API alike); users are
the distinct owners who asked; errors are answers that ended failed; flags are review
items by source; latency is finished_at - started_at of answers that completed.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections import Counter

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connections
from django.db.models import Aggregate, Count, DurationField, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from assistant.models import Message
from audit.models import AuditEvent

from .models import AnswerFeedback, ReviewItem
from .selectors import SAFETY_ACTION_PREFIXES

logger = logging.getLogger(__name__)

PERCENTILES = (0.50, 0.90, 0.99)
# PostgreSQL computes latency percentiles itself, over every answer. Elsewhere (SQLite:
# the embedded single-machine default) they come from at most this many of the newest
# answers of each day, so the page stays fast and no day is crowded out by another.
LATENCY_SAMPLE_LIMIT = 20_000


class LatencyPercentiles(Aggregate):
    """PostgreSQL's nearest-rank percentiles (the same definition as `percentile`) of an
    answer's finished_at - started_at, one interval per share in PERCENTILES."""

    function = "percentile_disc"
    template = "%(function)s(ARRAY[%(shares)s]) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self):
        super().__init__(
            F("finished_at") - F("started_at"),
            output_field=ArrayField(DurationField()),
        )

    def as_sql(self, compiler, connection, **extra):
        shares = ", ".join(str(share) for share in PERCENTILES)
        return super().as_sql(compiler, connection, shares=shares, **extra)


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(share * len(sorted_values))))
    return sorted_values[rank - 1]


def dashboard_data(*, days: int = 14, now: datetime.datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now)
    first_day = today - datetime.timedelta(days=days - 1)
    since = timezone.make_aware(datetime.datetime.combine(first_day, datetime.time.min))
    day_list = [first_day + datetime.timedelta(days=i) for i in range(days)]
    last_day = now - datetime.timedelta(hours=24)

    questions = Message.objects.filter(role=Message.Role.USER)
    answers = Message.objects.filter(role=Message.Role.ASSISTANT)

    per_day = _by_day(
        questions.filter(created_at__gte=since),
        requests=Count("id"),
        users=Count("conversation__owner", distinct=True),
    )
    errors = _by_day(
        answers.filter(created_at__gte=since, status=Message.Status.FAILED), errors=Count("id")
    )
    flags = _by_day(
        ReviewItem.objects.filter(created_at__gte=since),
        moderation=Count("id", filter=Q(source=ReviewItem.Source.MODERATION)),
        report=Count("id", filter=Q(source=ReviewItem.Source.REPORT)),
        sample=Count("id", filter=Q(source=ReviewItem.Source.SAMPLE)),
    )
    feedback = _by_day(
        AnswerFeedback.objects.filter(created_at__gte=since),
        up=Count("id", filter=Q(rating=AnswerFeedback.Rating.UP)),
        down=Count("id", filter=Q(rating=AnswerFeedback.Rating.DOWN)),
        reported=Count("id", filter=Q(reported_at__isnull=False)),
    )
    latencies = _latency_percentiles_by_day(answers.filter(finished_at__gte=since), day_list)

    series = []
    for day in day_list:
        series.append(
            {
                "day": day.isoformat(),
                "requests": per_day.get(day, {}).get("requests", 0),
                "users": per_day.get(day, {}).get("users", 0),
                "errors": errors.get(day, {}).get("errors", 0),
                "flags_moderation": flags.get(day, {}).get("moderation", 0),
                "flags_report": flags.get(day, {}).get("report", 0),
                "flags_sample": flags.get(day, {}).get("sample", 0),
                "feedback_up": feedback.get(day, {}).get("up", 0),
                "feedback_down": feedback.get(day, {}).get("down", 0),
                "feedback_reported": feedback.get(day, {}).get("reported", 0),
                **_latency_fields(latencies.get(day), suffix=""),
            }
        )

    recent_latency = _latency_percentiles(answers.filter(finished_at__gte=last_day))
    requests_24h = questions.filter(created_at__gte=last_day).count()
    errors_24h = answers.filter(created_at__gte=last_day, status=Message.Status.FAILED).count()
    answers_24h = answers.filter(created_at__gte=last_day).count()
    return {
        "generated_at": now.isoformat(),
        "days": days,
        "series": series,
        "totals": {
            "requests_24h": requests_24h,
            "users_24h": questions.filter(created_at__gte=last_day)
            .values("conversation__owner")
            .distinct()
            .count(),
            "errors_24h": errors_24h,
            "error_rate_24h": round(errors_24h / answers_24h, 4) if answers_24h else 0.0,
            "flags_24h": ReviewItem.objects.filter(created_at__gte=last_day).count(),
            "open_review_items": ReviewItem.objects.filter(status=ReviewItem.Status.OPEN).count(),
            "feedback_up_24h": AnswerFeedback.objects.filter(
                updated_at__gte=last_day, rating=AnswerFeedback.Rating.UP
            ).count(),
            "feedback_down_24h": AnswerFeedback.objects.filter(
                updated_at__gte=last_day, rating=AnswerFeedback.Rating.DOWN
            ).count(),
            **_latency_fields(recent_latency, suffix="_24h"),
        },
        "top_moderation_categories": top_moderation_categories(since=since),
        "queue_by_source": dict(
            ReviewItem.objects.filter(status=ReviewItem.Status.OPEN)
            .values_list("source")
            .annotate(n=Count("id"))
            .values_list("source", "n")
        ),
        "engine": engine_health(),
        "inference_queue_length": inference_queue_length(),
    }


def _by_day(queryset, **aggregates) -> dict[datetime.date, dict]:
    rows = (
        queryset.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**aggregates)
        .order_by("day")
    )
    return {row["day"]: row for row in rows}


def _latency_fields(values: list[float | None] | None, *, suffix: str) -> dict:
    values = values or [None] * len(PERCENTILES)
    return {
        f"latency_p{round(share * 100)}_ms{suffix}": value
        for share, value in zip(PERCENTILES, values, strict=True)
    }


def _percentiles_in_database(queryset) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def _finished(queryset):
    return queryset.filter(status=Message.Status.DONE, started_at__isnull=False)


def _as_ms(values) -> list[float | None]:
    return [None if v is None else round(v.total_seconds() * 1000, 1) for v in values]


def _latency_percentiles(queryset) -> list[float | None] | None:
    """Latency percentiles (ms) of the answers in `queryset`, None where there are none."""
    queryset = _finished(queryset)
    if _percentiles_in_database(queryset):
        values = queryset.aggregate(p=LatencyPercentiles())["p"]
        return _as_ms(values) if values else None
    rows = queryset.order_by("-finished_at").values_list("started_at", "finished_at")
    ms = sorted(
        round((end - start).total_seconds() * 1000, 1) for start, end in rows[:LATENCY_SAMPLE_LIMIT]
    )
    return [percentile(ms, share) for share in PERCENTILES] if ms else None


def _latency_percentiles_by_day(queryset, days) -> dict[datetime.date, list[float | None]]:
    if _percentiles_in_database(queryset):
        rows = (
            _finished(queryset)
            .annotate(day=TruncDate("finished_at"))
            .values("day")
            .annotate(p=LatencyPercentiles())
            .values_list("day", "p")
        )
        return {day: _as_ms(values) for day, values in rows}
    # One sample per day (_latency_percentiles keeps to the finished answers itself).
    out = {}
    for day in days:
        values = _latency_percentiles(queryset.filter(finished_at__date=day))
        if values:
            out[day] = values
    return out


def top_moderation_categories(*, since, limit: int = 8) -> list[dict]:
    """Counted from the safety decisions in the audit trail (`moderation.block`,
    `moderation.flag`, ...: details `categories` or `category`). Blocked questions never
    reach the queue, so the queue's reasons alone would undercount."""
    counts: Counter[str] = Counter()
    prefix = Q()
    for start in SAFETY_ACTION_PREFIXES:
        prefix |= Q(action__startswith=start)
    events = AuditEvent.objects.filter(prefix, created_at__gte=since, reduced_at__isnull=True)
    for details in events.values_list("details", flat=True)[:LATENCY_SAMPLE_LIMIT]:
        for category in _categories(details):
            counts[category] += 1
    return [{"category": c, "count": n} for c, n in counts.most_common(limit)]


def _categories(details) -> list[str]:
    if not isinstance(details, dict):
        return []
    value = details.get("categories", details.get("category"))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v]
    if isinstance(value, dict):  # {"category": score-or-flag}
        return [str(k) for k, v in value.items() if v]
    return []


def engine_health() -> dict:
    from inference import client

    try:
        return client.health()
    except Exception as exc:  # the dashboard must render when the engine side is broken
        logger.warning("engine health check failed", exc_info=True)
        return {"ok": False, "error": f"health check failed ({type(exc).__name__})"}


def inference_queue_length() -> int | None:
    """Tasks waiting on the `inference` queue (Redis LLEN of the list Celery uses), or
    None when answers are not queued in Redis or Redis does not answer quickly."""
    if settings.INFERENCE_MODE != "celery":
        return None
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        return None
    try:
        import redis

        connection = redis.Redis.from_url(broker, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return int(connection.llen("inference"))
        finally:
            connection.close()
    except Exception:
        logger.warning("could not read the inference queue length", exc_info=True)
        return None
