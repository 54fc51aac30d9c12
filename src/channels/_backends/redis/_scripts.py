"""The channel's bookkeeping as Lua scripts: each step is atomic and one round trip.

Every script gets the same keys, all under one hash tag so that a cluster keeps
them on one node:

``meta``      hash: maxsize, joinable, linger, sent, done, ended, broken, bell
``handles``   hash: the open sender handles (token -> 1); the channel ends when it empties
``items``     stream of items, with the consumer group ``g`` that every receiver reads through
``sleases``   sorted set: ``TOKEN|SENDER`` -> when that sender's lease lapses (ms, server time);
              ``TOKEN|born:HOST:PID:START`` for a child started with that handle (see BORN)
``seqs``      hash: ``TOKEN|SENDER`` -> the last sequence number stored, so a retried put
              after a lost reply is not stored twice
``rleases``   sorted set: receiver (consumer name) -> when its lease lapses
``bell``      stream of one entry, rung when a waiter may have something to see
``tomb``      what is left once an ended channel is drained: says "ended" for ``linger`` s

Item ids are ``N-0`` where ``N`` counts the items sent, so a waiter can ask the
server to wake it when item ``sent + 1`` exists, without a race. Everything
else reads time from the server (``TIME``), so clients' clocks do not matter.
"""

from __future__ import annotations

__all__ = [
    "BORN",
    "CLONE",
    "CLOSE",
    "CLOSE_RECEIVER",
    "DONE",
    "KEY_NAMES",
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
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ring()
  local b = redis.call('HINCRBY', meta, 'bell', 1)
  redis.call('XADD', bell, 'MAXLEN', '1', string.format('%d-0', b), 'r', '1')
end
-- ended and drained: leave only the tombstone, and the bell for those still waiting
local function finish()
  ring()
  local linger = tonumber(redis.call('HGET', meta, 'linger') or '86400')
  redis.call('DEL', meta, handles, items, sleases, seqs, rleases)
  redis.call('SET', tomb, 'ended', 'EX', linger)
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
"""

#: ARGV: token, maxsize (-1: keep), joinable (-1: keep), linger, with_sender (1/0).
#: Returns {status, maxsize, joinable}: status 0 ok, -1 ended, -2 options differ, -3 broken.
OPEN = (
    _PRELUDE
    + """
local with_sender = ARGV[5] == '1'
if redis.call('EXISTS', tomb) == 1 then
  if with_sender then return {-1, 0, 0} end
  return {0, -1, -1}
end
if redis.call('EXISTS', meta) == 0 then
  if not with_sender then return {0, -1, -1} end
  local m = math.max(tonumber(ARGV[2]), 0)
  local j = math.max(tonumber(ARGV[3]), 0)
  redis.call('HSET', meta, 'maxsize', m, 'joinable', j, 'linger', ARGV[4], 'sent', 0,
    'done', 0, 'ended', 0, 'broken', 0, 'bell', 0)
  redis.pcall('XGROUP', 'CREATE', items, 'g', '0', 'MKSTREAM')
end
local st = redis.call('HMGET', meta, 'maxsize', 'joinable', 'ended', 'broken')
local m, j = tonumber(st[1]), tonumber(st[2])
if with_sender then
  if st[3] == '1' then return {-1, m, j} end
  if st[4] == '1' then return {-3, m, j} end
  if (tonumber(ARGV[2]) >= 0 and tonumber(ARGV[2]) ~= m)
      or (tonumber(ARGV[3]) >= 0 and tonumber(ARGV[3]) ~= j) then
    return {-2, m, j}
  end
  redis.call('HSETNX', handles, ARGV[1], 1)
end
return {0, m, j}
"""
)

#: ARGV: token, member, first sequence number, lease (ms), items...
#: Returns {how many of the items are stored, bell}; -1 closed, -2 broken.
PUT = (
    _PRELUDE
    + """
local st = redis.call('HMGET', meta, 'maxsize', 'sent', 'broken', 'bell')
if not st[2] or redis.call('HEXISTS', handles, ARGV[1]) == 0 then return {-1, 0} end
if st[3] == '1' then return {-2, 0} end
local base = tonumber(ARGV[3])
local n = #ARGV - 4
local last = tonumber(redis.call('HGET', seqs, ARGV[2]) or '-1')
local skip = math.min(math.max(last - base + 1, 0), n)
local room = n - skip
local maxsize, sent = tonumber(st[1]), tonumber(st[2])
if maxsize > 0 then
  room = math.max(math.min(room, maxsize - waiting()), 0)
end
for i = 1, room do
  redis.call('XADD', items, string.format('%d-0', sent + i), 'd', ARGV[4 + skip + i])
end
if room > 0 then
  redis.call('HSET', meta, 'sent', sent + room)
  redis.call('HSET', seqs, ARGV[2], base + skip + room - 1)
end
redis.call('ZADD', sleases, now_ms() + tonumber(ARGV[4]), ARGV[2])
return {skip + room, tonumber(st[4])}
"""
)

#: ARGV: consumer, max items, lease (ms), recover (1/0), ids to acknowledge...
#: Returns {status, joinable, ...}: 'items' or 'again' then id, data pairs (again: this
#: receiver's own unacknowledged items, after a lost reply); 'none' then sent, bell, maxsize
#: (-1: no such channel yet);
#: 'end'; 'broken'.
TAKE = (
    _PRELUDE
    + """
local st = redis.call('HMGET', meta, 'maxsize', 'sent', 'ended', 'broken', 'joinable')
if not st[2] then
  if redis.call('EXISTS', tomb) == 1 then return {'end', 0} end
  return {'none', 0, 0, 0, -1}
end
local me, count, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local joinable = st[5] == '1'
local j = joinable and 1 or 0
local now = now_ms()
redis.call('ZADD', rleases, now + lease, me)
local acked = 0
if not joinable then acked = ack({unpack(ARGV, 5)}) end
local function pack(status, entries)
  local out = {status, j}
  for _, e in ipairs(entries) do
    if type(e) == 'table' and type(e[2]) == 'table' then
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
    end
  end
  return out
end
-- the unacknowledged items of receivers whose lease lapsed go to this one
for _, d in ipairs(redis.call('ZRANGEBYSCORE', rleases, '-inf', now, 'LIMIT', 0, 4)) do
  if d ~= me then
    local p = redis.call('XPENDING', items, 'g', 'IDLE', lease, '-', '+', count, d)
    if #p > 0 then
      local ids = {}
      for i, e in ipairs(p) do ids[i] = e[1] end
      local got = redis.call('XCLAIM', items, 'g', me, lease, unpack(ids))
      if #got > 0 then return pack('items', got) end
    elseif #redis.call('XPENDING', items, 'g', '-', '+', 1, d) == 0 then
      redis.call('XGROUP', 'DELCONSUMER', items, 'g', d)
      redis.call('ZREM', rleases, d)
    end
  end
end
if ARGV[4] == '1' then
  local r = redis.call('XREADGROUP', 'GROUP', 'g', me, 'STREAMS', items, '0')
  if r and #r[1][2] > 0 then return pack('again', r[1][2]) end
end
local maxsize = tonumber(st[1])
local full = maxsize > 0 and waiting() >= maxsize
local r = redis.call('XREADGROUP', 'GROUP', 'g', me, 'COUNT', count, 'STREAMS', items, '>')
if r and #r[1][2] > 0 then
  if full then ring() end
  return pack('items', r[1][2])
end
if st[3] == '1' then
  if redis.call('XLEN', items) == 0 then
    finish()
    return {'end', j}
  end
  if acked > 0 then ring() end
elseif st[4] == '1' then
  return {'broken', j}
elseif redis.call('HLEN', handles) > 0 and redis.call('ZCARD', sleases) > 0
    and redis.call('ZCOUNT', sleases, '(' .. now, '+inf') == 0 then
  redis.call('HSET', meta, 'broken', 1)
  ring()
  return {'broken', j}
end
return {'none', j, st[2], redis.call('HGET', meta, 'bell'), maxsize}
"""
)

#: ARGV: parent token, new token. Returns 1 if the new handle is open, 0 if the parent is closed.
CLONE = (
    _PRELUDE
    + """
if redis.call('HEXISTS', handles, ARGV[2]) == 1 then return 1 end
if redis.call('HEXISTS', handles, ARGV[1]) == 0 then return 0 end
redis.call('HSET', handles, ARGV[2], 1)
return 1
"""
)

#: ARGV: token. Returns 0 if it was closed already, 1 if closed now, 2 if that ended the channel.
CLOSE = (
    _PRELUDE
    + """
if redis.call('HDEL', handles, ARGV[1]) == 0 then return 0 end
local prefix = ARGV[1] .. '|'
for _, m in ipairs(redis.call('ZRANGE', sleases, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then
    redis.call('ZREM', sleases, m)
    redis.call('HDEL', seqs, m)
  end
end
if redis.call('HLEN', handles) > 0 then return 1 end
redis.call('HSET', meta, 'ended', 1)
if redis.call('XLEN', items) == 0 then finish() else ring() end
return 2
"""
)

#: ARGV: consumer, ids to acknowledge... Forgets the receiver unless it still holds items.
CLOSE_RECEIVER = (
    _PRELUDE
    + """
if redis.call('EXISTS', meta) == 0 then return 0 end
local acked = ack({unpack(ARGV, 2)})
if #redis.call('XPENDING', items, 'g', '-', '+', 1, ARGV[1]) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', items, 'g', ARGV[1])
  redis.call('ZREM', rleases, ARGV[1])
end
if redis.call('HGET', meta, 'ended') == '1' then
  if redis.call('XLEN', items) == 0 then finish() elseif acked > 0 then ring() end
end
return acked
"""
)

#: ARGV: id. Marks one item done (joinable channels). Returns 1, or 0 if it was done already.
DONE = (
    _PRELUDE
    + """
if redis.call('EXISTS', meta) == 0 then return 0 end
local n = ack({ARGV[1]})
if n == 0 then return 0 end
local done = redis.call('HINCRBY', meta, 'done', 1)
local st = redis.call('HMGET', meta, 'sent', 'ended')
if st[2] == '1' and redis.call('XLEN', items) == 0 then
  finish()
elseif tonumber(st[1]) == done or st[2] == '1' then
  ring()
end
return 1
"""
)

#: ARGV: lease (ms), consumer ('' if none), suffix ('' if none), sender members...
#: Extends the leases still held: the members named, and every member ending in the suffix
#: (the leases held for this process since it started, see BORN).
RENEW = (
    _PRELUDE
    + """
if redis.call('EXISTS', meta) == 0 then return 0 end
local until_ = now_ms() + tonumber(ARGV[1])
if ARGV[2] ~= '' then redis.call('ZADD', rleases, 'XX', until_, ARGV[2]) end
local suffix = ARGV[3]
if suffix ~= '' then
  for _, m in ipairs(redis.call('ZRANGE', sleases, 0, -1)) do
    if #m > #suffix and string.sub(m, -#suffix) == suffix then
      redis.call('ZADD', sleases, 'XX', until_, m)
    end
  end
end
for i = 4, #ARGV do redis.call('ZADD', sleases, 'XX', until_, ARGV[i]) end
return 1
"""
)

#: ARGV: lease (ms), then (token, member, alive 1/0) for children started with a handle.
#: A live child's lease starts (the child and its starter renew it); a dead one's lapses now.
#: Closed handles are skipped. Returns how many leases lapsed.
BORN = (
    _PRELUDE
    + """
if redis.call('EXISTS', meta) == 0 then return 0 end
local until_ = now_ms() + tonumber(ARGV[1])
local lapsed = 0
for i = 2, #ARGV, 3 do
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
return lapsed
"""
)

#: Returns {exists, sent, received, done, ended, broken, joinable, senders, receivers, bell}.
STATS = (
    _PRELUDE
    + """
if redis.call('EXISTS', meta) == 0 then
  return {0, 0, 0, 0, redis.call('EXISTS', tomb), 0, 0, 0, 0, 0}
end
local st = redis.call('HMGET', meta, 'sent', 'done', 'ended', 'broken', 'joinable', 'bell')
return {1, tonumber(st[1]), tonumber(st[1]) - waiting(), tonumber(st[2]), tonumber(st[3]),
  tonumber(st[4]),
  tonumber(st[5]), redis.call('HLEN', handles),
  redis.call('ZCOUNT', rleases, '(' .. now_ms(), '+inf'), tonumber(st[6])}
"""
)
