-- Shared by the kipd benchmark scripts: request files, per-thread state and
-- a done() that prints one JSON line with throughput and percentiles.
-- A request file has one request per line: METHOD \t PATH \t TOKEN \t BODY
local M = {}
local threads = {}
local counter = 0

function M.load(path)
  local reqs = {}
  for line in io.lines(path) do
    local m, p, t, b = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    if m then reqs[#reqs + 1] = {m, p, t, b} end
  end
  return reqs
end

function M.setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  threads[#threads + 1] = thread
end

function M.headers(token, extra)
  local h = {["Authorization"] = "Bearer " .. token, ["Connection"] = "keep-alive"}
  if extra then for k, v in pairs(extra) do h[k] = v end end
  return h
end

function M.done(summary, latency, requests)
  local non2xx = summary.errors.status
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  local extra = 0
  for _, t in ipairs(threads) do extra = extra + (tonumber(t:get("bad")) or 0) end
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "rps": %.1f, "non2xx": %d, "socket_errors": %d, "app_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), non2xx, errs, extra,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end

return M
