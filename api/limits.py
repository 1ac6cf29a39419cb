"""Rate limits, daily quotas and the concurrency cap for API keys and their users.

- Per-minute request rates (every authenticated API call, per key and per user): fixed
  one-minute windows counted in Redis when REDIS_URL is set, else in the database
  (`RateWindow`), so the embedded default needs nothing extra and several processes
  still share one count.
- Daily quotas (requests and tokens, per key and per user, UTC days): counted from the
  ledger of API answers (`ApiExchange`), which is exact, survives restarts and cannot be
  reset by deleting conversations. Tokens are known only once an answer is final, so a
  request that starts under the quota may end over it; the next one is refused.
- Concurrent generations per key: answers of the key still pending or streaming, counted
  in the same query as the quotas, under a lock on the key row in the transaction that
  starts the answer (api.services.api_ask).

Every refusal is a 429 with Retry-After.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiKey
from assistant.models import Message

from .errors import ApiError
from .models import ApiExchange, RateWindow

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class KeyLimits:
    key_per_minute: int
    user_per_minute: int
    key_daily_requests: int
    user_daily_requests: int
    key_daily_tokens: int
    user_daily_tokens: int
    key_concurrent: int


def _pick(override, default: int) -> int:
    return default if override is None else int(override)


def limits_for(api_key: ApiKey) -> KeyLimits:
    """The site defaults, with this key's own values where it has them. 0 means
    "no limit" for the site defaults."""
    return KeyLimits(
        key_per_minute=_pick(api_key.rate_limit_per_minute, settings.API_KEY_RATE_PER_MINUTE),
        user_per_minute=settings.API_USER_RATE_PER_MINUTE,
        key_daily_requests=_pick(api_key.daily_request_quota, settings.API_KEY_DAILY_REQUESTS),
        user_daily_requests=settings.API_USER_DAILY_REQUESTS,
        key_daily_tokens=_pick(api_key.daily_token_quota, settings.API_KEY_DAILY_TOKENS),
        user_daily_tokens=settings.API_USER_DAILY_TOKENS,
        key_concurrent=_pick(api_key.max_concurrent_generations, settings.API_KEY_MAX_CONCURRENT),
    )


# --- per-minute counters -------------------------------------------------------------------

_redis_clients: dict[str, object] = {}


def _redis():
    import redis

    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=2)
    return _redis_clients[url]


def _count_in_redis(keys: list[str], ttl: int) -> list[int]:
    pipe = _redis().pipeline()
    for key in keys:
        pipe.incr(key)
        pipe.expire(key, ttl, nx=True)
    return [int(count) for count in pipe.execute()[::2]]


def _count_in_database(key: str, ttl: int) -> int:
    now = timezone.now()
    with transaction.atomic():
        if not RateWindow.objects.filter(key=key).update(count=F("count") + 1):
            try:
                with transaction.atomic():
                    RateWindow.objects.create(
                        key=key, count=1, expires_at=now + dt.timedelta(seconds=ttl)
                    )
                # A new window: the moment to sweep the finished ones.
                RateWindow.objects.filter(expires_at__lt=now).delete()
                return 1
            except IntegrityError:  # another request created it first
                RateWindow.objects.filter(key=key).update(count=F("count") + 1)
        return RateWindow.objects.values_list("count", flat=True).get(key=key)


def count_requests(names: list[str]) -> tuple[list[int], float]:
    """Count one request against the current minute of each name (in one Redis round
    trip): (counts, seconds until the window ends)."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    keys = [f"glimpse:api:rate:{name}:{window}" for name in names]
    ttl = WINDOW_SECONDS * 2
    if settings.REDIS_URL:
        try:
            counts = _count_in_redis(keys, ttl)
        except Exception:
            # A limiter outage must not take the API down with it: let the request
            # through and say so in the log.
            logger.warning("rate counter unavailable; request not counted", exc_info=True)
            counts = [0] * len(keys)
    else:
        counts = [_count_in_database(key, ttl) for key in keys]
    return counts, (window + 1) * WINDOW_SECONDS - now


def rate_limit_check(*, api_key: ApiKey) -> None:
    limits = limits_for(api_key)
    checks = [
        (f"key:{api_key.pk}", limits.key_per_minute, "this API key"),
        (f"user:{api_key.user_id}", limits.user_per_minute, "your account"),
    ]
    checks = [check for check in checks if check[1]]
    if not checks:
        return
    counts, retry_after = count_requests([name for name, _, _ in checks])
    for (_, limit, whose), count in zip(checks, counts, strict=True):
        if count > limit:
            raise ApiError(
                429,
                f"Rate limit reached: {limit} requests per minute for {whose}. "
                f"Retry after {max(1, round(retry_after))} s.",
                "rate_limit_exceeded",
                retry_after=retry_after,
            )


# --- daily quotas -------------------------------------------------------------------------


def _day_bounds(now: dt.datetime) -> tuple[dt.datetime, float]:
    """Start of the current UTC day, and seconds until the next one."""
    now = now.astimezone(dt.UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, (start + dt.timedelta(days=1) - now).total_seconds()


@dataclass(frozen=True)
class Usage:
    """Today's requests and tokens of a key and of its user, and the key's running answers."""

    key_requests: int
    key_tokens: int
    user_requests: int
    user_tokens: int
    key_running: int
    # Ledger rows whose answer is final but whose counts are not copied yet.
    unsettled_final: int


# One statement over the user's ledger rows of the day and the unsettled ones. An
# unsettled row counts its answer's own tokens (joined), so the figures are exact without
# settling the ledger first. Written as SQL because it runs on every API question: the
# ORM spelling of these conditional sums cost about 2.5 ms of CPU per request to build.
_USAGE_SQL = """
SELECT
    count(*) FILTER (WHERE e.created_at >= %(start)s),
    coalesce(sum({tokens}) FILTER (WHERE e.created_at >= %(start)s), 0),
    count(*) FILTER (WHERE e.created_at >= %(start)s AND e.api_key_id = %(key)s),
    coalesce(sum({tokens}) FILTER (WHERE e.created_at >= %(start)s AND e.api_key_id = %(key)s), 0),
    count(*) FILTER (WHERE NOT e.settled AND e.api_key_id = %(key)s AND m.status IN (%(pending)s, %(streaming)s)),
    count(*) FILTER (WHERE NOT e.settled AND (m.status IS NULL OR m.status NOT IN (%(pending)s, %(streaming)s)))
FROM {exchange} e LEFT JOIN {message} m ON m.id = e.answer_id
WHERE e.user_id = %(user)s AND (e.created_at >= %(start)s OR NOT e.settled)
"""
_TOKENS = """CASE WHEN e.settled THEN e.prompt_tokens + e.completion_tokens
    ELSE coalesce(m.prompt_tokens + m.completion_tokens, 0) END"""


def usage_today(*, api_key: ApiKey) -> Usage:
    """Today's usage of the key and its user, and the key's running answers."""
    start, _ = _day_bounds(timezone.now())
    sql = _USAGE_SQL.format(
        tokens=_TOKENS,
        exchange=ApiExchange._meta.db_table,
        message=Message._meta.db_table,
    )
    pending, streaming = Message.UNFINISHED_STATUSES
    params = {
        "start": connection.ops.adapt_datetimefield_value(start),
        "key": api_key.pk,
        "user": api_key.user_id,
        "pending": pending.value,
        "streaming": streaming.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    user_requests, user_tokens, key_requests, key_tokens, key_running, unsettled_final = row
    return Usage(
        key_requests=key_requests,
        key_tokens=int(key_tokens),
        user_requests=user_requests,
        user_tokens=int(user_tokens),
        key_running=key_running,
        unsettled_final=unsettled_final,
    )


def quota_check(*, api_key: ApiKey, used: Usage | None = None) -> None:
    """Refuse a new answer when a daily quota is used up."""
    limits = limits_for(api_key)
    _, until_midnight = _day_bounds(timezone.now())
    used = used or usage_today(api_key=api_key)
    scopes = [
        ("this API key", used.key_requests, used.key_tokens, limits.key_daily_requests,
         limits.key_daily_tokens),
        ("your account", used.user_requests, used.user_tokens, limits.user_daily_requests,
         limits.user_daily_tokens),
    ]  # fmt: skip
    for whose, requests, tokens, max_requests, max_tokens in scopes:
        if max_requests and requests >= max_requests:
            raise ApiError(
                429,
                f"Daily quota reached: {max_requests} requests per day for {whose}. "
                "It resets at 00:00 UTC.",
                "daily_request_quota_exceeded",
                retry_after=until_midnight,
            )
        if max_tokens and tokens >= max_tokens:
            raise ApiError(
                429,
                f"Daily quota reached: {max_tokens} tokens per day for {whose}. "
                "It resets at 00:00 UTC.",
                "daily_token_quota_exceeded",
                retry_after=until_midnight,
            )


def concurrency_check(*, api_key: ApiKey, running: int) -> None:
    limit = limits_for(api_key).key_concurrent
    if limit and running >= limit:
        raise ApiError(
            429,
            f"This API key already has {running} answers being generated (at most {limit} "
            "at a time). Wait for one to finish.",
            "too_many_concurrent_requests",
            retry_after=settings.API_CONCURRENCY_RETRY_AFTER,
        )
