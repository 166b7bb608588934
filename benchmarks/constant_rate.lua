-- wrk script: send requests at a fixed rate (constant arrival), not as fast as answers come.
--
--   wrk -t1 -c CONNECTIONS -d SECONDS -s benchmarks/constant_rate.lua URL -- RATE BODY_FILE
--
-- RATE is requests per second per wrk thread (-t): with -t1, the run's rate.
--
-- Each thread keeps its own schedule: the k-th send is due at start + k / rate. A connection
-- that is free asks `delay()` for the wait until the next unclaimed slot, so sends follow the
-- schedule whatever the answers' latency, as long as a connection is free at each slot (give
-- more connections than rate x worst latency). A slot reached with no free connection is sent
-- late: `done` reports how late the latest one was, so a run that did not hold its rate says so
-- (wrk's latency is measured from the actual send, so lateness would otherwise be hidden).
-- Prints one JSON line: requests, duration, errors, latency percentiles (ms), max lateness.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } flywheel_timespec;
int clock_gettime(int clock, flywheel_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("flywheel_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local interval_ms, start_ms
local sent = 0
late_ms = 0 -- global: read by `done` through thread:get

function init(args)
  interval_ms = 1000 / tonumber(args[1])
  local body = assert(io.open(args[2], "rb")):read("*a")
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function delay()
  local now = now_ms()
  if start_ms == nil then
    start_ms = now
  end
  local due = start_ms + sent * interval_ms
  sent = sent + 1
  if due < now then
    late_ms = math.max(late_ms, now - due)
    return 0
  end
  return math.floor(due - now + 0.5)
end

function done(summary, latency, requests)
  local late = 0
  for _, thread in ipairs(threads) do
    late = math.max(late, thread:get("late_ms") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "max_late_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, late))
end
