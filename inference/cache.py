"""The answer cache: the same question about (nearly) the same screenshot, answered again
in milliseconds instead of a trip through the GPU.

Key: a perceptual hash of the model-ready screenshot, the normalised question and the
model settings (engine, model id and revision, sampling). Only greedy (temperature 0)
answers that ended `done` with finish reason `stop` are stored, and only for the first
question of a conversation (a follow-up depends on the history). ANSWER_CACHE=off (the
default), `user` (each user sees only their own cached answers) or `shared`.

Why a perceptual hash and not a byte hash: the same screen captured twice, recompressed
or re-scaled differs in bytes but not in content. The hash is a difference hash (dHash)
on a 17x16 (horizontal) and 16x17 (vertical) grayscale thumbnail: 512 bits; two
screenshots within ANSWER_CACHE_MAX_DISTANCE bits of each other count as the same.
The limit of the idea: a change of a few characters on an otherwise identical screen
can stay within that distance, which is why the cache is off by default, per user when
on, and keyed on the exact question. Operators who need byte-exactness set the distance
to 0.

Storage: Redis when REDIS_URL is set (shared by every web process and worker), else a
bounded dictionary in this process (the embedded mode runs everything in one process).
Entries live ANSWER_CACHE_TTL seconds. A new model id or MODEL_REVISION changes every
key, so answers of an old model are never served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image

logger = logging.getLogger(__name__)

HASH_SIZE = 16
BUCKET_LIMIT = 32  # screenshots remembered per (scope, settings, question)
_PREFIX = "glimpse:answer-cache:"
_PENDING = _PREFIX + "pending:{}"  # answer id -> the key its result will be stored under
# user id -> the entries made from that user's answers, so erasing the user can remove them
_BY_OWNER = _PREFIX + "owner:{}"
_PHASH = _PREFIX + "phash:{}"  # sha256 of an upload -> its perceptual hash


# --- the perceptual hash -----------------------------------------------------------------


def perceptual_hash(image: Image.Image) -> int:
    """A 512-bit difference hash: brightness gradients of a tiny grayscale thumbnail."""
    gray = image.convert("L")
    wide = np.asarray(gray.resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BOX), dtype=np.int16)
    tall = np.asarray(gray.resize((HASH_SIZE, HASH_SIZE + 1), Image.Resampling.BOX), dtype=np.int16)
    bits = np.concatenate(
        [(wide[:, 1:] > wide[:, :-1]).ravel(), (tall[1:, :] > tall[:-1, :]).ravel()]
    )
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def normalise_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" ?!.")


# --- storage -------------------------------------------------------------------------------


class _LocalStore:
    """The embedded mode's store: a bounded dictionary with expiry."""

    def __init__(self, limit: int = 10_000):
        self._data: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, key):
        with self._lock:
            item = self._data.get(key)
            if item is None or item[0] < time.time():
                self._data.pop(key, None)
                return None
            return item[1]

    def set(self, key, value, ttl: float):
        with self._lock:
            self._data[key] = (time.time() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._limit:
                self._data.popitem(last=False)

    def pop(self, key):
        with self._lock:
            item = self._data.pop(key, None)
        return None if item is None or item[0] < time.time() else item[1]

    def bucket_get(self, key) -> dict:
        return dict(self.get(key) or {})

    def bucket_put(self, key, field, value, ttl: float):
        with self._lock:
            item = self._data.get(key)
            bucket = dict(item[1]) if item and item[0] >= time.time() else {}
        bucket[field] = value
        self.set(key, _trim(bucket), ttl)

    def bucket_delete(self, key, field):
        with self._lock:
            item = self._data.get(key)
            if item is not None and field in item[1]:
                bucket = dict(item[1])
                del bucket[field]
                self._data[key] = (item[0], bucket)

    def index_add(self, key, member: str, ttl: float):
        with self._lock:
            item = self._data.get(key)
            members = set(item[1]) if item and item[0] >= time.time() else set()
        members.add(member)
        self.set(key, sorted(members), ttl)

    def index_pop(self, key) -> list[str]:
        return list(self.pop(key) or [])

    def clear(self):
        with self._lock:
            self._data.clear()


class _RedisStore:
    def __init__(self):
        from .liveness import redis_client

        self._redis = redis_client()

    def get(self, key):
        raw = self._redis.get(key)
        return None if raw is None else json.loads(raw)

    def set(self, key, value, ttl: float):
        self._redis.set(key, json.dumps(value), ex=max(1, int(ttl)))

    def pop(self, key):
        pipe = self._redis.pipeline()
        pipe.get(key)
        pipe.delete(key)
        raw, _ = pipe.execute()
        return None if raw is None else json.loads(raw)

    def bucket_get(self, key) -> dict:
        return {k.decode(): json.loads(v) for k, v in self._redis.hgetall(key).items()}

    def bucket_put(self, key, field, value, ttl: float):
        pipe = self._redis.pipeline()
        pipe.hset(key, field, json.dumps(value))
        pipe.expire(key, max(1, int(ttl)))
        pipe.hlen(key)
        _, _, size = pipe.execute()
        if size > BUCKET_LIMIT:
            bucket = self.bucket_get(key)
            keep = _trim(bucket)
            drop = [f for f in bucket if f not in keep]
            if drop:
                self._redis.hdel(key, *drop)

    def bucket_delete(self, key, field):
        self._redis.hdel(key, field)

    def index_add(self, key, member: str, ttl: float):
        pipe = self._redis.pipeline()
        pipe.sadd(key, member)
        pipe.expire(key, max(1, int(ttl)))
        pipe.execute()

    def index_pop(self, key) -> list[str]:
        pipe = self._redis.pipeline()
        pipe.smembers(key)
        pipe.delete(key)
        members, _ = pipe.execute()
        return [m.decode() for m in members]


def _trim(bucket: dict) -> dict:
    """Keep the newest BUCKET_LIMIT entries of a bucket."""
    if len(bucket) <= BUCKET_LIMIT:
        return bucket
    newest = sorted(bucket.items(), key=lambda kv: kv[1].get("stored_at", 0), reverse=True)
    return dict(newest[:BUCKET_LIMIT])


_local_store = _LocalStore()


def _store():
    return _RedisStore() if settings.REDIS_URL else _local_store


# --- the cache ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheKey:
    bucket: str  # scope + settings + question
    image_hash: int | None  # None: a question without a screenshot


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    engine: str
    boxes: list
    prompt_tokens: int
    completion_tokens: int
    model: str = ""


def enabled() -> bool:
    return settings.ANSWER_CACHE in {"user", "shared"}


def cacheable_sampling(sampling: dict) -> bool:
    return float(sampling.get("temperature", 0.0)) == 0.0


def _upload_hash(upload) -> int:
    """The perceptual hash of an upload's model copy, remembered by content hash so the
    same file is decoded once."""
    from assistant import storage

    store = _store()
    memo_key = _PHASH.format(upload.sha256)
    known = store.get(memo_key)
    if known is not None:
        return int(known, 16)
    try:
        image = Image.open(storage.path(upload.model_copy))
    except FileNotFoundError:
        # Its unredacted copy was swapped for the redacted one since the row was read.
        upload = type(upload).objects.get(pk=upload.pk)
        image = Image.open(storage.path(upload.model_copy))
    with image:
        value = perceptual_hash(image)
    store.set(memo_key, format(value, "x"), settings.ANSWER_CACHE_TTL)
    return value


def key_for(*, user_id: int, question: str, upload, sampling: dict) -> CacheKey | None:
    """The cache key for a first question, or None when caching does not apply."""
    if not enabled() or not cacheable_sampling(sampling):
        return None
    scope = "shared" if settings.ANSWER_CACHE == "shared" else f"user:{user_id}"
    model = {
        "engine": settings.INFERENCE_ENGINE,
        "model": settings.MODEL_ID,
        "revision": settings.MODEL_REVISION,
        "sampling": {k: sampling.get(k) for k in sorted(sampling)},
    }
    digest = hashlib.sha256(
        json.dumps([scope, model, normalise_question(question)], sort_keys=True).encode()
    ).hexdigest()
    image_hash = _upload_hash(upload) if upload is not None else None
    return CacheKey(bucket=_PREFIX + digest, image_hash=image_hash)


def lookup(key: CacheKey) -> CachedAnswer | None:
    from ops import metrics

    try:
        bucket = _store().bucket_get(key.bucket)
    except Exception:
        logger.warning("answer cache unreachable; answering without it", exc_info=True)
        return None
    best, best_distance = None, None
    now = time.time()
    for field, entry in bucket.items():
        if entry.get("stored_at", 0) + settings.ANSWER_CACHE_TTL < now:
            continue
        if key.image_hash is None or field == "-":
            if not (key.image_hash is None and field == "-"):
                continue  # a text-only question never matches one with a screenshot
            distance = 0
        else:
            distance = hash_distance(int(field, 16), key.image_hash)
        if distance > settings.ANSWER_CACHE_MAX_DISTANCE:
            continue
        if best_distance is None or distance < best_distance:
            best, best_distance = entry, distance
    metrics.cache_lookup(best is not None)
    if best is None:
        return None
    return CachedAnswer(
        text=best["text"],
        engine=best["engine"],
        boxes=best.get("boxes") or [],
        prompt_tokens=int(best.get("prompt_tokens", 0)),
        completion_tokens=int(best.get("completion_tokens", 0)),
        model=best.get("model", ""),
    )


def expect(answer_id: int, key: CacheKey, owner_id: int | None = None) -> None:
    """Remember where answer `answer_id` goes once it is done (called on a miss)."""
    try:
        _store().set(
            _PENDING.format(answer_id),
            {
                "bucket": key.bucket,
                "image_hash": None if key.image_hash is None else format(key.image_hash, "x"),
                "owner": owner_id,
            },
            3600,
        )
    except Exception:
        logger.warning("answer cache unreachable; this answer will not be cached", exc_info=True)


def remember(
    *,
    answer_id: int,
    text: str,
    engine: str,
    boxes: list,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str,
    model: str = "",
) -> bool:
    """Store a finished answer if it was expected (runner, after `done`)."""
    try:
        store = _store()
        target = store.pop(_PENDING.format(answer_id))
        if target is None or finish_reason != "stop" or not text:
            return False
        field = target["image_hash"] or "-"
        store.bucket_put(
            target["bucket"],
            field,
            {
                "text": text,
                "engine": engine,
                "model": model,
                "boxes": boxes,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "stored_at": time.time(),
            },
            settings.ANSWER_CACHE_TTL,
        )
        if target.get("owner") is not None:
            store.index_add(
                _BY_OWNER.format(target["owner"]),
                f"{target['bucket']}|{field}",
                settings.ANSWER_CACHE_TTL,
            )
    except Exception:
        logger.warning("could not store answer %s in the cache", answer_id, exc_info=True)
        return False
    return True


def publish_cached_answer(
    *, group: str, message_id: int, text: str, engine: str, usage: dict
) -> None:
    """Tell the conversation's other sockets about an answer served from the cache, in the
    ordinary event shape (start, one token, done). The asking socket already has it."""
    from .events import publish

    # Not waited for: the asking client has its answer already, and these run on the
    # request's own path (three Redis round trips).
    base = {"message_id": message_id}
    publish(group, {**base, "type": "start", "seq": 0, "engine": engine}, wait=False)
    publish(group, {**base, "type": "token", "seq": 1, "text": text}, wait=False)
    publish(
        group,
        {
            **base,
            "type": "done",
            "seq": 2,
            "text": text,
            "finish_reason": "stop",
            "usage": usage,
            "engine": engine,
        },
        wait=False,
    )


def forget_owner(owner_id: int) -> int:
    """Remove every cached answer made from this user's answers (right to erasure);
    returns how many entries went. Shared caches hold them for other users too."""
    store = _store()
    entries = store.index_pop(_BY_OWNER.format(owner_id))
    for entry in entries:
        bucket, _, field = entry.rpartition("|")
        store.bucket_delete(bucket, field)
    return len(entries)
