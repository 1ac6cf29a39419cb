"""The Redis channel layer, tuned for many streaming sockets per process.

Four changes to channels_redis' RedisChannelLayer, measured with bench/load_platform.py
(500 websockets streaming on one daphne process):

- Receiving in batches. A process receives every message for its sockets through one
  loop, and channels_redis spends four Redis round trips on each message (a cleanup
  script, BZPOPMIN, a backup copy, then removing the copy), one message at a time: that
  capped one daphne at about a thousand streamed chunks a second, and beyond it chunks
  queued for seconds. Here a receive takes what is waiting, up to RECEIVE_BATCH messages
  in two round trips. The backup copy (redelivery if the process dies between popping a
  message and handing it on) is dropped: these are stream events, and a client that
  misses one sees the gap in the sequence numbers and reads the stored answer.
- Sending to a group in two pipelined round trips (members; then expiry cleanup and the
  delivery script) instead of four, the same commands in the same order.
- Sending many events at once (`group_send_many`): a worker streaming hundreds of answers
  publishes through one loop, which sends what queued up meanwhile in two round trips per
  batch, not two per event; one worker process then carried 500 streams without its
  chunks queueing behind each other (inference/events.py).
- A connection pool that waits instead of failing. redis-py 8 pools hold at most 100
  connections and raise "Too many connections" at the 101st concurrent operation, so 500
  sockets opening at once (each joining its conversation's group) failed by the hundred.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from typing import Any

from channels_redis.core import RedisChannelLayer
from django.conf import settings
from redis.asyncio import BlockingConnectionPool

logger = logging.getLogger(__name__)

RECEIVE_BATCH = 100
# channels_redis' delivery script: add the message to each channel below its capacity.
GROUP_SEND_SCRIPT = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""


class StreamingRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._received: defaultdict[str, deque] = defaultdict(deque)
        self._last_score = 0.0  # group_send_many's newest delivery score

    def create_pool(self, index):
        host = dict(self.hosts[index])
        address = host.pop("address")
        return BlockingConnectionPool.from_url(
            address,
            max_connections=settings.CHANNEL_LAYER_MAX_CONNECTIONS,
            # Seconds a burst may wait for a connection before the operation fails.
            timeout=settings.CHANNEL_LAYER_POOL_TIMEOUT,
            **host,
        )

    async def receive_single(self, channel):
        if "!" not in channel:  # a shared (non-process) channel: the careful path
            return await super().receive_single(channel)
        assert self.require_valid_channel_name(channel, receive=True), "Channel name invalid"
        channel_key = self.prefix + channel
        waiting = self._received[channel_key]
        if not waiting:
            connection = self.connection(self.consistent_hash(channel))
            result = None
            while result is None:
                result = await connection.bzpopmin(channel_key, timeout=self.brpop_timeout)
            # Kept before the next await: a cancellation from here on loses nothing.
            waiting.append(result[1])
            more = await connection.zpopmin(channel_key, RECEIVE_BATCH - 1)
            waiting.extend(member for member, _score in more)
        message = self.deserialize(waiting.popleft())
        if "__asgi_channel__" in message:
            channel = message.pop("__asgi_channel__")
        return channel, message

    async def group_send(self, group, message):
        assert self.require_valid_group_name(group), "Group name not valid"
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        now = time.time()
        pipe = connection.pipeline(transaction=False)
        pipe.zremrangebyscore(key, min=0, max=int(now) - self.group_expiry)
        pipe.zrange(key, 0, -1)
        _, members = await pipe.execute()
        channel_names = [member.decode("utf8") for member in members]
        if not channel_names:
            return
        by_connection, messages, capacities = self._map_channel_keys_to_connection(
            channel_names, message
        )
        for index, keys in by_connection.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for channel_key in keys:
                pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(self.expiry))
            args = [messages[k] for k in keys] + [capacities[k] for k in keys]
            pipe.eval(GROUP_SEND_SCRIPT, len(keys), *keys, *args, now, self.expiry)
            over_capacity = (await pipe.execute())[-1]
            if over_capacity:
                logger.info(
                    "%s of %s channels over capacity in group %s",
                    over_capacity,
                    len(channel_names),
                    group,
                )

    async def group_send_many(self, items: list[tuple[str, dict]]) -> None:
        """Send each (group, message) in order, in two round trips per Redis host: the
        groups' members, then every delivery. Messages to one channel keep their order:
        each gets its own score, above the one before (also across batches)."""
        now = time.time()
        members: dict[str, list[str]] = {}
        lookups: defaultdict[int, list[str]] = defaultdict(list)
        for group, _message in items:
            assert self.require_valid_group_name(group), "Group name not valid"
            if group not in members:
                members[group] = []
                lookups[self.consistent_hash(group)].append(group)
        for index, groups in lookups.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in groups:
                key = self._group_key(group)
                pipe.zremrangebyscore(key, min=0, max=int(now) - self.group_expiry)
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
            for group, names in zip(groups, replies[1::2], strict=True):
                members[group] = [name.decode("utf8") for name in names]
        deliveries: dict[int, Any] = {}
        for group, message in items:
            if not members[group]:
                continue
            score = self._last_score = max(now, self._last_score + 1e-6)
            by_connection, messages, capacities = self._map_channel_keys_to_connection(
                members[group], message
            )
            for index, keys in by_connection.items():
                pipe = deliveries.get(index)
                if pipe is None:
                    pipe = deliveries[index] = self.connection(index).pipeline(transaction=False)
                for channel_key in keys:
                    pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(self.expiry))
                args = [messages[k] for k in keys] + [capacities[k] for k in keys]
                pipe.eval(GROUP_SEND_SCRIPT, len(keys), *keys, *args, score, self.expiry)
        for pipe in deliveries.values():
            await pipe.execute()
