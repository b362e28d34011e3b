"""The admission store in Redis: one budget for every server that points at it.

The ``Store`` protocol of eda_gateway/store.py, each call one round trip and atomic on
the Redis side (a Lua script: Redis runs one script at a time). Keys of one user share
a hash tag (``eda:{<user id>}:...``), so a Redis Cluster keeps them on one shard.

- A window is a sorted set of entries scored by the Redis server's clock (microseconds):
  one clock for every server, whatever their own clocks say. Answers are turned into
  the caller's clock (``now``) by the distance to Redis's ``TIME`` in the same script.
- A lease is a field of the user's lease hash, its value the time it expires. The server
  that took it renews it (``renew``, every ``lease_ttl / 3``) while the execution runs;
  a server that dies stops renewing, and its leases are gone within ``lease_ttl``.
- Redis out of reach: every call raises ``StoreUnavailable`` (its ``retry_after`` says
  when the next call tries again); calls in between fail at once, without waiting on a
  socket, so an outage costs the event loop nothing. The first call after that tries
  again: recovery needs no restart.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis

from .store import Add, Hold, LeaseHold, Outcome, Step, StoreUnavailable, WindowAdd, WindowRead
from .store import passed as _passed
from .users import user_id

log = logging.getLogger(__name__)

US = 1_000_000  # the scripts count microseconds
SCHEMES = ("redis", "rediss", "unix")
PASSWORD_ENV = "EDA_STORE_PASSWORD"  # the password, when the URL has none
SOCKET_TIMEOUT = 0.5  # seconds: a decision waits no longer than this on Redis
RETRY_AFTER = (1.0, 10.0)  # first and longest wait after a failure before trying again

# The steps of one admission: KEYS[i] is step i's key; ARGV: lease ttl (us), an entry id,
# then per step "add" limit window_us, or "hold" kernel limit. Returns Redis's time, then
# one outcome per step run: {passed, new, count, oldest_us or -1, entry}.
_APPLY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[1])
local out = {now}
local undo = {}
local a = 3
local function take_back()
  for j = #undo, 1, -1 do
    local u = undo[j]
    if u[1] == 'z' then redis.call('ZREM', u[2], u[3]) else redis.call('HDEL', u[2], u[3]) end
  end
end
for i = 1, #KEYS do
  local key = KEYS[i]
  if ARGV[a] == 'add' then
    local limit, span = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
    local count = redis.call('ZCARD', key)
    if count >= limit then
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      out[#out + 1] = {0, 0, count, first[2] or '-1', ''}
      take_back()
      return out
    end
    local entry = ARGV[2] .. ':' .. i
    redis.call('ZADD', key, now, entry)
    redis.call('PEXPIRE', key, math.floor(span / 1000) + 1000)
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    out[#out + 1] = {1, 1, count + 1, first[2], entry}
    undo[#undo + 1] = {'z', key, entry}
  else
    local kernel, limit = ARGV[a + 1], tonumber(ARGV[a + 2])
    a = a + 3
    local fields = redis.call('HGETALL', key)
    local count, mine = 0, false
    for j = 1, #fields, 2 do
      if tonumber(fields[j + 1]) <= now then
        redis.call('HDEL', key, fields[j])
      else
        count = count + 1
        if fields[j] == kernel then mine = true end
      end
    end
    if mine then
      redis.call('HSET', key, kernel, now + ttl)
      out[#out + 1] = {1, 0, count, '-1', ''}
    elseif count >= limit then
      out[#out + 1] = {0, 0, count, '-1', ''}
      take_back()
      return out
    else
      redis.call('HSET', key, kernel, now + ttl)
      undo[#undo + 1] = {'h', key, kernel}
      out[#out + 1] = {1, 1, count + 1, '-1', ''}
    end
    redis.call('PEXPIRE', key, math.floor(ttl / 1000) + 1000)
  end
end
return out
"""

# KEYS[1] the window; ARGV[1] its span (us). Redis's time, count, oldest, newest (-1: none).
_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local since = now - tonumber(ARGV[1])
local count = redis.call('ZCOUNT', KEYS[1], '(' .. since, '+inf')
local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {now, count, first[2] or '-1', last[2] or '-1'}
"""

# KEYS[1] a lease hash: the kernels whose leases have not expired.
_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fields = redis.call('HGETALL', KEYS[1])
local alive = {}
for j = 1, #fields, 2 do
  if tonumber(fields[j + 1]) > now then alive[#alive + 1] = fields[j] end
end
return alive
"""

# KEYS: lease hashes; ARGV[1] ttl (us), then one kernel per key: push its expiry, if it is
# still there (a lease released meanwhile is not brought back).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[1])
local renewed = 0
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[i], ARGV[i + 1], now + ttl)
    redis.call('PEXPIRE', KEYS[i], math.floor(ttl / 1000) + 1000)
    renewed = renewed + 1
  end
end
return renewed
"""


def redacted(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> None:
    """ValueError unless ``url`` is a Redis URL (redis://, rediss://, unix://)."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(f"{redacted(url)!r} is not a Redis URL: it must start with "
                         f"{', '.join(s + '://' for s in SCHEMES)}")


class RedisStore:
    """The ``Store`` protocol on a Redis server shared by several eda_gateway servers."""

    def __init__(self, url: str, lease_ttl: float = 30.0, prefix: str = "eda",
                 clock: Callable[[], float] = time.monotonic, client: redis.Redis | None = None) -> None:
        check_url(url)
        self.url = redacted(url)
        self.lease_ttl = lease_ttl
        self._prefix = prefix
        self._clock = clock  # for the back-off only; answers follow the caller's ``now``
        if client is None:
            password = None if urlsplit(url).password else os.environ.get(PASSWORD_ENV) or None
            client = redis.Redis.from_url(
                url, password=password, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
                health_check_interval=30, retry_on_timeout=False,
            )
        self._redis = client
        self._apply = client.register_script(_APPLY)
        self._read = client.register_script(_READ)
        self._held = client.register_script(_HELD)
        self._renew = client.register_script(_RENEW)
        self._mine: dict[tuple[str, str], None] = {}  # leases this server took: renewed by ``renew``
        self._down_until = 0.0
        self._wait = RETRY_AFTER[0]
        self.available = True  # for /metrics and logs
        self.on_change: Callable[[bool, str], None] | None = None  # (available, why): logs, metrics

    @property
    def client(self) -> redis.Redis:
        """The Redis client, for what else servers share there (eda_gateway/peers.py)."""
        return self._redis

    # --- keys ------------------------------------------------------------------------

    def _window_key(self, user: str, window: str) -> str:
        return f"{self._prefix}:{{{user_id(user)}}}:w:{window}"

    def _leases_key(self, user: str) -> str:
        return f"{self._prefix}:{{{user_id(user)}}}:leases"

    # --- the protocol ------------------------------------------------------------------

    def apply(self, user: str, steps: list[Step], now: float) -> list[Outcome]:
        if not steps:
            return []
        keys, args = [], [int(self.lease_ttl * US), secrets.token_hex(8)]
        for step in steps:
            if isinstance(step, Add):
                keys.append(self._window_key(user, step.window))
                args += ["add", step.limit, int(step.seconds * US)]
            else:
                keys.append(self._leases_key(user))
                args += ["hold", step.kernel_id, step.limit]
        answer = self._call(self._apply, keys, args)
        redis_now = int(answer[0])
        outcomes: list[Outcome] = []
        for step, (passed, new, count, oldest, entry) in zip(steps, answer[1:]):
            if isinstance(step, Add):
                outcomes.append(WindowAdd(bool(passed), int(count), _local(oldest, redis_now, now),
                                          _text(entry) or None))
            else:
                outcomes.append(LeaseHold(bool(passed), bool(new), int(count)))
        if len(outcomes) == len(steps) and all(map(_passed, outcomes)):
            # leases kept (a refused run took them back): this server renews them
            for step in steps:
                if isinstance(step, Hold):
                    self._mine[(user, step.kernel_id)] = None
        return outcomes

    def add(self, user: str, window: str, limit: int, window_seconds: float, now: float) -> WindowAdd:
        return self.apply(user, [Add(window, limit, window_seconds)], now)[0]

    def hold(self, user: str, kernel_id: str, limit: int, now: float) -> LeaseHold:
        return self.apply(user, [Hold(kernel_id, limit)], now)[0]

    def remove(self, user: str, window: str, entry: object) -> None:
        self._best_effort("take back an entry", lambda: self._redis.zrem(self._window_key(user, window), entry))

    def read(self, user: str, window: str, window_seconds: float, now: float) -> WindowRead:
        redis_now, count, oldest, newest = self._call(self._read, [self._window_key(user, window)],
                                                      [int(window_seconds * US)])
        if not int(count) and _local(newest, int(redis_now), now) is None:
            return WindowRead()
        return WindowRead(int(count), _local(oldest, int(redis_now), now), _local(newest, int(redis_now), now))

    def release(self, user: str, kernel_id: str, now: float) -> None:
        # no longer renewed either way: if Redis is out of reach, the lease expires by itself
        self._mine.pop((user, kernel_id), None)
        self._best_effort("release a lease", lambda: self._redis.hdel(self._leases_key(user), kernel_id))

    def held(self, user: str) -> frozenset[str]:
        return frozenset(_text(k) for k in self._call(self._held, [self._leases_key(user)], []))

    # --- leases of this server -----------------------------------------------------

    def renew(self) -> int:
        """Push back the expiry of every lease this server holds (one round trip)."""
        if not self._mine:
            return 0
        mine = list(self._mine)
        try:
            return int(self._call(self._renew, [self._leases_key(u) for u, _ in mine],
                                  [int(self.lease_ttl * US), *(k for _, k in mine)]))
        except StoreUnavailable:
            return 0  # retried at the next renewal; leases last lease_ttl meanwhile

    def ping(self) -> bool:
        """Whether Redis answers now (start-up check, recovery probe)."""
        try:
            self._call(lambda keys, args: self._redis.ping(), [], [])
            return True
        except StoreUnavailable:
            return False

    def close(self) -> None:
        self._redis.close()

    # --- failures ------------------------------------------------------------------

    def _call(self, script, keys: list, args: list):
        now = self._clock()
        if now < self._down_until:
            raise StoreUnavailable(f"the admission store {self.url} is out of reach", self._down_until - now)
        try:
            answer = script(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError) as e:
            self._failed(now, e)
            raise StoreUnavailable(f"the admission store {self.url} is out of reach ({type(e).__name__})",
                                   self._down_until - now) from None
        except redis.ResponseError as e:  # e.g. READONLY replica, OOM, NOSCRIPT after a failover
            self._failed(now, e)
            raise StoreUnavailable(f"the admission store {self.url} refused a call: {e}",
                                   self._down_until - now) from None
        if not self.available:
            self.available, self._wait = True, RETRY_AFTER[0]
            if self.on_change:
                self.on_change(True, f"{self.url} answers again")
        return answer

    def _failed(self, now: float, error: Exception) -> None:
        self._down_until = now + self._wait
        self._wait = min(self._wait * 2, RETRY_AFTER[1])
        if self.available:
            self.available = False
            if self.on_change:
                self.on_change(False, f"{self.url}: {type(error).__name__}: {error}")

    def _best_effort(self, what: str, call) -> None:
        try:
            self._call(lambda keys, args: call(), [], [])
        except StoreUnavailable as e:
            log.debug("eda_gateway: could not %s: %s", what, e)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _local(redis_time, redis_now: int, now: float) -> float | None:
    """A Redis time (us, as a script returns it) in the caller's clock; None for -1 (none)."""
    value = float(_text(redis_time))
    if value < 0:
        return None
    return now - (redis_now - value) / US
