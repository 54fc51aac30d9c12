"""The channel's bookkeeping as Lua scripts: each step is atomic and one round trip.

Every script gets the same keys, all under one hash tag so that a cluster keeps
them on one node:

``meta``      hash: maxsize, joinable, linger, lease, sent, done, ended, broken, bell,
              epoch, version, tick, grace (see below)
``handles``   hash: the open sender handles (token -> 1); the channel ends when it empties
``items``     stream of items, with the consumer group ``g`` that every receiver reads through
``sleases``   sorted set: ``TOKEN|SENDER`` -> when that sender's lease lapses (ms, server time);
              ``TOKEN|born:HOST:PID:START`` for a child started with that handle (see BORN)
``seqs``      hash: ``TOKEN|SENDER`` -> the last sequence number stored, so a retried put
              after a lost reply is not stored twice
``rleases``   sorted set: receiver (consumer name) -> when its lease lapses
``bell``      stream of one entry, rung when a waiter may have something to see
``tomb``      what is left once an ended channel is drained: its epoch and count of items,
              for ``linger`` s

Item ids are ``N-0`` where ``N`` counts the items sent, so a waiter can ask the
server to wake it when item ``sent + 1`` exists, without a race.

Every script takes two arguments first: the channel's *epoch* as the caller
knows it ('' if it never saw the channel) and the highest *version* it saw.
The epoch is chosen when the channel is created; the version grows with every
change to items or handles. A channel whose keys vanished while a caller knew
it, whose epoch changed, or whose version went back (a restart without
persistence, ``FLUSHALL``, a stale snapshot, a lagging replica) has lost data:
the script marks it (``broken`` = 2) and answers ``lost``, so that every handle
raises instead of starting afresh or ending early.

Every reply starts with ``status, version, epoch``.

Leases are judged by server time, which jumps across a stall (a fork for a
snapshot, a stopped or paused server). So a gap in the channel's activity
longer than half a lease (live holders renew every third of one) opens a
*grace*: no lease is judged lapsed until a whole lease of activity has
followed, and live holders have renewed by then.

A full server (``maxmemory`` with ``noeviction``) refuses a script whose first
write would grow memory. Every script but PUT and OPEN therefore starts with a
write that cannot grow it, after which the server lets the rest run: receivers
can still take, acknowledge and close, so the channel drains, while a put is
refused.
"""

from __future__ import annotations

__all__ = [
    "BORN",
    "BREAK",
    "CLONE",
    "CLOSE",
    "CLOSE_RECEIVER",
    "DONE",
    "KEY_NAMES",
    "LOST",
    "OPEN",
    "PUT",
    "RENEW",
    "STATS",
    "TAKE",
]

#: The keys every script takes, in order.
KEY_NAMES = ("meta", "handles", "items", "sleases", "seqs", "rleases", "bell", "tomb")

_PRELUDE = """
local meta, handles, items, sleases, seqs, rleases, bell, tomb =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local E, SEEN = ARGV[1], tonumber(ARGV[2])
local A = 3  -- the script's own arguments start here
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local EP, VER, GRACE = '', 0, 0
local function ring()
  local b = redis.call('HINCRBY', meta, 'bell', 1)
  redis.call('XADD', bell, 'MAXLEN', '1', string.format('%d-0', b), 'r', '1')
end
local function bump()
  VER = redis.call('HINCRBY', meta, 'version', 1)
end
-- ended and drained: leave only the tombstone, and the bell for those still waiting
local function finish()
  ring()
  local st = redis.call('HMGET', meta, 'linger', 'sent', 'epoch')
  local linger = tonumber(st[1] or '86400')
  redis.call('DEL', meta, handles, items, sleases, seqs, rleases)
  redis.call('HSET', tomb, 'epoch', st[3], 'sent', st[2])
  redis.call('EXPIRE', tomb, linger)
  redis.call('EXPIRE', bell, linger)
end
-- items that no receiver has taken yet: acknowledged ones are deleted, so the stream
-- holds exactly those and the ones taken but not yet acknowledged
local function waiting()
  return redis.call('XLEN', items) - redis.call('XPENDING', items, 'g')[1]
end
local function ack(ids)
  if #ids == 0 then return 0 end
  local n = redis.call('XACK', items, 'g', unpack(ids))
  redis.call('XDEL', items, unpack(ids))
  return n
end
-- 'ok', 'none' (no such channel, never seen), 'end' (ended and drained) or 'lost';
-- with 'ok', M holds the channel's fields. A put records the time itself (see PUT).
local M = {}
local FIELDS = {'epoch', 'version', 'broken', 'tick', 'lease', 'grace', 'maxsize', 'sent',
  'ended', 'joinable', 'bell', 'why'}
local function state(drain)
  if drain then redis.call('HDEL', meta, '-') end  -- a write that cannot grow memory
  local m = redis.call('HMGET', meta, unpack(FIELDS))
  if not m[1] then
    local te = redis.call('HGET', tomb, 'epoch')
    if te then
      EP = te
      if E == '' or te == E then return 'end' end
      return 'lost'
    end
    if E ~= '' then return 'lost' end
    return 'none'
  end
  for i, f in ipairs(FIELDS) do M[f] = m[i] end
  EP, VER, GRACE = m[1], tonumber(m[2]), tonumber(m[6])
  if (E ~= '' and EP ~= E) or VER < SEEN or m[3] == '2' then
    if m[3] ~= '2' then
      redis.pcall('HSET', meta, 'broken', 2)
      redis.pcall('HINCRBY', meta, 'bell', 1)
    end
    return 'lost'
  end
  local lease = tonumber(m[5])
  if NOW - tonumber(m[4]) > lease / 2 then
    GRACE = NOW + lease
    redis.pcall('HSET', meta, 'grace', GRACE, 'tick', NOW)
  elseif drain then
    redis.pcall('HSET', meta, 'tick', NOW)
  end
  return 'ok'
end
local function judging()
  return NOW >= GRACE
end
"""

#: ARGV: token, maxsize (-1: keep), joinable (-1: keep), linger (s, -1: keep), with_sender
#: (1/0), epoch for a new channel, lease (ms).
#: Returns {status, version, epoch, maxsize, joinable}: status 'ok', 'end' (ended: no sender
#: may open), 'options' (they differ; then the channel's linger too), 'broken', 'lost'.
OPEN = (
    _PRELUDE
    + """
local with_sender = ARGV[A + 4] == '1'
local s = state(false)
if s == 'lost' then return {'lost', VER, EP, 0, 0} end
if s == 'end' then
  if with_sender then return {'end', VER, EP, 0, 0} end
  return {'ok', VER, EP, -1, -1}
end
if s == 'none' then
  if not with_sender then return {'ok', 0, '', -1, -1} end
  local m = math.max(tonumber(ARGV[A + 1]), 0)
  local j = math.max(tonumber(ARGV[A + 2]), 0)
  local lg = tonumber(ARGV[A + 3])
  if lg < 0 then lg = 86400 end
  redis.call('HSET', meta, 'maxsize', m, 'joinable', j, 'linger', lg, 'sent', 0,
    'done', 0, 'ended', 0, 'broken', 0, 'bell', 0, 'epoch', ARGV[A + 5], 'version', 0,
    'tick', NOW, 'grace', 0, 'lease', ARGV[A + 6])
  redis.pcall('XGROUP', 'CREATE', items, 'g', '0', 'MKSTREAM')
  EP = ARGV[A + 5]
end
local st = redis.call('HMGET', meta, 'maxsize', 'joinable', 'ended', 'broken', 'linger')
local m, j, lg = tonumber(st[1]), tonumber(st[2]), tonumber(st[5] or '86400')
if with_sender then
  if st[3] == '1' then return {'end', VER, EP, m, j} end
  if st[4] == '1' then return {'broken', VER, EP, m, j, M.why or ''} end
  if (tonumber(ARGV[A + 1]) >= 0 and tonumber(ARGV[A + 1]) ~= m)
      or (tonumber(ARGV[A + 2]) >= 0 and tonumber(ARGV[A + 2]) ~= j)
      or (tonumber(ARGV[A + 3]) >= 0 and tonumber(ARGV[A + 3]) ~= lg) then
    return {'options', VER, EP, m, j, lg}
  end
  if redis.call('HSETNX', handles, ARGV[A], 1) == 1 then bump() end
end
return {'ok', VER, EP, m, j}
"""
)

#: ARGV: token, member, first sequence number, lease (ms), items...
#: Returns {status, version, epoch, how many of the items are stored, bell, last stored
#: sequence number before this put}; status 'ok', 'closed', 'broken' (then why), 'lost'.
PUT = (
    _PRELUDE
    + """
local s = state(false)
if s == 'lost' then return {'lost', VER, EP, 0, 0, -1} end
if s ~= 'ok' or redis.call('HEXISTS', handles, ARGV[A]) == 0 then
  return {'closed', VER, EP, 0, 0, -1}
end
if M.broken == '1' then return {'broken', VER, EP, 0, 0, -1, M.why or ''} end
local member, base = ARGV[A + 1], tonumber(ARGV[A + 2])
local first = A + 4
local n = #ARGV - first + 1
local last = tonumber(redis.call('HGET', seqs, member) or '-1')
local skip = math.min(math.max(last - base + 1, 0), n)
local room = n - skip
local maxsize, sent = tonumber(M.maxsize), tonumber(M.sent)
if maxsize > 0 then
  room = math.max(math.min(room, maxsize - waiting()), 0)
end
for i = 1, room do
  redis.call('XADD', items, string.format('%d-0', sent + i), 'd', ARGV[first + skip + i - 1])
end
if room > 0 then
  VER = VER + 1
  redis.call('HSET', meta, 'sent', sent + room, 'version', VER, 'tick', NOW)
  redis.call('HSET', seqs, member, base + skip + room - 1)
else
  redis.call('HSET', meta, 'tick', NOW)
end
redis.call('ZADD', sleases, NOW + tonumber(ARGV[A + 3]), member)
return {'ok', VER, EP, skip + room, tonumber(M.bell), last}
"""
)

#: ARGV: consumer, max items, lease (ms), recover (1/0), ids to acknowledge...
#: Returns {status, version, epoch, joinable, ...}: 'items' (new items), 'claimed' (a lapsed
#: receiver's) or 'again' (this receiver's own unacknowledged items, after a lost reply), then
#: id, data pairs; 'none' then sent, bell, maxsize (-1: no such channel yet); 'end';
#: 'broken' then why ('' if its senders died); 'lost'.
TAKE = (
    _PRELUDE
    + """
local s = state(true)
if s == 'none' then return {'none', 0, '', 0, 0, 0, -1} end
if s ~= 'ok' then return {s, VER, EP, 0} end
local me, count, lease = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local joinable = M.joinable == '1'
local j = joinable and 1 or 0
redis.call('ZADD', rleases, NOW + lease, me)
local acked = 0
if not joinable then acked = ack({unpack(ARGV, A + 4)}) end
local function pack(status, entries)
  bump()
  local out = {status, VER, EP, j}
  for _, e in ipairs(entries) do
    if type(e) == 'table' and type(e[2]) == 'table' then
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
    end
  end
  return out
end
-- the unacknowledged items of receivers whose lease lapsed go to this one
if judging() then
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', rleases, '-inf', NOW, 'LIMIT', 0, 4)) do
    if d ~= me then
      local p = redis.call('XPENDING', items, 'g', 'IDLE', lease, '-', '+', count, d)
      if #p > 0 then
        local ids = {}
        for i, e in ipairs(p) do ids[i] = e[1] end
        local got = redis.call('XCLAIM', items, 'g', me, lease, unpack(ids))
        if #got > 0 then return pack('claimed', got) end
      elseif #redis.call('XPENDING', items, 'g', '-', '+', 1, d) == 0 then
        redis.call('XGROUP', 'DELCONSUMER', items, 'g', d)
        redis.call('ZREM', rleases, d)
      end
    end
  end
end
if ARGV[A + 3] == '1' then
  local r = redis.call('XREADGROUP', 'GROUP', 'g', me, 'STREAMS', items, '0')
  if r and #r[1][2] > 0 then return pack('again', r[1][2]) end
end
local maxsize = tonumber(M.maxsize)
local full = maxsize > 0 and waiting() >= maxsize
local r = redis.call('XREADGROUP', 'GROUP', 'g', me, 'COUNT', count, 'STREAMS', items, '>')
if r and #r[1][2] > 0 then
  if full then ring() end
  return pack('items', r[1][2])
end
if acked > 0 then bump() end
if M.ended == '1' then
  if redis.call('XLEN', items) == 0 then
    finish()
    return {'end', VER, EP, j}
  end
  if acked > 0 then ring() end
elseif M.broken == '1' then
  return {'broken', VER, EP, j, M.why or ''}
elseif judging() and redis.call('HLEN', handles) > 0 and redis.call('ZCARD', sleases) > 0
    and redis.call('ZCOUNT', sleases, '(' .. NOW, '+inf') == 0 then
  redis.call('HSET', meta, 'broken', 1)
  ring()
  return {'broken', VER, EP, j, ''}
end
return {'none', VER, EP, j, M.sent, redis.call('HGET', meta, 'bell'), maxsize}
"""
)

#: ARGV: parent token, new token. Returns {status, version, epoch}: 'ok' if the new handle
#: is open, 'closed' if the parent is, 'lost'.
CLONE = (
    _PRELUDE
    + """
local s = state(true)
if s == 'lost' then return {'lost', VER, EP} end
if s ~= 'ok' then return {'closed', VER, EP} end
if redis.call('HEXISTS', handles, ARGV[A + 1]) == 1 then return {'ok', VER, EP} end
if redis.call('HEXISTS', handles, ARGV[A]) == 0 then return {'closed', VER, EP} end
redis.call('HSET', handles, ARGV[A + 1], 1)
bump()
return {'ok', VER, EP}
"""
)

#: ARGV: token. Returns {status, version, epoch, 0 if it was closed already, 1 if closed now,
#: 2 if that ended the channel}; status 'ok' or 'lost'.
CLOSE = (
    _PRELUDE
    + """
local s = state(true)
if s == 'lost' then return {'lost', VER, EP, 0} end
if s ~= 'ok' or redis.call('HDEL', handles, ARGV[A]) == 0 then return {'ok', VER, EP, 0} end
bump()
local prefix = ARGV[A] .. '|'
for _, m in ipairs(redis.call('ZRANGE', sleases, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then
    redis.call('ZREM', sleases, m)
    redis.call('HDEL', seqs, m)
  end
end
if redis.call('HLEN', handles) > 0 then return {'ok', VER, EP, 1} end
redis.call('HSET', meta, 'ended', 1)
if redis.call('XLEN', items) == 0 then finish() else ring() end
return {'ok', VER, EP, 2}
"""
)

#: ARGV: consumer, ids to acknowledge... Forgets the receiver unless it still holds items.
#: Returns {status, version, epoch, how many were acknowledged}.
CLOSE_RECEIVER = (
    _PRELUDE
    + """
local s = state(true)
if s ~= 'ok' then return {s, VER, EP, 0} end
local acked = ack({unpack(ARGV, A + 1)})
if acked > 0 then bump() end
if #redis.call('XPENDING', items, 'g', '-', '+', 1, ARGV[A]) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', items, 'g', ARGV[A])
  redis.call('ZREM', rleases, ARGV[A])
end
if redis.call('HGET', meta, 'ended') == '1' then
  if redis.call('XLEN', items) == 0 then finish() elseif acked > 0 then ring() end
end
return {'ok', VER, EP, acked}
"""
)

#: ARGV: id. Marks one item done (joinable channels).
#: Returns {status, version, epoch, 1, or 0 if it was done already}.
DONE = (
    _PRELUDE
    + """
local s = state(true)
if s ~= 'ok' then return {s, VER, EP, 0} end
local n = ack({ARGV[A]})
if n == 0 then return {'ok', VER, EP, 0} end
bump()
local done = redis.call('HINCRBY', meta, 'done', 1)
local st = redis.call('HMGET', meta, 'sent', 'ended')
if st[2] == '1' and redis.call('XLEN', items) == 0 then
  finish()
elseif tonumber(st[1]) == done or st[2] == '1' then
  ring()
end
return {'ok', VER, EP, 1}
"""
)

#: ARGV: lease (ms), consumer ('' if none), suffix ('' if none), sender members...
#: Extends the leases still held: the members named, and every member ending in the suffix
#: (the leases held for this process since it started, see BORN). Returns {status, ...}.
RENEW = (
    _PRELUDE
    + """
local s = state(true)
if s ~= 'ok' then return {s, VER, EP} end
local until_ = NOW + tonumber(ARGV[A])
if ARGV[A + 1] ~= '' then redis.call('ZADD', rleases, 'XX', until_, ARGV[A + 1]) end
local suffix = ARGV[A + 2]
if suffix ~= '' then
  for _, m in ipairs(redis.call('ZRANGE', sleases, 0, -1)) do
    if #m > #suffix and string.sub(m, -#suffix) == suffix then
      redis.call('ZADD', sleases, 'XX', until_, m)
    end
  end
end
for i = A + 3, #ARGV do redis.call('ZADD', sleases, 'XX', until_, ARGV[i]) end
return {'ok', VER, EP}
"""
)

#: ARGV: lease (ms), then (token, member, alive 1/0) for children started with a handle.
#: A live child's lease starts (the child and its starter renew it); a dead one's lapses now.
#: Closed handles are skipped. Returns {status, version, epoch, how many leases lapsed}.
BORN = (
    _PRELUDE
    + """
local s = state(true)
if s ~= 'ok' then return {s, VER, EP, 0} end
local until_ = NOW + tonumber(ARGV[A])
local lapsed = 0
for i = A + 1, #ARGV, 3 do
  if redis.call('HEXISTS', handles, ARGV[i]) == 1 then
    if ARGV[i + 2] == '1' then
      redis.call('ZADD', sleases, 'NX', until_, ARGV[i + 1])
    else
      redis.call('ZADD', sleases, 0, ARGV[i + 1])
      lapsed = lapsed + 1
    end
  end
end
if lapsed > 0 then ring() end
return {'ok', VER, EP, lapsed}
"""
)

#: Returns {status, version, epoch, sent, received, done, ended, broken, joinable, senders,
#: receivers, bell}; status 'ok', 'none' (no such channel yet), 'end' (counts from the
#: tombstone), 'lost'.
STATS = (
    _PRELUDE
    + """
local s = state(true)
if s == 'end' then
  local n = tonumber(redis.call('HGET', tomb, 'sent') or '0')
  return {'end', VER, EP, n, n, 0, 1, 0, 0, 0, 0, 0}
end
if s ~= 'ok' then return {s, VER, EP, 0, 0, 0, 0, 0, 0, 0, 0, 0} end
local st = redis.call('HMGET', meta, 'sent', 'done', 'ended', 'broken', 'joinable', 'bell')
return {'ok', VER, EP, tonumber(st[1]), tonumber(st[1]) - waiting(), tonumber(st[2]),
  tonumber(st[3]), tonumber(st[4]), tonumber(st[5]), redis.call('HLEN', handles),
  redis.call('ZCOUNT', rleases, '(' .. NOW, '+inf'), tonumber(st[6])}
"""
)

#: Marks the channel as having lost data on the server (a receiver saw an item come again
#: that the server had handed it before). Returns {status, version, epoch}.
LOST = (
    _PRELUDE
    + """
state(true)
if redis.call('EXISTS', meta) == 1 then
  redis.pcall('HSET', meta, 'broken', 2)
  ring()
end
return {'lost', VER, EP}
"""
)

#: ARGV: why. Breaks the channel for every handle, saying why (a tool that gave up on it).
#: Returns {status, version, epoch}.
BREAK = (
    _PRELUDE
    + """
local s = state(true)
if s ~= 'ok' then return {s, VER, EP} end
redis.call('HSET', meta, 'broken', 1, 'why', ARGV[A])
ring()
return {'ok', VER, EP}
"""
)
