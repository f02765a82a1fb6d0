"""Lua scripts run from a pipeline without redis-py's extra round trip.

redis-py's ``Script(client=pipeline)`` makes the pipeline send ``SCRIPT EXISTS`` (and
``SCRIPT LOAD`` for any missing) before its commands, on every execute: a whole round trip
spent asking, three per job before this (``bench/results/roundtrip-commands.md``). It asks
because an ``EVALSHA`` inside a MULTI that finds no script fails alone while the rest of
the transaction is applied. ``EVAL`` with the script's text cannot miss (the server caches
scripts by the digest of their text, so it is not compiled again), and its few hundred
bytes ride in the round trip the pipeline makes anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .events import EMIT_LUA

Arg = str | bytes | int | float


def run_script(
    script: Script,
    client: Pipeline | redis.Redis,
    keys: Sequence[str],
    args: Sequence[Arg],
) -> Any:
    """``script`` on ``keys`` and ``args``: queued in a buffering pipeline (as ``EVAL``),
    run at once on a pipeline in WATCH mode (``EVALSHA``, loading it if the server has
    not got it: no MULTI yet, so a miss costs nothing but the retry), or on a client."""
    if not isinstance(client, Pipeline):
        return script(keys=keys, args=args, client=client)
    if client.explicit_transaction or not client.watching:  # buffering: MULTI, or no WATCH
        text = cast(str, script.script)  # Atelier registers its scripts as text
        return client.eval(text, len(keys), *keys, *args)
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return client.evalsha(script.sha, len(keys), *keys, *args)


# The top-level members of a JSON object (a job record as pydantic writes it: no spaces,
# plain field names) as raw text, so a script can rewrite a few members and keep the rest
# byte for byte: cjson.encode would round numbers to 14 digits (a float param, a large
# integer) and write an empty list as {}.
JSON_MEMBERS_LUA = r"""
local function json_members(text)
  local names, values, i = {}, {}, 2
  while i < #text do
    local name_end = string.find(text, '"', i + 1, true)
    local name = string.sub(text, i + 1, name_end - 1)
    local start, j, depth = name_end + 2, name_end + 2, 0
    while true do
      j = string.find(text, '[\\"{}%[%],]', j)
      local c = string.sub(text, j, j)
      if c == '"' then  -- to the string's closing quote, past its escapes
        local k = j + 1
        while true do
          local q = string.find(text, '[\\"]', k)
          if string.sub(text, q, q) == '"' then j = q; break end
          k = q + 2
        end
      elseif c == '{' or c == '[' then depth = depth + 1
      elseif depth > 0 then
        if c == '}' or c == ']' then depth = depth - 1 end
      else break end  -- at depth 0: the member's ',' or the object's '}'
      j = j + 1
    end
    names[#names + 1] = name
    values[name] = string.sub(text, start, j - 1)
    i = j + 1
  end
  return names, values
end
"""

# The fair pick and the start of the picked job, in one step (``JobStore.claim_next``):
# what was a WATCH of the fair set, the pick, a WATCH and read of the job and a MULTI (five
# round trips, and a retry for every claim another worker won meanwhile) is one call that
# no other command can interleave with. The rules are ``shared.scheduling``'s; the writes
# are those of a claim's transition (``shared.jobs``): the record (status, attempt,
# started_at, worker) and the fence, the job out of every waiting index and into
# ``running`` with its lease, the owner's tag moved on, the ``status`` event.
# KEYS[1] fair set, KEYS[2] fair tags, KEYS[3] running, KEYS[4] start deadlines,
# KEYS[5] requeued, KEYS[6] queued:{type}. ARGV key prefix, job type, owners to scan,
# default running limit, default share, owner overrides (JSON: owner -> [limit, share]),
# started_at (a JSON number), lease expiry, worker (a JSON string), the fence's random
# part, picks at most (each picked id whose job is not queued is dropped, and picks again).
# Returns the claimed job's hash (HGETALL), or nil.
CLAIM_NEXT_LUA = (
    JSON_MEMBERS_LUA
    + EMIT_LUA
    + r"""
local prefix, jtype, scan = ARGV[1], ARGV[2], tonumber(ARGV[3])
local default_limit, default_share = tonumber(ARGV[4]), tonumber(ARGV[5])
local overrides = cjson.decode(ARGV[6])
local fair, tags = KEYS[1], KEYS[2]

local function pick()
  local owners = redis.call('ZRANGE', fair, 0, scan - 1, 'WITHSCORES')
  for i = 1, #owners, 2 do
    local owner = owners[i]
    local limit = overrides[owner] and overrides[owner][1] or default_limit
    if redis.call('SCARD', prefix .. ':owner-running:' .. jtype .. ':' .. owner) < limit then
      local first = redis.call('ZRANGE', prefix .. ':fair:' .. jtype .. ':' .. owner, 0, 0)
      if first[1] then return first[1], owner, tonumber(owners[i + 1]) end
    end
  end
  return nil
end

local function start(job_id, job_key, record, owner, tag, attempt)
  local names, values = json_members(record)
  local out = {}
  for _, name in ipairs(names) do
    if name ~= 'status' and name ~= 'started_at' and name ~= 'attempt' and name ~= 'worker' then
      out[#out + 1] = '"' .. name .. '":' .. values[name]
    end
  end
  out[#out + 1] = '"status":"running","started_at":' .. ARGV[7] .. ',"attempt":' .. attempt
    .. ',"worker":' .. ARGV[9]
  redis.call('HSET', job_key, 'record', '{' .. table.concat(out, ',') .. '}',
             'fence', attempt .. '-' .. ARGV[10])
  for k = 3, 6 do redis.call('ZREM', KEYS[k], job_id) end
  redis.call('ZADD', KEYS[3], ARGV[8], job_id)
  local queue = prefix .. ':fair:' .. jtype .. ':' .. owner
  redis.call('ZREM', queue, job_id)
  redis.call('SADD', prefix .. ':owner-running:' .. jtype .. ':' .. owner, job_id)
  local share = overrides[owner] and overrides[owner][2] or default_share
  local after = string.format('%.17g', tag + 1.0 / math.max(share, 1e-6))
  redis.call('HSET', tags, owner, after, '~now', string.format('%.17g', tag))
  if redis.call('ZCARD', queue) > 0 then
    redis.call('ZADD', fair, after, owner)
  else
    redis.call('ZREM', fair, owner)
  end
  local data = '{"status":"running","type":' .. values['type'] .. ',"kind":' .. values['kind']
    .. ',"attempt":' .. attempt
  if values['error'] then data = data .. ',"error":' .. values['error'] end
  if values['model_id'] then data = data .. ',"model_id":' .. values['model_id'] end
  emit(job_key, prefix, job_id, 'status', data .. '}')
end

for _ = 1, tonumber(ARGV[11]) do
  local job_id, owner, tag = pick()
  if not job_id then return nil end
  local job_key = prefix .. ':job:' .. job_id
  local record = redis.call('HGET', job_key, 'record')
  local job = record and cjson.decode(record)
  if job and (job['status'] or 'queued') == 'queued' then
    start(job_id, job_key, record, owner, tag, math.floor(tonumber(job['attempt'] or 0) + 1))
    return redis.call('HGETALL', job_key)
  end
  -- a picked id whose job is not queued (a record deleted by hand): drop it, pick again
  local queue = prefix .. ':fair:' .. jtype .. ':' .. owner
  redis.call('ZREM', queue, job_id)
  if redis.call('ZCARD', queue) == 0 then redis.call('ZREM', fair, owner) end
  redis.call('SREM', prefix .. ':owner-running:' .. jtype .. ':' .. owner, job_id)
end
return nil
"""
)
