#!lua name=forkpool
--[[
forkpool's server-side functions (Redis 7 FUNCTION LOAD), SPEC 10 and
forkpool-protocol(7).  Every change to a job's lease and every outcome goes
through one of these, so the lease check and the change are one atomic step.

Keys of queue Q (all share the hash tag {Q}):
  fp:{Q}:jobs      the jobs stream; consumer group "forkpool"
  fp:{Q}:dead      the dead-letter stream
  fp:{Q}:out:ID    the outcome record of job ID, a hash: o = the outcome
                   (msgpack), by = "CONSUMER DELIVERIES" that recorded it;
                   expires
  fp:{Q}:idem:K    the id of the job submitted with idempotency key K, expires
  fp:{Q}:reply:C   reply stream of producer C: one entry per outcome, expires

A host holds job ID while the group's pending entry for ID names the host's
consumer and carries the delivery count the host was given with it (the
fencing token: every claim by anyone raises it).  The lease is the entry's
idle time, measured by Redis's own clock: a host renews it by resetting the
idle time (XCLAIM ... JUSTID, which keeps the count); once it passes the
lease, any host may claim the job (XAUTOCLAIM), raising the count, and the
first host's calls are refused from then on.
]]

local GROUP = 'forkpool'

-- The pending entry of `id` if `consumer` holds it with delivery count
-- `count`, else nil.
local function held(jobs, consumer, id, count)
    local p = redis.call('XPENDING', jobs, GROUP, id, id, 1)
    local e = p[1]
    if e == nil or e[2] ~= consumer or tonumber(e[4]) ~= tonumber(count) then
        return nil
    end
    return e
end

local function ensure_group(jobs)
    if redis.call('EXISTS', jobs) == 0 then
        redis.call('XGROUP', 'CREATE', jobs, GROUP, '0', 'MKSTREAM')
    end
end

-- fp_submit KEYS: jobs [idem]  ARGV: payload opts reply retention_s
-- -> {id, 1} for a new job, {id, 0} for a repeated idempotency key.
local function fp_submit(keys, args)
    local jobs, idem = keys[1], keys[2]
    if idem ~= nil then
        local prev = redis.call('GET', idem)
        if prev then return {prev, 0} end
    end
    ensure_group(jobs)
    local fields = {'p', args[1]}
    if args[2] ~= '' then fields[#fields + 1] = 'o'; fields[#fields + 1] = args[2] end
    if args[3] ~= '' then fields[#fields + 1] = 'r'; fields[#fields + 1] = args[3] end
    local id = redis.call('XADD', jobs, '*', unpack(fields))
    if idem ~= nil then
        redis.call('SET', idem, id, 'EX', args[4])
    end
    return {id, 1}
end

-- fp_join KEYS: jobs -> 1.  Creates the stream and the group if missing.
local function fp_join(keys, args)
    ensure_group(keys[1])
    return 1
end

-- fp_claim KEYS: jobs  ARGV: consumer lease_ms count [cursor]
-- Claims up to `count` jobs whose lease lapsed (idle >= lease_ms), looking
-- at the pending list from `cursor` (default 0-0, the start).
-- -> {next_cursor, {id, deliveries, field, value, ...}, ...}; the cursor
-- is 0-0 once the whole list has been looked at.
local function fp_claim(keys, args)
    local jobs, consumer = keys[1], args[1]
    local r = redis.call('XAUTOCLAIM', jobs, GROUP, consumer, args[2],
                         args[4] or '0-0', 'COUNT', args[3])
    local out = {r[1]}
    for _, entry in ipairs(r[2]) do
        local id = entry[1]
        local p = redis.call('XPENDING', jobs, GROUP, id, id, 1)[1]
        if p ~= nil then
            local row = {id, p[4]}
            for _, v in ipairs(entry[2]) do row[#row + 1] = v end
            out[#out + 1] = row
        end
    end
    return out
end

-- fp_renew KEYS: jobs  ARGV: consumer id1 deliveries1 id2 deliveries2 ...
-- Renews the lease of each job still held; -> the ids no longer held.
local function fp_renew(keys, args)
    local jobs, consumer = keys[1], args[1]
    local lost = {}
    for i = 2, #args - 1, 2 do
        local id = args[i]
        if held(jobs, consumer, id, args[i + 1]) then
            redis.call('XCLAIM', jobs, GROUP, consumer, 0, id, 'JUSTID')
        else
            lost[#lost + 1] = id
        end
    end
    return lost
end

-- fp_record KEYS: jobs out [reply]  ARGV: consumer id deliveries outcome
--                                         retention_s reply_maxlen [dead]
-- Records the outcome of a job the caller still holds and removes the job:
-- -> 1, or 0 when the lease was lost (nothing changes).  With ARGV[7] set
-- (the dead-letter stream's key), the job is also copied there.  A retry
-- of a call whose reply was lost (the connection dropped) finds its own
-- record and answers 1 again.
local function fp_record(keys, args)
    local jobs, out, reply = keys[1], keys[2], keys[3]
    local consumer, id = args[1], args[2]
    local by = consumer .. ' ' .. args[3]
    if not held(jobs, consumer, id, args[3]) then
        if redis.call('HGET', out, 'by') == by then
            return 1
        end
        return 0
    end
    if args[7] ~= nil and args[7] ~= '' then
        local e = redis.call('XRANGE', jobs, id, id)[1]
        local fields = {'id', id, 'outcome', args[4]}
        if e ~= nil then
            for _, v in ipairs(e[2]) do fields[#fields + 1] = v end
        end
        redis.call('XADD', args[7], '*', unpack(fields))
    end
    redis.call('XACK', jobs, GROUP, id)
    redis.call('XDEL', jobs, id)
    redis.call('HSET', out, 'o', args[4], 'by', by)
    redis.call('EXPIRE', out, args[5])
    if reply ~= nil then
        redis.call('XADD', reply, 'MAXLEN', '~', args[6], '*',
                   'id', id, 'o', args[4])
        redis.call('EXPIRE', reply, args[5])
    end
    return 1
end

-- fp_record_many KEYS: jobs dead out1 reply1 out2 reply2 ...
--                ARGV: consumer retention_s reply_maxlen
--                      id1 deliveries1 outcome1 flags1 id2 ...
-- fp_record for many jobs in one call.  flags: "r" when the job has a
-- reply stream (replyN; otherwise replyN repeats outN and is not used),
-- "d" when it is dead-lettered.  -> {1 or 0 per job, in order}.
local function fp_record_many(keys, args)
    local done = {}
    local n = 0
    for i = 4, #args - 3, 4 do
        n = n + 1
        local flags = args[i + 3]
        local k = {keys[1], keys[1 + 2 * n]}
        if string.find(flags, 'r', 1, true) then k[3] = keys[2 + 2 * n] end
        local a = {args[1], args[i], args[i + 1], args[i + 2], args[2], args[3]}
        if string.find(flags, 'd', 1, true) then a[7] = keys[2] end
        done[n] = fp_record(k, a)
    end
    return done
end

-- fp_handback KEYS: jobs  ARGV: consumer id1 deliveries1 ...
-- Gives back jobs the caller holds but has not started (a drain): their
-- lease lapses at once and the delivery count drops back, so a handed-back
-- job does not count as a lost host.  -> how many were handed back.
local function fp_handback(keys, args)
    local jobs, consumer = keys[1], args[1]
    local n = 0
    for i = 2, #args - 1, 2 do
        local id, count = args[i], tonumber(args[i + 1])
        if held(jobs, consumer, id, count) then
            redis.call('XCLAIM', jobs, GROUP, consumer, 0, id,
                       'IDLE', 2^40, 'RETRYCOUNT', count - 1, 'JUSTID')
            n = n + 1
        end
    end
    return n
end

redis.register_function('fp_submit', fp_submit)
redis.register_function('fp_join', fp_join)
redis.register_function('fp_claim', fp_claim)
redis.register_function('fp_renew', fp_renew)
redis.register_function('fp_record', fp_record)
redis.register_function('fp_record_many', fp_record_many)
redis.register_function('fp_handback', fp_handback)
